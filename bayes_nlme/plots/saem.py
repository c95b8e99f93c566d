"""SAEM parameter trajectories (``saem_trajectory.csv`` of a SAEM fit directory)."""

from __future__ import annotations

import pandas as pd

from ._common import grid_shape, new_figure

__all__ = ["plot_saem_trajectory"]


def plot_saem_trajectory(trajectory: pd.DataFrame):
    """One panel per parameter: its value at every SAEM iteration, the end of the
    exploration phase marked by a dashed line.

    Parameters
    ----------
    trajectory : pandas.DataFrame
        ``iteration``, ``phase`` and one column per parameter.

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = [c for c in trajectory.columns if c not in ("iteration", "phase")]
    nrows, ncols = grid_shape(len(names), 4)
    fig, axes = new_figure(nrows, ncols, height=2.2 * nrows)
    burn = trajectory.loc[trajectory["phase"] == "exploration", "iteration"]
    for ax, name in zip(axes.ravel(), names):
        ax.plot(trajectory["iteration"], trajectory[name], lw=1.0)
        if len(burn):
            ax.axvline(float(burn.max()), color="grey", ls="--", lw=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("iteration")
    for ax in axes.ravel()[len(names) :]:
        ax.set_visible(False)
    return fig
