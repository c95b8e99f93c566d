"""Goodness-of-fit plots: data, observations vs predictions, residuals, NPDE, Pareto k."""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..diagnostics.fitdata import as_fit_data
from ._common import MODEL, OBS, REF, new_figure, output_rows, styled

__all__ = ["plot_data", "plot_dv_vs_pred", "plot_residuals", "plot_npde_distribution", "plot_pareto_k"]


def _subject_colours(n: int):
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return [cmap(i % 20) for i in range(n)]


@styled
def plot_data(data, *, output=None):
    """Observed concentrations vs time, one line per subject, linear and log scale.

    Parameters
    ----------
    data : Dataset, path, FitDirectory or FitData
        A dataset, or a fit (its dataset is plotted).
    output : int or str, optional
        With a fit of several outputs: only this output's observations, titled with its name.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..data import Dataset
    from ..diagnostics.units import dataset_units

    suffix = ""
    if isinstance(data, Dataset):
        dataset, obs = data, data.observations
    else:
        fd = as_fit_data(data)
        rows, suffix = output_rows(fd, output)
        dataset, obs = fd.dataset, fd.obs[rows]
    units = dataset_units(dataset)
    fig, axes = new_figure(1, 2, width=9.0, height=3.8)
    colours = _subject_colours(dataset.n_subjects)
    for s, group in obs.groupby("SUBJECT", sort=True):
        for ax, log in zip(axes[0], (False, True)):
            g = group[group["DV"] > 0] if log else group
            ax.plot(g["TIME"], g["DV"], "-o", ms=3, lw=1, color=colours[int(s)], alpha=0.85)
    axes[0, 1].set_yscale("log")
    for ax, scale in zip(axes[0], ("linear scale", "log scale")):
        ax.set_xlabel(units.time_label)
        ax.set_ylabel(units.conc_label if not suffix else suffix[3:])
        ax.set_title(f"Observations{suffix} ({scale})")
    fig.suptitle(f"Data{suffix}: {dataset.n_subjects} subjects, {len(obs)} observations (one colour per subject)")
    return fig


def _identity(ax, x, y, log: bool):
    both = np.concatenate([x, y])
    both = both[np.isfinite(both) & ((both > 0) if log else True)]
    lo, hi = (both.min(), both.max()) if len(both) else (0.0, 1.0)
    if not log:
        lo = min(lo, 0.0)
    ax.plot([lo, hi], [lo, hi], color=REF, lw=1, ls="--", label="identity")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")


@styled
def plot_dv_vs_pred(fit, *, log: bool = False, output=None):
    """Observations vs population (PRED) and individual (IPRED) predictions.

    PRED is the prediction of the typical subject (etas zero) at the point estimates
    (posterior medians for Bayesian fits); IPRED the individual prediction (posterior
    median, or at the EBEs).

    Parameters
    ----------
    fit : path, FitDirectory or FitData
    log : bool
        Log-log axes (positive values only).
    output : int or str, optional
        Only the observations of this output (position or name), titled with its name.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fd = as_fit_data(fit)
    rows, suffix = output_rows(fd, output)
    dv = fd.obs["DV"].to_numpy(float)[rows]
    fig, axes = new_figure(1, 2, width=9.0, height=4.2)
    unit = fd.units.concentration if not suffix else None
    for ax, (name, pred) in zip(axes[0], (("PRED", fd.pred[rows]), ("IPRED", fd.ipred[rows]))):
        keep = (dv > 0) & (pred > 0) if log else np.isfinite(pred)
        ax.scatter(pred[keep], dv[keep], s=14, color=OBS, alpha=0.7, lw=0, label="observation")
        _identity(ax, pred[keep], dv[keep], log)
        if keep.sum() > 10:
            ax.plot(*_binned_median(pred[keep], dv[keep]), "-", color=MODEL, lw=1.5, label="binned median")
        ax.set_xlabel(fd.units.label(name, unit))
        ax.set_ylabel(fd.units.label("Observed (DV)", unit))
        ax.set_title(f"DV vs {name}")
    axes[0, 0].legend(loc="upper left")
    what = "posterior median" if fd.bayesian else "EBE"
    fig.suptitle(f"Observations vs predictions{suffix} ({fd.label}; IPRED at the {what})")
    return fig


def _binned_median(x, y, n_bins: int = 8):
    """Medians of ``y`` in equal-count bins of ``x`` (a robust trend line)."""
    order = np.argsort(x)
    x, y = np.asarray(x)[order], np.asarray(y)[order]
    parts = [p for p in np.array_split(np.arange(len(x)), min(n_bins, len(x))) if len(p)]
    return np.array([np.median(x[p]) for p in parts]), np.array([np.median(y[p]) for p in parts])


@styled
def plot_residuals(fit, values, *, name: str = "NPDE", output=None):
    """Residuals (NPDE or CWRES) vs time and vs population prediction.

    Parameters
    ----------
    fit : path, FitDirectory or FitData
    values : array-like (n_obs,)
        Residuals in the order of the observations.
    name : str
        Their name, for labels.
    output : int or str, optional
        Only the observations of this output (position or name), titled with its name.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fd = as_fit_data(fit)
    rows, suffix = output_rows(fd, output)
    values = np.asarray(values, dtype=float)[rows]
    x_time = fd.obs["TIME"].to_numpy(float)[rows]
    fig, axes = new_figure(1, 2, width=9.0, height=3.8, sharey=True)
    for ax, x, label in (
        (axes[0, 0], x_time, fd.units.time_label),
        (axes[0, 1], fd.pred[rows], fd.units.label("PRED", None if suffix else fd.units.concentration)),
    ):
        ok = np.isfinite(values) & np.isfinite(x)
        ax.scatter(x[ok], values[ok], s=14, color=OBS, alpha=0.7, lw=0)
        ax.axhline(0.0, color=REF, lw=1)
        for level in (-1.96, 1.96):
            ax.axhline(level, color=REF, lw=1, ls="--")
        if ok.sum() > 10:
            ax.plot(*_binned_median(x[ok], values[ok]), "-", color=MODEL, lw=1.5, label="binned median")
        ax.set_xlabel(label)
        ax.set_title(f"{name} vs {label.split(' (')[0].lower() if label.startswith('Time') else 'PRED'}")
    axes[0, 0].set_ylabel(name)
    axes[0, 1].legend(loc="upper right")
    fig.suptitle(f"{name}{suffix} ({fd.label}); dashed lines at ±1.96")
    return fig


@styled
def plot_npde_distribution(values, *, name: str = "NPDE"):
    """Histogram of NPDE with the standard normal density, and a normal QQ plot.

    Parameters
    ----------
    values : array-like
    name : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    fig, axes = new_figure(1, 2, width=9.0, height=3.6)
    ax = axes[0, 0]
    ax.hist(x, bins=20, density=True, color="#7fa7d9", edgecolor="white", label=name)
    grid = np.linspace(-4, 4, 200)
    ax.plot(grid, stats.norm.pdf(grid), color=MODEL, lw=1.5, label="N(0, 1)")
    ax.set_xlabel(name)
    ax.set_ylabel("Density")
    ax.set_title(f"Distribution of {name}")
    ax.legend(loc="upper left")
    ax = axes[0, 1]
    theoretical = stats.norm.ppf((np.arange(1, len(x) + 1) - 0.5) / len(x))
    ax.scatter(theoretical, np.sort(x), s=12, color=OBS, lw=0)
    ax.plot([-3.5, 3.5], [-3.5, 3.5], color=REF, ls="--", lw=1)
    ax.set_xlabel("Standard normal quantile")
    ax.set_ylabel(f"{name} quantile")
    ax.set_title("Normal QQ plot")
    fig.suptitle(f"{name}: mean {np.mean(x):.2f}, variance {np.var(x, ddof=1):.2f} (expected 0 and 1)")
    return fig


@styled
def plot_pareto_k(fit, loo_obs, loo_subj=None):
    """Pareto k of PSIS-LOO per observation (by time) and per subject.

    Parameters
    ----------
    fit : path, FitDirectory or FitData
    loo_obs : ELPDDataLOO
        From :func:`bayes_nlme.diagnostics.loo_observation` (pointwise).
    loo_subj : ELPDDataLOO, optional
        From :func:`bayes_nlme.diagnostics.loo_subject`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fd = as_fit_data(fit)
    ncols = 2 if loo_subj is not None else 1
    fig, axes = new_figure(1, ncols, width=9.0, height=3.6)
    k = np.asarray(loo_obs.pareto_k).ravel()
    ax = axes[0, 0]
    bad = k > loo_obs.good_k
    ax.scatter(fd.obs["TIME"][~bad], k[~bad], s=14, color=OBS, lw=0, label="k ≤ threshold")
    ax.scatter(fd.obs["TIME"][bad], k[bad], s=22, color=MODEL, marker="x", label="k > threshold")
    ax.axhline(loo_obs.good_k, color=REF, ls="--", lw=1)
    ax.axhline(1.0, color=REF, ls=":", lw=1)
    ax.set_xlabel(fd.units.time_label)
    ax.set_ylabel("Pareto k")
    ax.set_title(f"Per observation ({int(bad.sum())} of {len(k)} above {loo_obs.good_k:.2f})")
    ax.legend(loc="upper right")
    if loo_subj is not None:
        ks = np.asarray(loo_subj.pareto_k).ravel()
        ax = axes[0, 1]
        ids = [str(i) for i in fd.dataset.subject_ids]
        ax.bar(ids, ks, color=[MODEL if v > loo_subj.good_k else "#7fa7d9" for v in ks])
        ax.axhline(loo_subj.good_k, color=REF, ls="--", lw=1)
        ax.axhline(1.0, color=REF, ls=":", lw=1)
        ax.set_xlabel("Subject ID")
        ax.set_ylabel("Pareto k")
        ax.set_title("Leave one subject out")
        if len(ids) > 20:
            ax.set_xticks(ax.get_xticks()[:: max(1, len(ids) // 20)])
    fig.suptitle("PSIS-LOO Pareto k (dashed: reliability threshold, dotted: k = 1)")
    return fig
