"""Random effects: eta vs covariate plots and the shrinkage chart."""

from __future__ import annotations

import numpy as np

from ..diagnostics.fitdata import as_fit_data
from ._common import MODEL, OBS, REF, new_figure, styled

__all__ = ["plot_eta_covariates", "plot_shrinkage"]


@styled
def plot_eta_covariates(fit, covariates=None):
    """Per-subject etas against each covariate of the dataset, with a linear trend.

    Etas are posterior means (Bayesian) or EBEs (frequentist). A trend suggests a
    covariate effect the model lacks (read with the shrinkage in mind).

    Parameters
    ----------
    fit : path, FitDirectory or FitData
    covariates : list of str, optional
        Columns (default: every covariate of the dataset).

    Returns
    -------
    matplotlib.figure.Figure or None
        None when there are no covariates or no IIV.
    """
    fd = as_fit_data(fit)
    table = fd.subject_covariates
    covariates = list(fd.dataset.covariates if covariates is None else covariates)
    covariates = [c for c in covariates if c in table.columns and table[c].notna().any()]
    etas = fd.eta_mean
    if not covariates or etas.shape[1] == 0:
        return None
    rows, cols = etas.shape[1], len(covariates)
    fig, axes = new_figure(
        rows, cols, width=min(9.0, 3.0 * cols + 1.5), height=2.4 * rows + 0.8, sharex="col", sharey="row"
    )
    for i, name in enumerate(etas.columns):
        eta = etas[name].to_numpy(float)
        for j, column in enumerate(covariates):
            ax = axes[i, j]
            x = table[column].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(eta)
            ax.scatter(x[ok], eta[ok], s=18, color=OBS, alpha=0.8, lw=0)
            ax.axhline(0.0, color=REF, lw=0.8)
            if ok.sum() > 2 and np.ptp(x[ok]) > 0:
                slope, intercept = np.polyfit(x[ok], eta[ok], 1)
                grid = np.linspace(x[ok].min(), x[ok].max(), 20)
                ax.plot(grid, intercept + slope * grid, color=MODEL, lw=1.2)
                r = np.corrcoef(x[ok], eta[ok])[0, 1]
                ax.text(0.03, 0.95, f"r = {r:.2f}", transform=ax.transAxes, va="top", fontsize=9)
            if i == rows - 1:
                ax.set_xlabel(fd.units.label(column, fd.units.column(column)))
            if j == 0:
                ax.set_ylabel(f"eta_{name}")
    what = "posterior mean" if fd.bayesian else "EBE"
    fig.suptitle(f"Etas ({what}) vs covariates, with least-squares lines")
    return fig


@styled
def plot_shrinkage(shrinkage, *, threshold: float = 0.3, title: str | None = None):
    """Horizontal bars of eta shrinkage (%) per parameter.

    Parameters
    ----------
    shrinkage : pandas.Series or mapping
        Parameter -> shrinkage as a fraction (or a DataFrame: one column per fit).
    threshold : float
        A dashed line at this shrinkage (default 30%), above which eta-based
        diagnostics lose power.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import pandas as pd

    frame = shrinkage.to_frame() if isinstance(shrinkage, pd.Series) else pd.DataFrame(shrinkage)
    n, k = frame.shape
    fig, axes = new_figure(1, 1, width=7.0, height=0.45 * n * max(k, 1) + 1.6)
    ax = axes[0, 0]
    height = 0.8 / k
    colours = ["#5b8fd1", "#d9534f", "#5cb85c", "#f0ad4e"]
    y = np.arange(n)
    for c, column in enumerate(frame.columns):
        values = 100.0 * frame[column].to_numpy(float)
        pos = y + (c - (k - 1) / 2) * height
        ax.barh(pos, values, height=height * 0.9, color=colours[c % len(colours)], label=str(column))
        for p_, v in zip(pos, values):
            if np.isfinite(v):
                ax.text(max(v, 0) + 1, p_, f"{v:.0f}%", va="center", fontsize=9)
    ax.axvline(100 * threshold, color=REF, ls="--", lw=1)
    ax.set_yticks(y, [f"eta_{p}" for p in frame.index])
    ax.invert_yaxis()
    ax.set_xlim(min(0, np.nanmin(100 * frame.to_numpy(float)) - 5), 105)
    ax.set_xlabel("Eta shrinkage, SD-based (%)")
    if k > 1:
        ax.legend(loc="lower right")
    ax.set_title(title or f"Eta shrinkage (dashed: {100 * threshold:.0f}%)")
    return fig
