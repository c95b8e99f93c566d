"""Visual predictive check statistics (VPC and prediction-corrected VPC).

Observations are grouped in time bins. In each bin the 5th, 50th and 95th percentiles
of the observations are compared with the same percentiles of each simulated replicate
(:func:`bayes_nlme.diagnostics.simulate.simulate_replicates`), summarised by their
median and 90% interval over replicates. The prediction-corrected VPC (Bergstrand et
al. 2011) first scales every value by ``median(PRED in bin) / PRED``, which removes the
spread due to doses and covariates within a bin; observations with ``PRED <= 0`` (e.g.
at the time of an oral dose) are left out of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["time_bins", "prediction_correct", "vpc_table"]


def time_bins(times, n_bins: int) -> np.ndarray:
    """Bin edges with about equal counts, never splitting equal times.

    Each of the ``n_bins - 1`` equal-count cut points moves to the nearest gap between
    distinct times, so there may be fewer bins than asked.

    Parameters
    ----------
    times : array-like
    n_bins : int

    Returns
    -------
    numpy.ndarray
        Increasing edges, ``edges[0] = -inf`` and ``edges[-1] = inf``.
    """
    t = np.sort(np.asarray(times, dtype=float))
    n = len(t)
    boundaries = np.flatnonzero(np.diff(t) > 0) + 1  # i where t[i - 1] < t[i]
    edges = [-np.inf]
    if len(boundaries):
        for k in range(1, n_bins):
            pos = boundaries[np.argmin(np.abs(boundaries - k * n / n_bins))]
            edge = 0.5 * (t[pos - 1] + t[pos])
            if edge > edges[-1]:
                edges.append(float(edge))
    edges.append(np.inf)
    return np.asarray(edges)


def prediction_correct(time, values, pred, edges):
    """Prediction-corrected values: ``values * median(PRED in bin) / PRED``.

    Parameters
    ----------
    time : array-like (n_obs,)
    values : array-like (..., n_obs)
        Observations or replicates.
    pred : array-like (n_obs,)
    edges : array-like
        Bin edges (:func:`time_bins`).

    Returns
    -------
    tuple of (numpy.ndarray, numpy.ndarray)
        The corrected values and the mask of the observations kept (``PRED > 0``).
    """
    t = np.asarray(time, dtype=float)
    pred = np.asarray(pred, dtype=float)
    which = np.digitize(t, np.asarray(edges)[1:-1])
    keep = np.isfinite(pred) & (pred > 0)
    factor = np.ones_like(pred)
    for b in np.unique(which[keep]):
        idx = keep & (which == b)
        factor[idx] = np.median(pred[idx]) / pred[idx]
    return np.asarray(values, dtype=float) * factor, keep


def vpc_table(
    time,
    observed,
    simulated,
    *,
    pred=None,
    n_bins: int | None = None,
    subject=None,
    probs=(0.05, 0.5, 0.95),
    interval: float = 0.90,
) -> pd.DataFrame:
    """Percentiles of observations and of simulated replicates per time bin.

    Parameters
    ----------
    time : array-like (n_obs,)
    observed : array-like (n_obs,)
    simulated : array-like (K, n_obs)
    pred : array-like (n_obs,), optional
        Population predictions: given, the table is prediction corrected.
    n_bins : int, optional
        Number of bins (default: the median number of observations per subject, from
        3 to 12, when ``subject`` is given; else 8).
    subject : array-like (n_obs,), optional
    probs : tuple of float
        The percentiles compared.
    interval : float
        Width of the interval of the simulated percentiles.

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``bin, t_lo, t_hi, time`` (median time), ``n``, and for each
        percentile ``p`` (5, 50, 95): ``obs_p<p>``, ``sim_p<p>_lo``, ``sim_p<p>_med``,
        ``sim_p<p>_hi``. ``attrs["edges"]`` holds the bin edges.
    """
    t = np.asarray(time, dtype=float)
    y = np.asarray(observed, dtype=float)
    sim = np.asarray(simulated, dtype=float)
    keep = np.isfinite(y) & np.isfinite(t)
    if n_bins is None:
        if subject is not None:
            counts = pd.Series(np.asarray(subject)[keep]).value_counts()
            n_bins = int(np.clip(round(float(counts.median())), 3, 12))
        else:
            n_bins = 8
    edges = time_bins(t[keep], n_bins)
    which = np.digitize(t, edges[1:-1])
    if pred is not None:
        y, positive = prediction_correct(t, y, pred, edges)
        sim, _ = prediction_correct(t, sim, pred, edges)
        keep &= positive
    lo_q, hi_q = (1 - interval) / 2, 1 - (1 - interval) / 2
    rows = []
    for b in np.unique(which[keep]):
        idx = keep & (which == b)
        row = {
            "bin": int(b),
            "t_lo": float(t[idx].min()),
            "t_hi": float(t[idx].max()),
            "time": float(np.median(t[idx])),
            "n": int(idx.sum()),
        }
        sim_q = np.quantile(sim[:, idx], probs, axis=1)  # (len(probs), K)
        for p, q_obs, q_sim in zip(probs, np.quantile(y[idx], probs), sim_q):
            tag = f"p{round(100 * p)}"
            row[f"obs_{tag}"] = float(q_obs)
            row[f"sim_{tag}_lo"], row[f"sim_{tag}_med"], row[f"sim_{tag}_hi"] = (
                float(v) for v in np.quantile(q_sim, (lo_q, 0.5, hi_q))
            )
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["edges"] = [float(e) for e in edges]
    return table
