"""Visual predictive checks (VPC and prediction-corrected VPC)."""

from __future__ import annotations

import numpy as np

from ..diagnostics.fitdata import as_fit_data
from ..diagnostics.vpc import prediction_correct, vpc_table
from ._common import OBS, new_figure, output_rows, styled

__all__ = ["plot_vpc"]

_OUTER = "#5b8fd1"
_MEDIAN = "#d9534f"


@styled
def plot_vpc(fit, simulated, *, prediction_corrected: bool = False, n_bins: int | None = None, ax=None, output=None):
    """VPC: observed 5/50/95th percentiles over the 90% intervals of simulated ones.

    Parameters
    ----------
    fit : path, FitDirectory or FitData
    simulated : numpy.ndarray (K, n_obs)
        Replicates from :func:`bayes_nlme.diagnostics.simulate.simulate_replicates`.
    prediction_corrected : bool
        Prediction-corrected VPC (Bergstrand et al. 2011).
    n_bins : int, optional
        Number of time bins (see :func:`bayes_nlme.diagnostics.vpc.vpc_table`).
    ax : matplotlib Axes, optional
        Draw into this axes (a new figure otherwise).
    output : int or str, optional
        Only the observations of this output (position or name), titled with its name.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fd = as_fit_data(fit)
    rows, suffix = output_rows(fd, output)
    t = fd.obs["TIME"].to_numpy(float)[rows]
    y = fd.obs["DV"].to_numpy(float)[rows]
    simulated = np.asarray(simulated)[:, rows]
    pred = fd.pred[rows] if prediction_corrected else None
    table = vpc_table(t, y, simulated, pred=pred, n_bins=n_bins, subject=fd.obs["SUBJECT"].to_numpy()[rows])
    if ax is None:
        fig, axes = new_figure(1, 1, width=9.0, height=4.6)
        ax = axes[0, 0]
    else:
        fig = ax.figure
    if prediction_corrected:
        corrected, keep = prediction_correct(t, y, pred, table.attrs["edges"])
        ax.scatter(t[keep], corrected[keep], s=10, color=OBS, alpha=0.35, lw=0, label="observations")
    else:
        ax.scatter(t, y, s=10, color=OBS, alpha=0.35, lw=0, label="observations")
    x = table["time"].to_numpy()
    for tag, colour, name in (("p5", _OUTER, "5th"), ("p50", _MEDIAN, "50th"), ("p95", _OUTER, "95th")):
        ax.fill_between(
            x,
            table[f"sim_{tag}_lo"],
            table[f"sim_{tag}_hi"],
            color=colour,
            alpha=0.25,
            lw=0,
            label=(
                f"simulated {name} percentile, 90% interval"
                if tag == "p50"
                else "simulated 5th / 95th percentile, 90% interval"
                if tag == "p5"
                else None
            ),
        )
        ax.plot(
            x,
            table[f"obs_{tag}"],
            color="black",
            lw=1.6 if tag == "p50" else 1.2,
            ls="-" if tag == "p50" else "--",
            label="observed median" if tag == "p50" else ("observed 5th / 95th" if tag == "p5" else None),
        )
    for edge in table.attrs["edges"][1:-1]:
        ax.axvline(edge, color="#bbbbbb", lw=0.6, ls=":")
    what = "Prediction-corrected VPC" if prediction_corrected else "VPC"
    source = "posterior predictive, new subjects" if fd.bayesian else "simulated from the estimates"
    ax.set_title(f"{what}{suffix} ({fd.label}; {simulated.shape[0]} replicates, {source}; {len(table)} time bins)")
    ax.set_xlabel(fd.units.time_label)
    ylabel = fd.units.conc_label if not suffix else suffix[3:]
    ax.set_ylabel(f"Prediction-corrected {ylabel[0].lower()}{ylabel[1:]}" if prediction_corrected else ylabel)
    ax.legend(loc="upper right", fontsize=8)
    return fig
