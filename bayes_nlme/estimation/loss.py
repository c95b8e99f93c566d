"""Per-observation loss ``l = -2 log p(y | f)`` (up to the NONMEM constant) and its
derivatives, for observed and censored rows.

The frequentist objectives need ``l`` and its total derivatives with respect to the
prediction ``f`` (through the residual variance ``r(f)`` too, with interaction) and to
the population parameters (through ``r``). Both densities are written as functions of
``(f, r)``; their partial derivatives up to third order are combined with those of
``r`` in one place (:func:`total_partials`).

* Observed rows: ``l = log r + (y - f)^2 / r`` (the ``log 2 pi`` constant is left out,
  as in NONMEM's OFV).
* Censored rows (M3, Beal 2001): ``l = -2 log Phi(z)``, ``z = (L - f) / sqrt(r)`` with
  the limit ``L`` on the scale of ``f`` (``log LLOQ`` under the exponential model).
  These rows keep their ``log 2 pi`` in ``minus2ll`` (none is removed for them).
* M4 (``positive=True``): every row is conditioned on ``y >= 0``, so observed rows add
  ``2 log Phi(f / sqrt(r))`` and censored rows contribute
  ``-2 log[(Phi(z_L) - Phi(z_0)) / Phi(f / sqrt(r))]``. Their derivatives are carried
  by jet arithmetic (:mod:`.jets`).

The densities agree with :func:`bayes_nlme.build.residual.observation_loglik`, the
definition the Bayesian path uses; a test checks it.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

from .jets import Jet, inverse_sqrt_jet, log1mexp_jet, log_ndtr_jet, partials

__all__ = ["observation_loss", "observation_loss_value", "total_partials"]


def _gaussian(e: np.ndarray, r: np.ndarray) -> dict:
    return {
        "l": np.log(r) + e**2 / r,
        "f": -2.0 * e / r,
        "r": 1.0 / r - e**2 / r**2,
        "ff": 2.0 / r,
        "fr": 2.0 * e / r**2,
        "rr": -1.0 / r**2 + 2.0 * e**2 / r**3,
        "fff": np.zeros_like(e),
        "ffr": -2.0 / r**2,
        "frr": -4.0 * e / r**3,
        "rrr": 2.0 / r**3 - 6.0 * e**2 / r**4,
    }


def _censored(limit: np.ndarray, f: np.ndarray, r: np.ndarray) -> dict:
    s = np.sqrt(r)
    z = (limit - f) / s
    log_phi = log_ndtr(z)
    lam = np.exp(-0.5 * z**2 - 0.5 * np.log(2.0 * np.pi) - log_phi)  # phi(z) / Phi(z)
    # d/dz log Phi = lam, lam' = -lam (z + lam), (lam (z + lam))' = lam' (z + lam) + lam (1 + lam')
    dlam = -lam * (z + lam)
    l_z = -2.0 * lam
    l_zz = 2.0 * lam * (z + lam)
    l_zzz = 2.0 * (dlam * (z + lam) + lam * (1.0 + dlam))
    z_f = -1.0 / s
    z_r = -z / (2.0 * r)
    z_fr = 1.0 / (2.0 * r * s)
    z_rr = 3.0 * z / (4.0 * r**2)
    z_frr = -3.0 / (4.0 * r**2 * s)
    z_rrr = -15.0 * z / (8.0 * r**3)
    return {
        "l": -2.0 * log_phi,
        "f": l_z * z_f,
        "r": l_z * z_r,
        "ff": l_zz * z_f**2,
        "fr": l_zz * z_f * z_r + l_z * z_fr,
        "rr": l_zz * z_r**2 + l_z * z_rr,
        "fff": l_zzz * z_f**3,
        "ffr": l_zzz * z_f**2 * z_r + 2.0 * l_zz * z_f * z_fr,
        "frr": l_zzz * z_f * z_r**2 + l_zz * (2.0 * z_fr * z_r + z_f * z_rr) + l_z * z_frr,
        "rrr": l_zzz * z_r**3 + 3.0 * l_zz * z_r * z_rr + l_z * z_rrr,
    }


def _m4_terms(limit: np.ndarray, f: np.ndarray, r: np.ndarray, censored: np.ndarray) -> dict:
    """M4 rows: the conditioning ``2 log Phi(f / sqrt r)`` on every row, and on censored rows
    the probability of ``0 <= y < L`` in place of the Gaussian density."""
    fj, rj = Jet.variable(f, "f"), Jet.variable(r, "r")
    u = inverse_sqrt_jet(rj)
    positive = log_ndtr_jet(fj * u)
    out = partials(positive * 2.0)
    if censored is None or not np.any(censored):
        return {"condition": out}
    a = log_ndtr_jet((fj * -1.0 + limit) * u)
    b = log_ndtr_jet(fj * u * -1.0)
    band = a + log1mexp_jet(b - a)  # log(Phi(z_L) - Phi(z_0))
    return {"condition": out, "censored": partials(band * -2.0 + positive * 2.0)}


def observation_loss(
    y: np.ndarray, f: np.ndarray, r: np.ndarray, censored=None, limit=None, positive: bool = False
) -> dict:
    """``l`` and its partial derivatives in ``f`` and ``r`` (keys ``l, f, r, ff, fr, rr,
    fff, ffr, frr, rrr``), for every observation.

    Parameters
    ----------
    y, f, r : numpy.ndarray
        Observations, predictions and residual variances (transformed scale).
    censored : numpy.ndarray of bool, optional
        Censored rows (M3).
    limit : numpy.ndarray, optional
        Their limits on the scale of ``f``.
    positive : bool
        M4: condition every row on ``y >= 0`` (natural-scale error models only).

    Returns
    -------
    dict of str to numpy.ndarray
    """
    any_censored = censored is not None and np.any(censored)
    if isinstance(positive, np.ndarray):
        return _loss_some_positive(y, f, r, censored if any_censored else None, limit, positive)
    with np.errstate(all="ignore"):
        out = _gaussian(y - f, r)
        if positive:
            terms = _m4_terms(np.where(censored, limit, 1.0) if any_censored else None, f, r, censored)
            out = {key: value + terms["condition"][key] for key, value in out.items()}
            if any_censored:
                out = {key: np.where(censored, terms["censored"][key], value) for key, value in out.items()}
            return out
        if not any_censored:
            return out
        cens = _censored(np.where(censored, limit, 0.0), f, r)
    return {key: np.where(censored, cens[key], value) for key, value in out.items()}


def _loss_some_positive(y, f, r, censored, limit, positive: np.ndarray) -> dict:
    """:func:`observation_loss` when only the rows marked ``positive`` follow M4 (the
    outputs of a model with several outputs may use different BLQ methods)."""
    with np.errstate(all="ignore"):
        out = _gaussian(y - f, r)
        terms = _m4_terms(np.where(censored, limit, 1.0) if censored is not None else None, f, r, censored)
        out = {key: value + np.where(positive, terms["condition"][key], 0.0) for key, value in out.items()}
        if censored is None:
            return out
        cens = _censored(np.where(censored, limit, 0.0), f, r)
        return {
            key: np.where(censored & positive, terms["censored"][key], np.where(censored, cens[key], value))
            for key, value in out.items()
        }


def observation_loss_value(
    y: np.ndarray, f: np.ndarray, r: np.ndarray, censored=None, limit=None, positive: bool = False
) -> np.ndarray:
    """``l`` alone (the ``"l"`` entry of :func:`observation_loss`, without the derivatives):
    ``log r + (y - f)^2 / r`` for observed rows, ``-2 log Phi((L - f) / sqrt(r))`` for
    censored ones (SAEM and importance sampling evaluate it many times).

    Parameters
    ----------
    y, f, r : numpy.ndarray
    censored : numpy.ndarray of bool, optional
    limit : numpy.ndarray, optional
    positive : bool
        M4: every row conditioned on ``y >= 0``.

    Returns
    -------
    numpy.ndarray
    """
    with np.errstate(all="ignore"):
        out = np.log(r) + (y - f) ** 2 / r
        condition = 2.0 * log_ndtr(f / np.sqrt(r)) if np.any(positive) else 0.0
        if isinstance(positive, np.ndarray):
            condition = np.where(positive, condition, 0.0)
        out = out + condition
        if censored is None or not np.any(censored):
            return out
        upper = log_ndtr((np.where(censored, limit, 0.0) - f) / np.sqrt(r))
        cens = -2.0 * upper
        if np.any(positive):
            lower = log_ndtr(-f / np.sqrt(r))
            band = -2.0 * (upper + np.log(-np.expm1(lower - upper))) + condition
            cens = np.where(positive, band, cens)
    return np.where(censored, cens, out)


def total_partials(lp: dict, res, third: bool = False) -> dict:
    """Total derivatives of ``l`` with respect to ``f`` (through ``r(f)`` too) and to psi.

    Parameters
    ----------
    lp : dict
        Partials from :func:`observation_loss`.
    res : Residual
        ``r`` and its derivatives (:meth:`.problem.Problem.residual`).
    third : bool
        Also the third-order terms (Laplace, and FOCE-I with censored rows).

    Returns
    -------
    dict
        ``l_r``, ``l_f``, ``l_ff``, ``l_psi``, ``l_fpsi`` (and ``l_fff``, ``l_ffpsi``).
    """
    r_f, r_ff = res.r_f, res.r_ff
    out = {
        "l_r": lp["r"],
        "l_f": lp["f"] + lp["r"] * r_f,
        "l_ff": lp["ff"] + 2.0 * lp["fr"] * r_f + lp["rr"] * r_f**2 + lp["r"] * r_ff,
        "l_psi": lp["r"][:, None] * res.r_psi,
    }
    out["l_fpsi"] = (lp["fr"] + lp["rr"] * r_f)[:, None] * res.r_psi + lp["r"][:, None] * res.r_fpsi
    if third:
        out["l_fff"] = (
            lp["fff"]
            + 3.0 * lp["ffr"] * r_f
            + 3.0 * lp["frr"] * r_f**2
            + lp["rrr"] * r_f**3
            + 3.0 * lp["fr"] * r_ff
            + 3.0 * lp["rr"] * r_f * r_ff
        )
        out["l_ffpsi"] = (
            (lp["ffr"] + 2.0 * lp["frr"] * r_f + lp["rrr"] * r_f**2 + lp["rr"] * r_ff)[:, None] * res.r_psi
            + 2.0 * (lp["fr"] + lp["rr"] * r_f)[:, None] * res.r_fpsi
            + lp["r"][:, None] * res.r_ffpsi
        )
    return out
