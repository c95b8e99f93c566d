"""Residual error models: the likelihood, its pointwise values and predictive draws.

With ``f`` the individual prediction of an observation:

==============  =========================================  ===========================
model           distribution of the observation ``y``       variances (priors)
==============  =========================================  ===========================
additive        ``N(f, sigma2_add)``                        ``sigma2_add``
proportional    ``N(f, sigma2_prop * f^2)``                 ``sigma2_prop``
combined        ``N(f, sigma2_add + sigma2_prop * f^2)``    ``sigma2_add, sigma2_prop``
exponential     ``log y ~ N(log f, sigma2_exp)``            ``sigma2_exp``
==============  =========================================  ===========================

The exponential model's density is taken on the ``y`` scale (a log-normal), so that
pointwise log-likelihoods of different error models are comparable (LOO).

Observations flagged ``BLQ = 1`` are left-censored at their limit (the row's ``LLOQ``,
else its ``DV``), by the method of ``[residual] blq`` (Beal 2001): M3 (default)
``P(y < LLOQ)``, M4 ``P(0 <= y < LLOQ) / P(y >= 0)`` with every uncensored row
conditioned on ``y >= 0``, M1 dropped.

:func:`observation_loglik` is the only definition of these densities: the Bayesian
model (:func:`likelihood`), the pointwise log-likelihood over posterior draws
(:func:`pointwise_loglik`, the ``log_likelihood`` group) and the frequentist engines
evaluate it; :func:`predictive_draws` draws from the same residual model.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..errors import DataError
from ..spec.outputs import residual_parts
from .priors import POSITIVE, check_prior, hyper_data, hyperparameters, prior_variable

__all__ = [
    "residual_hyperparameters",
    "residual_variances",
    "check_observations",
    "censoring_limits",
    "observation_loglik",
    "outputs_loglik",
    "likelihood",
    "pointwise_loglik",
    "predictive_draws",
]


def _priors(spec) -> dict:
    return {
        name: check_prior(getattr(part.residual, slot), f"{part.label}.{slot}", POSITIVE)
        for part in residual_parts(spec)
        for slot, name in part.names.items()
    }


def _rows(spec, output, n: int):
    """``(part, rows)`` for each output: the observation positions of that output.

    ``output`` is the design's ``obs_output`` (the output of each observation); a model
    with several outputs needs it.
    """
    parts = residual_parts(spec)
    if len(parts) == 1:
        return [(parts[0], slice(None))]
    if output is None:
        raise ValueError("a model with several outputs needs the output of each observation")
    output = np.asarray(output)
    return [(part, np.flatnonzero(output == part.index)) for part in parts]


def _own(sigma2: dict, part) -> dict:
    """The variances of one output under their single-output names (``sigma2_add`` ...)."""
    return {f"sigma2_{slot}": sigma2[name] for slot, name in part.names.items()}


def _at(values, rows):
    """``values[rows]`` for an array or tensor (None and scalars unchanged)."""
    if values is None or np.ndim(values) == 0 and not hasattr(values, "type"):
        return values
    if isinstance(rows, slice):
        return values
    return values[..., rows]


def outputs_loglik(spec, y, f, sigma2: dict, lower=None, output=None, xp=pt):
    """Log-likelihood of every observation, each with its output's residual model and
    censoring (CONTRACT 5.4): :func:`observation_loglik` per output.

    Parameters
    ----------
    spec : ModelSpec
    y, f : array-like (..., n_obs)
    sigma2 : dict
        Residual variances by canonical name (``sigma2_<output>_add`` ...); arrays
        broadcast against ``f``.
    lower : array-like, optional
        Censoring limits.
    output : array-like of int, optional
        The output of each observation (``EngineDesign.obs_output``); required with
        several outputs.
    xp : module

    Returns
    -------
    tensor or numpy.ndarray
    """
    groups = _rows(spec, output, None)
    if len(groups) == 1:
        part = groups[0][0]
        res = part.residual
        return observation_loglik(res.model, res.blq, y, f, _own(sigma2, part), lower, xp)
    out = xp.zeros_like(f) if xp is pt else np.zeros(np.broadcast_shapes(np.shape(f), np.shape(y)))
    for part, rows in groups:
        if not len(rows):
            continue
        res = part.residual
        low = None if lower is None else np.asarray(lower)[rows]
        value = observation_loglik(res.model, res.blq, _at(y, rows), _at(f, rows), _own(sigma2, part), low, xp)
        if xp is pt:
            out = pt.set_subtensor(out[..., rows], value)
        else:
            out[..., rows] = value
    return out


def residual_hyperparameters(spec) -> dict[str, np.ndarray]:
    """The hyperparameter data of the residual-variance priors.

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    dict of str to numpy.ndarray

    Raises
    ------
    SpecError
        When a prior the error model needs is missing (key ``residual.add`` ...).
    """
    out: dict[str, np.ndarray] = {}
    for name, prior in _priors(spec).items():
        out.update(hyperparameters(name, prior))
    return out


def residual_variances(spec) -> dict[str, pt.TensorVariable]:
    """Create the residual variances (``sigma2_add`` ...) in the current model.

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    dict of str to tensor
    """
    hyper_data(residual_hyperparameters(spec))
    return {name: prior_variable(name, prior) for name, prior in _priors(spec).items()}


def check_observations(spec, dv: np.ndarray, rows: np.ndarray, source: str, zero=None, lower=None, output=None) -> None:
    """Check that the observations suit the error model (of their output).

    Parameters
    ----------
    spec : ModelSpec
    dv : numpy.ndarray
        Observed values.
    rows : numpy.ndarray
        Their 1-based data rows.
    source : str
        The dataset, for the message.
    zero : numpy.ndarray of bool, optional
        Observations whose prediction is structurally zero
        (:func:`bayes_nlme.core.zero_observations`).
    lower : numpy.ndarray, optional
        Censoring limits (:func:`censoring_limits`): censored rows are checked on their
        limit instead of their ``DV``.
    output : numpy.ndarray of int, optional
        The output of each observation (required with several outputs).

    Raises
    ------
    DataError
        For the exponential model, when an observation is <= 0 (its log is undefined);
        for the proportional and exponential models, when an observation sits where
        the model predicts exactly 0 (before the first dose acts), since the error
        variance is 0 there.
    """
    if lower is not None:
        dv = np.where(np.isfinite(lower), lower, dv)
    items = []
    models = []
    for part, sel in _rows(spec, output, None):
        sel = np.arange(len(dv)) if isinstance(sel, slice) else sel
        model = part.residual.model
        models.append(model if part.output is None else f"{part.output}: {model}")
        z = None if zero is None else np.asarray(zero)[sel]
        # a built-in model's effect output is not zero before the dose: only concentrations are
        if part.output is not None and z is not None and not _is_concentration(spec, part.output):
            z = None
        items += _observation_problems(model, dv[sel], np.asarray(rows)[sel], z, part.output)
    if items:
        import pandas as pd

        raise DataError(
            f"Dataset '{source}' cannot be used with model '{spec.name}' ({', '.join(models)} residual error)",
            violations=pd.DataFrame(items),
            source=source,
        )


def _is_concentration(spec, output: str) -> bool:
    """Whether an output is the central concentration itself (its prediction is 0 before a dose)."""
    expression = next((o.expression for o in spec.outputs if o.name == output), "")
    return spec.structural != "ode" and expression.strip() == "C"


def _observation_problems(model: str, dv, rows, zero, output) -> list:
    from ..errors import format_rows

    items = []
    what = "" if output is None else f" of output {output!r}"
    if model == "exponential":
        bad = ~(dv > 0)
        if bad.any():
            bad_rows = [int(r) for r in rows[bad]]
            items.append(
                {
                    "check": "dv_positive",
                    "column": "DV",
                    "rows": bad_rows,
                    "message": f"DV <= 0 in {format_rows(bad_rows)}{what}: the exponential error model needs "
                    "positive observations (use an additive or combined error model, or set MDV = 1 on those rows)",
                }
            )
    if model in ("proportional", "exponential") and zero is not None and np.any(zero):
        bad_rows = [int(r) for r in rows[np.asarray(zero)]]
        items.append(
            {
                "check": "zero_prediction",
                "column": "TIME",
                "rows": bad_rows,
                "message": f"observations{what} before any dose acts (prediction 0) in {format_rows(bad_rows)}: the "
                f"{model} error model has zero variance there (use a combined error model, or set MDV = 1 "
                "on those rows)",
            }
        )
    return items


def _scale(model: str, f, sigma2: dict, xp):
    if model == "additive":
        return xp.sqrt(sigma2["sigma2_add"]) + 0.0 * f
    if model == "proportional":
        return xp.sqrt(sigma2["sigma2_prop"]) * f
    if model == "combined":
        return xp.sqrt(sigma2["sigma2_add"] + sigma2["sigma2_prop"] * f**2)
    return xp.sqrt(sigma2["sigma2_exp"]) + 0.0 * f


def censoring_limits(table) -> np.ndarray | None:
    """The limit of each censored observation (``-inf`` elsewhere), or None without BLQ.

    The limit is the row's ``LLOQ`` when the dataset has one there, else its ``DV``
    (CONTRACT 5.2).

    Parameters
    ----------
    table : pandas.DataFrame
        The observation records (with ``BLQ``, ``DV`` and optionally ``LLOQ``).

    Returns
    -------
    numpy.ndarray or None
    """
    blq = table["BLQ"].fillna(0.0).to_numpy(dtype=float) > 0
    if not blq.any():
        return None
    dv = table["DV"].to_numpy(dtype=float)
    lloq = table["LLOQ"].to_numpy(dtype=float) if "LLOQ" in table.columns else np.full(len(table), np.nan)
    limit = np.where(np.isnan(lloq), dv, lloq)
    return np.where(blq, limit, -np.inf)


def _log_ndtr(z, xp):
    if xp is np:
        from scipy.special import log_ndtr

        return log_ndtr(z)
    from pymc.distributions.dist_math import normal_lcdf

    return normal_lcdf(0.0, 1.0, z)


def _log_diff(a, b, xp):
    """``log(exp(a) - exp(b))`` for ``a >= b``."""
    if xp is np:
        with np.errstate(divide="ignore", invalid="ignore"):
            return a + np.log(-np.expm1(b - a))
    return a + pt.log1mexp(b - a)


def observation_loglik(model: str, blq: str, y, f, sigma2: dict, lower=None, xp=pt):
    """Log-likelihood of every observation: residual model and censoring (CONTRACT 5.2).

    The single definition used by the Bayesian model (``xp=pytensor.tensor``), the
    pointwise log-likelihood of a fit and the frequentist engines (``xp=numpy``).

    Parameters
    ----------
    model : str
        Residual model: ``additive``, ``proportional``, ``combined``, ``exponential``.
    blq : {"M3", "M4", "M1"}
        Censoring method. M3: a censored row contributes ``P(y < LLOQ)``; M4:
        ``P(0 <= y < LLOQ) / P(y >= 0)`` and every uncensored row is conditioned on
        ``y >= 0``; M1: censored rows contribute nothing. Under the exponential model
        ``y > 0`` always, so M4 equals M3.
    y, f : array-like
        Observations and individual predictions (broadcast together).
    sigma2 : dict
        Residual variances by canonical name.
    lower : array-like, optional
        Censoring limits (:func:`censoring_limits`); None: nothing censored.
    xp : module
        ``pytensor.tensor`` or ``numpy``.

    Returns
    -------
    tensor or numpy.ndarray
    """
    sd = _scale(model, f, sigma2, xp)
    log = xp.log
    if model == "exponential":
        mu, obs = log(f), log(xp.maximum(y, 1e-300) if xp is np else y)
        dens = -0.5 * ((obs - mu) / sd) ** 2 - log(sd) - 0.5 * np.log(2.0 * np.pi) - obs
    else:
        mu = f
        dens = -0.5 * ((y - mu) / sd) ** 2 - log(sd) - 0.5 * np.log(2.0 * np.pi)
    m4 = blq == "M4" and model != "exponential"
    if m4:
        log_positive = _log_ndtr(mu / sd, xp)
        dens = dens - log_positive
    if lower is None:
        return dens
    censored = np.isfinite(np.asarray(lower))
    if not censored.any():
        return dens
    limit = np.where(censored, lower, 1.0)
    if blq == "M1":
        cens = xp.zeros_like(dens) if xp is pt else np.zeros(np.shape(dens))
    else:
        z = ((np.log(limit) if model == "exponential" else limit) - mu) / sd
        cens = _log_ndtr(z, xp)
        if m4:
            cens = _log_diff(cens, _log_ndtr(-mu / sd, xp), xp) - log_positive
    return xp.where(censored, cens, dens) if xp is np else pt.switch(censored, cens, dens)


def likelihood(spec, f, dv, sigma2: dict, lower: np.ndarray | None = None, output=None):
    """Create the observed variable ``y`` (dims ``observation``) in the current model.

    Its log density is :func:`outputs_loglik` (each observation with its output's
    residual model and censoring method); its draws (prior predictive) are the residual
    models'.

    Parameters
    ----------
    spec : ModelSpec
    f : tensor
        Individual predictions, one per observation.
    dv : array-like or shared variable
        The observations.
    sigma2 : dict of str to tensor
        The residual variances (:func:`residual_variances`).
    lower : numpy.ndarray, optional
        Censoring limits: the LLOQ on BLQ rows, ``-inf`` elsewhere. None: no censoring.
    output : numpy.ndarray of int, optional
        The output of each observation (required with several outputs).

    Returns
    -------
    tensor
    """
    names = sorted(sigma2)

    def logp(value, mu, *variances):
        return outputs_loglik(spec, value, mu, dict(zip(names, variances)), lower, output, pt)

    def dist(mu, *args):
        *variances, size = args
        variances = dict(zip(names, variances))
        z = pm.Normal.dist(mu=pt.zeros_like(mu), sigma=1.0, size=size)
        y = pt.zeros_like(mu)
        for part, rows in _rows(spec, output, None):
            model = part.residual.model
            m = mu if isinstance(rows, slice) else mu[rows]
            e = z if isinstance(rows, slice) else z[rows]
            sd = _scale(model, m, _own(variances, part), pt)
            value = m * pt.exp(sd * e) if model == "exponential" else m + sd * e
            y = value if isinstance(rows, slice) else pt.set_subtensor(y[rows], value)
        return y

    return pm.CustomDist(
        "y", f, *[sigma2[name] for name in names], logp=logp, dist=dist, observed=dv, dims="observation"
    )


def pointwise_loglik(
    spec, f: np.ndarray, sigma2: dict, dv: np.ndarray, lower: np.ndarray | None = None, output=None
) -> np.ndarray:
    """Log-likelihood of every observation for every draw (numpy).

    Parameters
    ----------
    spec : ModelSpec
    f : numpy.ndarray (..., n_obs)
        Individual predictions per draw.
    sigma2 : dict of str to numpy.ndarray (...)
        Residual variances per draw.
    dv : numpy.ndarray (n_obs,)
    lower : numpy.ndarray (n_obs,), optional
        Censoring limits (see :func:`likelihood`).
    output : numpy.ndarray of int (n_obs,), optional
        The output of each observation (required with several outputs).

    Returns
    -------
    numpy.ndarray (..., n_obs)
    """
    s2 = {k: np.asarray(v)[..., None] for k, v in sigma2.items()}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return outputs_loglik(spec, dv, f, s2, lower, output, np)


def predictive_draws(
    spec, f: np.ndarray, sigma2: dict, rng, lower: np.ndarray | None = None, output=None
) -> np.ndarray:
    """Draws of the observations, residual error included (numpy): each observation
    with its output's residual model.

    Parameters
    ----------
    spec : ModelSpec
    f : numpy.ndarray (..., n_obs)
    sigma2 : dict of str to numpy.ndarray (...)
    rng : numpy.random.Generator
    lower : numpy.ndarray (n_obs,), optional
        Censoring limits: draws below are reported at the limit.
    output : numpy.ndarray of int (n_obs,), optional
        The output of each observation (required with several outputs).

    Returns
    -------
    numpy.ndarray (..., n_obs)
    """
    f = np.asarray(f, dtype=float)
    noise = rng.standard_normal(np.shape(f))
    y = np.empty(np.shape(f))
    for part, rows in _rows(spec, output, None):
        model = part.residual.model
        s2 = {k: np.asarray(v)[..., None] for k, v in _own(sigma2, part).items()}
        fk, ek = f[..., rows], noise[..., rows]
        scale = _scale(model, fk, s2, np)
        with np.errstate(divide="ignore", invalid="ignore"):
            y[..., rows] = fk * np.exp(scale * ek) if model == "exponential" else fk + scale * ek
    if lower is not None:
        y = np.where(np.isfinite(lower) & (y < lower), lower, y)
    return y
