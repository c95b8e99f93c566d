"""The HTML report of a fit directory (``bayes-nlme report``).

:func:`write_report` reads a fit directory, and optionally fits to compare with, and
writes one self-contained HTML file: the model and data, the convergence verdict
(NUTS), the parameter table, diagnostic figures embedded as base64 PNG (rank and trace
plots, prior vs posterior, pairs, DV vs PRED/IPRED, NPDE and CWRES residuals,
individual fits, VPC and prediction-corrected VPC, shrinkage, etas vs covariates,
Pareto k), LOO and WAIC, the Bayesian vs frequentist table, and the prior sensitivity
study kept in the fit directory as ``DIR/sensitivity`` (``bayes-nlme sensitivity MODEL
--data DATA --out DIR/sensitivity``): its verdicts and forest plot. Simulations use fixed
seeds and figures carry no metadata, so a report depends on the fit directory only: a
report of a reloaded ``fit.nc`` equals the report of the live fit, byte for byte.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ArgumentError
from . import sections
from .html import Page

__all__ = ["build_report", "write_report"]


def _fit_data(fit):
    from ..compare import _load

    return _load(fit)


def build_report(fit, *, compare=()) -> str:
    """The report of a fit as an HTML string.

    Parameters
    ----------
    fit : path, FitDirectory, FitData or fit object
        The fit to report (a live ``BayesFit`` / ``EstimationResult`` is read back
        through a temporary fit directory).
    compare : sequence
        Other fits of the same model to compare with (typically frequentist ones).

    Returns
    -------
    str
    """
    from .. import diagnostics as dg

    if isinstance(compare, (str, os.PathLike)):
        compare = (compare,)
    fd = _fit_data(fit)
    others = [_fit_data(c) for c in compare]
    ctx = sections.Context(fd)
    kind = {"nuts": "Bayesian fit (NUTS)", "prior": "prior predictive draws"}.get(
        fd.method, f"maximum-likelihood fit ({fd.method.upper()})"
    )
    page = Page(
        f"bayes_nlme report: {fd.spec.name}",
        f"{kind}; {fd.n_subjects} subjects, {len(fd.obs)} observations; structural model "
        f"{fd.spec.structural}, {_residual_text(fd.spec)} residual error.",
    )
    sections.model_and_data(page, ctx)
    table = dg.convergence_table(fd) if fd.bayesian else None
    if fd.method == "nuts":
        sections.convergence(page, ctx, table)
    if not fd.bayesian:
        sections.estimation(page, ctx)
    sections.parameters(page, ctx, table)
    sections.goodness_of_fit(page, ctx)
    sections.individual(page, ctx)
    sections.vpc(page, ctx)
    sections.random_effects(page, ctx, others)
    if fd.method == "nuts":
        sections.predictive_accuracy(page, ctx)
    study = _study_dir(fd)
    if study is not None:
        sections.prior_sensitivity(page, study)
    if others:
        sections.comparison(page, ctx, others)
    return page.render()


def _study_dir(fd) -> Path | None:
    """``<fit dir>/sensitivity`` when it holds a prior sensitivity study."""
    path = getattr(getattr(fd, "fitdir", None), "path", None)
    if path is None:
        return None
    study = Path(path) / sections.STUDY_DIR
    return study if (study / "psense.csv").is_file() else None


def write_report(fit_dir, *, out=None, compare=()) -> Path:
    """Write the HTML report of a fit directory.

    Parameters
    ----------
    fit_dir : path, FitDirectory, FitData or fit object
        The fit directory (or a loaded or live fit).
    out : path, optional
        The HTML file (default ``<fit_dir>/report.html``; required when ``fit_dir`` is
        not a path).
    compare : sequence of path or fit
        Fits of the same model to compare with (the Bayesian vs frequentist section).

    Returns
    -------
    pathlib.Path
        The file written (atomically: a temporary file renamed into place).

    Raises
    ------
    InputError
        When a fit directory is missing or unreadable.
    ArgumentError
        When ``out`` is missing for a fit that is not a directory path.
    """
    if out is None:
        if not isinstance(fit_dir, (str, os.PathLike)):
            path = getattr(getattr(fit_dir, "fitdir", fit_dir), "path", None)
            if path is None:
                raise ArgumentError("write_report: give out=... for a fit that is not a fit directory")
            out = Path(path) / "report.html"
        else:
            out = Path(fit_dir) / "report.html"
    if isinstance(compare, (str, os.PathLike)):
        compare = (compare,)
    text = build_report(fit_dir, compare=tuple(compare))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=out.parent, prefix=f".{out.name}.", suffix=".tmp", delete=False
    ) as tmp:
        tmp.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp.name, 0o666 & ~umask)  # NamedTemporaryFile is private (0600); a report is not
    os.replace(tmp.name, out)
    return out


def _residual_text(spec) -> str:
    """``proportional``, or ``conc: proportional, effect: additive`` with several outputs."""
    from ..spec.outputs import residual_parts

    parts = residual_parts(spec)
    if len(parts) == 1:
        return parts[0].residual.model
    return ", ".join(f"{p.output}: {p.residual.model}" for p in parts)
