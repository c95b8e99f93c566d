"""Where the posterior sits in its prior, and NONMEM's ETABAR check.

Two checks that tell a prior-data conflict from a prior that merely informs:

* :func:`prior_quantiles`: the prior's cumulative probability at each population
  parameter's posterior median. A conflict puts the posterior in the prior's tail
  (a quantile near 0 or 1); a variance that its prior legitimately informs stays
  within the prior's range. Priors without a closed-form marginal (the elements of an
  inverse-Wishart or LKJ omega block) are simulated with a fixed seed.
* :func:`etabar`: per parameter with between-subject variability, the mean over
  subjects of the posterior mean etas, its standard error and the two-sided p-value of
  a t-test against zero (NONMEM's ETABAR). A typical value held away from the data by
  a tight prior shows as etas that are all shifted the same way; the typical value
  the data imply is then ``theta * exp(mean eta)``, whose prior quantile is also given.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from ..spec.priors import LKJ, InverseGamma, InverseWishart

__all__ = ["N_PRIOR_DRAWS", "prior_quantiles", "etabar"]

#: Simulated draws of an omega prior whose marginals have no closed form.
N_PRIOR_DRAWS = 20_000

_SAMPLE = ("chain", "draw")


def _omega_prior_draws(spec, rng: np.random.Generator) -> dict:
    """Prior draws of each reported omega element ``omega_<P>_<Q>`` (1-d arrays)."""
    prior = spec.omega.prior
    names = list(spec.iiv_names)
    out = {}
    for block in spec.omega.blocks:
        idx = [names.index(n) for n in block]
        d = len(idx)
        if isinstance(prior, InverseGamma):
            var = stats.invgamma(a=prior.alpha, scale=prior.beta).rvs(size=(N_PRIOR_DRAWS, d), random_state=rng)
            cov = {(i, i): var[:, i] for i in range(d)}
        elif isinstance(prior, InverseWishart):
            scale = prior.scale_matrix[np.ix_(idx, idx)]
            draws = stats.invwishart(df=prior.df, scale=scale).rvs(size=N_PRIOR_DRAWS, random_state=rng)
            draws = np.asarray(draws, dtype=float).reshape(N_PRIOR_DRAWS, d, d)
            cov = {(i, j): draws[:, i, j] for i in range(d) for j in range(i, d)}
        elif isinstance(prior, LKJ):
            sd = np.asarray(prior.sd.scipy().rvs(size=(N_PRIOR_DRAWS, d), random_state=rng), dtype=float)
            # The marginal of one LKJ(eta) correlation in dimension d: (r + 1) / 2 ~ Beta(b, b).
            b = prior.eta - 1.0 + d / 2.0
            cov = {(i, i): sd[:, i] ** 2 for i in range(d)}
            for i in range(d):
                for j in range(i + 1, d):
                    r = 2.0 * stats.beta(b, b).rvs(size=N_PRIOR_DRAWS, random_state=rng) - 1.0
                    cov[(i, j)] = r * sd[:, i] * sd[:, j]
        else:  # pragma: no cover - the spec validates the kinds
            continue
        for (i, j), values in cov.items():
            out[f"omega_{block[i]}_{block[j]}"] = values
    return out


def _empirical_cdf(draws: np.ndarray, x: float) -> float:
    n = len(draws)
    # mid-rank, kept off 0 and 1 (a quantile is never more extreme than 1 / (2n))
    below = np.count_nonzero(draws < x) + 0.5 * np.count_nonzero(draws == x)
    return float(np.clip(below, 0.5, n - 0.5) / n)


def prior_quantiles(spec, canonical: xr.Dataset, seed: int = 0) -> dict:
    """The prior's cumulative probability at the posterior median of each parameter.

    Parameters
    ----------
    spec : ModelSpec
    canonical : xarray.Dataset
        The canonical posterior draws (``theta_*``, ``beta_*``, ``omega_<P>_<Q>``,
        ``sigma2_*``), as :func:`~bayes_nlme.fit.summary.canonical_draws` returns them.
    seed : int
        Seed of the simulated omega priors.

    Returns
    -------
    dict of str to float
        Quantile in (0, 1) per parameter (NaN where the prior is unknown).
    """
    priors = {f"theta_{p.name}": p.typical for p in spec.estimated}
    priors.update(
        {c.canonical_name(p.name): c.coefficient for p in spec.parameters for c in p.covariates if c.estimated}
    )
    from ..spec.outputs import residual_priors

    priors.update(residual_priors(spec))
    simulated = _omega_prior_draws(spec, np.random.default_rng(seed)) if spec.iiv_names else {}
    iov = {f"omega_iov_{p.name}": p.iov for p in spec.parameters if getattr(p, "iov", None) is not None}
    out = {}
    for name in canonical.data_vars:
        median = float(canonical[name].median())
        if name in simulated:
            out[name] = _empirical_cdf(simulated[name], median)
        elif name in iov:  # a half-normal IOV prior is on the SD
            value = np.sqrt(median) if iov[name].kind == "half_normal" else median
            out[name] = float(iov[name].scipy().cdf(value))
        elif name in priors and hasattr(priors[name], "scipy"):
            out[name] = float(priors[name].scipy().cdf(median))
        else:
            out[name] = float("nan")
    return out


def etabar(spec, posterior: xr.Dataset) -> pd.DataFrame:
    """NONMEM's ETABAR check on the posterior etas, per parameter with IIV.

    Parameters
    ----------
    spec : ModelSpec
    posterior : xarray.Dataset
        The ``posterior`` group of a NUTS fit (``eta`` with dims ``subject`` and
        ``parameter``, and ``theta_<P>``).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``theta_<P>``; columns ``etabar`` (mean over subjects of the
        posterior mean etas), ``etabar_se`` (their standard deviation over
        ``sqrt(subjects)``), ``etabar_p`` (two-sided t-test of ``etabar = 0`` with
        ``subjects - 1`` degrees of freedom), ``implied`` (posterior median of
        ``theta_P * exp(mean over subjects of eta_P)``, the typical value the
        subjects imply) and ``implied_quantile`` (its quantile under the prior of
        ``theta_P``). Empty without IIV.
    """
    columns = ["etabar", "etabar_se", "etabar_p", "implied", "implied_quantile"]
    typical = {p.name: p.typical for p in spec.estimated}
    names = [n for n in spec.iiv_names if n in typical]
    if not names or "eta" not in posterior:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="parameter"), dtype=float)
    eta = posterior["eta"]
    n = eta.sizes["subject"]
    rows = {}
    for name in names:
        e = eta.sel(parameter=name, drop=True)
        means = np.asarray(e.mean(_SAMPLE).values, dtype=float)
        m = float(means.mean())
        se = float(means.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        p = float(2.0 * stats.t.sf(abs(m) / se, n - 1)) if n > 1 and se > 0 else float("nan")
        implied = float((posterior[f"theta_{name}"] * np.exp(e.mean("subject"))).median())
        rows[f"theta_{name}"] = {
            "etabar": m,
            "etabar_se": se,
            "etabar_p": p,
            "implied": implied,
            "implied_quantile": float(typical[name].scipy().cdf(implied)),
        }
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("parameter")
