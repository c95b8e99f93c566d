"""Plots of posterior draws: rank plots, traces, prior vs posterior, pairs."""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..diagnostics.convergence import omega_elements, population_dataset
from ..diagnostics.fitdata import as_fit_data
from ._common import grid_shape, new_figure, parameter_label, styled

__all__ = ["plot_rank", "plot_trace", "plot_prior_posterior", "plot_pair", "prior_distribution"]

_CHAIN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


@styled
def plot_rank(fit):
    """Rank plots (arviz-plots' fractional-rank delta-ECDF) of the population parameters.

    Each chain is one line; chains that sample the same distribution stay within the
    envelope, and the multi-chain test's p-value is printed in every panel.

    Parameters
    ----------
    fit : path, FitDirectory or FitData
        A NUTS fit.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import arviz_plots as azp
    import xarray as xr

    ds = population_dataset(fit)
    rows, _ = grid_shape(len(ds.data_vars), 4)
    tree = xr.DataTree.from_dict({"posterior": ds})
    pc = azp.plot_rank(
        tree,
        backend="matplotlib",
        visuals={"remove_axis": False},
        figure_kwargs={"figsize": (9.0, 2.2 * rows + 0.6), "layout": "constrained"},
    )
    fig = pc.viz["figure"].item()
    import matplotlib.pyplot as plt

    plt.close(fig)  # detach from pyplot: the caller owns the figure (no double display in notebooks)
    for k, ax in enumerate(fig.axes):
        lo, hi = ax.get_ylim()
        span = hi - lo
        ax.set_ylim(lo, hi + 0.3 * span)  # room above the curves for the p-value
        for text in ax.texts:
            text.set_y(hi + 0.15 * span)
            text.set_verticalalignment("center")
        ax.xaxis.set_tick_params(labelbottom=True)
        if ax.get_visible() and k % 4 == 0:
            ax.set_ylabel("ECDF − uniform")
    fig.suptitle("Rank plots: fractional-rank ECDF minus uniform, one line per chain")
    return fig


@styled
def plot_trace(fit, *, ncols: int = 2):
    """Traces of every population parameter, one colour per chain.

    Parameters
    ----------
    fit : path, FitDirectory or FitData
        A NUTS fit.
    ncols : int
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fd = as_fit_data(fit)
    ds = population_dataset(fd)
    names = list(ds.data_vars)
    rows, cols = grid_shape(len(names), ncols)
    fig, axes = new_figure(rows, cols, width=9.0, height=1.7 * rows + 0.9, sharex=True)
    for k, name in enumerate(names):
        ax = axes.flat[k]
        values = ds[name].transpose("chain", "draw").values
        for c, chain in enumerate(values):
            ax.plot(chain, color=_CHAIN_COLOURS[c % len(_CHAIN_COLOURS)], lw=0.6, alpha=0.8)
        ax.set_ylabel(parameter_label(name, fd.units))
    for k, ax in enumerate(axes.flat):
        if k >= len(names):
            ax.set_visible(False)
        elif k >= len(names) - cols:
            ax.set_xlabel("Draw (after tuning)")
            ax.xaxis.set_tick_params(labelbottom=True)
    fig.suptitle(f"Traces of the population parameters ({values.shape[0]} chains, one colour each)")
    return fig


def prior_distribution(spec, name: str):
    """The prior of a canonical population parameter as a frozen scipy distribution.

    Parameters
    ----------
    spec : ModelSpec
    name : str
        ``theta_<P>``, ``beta_<P>_<COL>``, ``omega_<P>_<P>`` (a variance),
        ``omega_iov_<P>`` (the variance, also under a half-normal prior on its SD) or
        ``sigma2_*``.

    Returns
    -------
    scipy.stats frozen distribution or None
        None where the prior is not one-dimensional in closed form (off-diagonal omega
        elements, an LKJ or the builder's default omega prior); the prior of
        ``theta_ka`` is the stated one, before the flip-flop guard.
    """
    from ..individual import estimated_coefficients
    from ..spec.priors import LKJ, InverseGamma, InverseWishart

    if name.startswith("theta_"):
        p = spec.parameter(name[len("theta_") :])
        return p.typical.scipy() if p.typical is not None else None
    coefficients = estimated_coefficients(spec)
    if name in coefficients:
        return coefficients[name].scipy()
    if name.startswith("sigma2_"):
        from ..spec.outputs import residual_parts

        prior = next(
            (
                getattr(part.residual, slot)
                for part in residual_parts(spec)
                for slot, n in part.names.items()
                if n == name
            ),
            None,
        )
        return prior.scipy() if prior is not None and hasattr(prior, "scipy") else None
    if name.startswith("omega_iov_"):
        prior = getattr(spec.parameter(name[len("omega_iov_") :]), "iov", None)
        if prior is not None and prior.kind == "half_normal":  # SD ~ HN(s): variance ~ Gamma(1/2, 2 s^2)
            return stats.gamma(a=0.5, scale=2.0 * prior.sigma**2)
        return prior.scipy() if prior is not None else None
    elements = omega_elements(spec)
    if name in elements and elements[name][0] == elements[name][1]:
        a = elements[name][0]
        prior = spec.omega.prior
        if isinstance(prior, InverseGamma):
            return prior.scipy()
        if isinstance(prior, InverseWishart):
            iiv = list(spec.iiv_names)
            block = next(b for b in spec.omega.blocks if a in b)
            i = iiv.index(a)
            # marginal of a diagonal element of IW(df, S) for a block of dimension p
            return stats.invgamma(a=(prior.df - len(block) + 1) / 2.0, scale=prior.scale[i][i] / 2.0)
        if isinstance(prior, LKJ):
            return None
    return None


def _posterior_panel(ax, values, prior, label, what="posterior"):
    lo, hi = np.quantile(values, [0.005, 0.995])
    pad = 0.35 * (hi - lo) if hi > lo else 1.0
    lo2 = lo - pad
    if values.min() > 0:
        lo2 = max(lo2, 0.0)
    grid = np.linspace(lo2, hi + pad, 300)
    if np.ptp(values) > 0:
        density = stats.gaussian_kde(values)(grid)
        ax.fill_between(grid, density, color="#7fa7d9", alpha=0.55, lw=0, label=what)
        ax.plot(grid, density, color="#1f3b73", lw=1.2)
    if prior is not None:
        with np.errstate(all="ignore"):
            pdf = prior.pdf(grid)
        pdf = np.where(np.isfinite(pdf), pdf, np.nan)
        ax.plot(grid, pdf, color="#c0392b", lw=1.4, ls="--", label="prior")
    ax.set_xlabel(label)
    ax.set_yticks([])


@styled
def plot_prior_posterior(fit):
    """Prior (dashed) and posterior (filled) densities of the population parameters.

    Parameters
    ----------
    fit : path, FitDirectory or FitData
        A Bayesian fit.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fd = as_fit_data(fit)
    ds = population_dataset(fd)
    names = list(ds.data_vars)
    what = "prior draws" if fd.method == "prior" else "posterior"
    rows, cols = grid_shape(len(names), 4)
    fig, axes = new_figure(rows, cols, width=9.0, height=2.1 * rows + 0.7)
    for k, name in enumerate(names):
        ax = axes.flat[k]
        _posterior_panel(
            ax, ds[name].values.ravel(), prior_distribution(fd.spec, name), parameter_label(name, fd.units), what
        )
        ax.set_title(name)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2)
    fig.suptitle(f"Prior (dashed red) and {what} (blue) of the population parameters")
    return fig


@styled
def plot_pair(fit, names=None, max_points: int = 1000):
    """Pairwise scatter of population parameters, with histograms and correlations.

    Parameters
    ----------
    fit : path, FitDirectory or FitData
        A Bayesian fit.
    names : list of str, optional
        Canonical names (default: the typical values, covariate coefficients and
        residual variances).
    max_points : int
        Draws shown in each scatter (evenly thinned).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fd = as_fit_data(fit)
    ds = population_dataset(fd)
    if names is None:
        names = [n for n in ds.data_vars if not n.startswith("omega_")]
    n = len(names)
    size = min(9.0, 2.0 * n + 1.0)
    fig, axes = new_figure(n, n, width=size, height=size)
    values = {k: ds[k].values.ravel() for k in names}
    total = len(next(iter(values.values())))
    step = max(1, total // max_points)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            ax = axes[i, j]
            if i == j:
                ax.hist(values[a], bins=30, color="#7fa7d9", edgecolor="white", lw=0.3)
                ax.set_yticks([])
            elif i > j:
                ax.scatter(values[b][::step], values[a][::step], s=4, alpha=0.35, color="#1f3b73", lw=0)
            else:
                r = np.corrcoef(values[a], values[b])[0, 1]
                ax.text(
                    0.5,
                    0.5,
                    f"r = {r:.2f}",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    fontsize=12 if abs(r) < 0.5 else 14,
                    color="#c0392b" if abs(r) >= 0.5 else "#333333",
                )
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
            if i == n - 1:
                ax.set_xlabel(parameter_label(b, fd.units))
            elif i >= j:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(parameter_label(a, fd.units))
            elif i != j and i > j:
                ax.set_yticklabels([])
    fig.suptitle("Pairs of posterior draws (lower), correlations (upper)")
    return fig
