"""Predictive accuracy of Bayesian fits: PSIS-LOO, leave-one-subject-out, WAIC.

The ``log_likelihood`` group of a NUTS fit holds a per-observation variable (dim
``observation``) and a per-subject sum (dim ``subject``). PSIS-LOO on the first
leaves out one observation (:func:`loo_observation`); on the second one whole subject
(:func:`loo_subject`), the question that matters for predicting new subjects, and a
harder one for importance sampling (Pareto k is often high). WAIC is given for
reference (arviz-stats 1.x has no WAIC; it is computed here, Watanabe 2010, with the
``p_waic`` of Vehtari et al. 2017). High Pareto k values are part of the returned
results (no warning is emitted): see the ``n_high_k`` column of :func:`loo_table`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .fitdata import as_fit_data

__all__ = ["loglik_var", "loo_observation", "loo_subject", "waic", "loo_table", "compare_loo"]


def loglik_var(fit, dim: str = "observation") -> str | None:
    """Name of the log-likelihood variable over ``dim`` (None if there is none).

    Parameters
    ----------
    fit : path, FitDirectory or FitData
    dim : {"observation", "subject"}

    Returns
    -------
    str or None
    """
    fd = as_fit_data(fit)
    if not fd.has_group("log_likelihood") or not fd.has_group("posterior"):
        return None
    group = fd.tree["log_likelihood"]
    for name, da in group.data_vars.items():
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if extra == [dim]:
            return name
    if dim == "observation":  # a single per-observation variable under another dim name
        for name, da in group.data_vars.items():
            extra = [d for d in da.dims if d not in ("chain", "draw")]
            if len(extra) == 1 and da.sizes[extra[0]] == len(fd.obs):
                return name
    return None


def _loo(fit, dim: str):
    import arviz_stats as azs

    fd = as_fit_data(fit)
    name = loglik_var(fd, dim)
    if name is None:
        return None
    with warnings.catch_warnings():
        # High Pareto k is reported in the result (pareto_k, n_high_k), not as a warning.
        warnings.filterwarnings("ignore", message=r".*(Pareto|pareto).*", category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*shape parameter.*", category=UserWarning)
        return azs.loo(fd.tree, var_name=name, pointwise=True)


def loo_observation(fit):
    """PSIS-LOO leaving out one observation at a time.

    Parameters
    ----------
    fit : path, FitDirectory or FitData

    Returns
    -------
    arviz_stats.utils.ELPDDataLOO or None
        With ``elpd_i`` and ``pareto_k`` per observation; None without a
        log-likelihood group.
    """
    return _loo(fit, "observation")


def loo_subject(fit):
    """PSIS-LOO leaving out one subject at a time (per-subject log-likelihood).

    Parameters
    ----------
    fit : path, FitDirectory or FitData

    Returns
    -------
    arviz_stats.utils.ELPDDataLOO or None
    """
    return _loo(fit, "subject")


def waic(fit, dim: str = "observation") -> dict | None:
    """WAIC on the log scale: ``elpd_waic = lppd - p_waic``.

    Parameters
    ----------
    fit : path, FitDirectory or FitData
    dim : {"observation", "subject"}

    Returns
    -------
    dict or None
        ``elpd``, ``se``, ``p``, ``n_data_points``, ``n_high_var`` (points whose
        posterior variance of the log-likelihood exceeds 0.4, where WAIC is unreliable).
    """
    from scipy.special import logsumexp

    fd = as_fit_data(fit)
    name = loglik_var(fd, dim)
    if name is None:
        return None
    da = fd.tree["log_likelihood"][name]
    ll = da.transpose("chain", "draw", ...).values.reshape(-1, da.shape[-1])
    lppd_i = logsumexp(ll, axis=0) - np.log(ll.shape[0])
    p_i = ll.var(axis=0, ddof=1)
    elpd_i = lppd_i - p_i
    n = len(elpd_i)
    return {
        "elpd": float(elpd_i.sum()),
        "se": float(np.sqrt(n * elpd_i.var())),
        "p": float(p_i.sum()),
        "n_data_points": n,
        "n_high_var": int((p_i > 0.4).sum()),
    }


def loo_table(fit, *, loo_obs=None, loo_subj=None) -> pd.DataFrame:
    """PSIS-LOO per observation, per subject, and WAIC in one table.

    Parameters
    ----------
    fit : path, FitDirectory or FitData
    loo_obs, loo_subj : ELPDDataLOO, optional
        Results of :func:`loo_observation` and :func:`loo_subject` (computed when not
        given).

    Returns
    -------
    pandas.DataFrame
        Rows ``LOO (observation)``, ``LOO (subject)``, ``WAIC (observation)``; columns
        ``criterion, elpd, se, p, n_data_points, good_k, n_high_k, max_k``
        (``n_high_k``: points with Pareto k above ``good_k``; for WAIC the number of
        points with a log-likelihood variance above 0.4). Empty without a
        log-likelihood group.
    """
    fd = as_fit_data(fit)
    rows = []
    loo_obs = loo_observation(fd) if loo_obs is None else loo_obs
    loo_subj = loo_subject(fd) if loo_subj is None else loo_subj
    for label, result in (("LOO (observation)", loo_obs), ("LOO (subject)", loo_subj)):
        if result is None:
            continue
        k = np.asarray(result.pareto_k).ravel()
        rows.append(
            {
                "criterion": label,
                "elpd": float(result.elpd),
                "se": float(result.se),
                "p": float(result.p),
                "n_data_points": int(result.n_data_points),
                "good_k": float(result.good_k),
                "n_high_k": int((k > result.good_k).sum()),
                "max_k": float(np.max(k)),
            }
        )
    w = waic(fd)
    if w is not None:
        rows.append(
            {
                "criterion": "WAIC (observation)",
                "elpd": w["elpd"],
                "se": w["se"],
                "p": w["p"],
                "n_data_points": w["n_data_points"],
                "good_k": np.nan,
                "n_high_k": w["n_high_var"],
                "max_k": np.nan,
            }
        )
    columns = ["criterion", "elpd", "se", "p", "n_data_points", "good_k", "n_high_k", "max_k"]
    return pd.DataFrame(rows, columns=columns)


def compare_loo(fits, *, dim: str = "observation") -> pd.DataFrame:
    """ArviZ comparison (PSIS-LOO, stacking weights) of several Bayesian fits.

    Parameters
    ----------
    fits : mapping of str to fit, or sequence of fits
        Fits (paths, FitDirectory or FitData) of the same observations; a sequence
        is labelled by directory names.
    dim : {"observation", "subject"}
        Leave out observations or subjects.

    Returns
    -------
    pandas.DataFrame
        :func:`arviz_stats.compare`'s table (rank, elpd, p, elpd_diff, weight, se, dse,
        warning ...), indexed by label.

    Raises
    ------
    ValueError
        When fewer than two fits have a log-likelihood.
    """
    import arviz_stats as azs

    if not hasattr(fits, "items"):
        data = [as_fit_data(f) for f in fits]
        fits = {}
        for fd in data:
            label = fd.fitdir.path.name
            fits[label if label not in fits else f"{label}_{len(fits)}"] = fd
    results = {}
    for label, fit in fits.items():
        result = _loo(fit, dim)
        if result is not None:
            results[label] = result
    if len(results) < 2:
        raise ValueError("compare_loo needs at least two Bayesian fits with a log_likelihood group")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(Pareto|pareto).*", category=UserWarning)
        return azs.compare(results, round_to="none")
