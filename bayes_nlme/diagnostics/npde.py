"""Normalised prediction distribution errors (NPDE), by simulation.

For each subject ``i`` with observations ``y_i`` (``n_i`` values) and ``K`` simulated
replicates ``y_i^(k)`` of the same design from the model (new random effects and new
residual errors), following Comets, Brendel and Mentré (2008):

1. ``E_i`` and ``V_i``, the empirical mean and covariance of the replicates;
2. decorrelation with the Cholesky factor ``V_i = L L'``:
   ``y*_i = L^-1 (y_i - E_i)`` and ``y*_i^(k) = L^-1 (y_i^(k) - E_i)``;
3. ``pde_ij = (1/K) sum_k 1[y*_ij^(k) < y*_ij]``, moved from 0 to ``1/(2K)`` and from 1
   to ``1 - 1/(2K)``;
4. ``npde_ij = Phi^-1(pde_ij)``: standard normal under the model.

Without decorrelation the same recipe gives the prediction discrepancies (``npd``).
For a frequentist fit the replicates are simulated from the estimates; for a Bayesian
fit from the posterior predictive distribution of new subjects (each replicate from
another posterior draw), see :mod:`bayes_nlme.diagnostics.simulate`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["npde", "npde_summary"]


def _pde(sim: np.ndarray, obs: np.ndarray) -> np.ndarray:
    k = sim.shape[0]
    pde = (sim < obs[None, :]).mean(axis=0)
    return np.clip(pde, 1.0 / (2 * k), 1.0 - 1.0 / (2 * k))


def _decorrelate(sim: np.ndarray, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky decorrelation of one subject's replicates and observations."""
    mean = sim.mean(axis=0)
    centred = sim - mean
    cov = np.atleast_2d(centred.T @ centred / max(sim.shape[0] - 1, 1))
    n = cov.shape[0]
    jitter = 1e-10 * max(float(np.trace(cov)) / n, 1e-300)
    for _ in range(8):  # a near-singular covariance (duplicated times) gets a small ridge
        try:
            chol = np.linalg.cholesky(cov + jitter * np.eye(n))
            break
        except np.linalg.LinAlgError:
            jitter *= 100.0
    else:  # pragma: no cover - only for degenerate replicates
        chol = np.diag(np.sqrt(np.clip(np.diag(cov), 1e-300, None)))
    from scipy.linalg import solve_triangular

    sim_star = solve_triangular(chol, centred.T, lower=True).T
    obs_star = solve_triangular(chol, (obs - mean)[:, None], lower=True)[:, 0]
    return sim_star, obs_star


def npde(observed, simulated, subject, *, decorrelate: bool = True) -> pd.DataFrame:
    """NPDE (and PD, NPD) of observations against simulated replicates.

    Parameters
    ----------
    observed : array-like (n_obs,)
        The observations.
    simulated : array-like (K, n_obs)
        ``K`` replicates of the whole dataset simulated from the model.
    subject : array-like (n_obs,)
        Subject of each observation.
    decorrelate : bool
        Decorrelate within subjects (default True); False gives ``npde = npd``.

    Returns
    -------
    pandas.DataFrame
        One row per observation, in input order: ``pd`` (prediction discrepancy),
        ``npd`` (its normal quantile), ``pde`` and ``npde``.

    Raises
    ------
    ValueError
        When the shapes disagree or fewer than 2 replicates are given.
    """
    obs = np.asarray(observed, dtype=float)
    sim = np.asarray(simulated, dtype=float)
    subject = np.asarray(subject)
    if sim.ndim != 2 or sim.shape[1] != obs.shape[0] or subject.shape != obs.shape:
        raise ValueError(
            f"simulated must be (K, {obs.shape[0]}) and subject ({obs.shape[0]},); got {sim.shape} and {subject.shape}"
        )
    if sim.shape[0] < 2:
        raise ValueError("at least 2 simulated replicates are needed")
    pd_ = _pde(sim, obs)
    pde = np.empty_like(obs)
    for s in pd.unique(subject):
        idx = np.flatnonzero(subject == s)
        if decorrelate:
            sim_star, obs_star = _decorrelate(sim[:, idx], obs[idx])
            pde[idx] = _pde(sim_star, obs_star)
        else:
            pde[idx] = pd_[idx]
    return pd.DataFrame(
        {
            "pd": pd_,
            "npd": stats.norm.ppf(pd_),
            "pde": pde,
            "npde": stats.norm.ppf(pde),
        }
    )


def npde_summary(values) -> pd.DataFrame:
    """Mean, variance and tests of NPDE against the standard normal.

    Parameters
    ----------
    values : array-like
        NPDE values.

    Returns
    -------
    pandas.DataFrame
        Rows ``mean`` (Wilcoxon signed-rank test of 0), ``variance`` (Fisher test of 1),
        ``skewness``, ``kurtosis`` (excess) and ``normality`` (Shapiro-Wilk), with
        columns ``statistic`` and ``p_value`` (NaN where no test is made).
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    rows = []
    mean_p = stats.wilcoxon(x).pvalue if n > 1 and np.any(x != 0) else np.nan
    rows.append(("mean", float(np.mean(x)) if n else np.nan, mean_p))
    var = float(np.var(x, ddof=1)) if n > 1 else np.nan
    if n > 1:
        chi = (n - 1) * var
        var_p = 2.0 * min(stats.chi2.cdf(chi, n - 1), stats.chi2.sf(chi, n - 1))
    else:
        var_p = np.nan
    rows.append(("variance", var, var_p))
    rows.append(("skewness", float(stats.skew(x)) if n > 2 else np.nan, np.nan))
    rows.append(("kurtosis", float(stats.kurtosis(x)) if n > 3 else np.nan, np.nan))
    norm_p = stats.shapiro(x).pvalue if n >= 3 else np.nan
    rows.append(("normality", np.nan, norm_p))
    return pd.DataFrame(rows, columns=["test", "statistic", "p_value"]).set_index("test")
