"""Power-scaling sensitivity of the population parameters (Kallioinen et al. 2024).

The posterior is re-weighted by Pareto-smoothed importance sampling as if the
prior (or the likelihood) were raised to a power close to 1; the change of each
parameter's marginal posterior, measured by the cumulative Jensen-Shannon
distance per unit of log-power, is its sensitivity. No refit is needed.

The computation uses :func:`arviz_stats.psense` on a small tree built here:

* ``posterior``: the canonical population parameters (``theta_*``, ``beta_*``,
  ``omega_<P>_<Q>``, ``sigma2_*``);
* ``log_prior``: the log density of the spec's population priors at each draw,
  one variable per prior (evaluated with the priors' scipy equivalents; the LKJ
  correlation density is taken up to its constant, which power-scaling ignores);
* ``log_likelihood``: the pointwise log-likelihood ``y`` of the fit.

The verdict follows :func:`arviz_stats.psense_summary` with the usual 0.05
threshold: prior >= 0.05 and likelihood >= 0.05 is a prior-data conflict; prior
> 0.05 > likelihood is a strong prior with a weak likelihood; anything else is ok.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from ..errors import SpecError
from ..spec.priors import LKJ, InverseGamma, InverseWishart

__all__ = [
    "THRESHOLD",
    "VERDICTS",
    "EXPLANATIONS",
    "verdict",
    "explain",
    "log_prior_dataset",
    "power_scaling",
]

#: Sensitivity above which a parameter counts as sensitive (as in psense_summary).
THRESHOLD = 0.05

#: The verdict vocabulary of ``psense.csv``.
VERDICTS = ("ok", "prior-data conflict", "strong prior / weak likelihood")

#: One plain-words explanation per verdict.
EXPLANATIONS = {
    "ok": (
        "The posterior hardly moves when the prior is made stronger or weaker: the data "
        "determine this parameter and the prior is not driving the result."
    ),
    "prior-data conflict": (
        "The posterior moves both when the prior and when the likelihood is strengthened: "
        "prior and data pull this parameter in different directions. Check that the prior "
        "(its median and spread, and the units) agrees with what is known, or widen it."
    ),
    "strong prior / weak likelihood": (
        "The posterior follows the prior but not the data: the data carry little "
        "information about this parameter, so the result is mostly the prior. Report it "
        "as prior-driven, or justify the prior carefully."
    ),
}

_SAMPLE_DIMS = ("chain", "draw")


def verdict(prior: float, likelihood: float, threshold: float = THRESHOLD) -> str:
    """The verdict of one parameter, with the rule of ``psense_summary``.

    Parameters
    ----------
    prior, likelihood : float
        Power-scaling sensitivities.
    threshold : float

    Returns
    -------
    str
        One of :data:`VERDICTS`.
    """
    if prior >= threshold and likelihood >= threshold:
        return "prior-data conflict"
    if prior > threshold > likelihood:
        return "strong prior / weak likelihood"
    return "ok"


def explain(name: str) -> str:
    """The plain-words explanation of a verdict (see :data:`EXPLANATIONS`)."""
    return EXPLANATIONS[name]


def _values(da: xr.DataArray) -> np.ndarray:
    return np.asarray(da.transpose(*_SAMPLE_DIMS, ...).values, dtype=float)


def _coefficient_priors(spec) -> dict:
    return {
        c.canonical_name(p.name): c.coefficient
        for p in spec.parameters
        for c in p.covariates
        if c.estimated
    }


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
        ``omega`` (all blocks together) and ``sigma2_<slot>``.
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
    residual = spec.residual
    for name in residual.variances:
        prior = getattr(residual, name.removeprefix("sigma2_"))
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


def power_scaling(fit, threshold: float = THRESHOLD) -> pd.DataFrame:
    """Prior and likelihood power-scaling sensitivity of each population parameter.

    Parameters
    ----------
    fit : BayesFit
        A NUTS fit (``method == "nuts"``).
    threshold : float
        Sensitivity threshold of the verdicts (default 0.05).

    Returns
    -------
    pandas.DataFrame
        Columns ``parameter, prior, likelihood, verdict, explanation``; one row
        per population parameter in summary order.

    Examples
    --------
    >>> from bayes_nlme.fit import sample                      # doctest: +SKIP
    >>> fit = sample("models/theophylline.toml", "theophylline")  # doctest: +SKIP
    >>> power_scaling(fit)                                      # doctest: +SKIP
    """
    from arviz_stats import psense

    if getattr(fit, "method", "nuts") != "nuts":
        from ..errors import ArgumentError

        raise ArgumentError(f"power-scaling needs a NUTS fit, got method {fit.method!r}")
    tree = sensitivity_tree(fit)
    with warnings.catch_warnings():
        # PSIS may warn about high Pareto k with short chains; the values are still
        # the best available estimate and the verdict is advisory.
        warnings.simplefilter("ignore")
        likelihood = psense(tree, group="likelihood", group_var_names=["y"])
        # Each parameter's prior sensitivity scales its own prior component (theta_CL:
        # the prior of theta_CL; omega_P_Q: the prior of its omega block; sigma2_*: its
        # own prior), so that a weak prior on CL reads "ok" even when another prior
        # (say, an informative omega prior) moves CL a little through correlations.
        prior_names = list(tree["log_prior"].data_vars)
        prior = {
            component: psense(tree, group="prior", group_var_names=[component])
            for component in prior_names
        }
    rows = []
    for name in tree["posterior"].data_vars:
        component = name if name in prior else "omega"
        p = float(prior[component][name].values)
        lik = float(likelihood[name].values)
        v = verdict(p, lik, threshold)
        rows.append({"parameter": name, "prior": p, "likelihood": lik, "verdict": v, "explanation": EXPLANATIONS[v]})
    return pd.DataFrame(rows, columns=["parameter", "prior", "likelihood", "verdict", "explanation"])
