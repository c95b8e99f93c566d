"""Power-scaling sensitivity of the population parameters (Kallioinen et al. 2024).

The posterior is re-weighted by Pareto-smoothed importance sampling as if the
prior (or the likelihood) were raised to a power close to 1; the change of each
parameter's marginal posterior, measured by the cumulative Jensen-Shannon
distance per unit of log-power, is its sensitivity. No refit is needed.

The sensitivities are those of :func:`arviz_stats.psense` on a small tree built here
(recomputed on plain arrays by :mod:`.mcse`, which adds their Monte-Carlo error by a
block bootstrap over draws):

* ``posterior``: the canonical population parameters (``theta_*``, ``beta_*``,
  ``omega_<P>_<Q>``, ``sigma2_*``);
* ``log_prior``: the log density of the spec's population priors at each draw,
  one variable per prior (evaluated with the priors' scipy equivalents; the LKJ
  correlation density is taken up to its constant, which power-scaling ignores);
* ``log_likelihood``: the pointwise log-likelihood ``y`` of the fit.

Each parameter's prior sensitivity scales its own prior component (``theta_CL``: the
prior of ``theta_CL``; ``omega_P_Q``: the prior of the omega; ``sigma2_*``: its own
prior), so that a weak prior on CL reads "ok" even when another prior moves CL a little
through correlations.

The verdicts (:mod:`.verdicts`) also use where the posterior sits in its prior and
NONMEM's ETABAR check (:mod:`.checks`): the 0.05 threshold of
:func:`arviz_stats.psense_summary` alone calls every hierarchical variance a conflict and
misses a conflict that the random effects absorb.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from ..errors import SpecError
from ..spec.priors import LKJ, InverseGamma, InverseWishart
from .verdicts import EXPLANATIONS, THRESHOLD, judge, verdict_kind

__all__ = [
    "explain",
    "log_prior_dataset",
    "power_scaling",
    "PSENSE_COLUMNS",
]

#: The columns of :func:`power_scaling` (and of ``psense.csv``).
PSENSE_COLUMNS = [
    "parameter",
    "prior",
    "prior_se",
    "likelihood",
    "likelihood_se",
    "prior_quantile",
    "etabar",
    "etabar_se",
    "etabar_p",
    "verdict",
    "explanation",
]

_SAMPLE_DIMS = ("chain", "draw")


def explain(name: str) -> str:
    """The generic explanation of a verdict.

    Parameters
    ----------
    name : str
        A verdict text (its kind is looked up, see
        :func:`~bayes_nlme.sensitivity.verdicts.verdict_kind`).

    Returns
    -------
    str
        The entry of :data:`~bayes_nlme.sensitivity.verdicts.EXPLANATIONS`.
    """
    return EXPLANATIONS[verdict_kind(name)]


def _values(da: xr.DataArray) -> np.ndarray:
    return np.asarray(da.transpose(*_SAMPLE_DIMS, ...).values, dtype=float)


def _coefficient_priors(spec) -> dict:
    return {c.canonical_name(p.name): c.coefficient for p in spec.parameters for c in p.covariates if c.estimated}


def _omega_logp(spec, omega: np.ndarray) -> np.ndarray:
    """Log prior of the omega draws ``(chain, draw, p, p)``, summed over blocks."""
    prior = spec.omega.prior
    if prior is None:
        raise SpecError("the omega prior is needed for prior sensitivity", key="omega.prior")
    names = list(spec.iiv_names)
    total = np.zeros(omega.shape[:2])
    flat = omega.reshape(-1, *omega.shape[2:])
    for block in spec.omega.blocks:
        idx = [names.index(n) for n in block]
        sub = flat[:, idx][:, :, idx]
        if isinstance(prior, InverseGamma):
            lp = stats.invgamma(a=prior.alpha, scale=prior.beta).logpdf(sub[:, 0, 0])
        elif isinstance(prior, InverseWishart):
            scale = prior.scale_matrix[np.ix_(idx, idx)]
            if len(idx) == 1:
                lp = stats.invgamma(a=prior.df / 2.0, scale=scale[0, 0] / 2.0).logpdf(sub[:, 0, 0])
            else:
                dist = stats.invwishart(df=prior.df, scale=scale)
                lp = np.array([dist.logpdf(m) for m in sub])
        elif isinstance(prior, LKJ):
            sd = np.sqrt(np.einsum("nii->ni", sub))
            lp = prior.sd.scipy().logpdf(sd).sum(axis=-1)
            if len(idx) > 1:
                corr = sub / (sd[:, :, None] * sd[:, None, :])
                lp = lp + (prior.eta - 1.0) * np.linalg.slogdet(corr)[1]
        else:  # pragma: no cover - the spec validates the kinds
            raise SpecError(f"unsupported omega prior {prior.kind!r}", key="omega.prior")
        total += np.asarray(lp, dtype=float).reshape(omega.shape[:2])
    return total


def log_prior_dataset(spec, posterior: xr.Dataset) -> xr.Dataset:
    """The log density of each population prior at each posterior draw.

    Parameters
    ----------
    spec : ModelSpec
    posterior : xarray.Dataset
        The ``posterior`` group of a fit (with ``theta_*``, ``omega``, ``sigma2_*``).

    Returns
    -------
    xarray.Dataset
        One ``(chain, draw)`` variable per prior: ``theta_<P>``, ``beta_...``,
        ``omega`` (all blocks together), ``omega_iov_<P>`` (IOV priors, on the scale
        they are stated: the variance, or the SD under a half-normal) and ``sigma2_<slot>``.
    """
    coords = {d: posterior[d].values for d in _SAMPLE_DIMS}
    out = {}
    for p in spec.estimated:
        name = f"theta_{p.name}"
        out[name] = p.typical.scipy().logpdf(_values(posterior[name]))
    for name, prior in _coefficient_priors(spec).items():
        out[name] = prior.scipy().logpdf(_values(posterior[name]))
    if spec.iiv_names:
        omega = posterior["omega"].transpose(*_SAMPLE_DIMS, "parameter", "parameter2")
        omega = omega.sel(parameter=list(spec.iiv_names), parameter2=list(spec.iiv_names))
        out["omega"] = _omega_logp(spec, np.asarray(omega.values, dtype=float))
    for p in spec.parameters:
        if getattr(p, "iov", None) is None:
            continue
        variance = _values(posterior[f"omega_iov_{p.name}"])
        # the prior as stated: inverse-gamma on the variance, half-normal on the SD
        value = np.sqrt(variance) if p.iov.kind == "half_normal" else variance
        out[f"omega_iov_{p.name}"] = p.iov.scipy().logpdf(value)
    from ..spec.outputs import residual_priors

    for name, prior in residual_priors(spec).items():
        out[name] = prior.scipy().logpdf(_values(posterior[name]))
    return xr.Dataset({k: (_SAMPLE_DIMS, np.asarray(v, dtype=float)) for k, v in out.items()}, coords=coords)


def sensitivity_tree(fit) -> xr.DataTree:
    """The tree that :func:`arviz_stats.psense` needs, built from a fit.

    Parameters
    ----------
    fit : BayesFit
        A NUTS fit (with ``posterior`` and ``log_likelihood`` groups).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior`` (canonical population parameters), ``log_prior`` and
        ``log_likelihood`` (the pointwise ``y`` only).
    """
    from ..fit.summary import canonical_draws

    posterior = fit.tree["posterior"].to_dataset()
    canonical = canonical_draws(fit.spec, posterior)
    log_lik = fit.tree["log_likelihood"].to_dataset()[["y"]]
    return xr.DataTree.from_dict(
        {
            "/posterior": xr.DataTree(canonical),
            "/log_prior": xr.DataTree(log_prior_dataset(fit.spec, posterior)),
            "/log_likelihood": xr.DataTree(log_lik),
        }
    )


def _arrays(ds: xr.Dataset) -> dict:
    return {name: _values(ds[name]) for name in ds.data_vars}


def _check_nuts(fit) -> None:
    if getattr(fit, "method", "nuts") != "nuts":
        from ..errors import ArgumentError

        raise ArgumentError(f"power-scaling needs a NUTS fit, got method {fit.method!r}")


def power_scaling(fit, threshold: float = THRESHOLD, *, n_boot: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Prior and likelihood power-scaling sensitivity of each population parameter, with verdicts.

    Parameters
    ----------
    fit : BayesFit or FitDirectory
        A NUTS fit (``method == "nuts"``).
    threshold : float
        Sensitivity threshold of the verdicts (default 0.05).
    n_boot : int, optional
        Bootstrap replicates of the Monte-Carlo errors (default
        :data:`~bayes_nlme.sensitivity.mcse.N_BOOT`; 0 gives no errors, NaN, and
        verdicts that take the estimates as exact).
    seed : int
        Seed of the bootstrap and of the simulated omega priors.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PSENSE_COLUMNS`, one row per population parameter in summary
        order: the sensitivities and their standard errors, ``prior_quantile`` (the
        prior's cumulative probability at the posterior median), the ETABAR check of
        typical values with IIV (``etabar``, ``etabar_se``, ``etabar_p``; NaN
        elsewhere), the ``verdict`` (see :mod:`~bayes_nlme.sensitivity.verdicts`) and
        a one-sentence ``explanation``.

    Examples
    --------
    >>> from bayes_nlme.fit import sample                      # doctest: +SKIP
    >>> fit = sample("models/theophylline.toml", "theophylline")  # doctest: +SKIP
    >>> power_scaling(fit)                                      # doctest: +SKIP
    """
    from .checks import etabar, prior_quantiles
    from .mcse import N_BOOT, sensitivity_with_error

    _check_nuts(fit)
    n_boot = N_BOOT if n_boot is None else n_boot
    tree = sensitivity_tree(fit)
    canonical = tree["posterior"].to_dataset()
    draws = _arrays(canonical)
    components = _arrays(tree["log_prior"].to_dataset())
    component_of = {name: name if name in components else "omega" for name in draws}
    prior, prior_se = sensitivity_with_error(draws, components, component_of, n_boot=n_boot, seed=seed)
    loglik = tree["log_likelihood"].to_dataset()["y"]
    loglik = loglik.sum([d for d in loglik.dims if d not in _SAMPLE_DIMS])
    likelihood, likelihood_se = sensitivity_with_error(
        draws, {"y": _values(loglik)}, dict.fromkeys(draws, "y"), n_boot=n_boot, seed=seed
    )
    quantiles = prior_quantiles(fit.spec, canonical, seed=seed)
    eta = etabar(fit.spec, fit.tree["posterior"].to_dataset())
    n_draws = canonical.sizes["draw"]
    nan = float("nan")
    rows = []
    for name in draws:
        row = {
            "parameter": name,
            "prior": prior[name],
            "prior_se": prior_se[name],
            "likelihood": likelihood[name],
            "likelihood_se": likelihood_se[name],
            "prior_quantile": quantiles[name],
            "etabar": nan,
            "etabar_se": nan,
            "etabar_p": nan,
        }
        if name in eta.index:
            row.update(eta.loc[name].to_dict(), theta=float(canonical[name].median()))
        row["verdict"], row["explanation"] = judge(row, draws=n_draws, threshold=threshold)
        rows.append(row)
    return pd.DataFrame(rows)[PSENSE_COLUMNS]
