"""Self-contained HTML: inline CSS, figures as base64 PNG, tables, sections.

Nothing refers outside the file (no scripts, fonts, style sheets or links), and
nothing depends on the time or place of writing, so equal inputs give equal bytes.
"""

from __future__ import annotations

import base64
import html
import math

import numpy as np
import pandas as pd

__all__ = ["CSS", "Page", "escape", "format_number", "table_html"]

CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1000px;
       padding: 0 24px 48px; color: #1d1d1f; line-height: 1.45; font-size: 15px; }
h1 { font-size: 26px; margin: 24px 0 4px; }
h2 { font-size: 21px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #d0d7e2; }
h3 { font-size: 17px; margin: 22px 0 6px; }
p.sub { color: #555; margin-top: 0; }
nav ol { columns: 2; font-size: 14px; }
nav a { color: #1f3b73; text-decoration: none; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13.5px; }
th, td { border: 1px solid #d0d7e2; padding: 4px 9px; }
th { background: #eef2f8; text-align: left; white-space: nowrap; }
th[colspan] { text-align: center; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #f8f9fb; }
pre { background: #f6f8fa; border: 1px solid #d0d7e2; padding: 10px 12px; font-size: 13px;
      overflow-x: auto; }
figure { margin: 14px 0 24px; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e7ee; }
figcaption { font-size: 13.5px; color: #444; margin-top: 4px; }
.verdict { padding: 10px 14px; border-radius: 6px; font-weight: bold; margin: 8px 0 12px; }
.ok { background: #e3f4e6; border: 1px solid #5cb85c; color: #1e6b2a; }
.fail { background: #fbe5e3; border: 1px solid #d9534f; color: #8a1f1a; }
.note { font-size: 13.5px; color: #555; }
.missing { color: #8a1f1a; font-style: italic; }
"""


def escape(text) -> str:
    """HTML-escape ``text``."""
    return html.escape(str(text), quote=True)


def format_number(value, kind: str = "g") -> str:
    """A number for a table cell.

    Parameters
    ----------
    value : float, int or None
    kind : {"g", "int", "rhat", "pct", "fixed2"}
        ``g``: 4 significant digits; ``int``: rounded; ``rhat``: 3 decimals; ``pct``:
        1 decimal; ``fixed2``: 2 decimals.

    Returns
    -------
    str
        ``–`` for missing values.
    """
    if value is None or isinstance(value, str):
        return "–" if value is None else escape(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return escape(value)
    if not math.isfinite(x):
        return "–"
    if kind == "int":
        return f"{x:,.0f}"
    if kind == "rhat":
        return f"{x:.3f}"
    if kind == "pct":
        return f"{x:.1f}"
    if kind == "fixed2":
        return f"{x:.2f}"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.3e}"
    return f"{x:.4g}"


def table_html(
    frame: pd.DataFrame, formats: dict | None = None, *, index: bool = False, groups: list | None = None
) -> str:
    """A DataFrame as an HTML table; numeric columns right-aligned.

    Parameters
    ----------
    frame : pandas.DataFrame
    formats : dict of str to str, optional
        Column -> ``kind`` of :func:`format_number` (default ``g`` for numbers).
    index : bool
        Include the index as the first column.
    groups : list of (str, int), optional
        A first header row: each label spans that many columns (label '' for none);
        the column names below it lose the label as a prefix.

    Returns
    -------
    str
    """
    formats = formats or {}
    frame = frame.reset_index() if index else frame
    if groups:
        top, names, k = [], [], 0
        for label, span in groups:
            top.append(f'<th colspan="{span}">{escape(label)}</th>' if span > 1 or label else "<th></th>")
            for column in frame.columns[k : k + span]:
                text = str(column)
                names.append(text[len(label) + 1 :] if label and text.startswith(f"{label} ") else text)
            k += span
        head = "".join(top) + "</tr><tr>" + "".join(f"<th>{escape(n)}</th>" for n in names)
    else:
        head = "".join(f"<th>{escape(c)}</th>" for c in frame.columns)
    rows = []
    for values in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, values):
            numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            if numeric:
                cells.append(f'<td class="num">{format_number(value, formats.get(column, "g"))}</td>')
            else:
                cells.append(f"<td>{escape('–' if value is None else value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


class Page:
    """An HTML page assembled section by section.

    Parameters
    ----------
    title : str
    subtitle : str
    """

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self.sections: list[tuple[str, str, list[str]]] = []
        self.n_figures = 0

    def section(self, anchor: str, heading: str) -> list[str]:
        """Start a section; returns the list its parts are appended to."""
        parts: list[str] = []
        self.sections.append((anchor, heading, parts))
        return parts

    def figure(self, parts: list[str], png: bytes | None, caption: str, *, alt: str | None = None) -> None:
        """Append a base64 PNG figure with a caption (or a note when ``png`` is None)."""
        if png is None:
            parts.append(f'<p class="missing">Figure not available: {escape(caption)}</p>')
            return
        data = base64.b64encode(png).decode("ascii")
        self.n_figures += 1
        parts.append(
            f'<figure><img alt="{escape(alt or caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>Figure {self.n_figures}. {escape(caption)}</figcaption></figure>"
        )

    def render(self) -> str:
        """The whole page as a string."""
        toc = "".join(f'<li><a href="#{a}">{escape(h)}</a></li>' for a, h, _ in self.sections)
        body = "".join(
            f'<section id="{a}"><h2>{escape(h)}</h2>{"".join(parts)}</section>' for a, h, parts in self.sections
        )
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(self.title)}</title><style>{CSS}</style></head><body>"
            f'<h1>{escape(self.title)}</h1><p class="sub">{escape(self.subtitle)}</p>'
            f"<nav><ol>{toc}</ol></nav>{body}</body></html>\n"
        )
