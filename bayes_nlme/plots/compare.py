"""Forest plot of several fits' estimates and intervals, parameter by parameter."""

from __future__ import annotations

import numpy as np

from ._common import grid_shape, new_figure, styled

__all__ = ["plot_compare"]

_COLOURS = ("#1f3b73", "#c0392b", "#2e8b57", "#d68910", "#7d3c98")


def _axis_label(name: str, unit: str) -> str:
    if unit:
        return unit
    if name.startswith("omega_"):
        return "variance or covariance of the etas"
    if name.startswith("beta_"):
        return "coefficient"
    if name.startswith("sigma2_"):
        return "residual variance"
    return "value"


@styled
def plot_compare(table, *, ncols: int = 3):
    """One panel per parameter: each fit's point value with its interval.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`bayes_nlme.compare.compare_fits`.
    ncols : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    labels = table.attrs.get("labels") or sorted({c.rsplit(" ", 1)[0] for c in table.columns[2:]})
    n = len(table)
    rows, cols = grid_shape(n, ncols)
    fig, axes = new_figure(rows, cols, width=9.0, height=0.45 * len(labels) * rows + 1.1 * rows + 0.6)
    for k, (_, row) in enumerate(table.iterrows()):
        ax = axes.flat[k]
        for j, label in enumerate(labels):
            cols_ = [c for c in table.columns if c.startswith(f"{label} ")]
            point, lo, hi = (float(row[c]) for c in cols_[:3])
            y = len(labels) - 1 - j
            colour = _COLOURS[j % len(_COLOURS)]
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [y, y], color=colour, lw=2)
            ax.plot([point], [y], "o", color=colour, ms=5)
        ax.set_yticks(range(len(labels)), list(reversed(labels)))
        ax.set_ylim(-0.7, len(labels) - 0.3)
        ax.set_title(row["parameter"], fontsize=10)
        ax.set_xlabel(_axis_label(row["parameter"], row.get("unit", "")), fontsize=9)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.suptitle(
        "Point values and intervals by fit (Bayesian: median, 90% interval; frequentist: estimate, 95% CI)", fontsize=11
    )
    return fig
