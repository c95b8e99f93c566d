"""Individual fits: observations with the individual prediction of every subject."""

from __future__ import annotations

from ..diagnostics.fitdata import as_fit_data
from ..diagnostics.simulate import individual_curves
from ._common import BAND, MODEL, OBS, REF, grid_shape, new_figure, output_rows, styled

__all__ = ["plot_individual_fits"]


@styled
def plot_individual_fits(fit, curves=None, *, ncols: int = 4, log: bool = False, output=None):
    """Observations and individual predictions per subject.

    Bayesian fits: the posterior median of the individual curve with its 90% credible
    band; frequentist fits: the curve at the EBEs. The population prediction (typical
    subject with the subject's covariates) is dashed.

    Parameters
    ----------
    fit : path, FitDirectory or FitData
    curves : pandas.DataFrame, optional
        From :func:`bayes_nlme.diagnostics.simulate.individual_curves` (computed when
        not given).
    ncols : int
        Panels per row.
    log : bool
        Log concentration axis.
    output : int or str, optional
        The output shown (position or name; default the first), titled with its name.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fd = as_fit_data(fit)
    rows, suffix = output_rows(fd, output)
    which = 0 if output is None else list(fd.output_names).index(output) if isinstance(output, str) else int(output)
    curves = individual_curves(fd, output=which) if curves is None else curves
    observed = fd.obs[rows]
    n = fd.n_subjects
    rows, cols = grid_shape(n, ncols)
    fig, axes = new_figure(rows, cols, width=9.0, height=2.0 * rows + 1.0, sharex=True, sharey=True)
    ids = fd.dataset.subject_ids
    for s in range(n):
        ax = axes.flat[s]
        c = curves[curves["SUBJECT"] == s]
        o = observed[observed["SUBJECT"] == s]
        if fd.bayesian and "q5" in c:
            ax.fill_between(c["TIME"], c["q5"], c["q95"], color=BAND, alpha=0.6, lw=0, label="90% credible band")
        ax.plot(c["TIME"], c["q50"], color=MODEL, lw=1.4, label="IPRED (median)" if fd.bayesian else "IPRED (EBE)")
        ax.plot(c["TIME"], c["PRED"], color=REF, lw=1.0, ls="--", label="PRED")
        ax.plot(o["TIME"], o["DV"], "o", ms=3.5, color=OBS, label="observed")
        ax.set_title(f"ID {ids[s]}", fontsize=9, pad=2)
        if log:
            ax.set_yscale("log")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    if log:
        positive = observed["DV"][observed["DV"] > 0]
        if len(positive):
            axes.flat[0].set_ylim(bottom=max(positive.min() / 2, 1e-3))
    for k, ax in enumerate(axes.flat[:n]):
        if k >= n - cols:
            ax.set_xlabel(fd.units.time_label)
            ax.xaxis.set_tick_params(labelbottom=True)
        if k % cols == 0:
            ax.set_ylabel(fd.units.conc_label if not suffix else fd.output_names[which])
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    fig.suptitle(f"Individual fits{suffix} ({fd.label})")
    return fig
