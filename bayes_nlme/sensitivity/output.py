"""Files of a sensitivity study: ``psense.csv``, ``variants.csv``, ``compilations.csv``, a forest plot
(``forest.png``) and ``report.html``."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from .psense import PSENSE_COLUMNS
from .verdicts import EXPLANATIONS, MARGIN, TAIL, THRESHOLD, verdict_kind

__all__ = [
    "PSENSE_COLUMNS",
    "VARIANT_COLUMNS",
    "forest_plot",
    "psense_display",
    "verdict_note",
    "write_outputs",
    "read_study",
]
VARIANT_COLUMNS = ["variant", "parameter", "mean", "sd", "q5", "q95"]


def forest_plot(variants: pd.DataFrame):
    """A forest plot: per parameter, the 90% interval and mean of each variant.

    Parameters
    ----------
    variants : pandas.DataFrame
        The ``variants.csv`` table.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib as mpl
    from matplotlib.figure import Figure

    params = list(dict.fromkeys(variants["parameter"]))
    names = list(dict.fromkeys(variants["variant"]))
    ncol = min(3, len(params))
    nrow = int(np.ceil(len(params) / ncol))
    # A Figure made without pyplot: no backend is touched and nothing needs closing.
    fig = Figure(figsize=(4.2 * ncol, 0.35 * len(names) * nrow + 1.2 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    colours = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, param in zip(axes.flat, params):
        rows = variants[variants["parameter"] == param].set_index("variant")
        for i, name in enumerate(names):
            if name not in rows.index:
                continue
            r = rows.loc[name]
            y = len(names) - 1 - i
            c = colours[i % len(colours)]
            ax.plot([r["q5"], r["q95"]], [y, y], color=c, lw=2)
            ax.plot([r["mean"]], [y], "o", color=c)
        if "base" in rows.index:
            ax.axvline(rows.loc["base", "mean"], color="grey", ls=":", lw=1)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names[::-1])
        ax.set_title(param, fontsize=10)
    for ax in list(axes.flat)[len(params) :]:
        ax.set_visible(False)
    fig.suptitle("Posterior mean and 90% interval under each prior variant")
    fig.tight_layout()
    return fig


def _pm(value, se) -> str:
    if pd.isna(value):
        return ""
    return f"{value:.3f}" if pd.isna(se) else f"{value:.3f} ± {se:.3f}"


def _etabar_text(row) -> str:
    if pd.isna(row.get("etabar", np.nan)):
        return ""
    p = row.get("etabar_p", np.nan)
    m = round(float(row["etabar"]), 2) + 0.0  # + 0.0: no "-0.00"
    return f"{m:+.2f} (p = {p:.2g})" if pd.notna(p) else f"{m:+.2f}"


def psense_display(psense: pd.DataFrame) -> pd.DataFrame:
    """The ``psense.csv`` table as shown in the reports: values with their errors, and a sentence.

    Parameters
    ----------
    psense : pandas.DataFrame
        A ``psense.csv`` table (older files without the error, quantile and ETABAR
        columns are shown without them).

    Returns
    -------
    pandas.DataFrame
        Columns ``parameter``, ``prior``, ``likelihood`` (as ``value ± error`` text),
        ``prior quantile``, ``ETABAR``, ``verdict`` and ``what it means``.
    """
    rows = []
    for _, r in psense.iterrows():
        q = r.get("prior_quantile", np.nan)
        expl = r.get("explanation", np.nan)
        rows.append(
            {
                "parameter": r["parameter"],
                "prior": _pm(r["prior"], r.get("prior_se", np.nan)),
                "likelihood": _pm(r["likelihood"], r.get("likelihood_se", np.nan)),
                "prior quantile": "" if pd.isna(q) else f"{q:.3g}",
                "ETABAR": _etabar_text(r),
                "verdict": r["verdict"],
                "what it means": (
                    expl if isinstance(expl, str) and expl else EXPLANATIONS.get(verdict_kind(r["verdict"]), "")
                ),
            }
        )
    return pd.DataFrame(rows)


def verdict_note() -> str:
    """How the verdicts are reached, in a few plain sentences (for the reports)."""
    return (
        f"A sensitivity counts as high only when it exceeds {THRESHOLD} by more than {MARGIN:g} Monte-Carlo "
        f"standard errors (block bootstrap over draws), and as low only when it stays below by as much; "
        f"otherwise the verdict is 'inconclusive: run longer'. 'prior quantile' is the prior's cumulative "
        f"probability at the posterior median: a prior-data conflict puts it outside the prior's central "
        f"{1 - TAIL:.0%}, while a variance that its prior legitimately informs stays inside "
        f"('prior-informed variance'). ETABAR is the mean of the subjects' posterior etas with the p-value "
        f"of a t-test against zero (as in NONMEM): a tight prior on a typical value that the data "
        f"contradict shows as etas all shifted one way ('absorbed by IIV')."
    )


def _png_base64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, escape=True)


_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 70em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: left; }
.ok { color: #2a7a2a; } .warn { color: #b35c00; font-weight: bold; }
"""


def _compilation_html(compilations: pd.DataFrame | None) -> str:
    if compilations is None or compilations.empty:
        return ""
    total = compilations["compilations"]
    line = (
        "not recorded (a fit did not report its compilation)"
        if total.isna().any()
        else f"{int(total.sum())} fresh compilation(s) for {len(compilations)} graph structure(s)"
    )
    return (
        f"<h2>Compilation</h2><p>Variants that differ in prior values only share one compiled "
        f"graph: it is compiled once and the other fits load it from PyTensor's cache. "
        f"This study: {html.escape(line)}.</p>{_table(compilations)}"
    )


def _report(
    model: str,
    psense: pd.DataFrame,
    variants: pd.DataFrame,
    png: str,
    notes: list[str],
    compilations: pd.DataFrame | None = None,
) -> str:
    shown = psense_display(psense)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown.columns)
    rows = []
    for r in shown.itertuples(index=False):
        cls = {"prior-data conflict": "warn", "ok": "ok"}.get(verdict_kind(r.verdict), "")
        cells = "".join(f"<td>{html.escape(str(v))}</td>" for v in r[:-2])
        rows.append(f"<tr>{cells}<td class='{cls}'>{html.escape(r.verdict)}</td><td>{html.escape(r[-1])}</td></tr>")
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes) or "<li>none</li>"
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Prior sensitivity: {html.escape(model)}</title>
<style>{_STYLE}</style></head><body>
<h1>Prior sensitivity: {html.escape(model)}</h1>
<h2>Power-scaling sensitivity (base priors)</h2>
<p>Sensitivity of each population parameter's posterior to raising the prior or the likelihood
to a power near 1 (Kallioinen et al. 2024, computed with <code>arviz_stats.psense</code> by importance
sampling, without refitting), with its Monte-Carlo error. {html.escape(verdict_note())}</p>
<table><tr>{head}</tr>
{"".join(rows)}</table>
<h2>Refits under alternative priors</h2>
<img alt="forest plot of the prior variants" src="data:image/png;base64,{png}">
{_table(variants)}
<h2>Sampler notes</h2><ul>{note_html}</ul>
{_compilation_html(compilations)}
</body></html>
"""


def write_outputs(
    out, model: str, psense: pd.DataFrame, variants: pd.DataFrame, notes=(), compilations: pd.DataFrame | None = None
) -> Path:
    """Write ``psense.csv``, ``variants.csv``, ``compilations.csv``, ``forest.png`` and ``report.html``.

    Parameters
    ----------
    out : path
        The directory (created).
    model : str
        The model's name, for titles.
    psense : pandas.DataFrame
        From :func:`~bayes_nlme.sensitivity.power_scaling`.
    variants : pandas.DataFrame
        Columns :data:`VARIANT_COLUMNS`, ``base`` first.
    notes : sequence of str
        Convergence messages of the fits, listed in the report.
    compilations : pandas.DataFrame, optional
        Compilations per graph structure (``compilations.csv``, and a report section).

    Returns
    -------
    pathlib.Path
        The directory.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    psense.reindex(columns=PSENSE_COLUMNS).to_csv(out / "psense.csv", index=False)
    variants[VARIANT_COLUMNS].to_csv(out / "variants.csv", index=False)
    fig = forest_plot(variants)
    png = _png_base64(fig)
    (out / "forest.png").write_bytes(base64.b64decode(png))
    if compilations is not None:
        compilations.to_csv(out / "compilations.csv", index=False)
    (out / "report.html").write_text(
        _report(model, psense, variants[VARIANT_COLUMNS], png, list(notes), compilations), encoding="utf-8"
    )
    return out


def read_study(path) -> dict | None:
    """The tables of a study directory, or None when ``path/psense.csv`` is missing.

    Parameters
    ----------
    path : path
        A directory written by :func:`write_outputs`.

    Returns
    -------
    dict or None
        ``psense`` and ``variants`` (DataFrames), ``forest`` (PNG bytes or None) and
        ``compilations`` (DataFrame or None).
    """
    path = Path(path)
    if not (path / "psense.csv").is_file():
        return None
    forest = path / "forest.png"
    comp = path / "compilations.csv"
    variants = path / "variants.csv"
    return {
        "psense": pd.read_csv(path / "psense.csv"),
        "variants": pd.read_csv(variants) if variants.is_file() else None,
        "forest": forest.read_bytes() if forest.is_file() else None,
        "compilations": pd.read_csv(comp) if comp.is_file() else None,
    }
