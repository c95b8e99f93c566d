"""Shared plotting helpers: a report style, figures, deterministic PNG bytes.

Figures are :class:`matplotlib.figure.Figure` objects made without pyplot, so they are
rendered by the Agg canvas whatever backend is active (a notebook shows them inline)
and need no closing. ArviZ plots, made through pyplot, are closed by :func:`png_bytes`.
"""

from __future__ import annotations

import io
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "STYLE",
    "style",
    "styled",
    "new_figure",
    "new_figure_raw",
    "png_bytes",
    "grid_shape",
    "parameter_unit",
    "parameter_label",
    "OBS",
    "MODEL",
    "BAND",
    "REF",
]

#: Colours: observations, model, bands, reference lines.
OBS = "#1f3b73"
MODEL = "#c0392b"
BAND = "#e8a29a"
REF = "#555555"

#: Matplotlib rc settings of every figure (readable when scaled to ~900 px width).
STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 13,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "bayes_nlme",
    "path.simplify": True,
}


@contextmanager
def style():
    """A context with :data:`STYLE` applied."""
    with plt.rc_context(STYLE):
        yield


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 9.0, height: float | None = None, **kwargs):
    """A figure with constrained layout (no overlapping text) and a grid of axes.

    Parameters
    ----------
    nrows, ncols : int
    width : float
        Inches.
    height : float, optional
        Inches (default: 3 per row).
    **kwargs
        Passed to :func:`matplotlib.pyplot.subplots`.

    Returns
    -------
    tuple of (Figure, numpy.ndarray of Axes)
    """
    height = 3.0 * nrows if height is None else height
    with style():
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def png_bytes(fig, *, close: bool = True) -> bytes:
    """The figure as PNG bytes, identical for identical figures (no metadata, no date).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    close : bool
        Close the figure afterwards (default True).

    Returns
    -------
    bytes
    """
    buffer = io.BytesIO()
    with style():
        fig.savefig(buffer, format="png", metadata={"Software": None})
    if close and plt.fignum_exists(getattr(fig, "number", -1)):
        plt.close(fig)
    return buffer.getvalue()


def grid_shape(n: int, ncols: int = 4) -> tuple[int, int]:
    """Rows and columns of a panel grid for ``n`` panels."""
    ncols = max(1, min(ncols, n))
    return (n + ncols - 1) // ncols, ncols


def styled(func):
    """Decorator: run a plotting function inside :func:`style` (fonts, grid, sizes)."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with style():
            return func(*args, **kwargs)

    return wrapper


def parameter_unit(name: str, units) -> str:
    """Unit of a canonical population parameter (``theta_CL`` -> ``L/h``), '' if none.

    Parameters
    ----------
    name : str
        ``theta_<P>``, ``beta_<P>_<COL>``, ``omega_<P>_<Q>`` or ``sigma2_*``.
    units : Units

    Returns
    -------
    str
    """
    if name.startswith("theta_"):
        return units.parameter(name[len("theta_") :])
    if name == "sigma2_add" and units.concentration:
        return f"({units.concentration})²"
    return ""


def parameter_label(name: str, units) -> str:
    """``name (unit)``, or the name alone when it has no unit."""
    unit = parameter_unit(name, units)
    return f"{name} ({unit})" if unit else name


def new_figure_raw(width: float, height: float):
    """An empty constrained-layout figure (no axes) of ``width`` x ``height`` inches."""
    with style():
        return Figure(figsize=(width, height), layout="constrained")


def output_rows(fd, output):
    """The observations of one output (CONTRACT 5.4) and the title suffix naming it.

    Parameters
    ----------
    fd : FitData
    output : int, str or None
        An output's position or name; None: every observation.

    Returns
    -------
    (numpy.ndarray of bool, str)
        The mask of the observations, and ``""`` or ``" - <output name>"``.
    """
    n = len(fd.obs)
    if output is None:
        return np.ones(n, dtype=bool), ""
    names = list(fd.output_names)
    k = names.index(output) if isinstance(output, str) else int(output)
    return np.asarray(fd.output == k), f" - {names[k]}"
