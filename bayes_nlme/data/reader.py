"""Read a CSV file or a pandas DataFrame into a raw table, and parse numbers.

A missing value is an empty field or ``.`` (as in NONMEM). Any other text that is not a
finite number is reported, with its column and rows, by :func:`parse_numeric`.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["RawTable", "read_csv_file", "from_frame", "parse_numeric", "MISSING_TEXT"]

#: Field texts that mean "missing".
MISSING_TEXT: frozenset[str] = frozenset({"", "."})


@dataclass
class RawTable:
    """A dataset as read, before any role is interpreted.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per data record, the original column names, values as read (text for
        CSV files, the original objects for DataFrames), index ``0..n-1``.
    lines : numpy.ndarray or None
        The 1-based file line of each record (CSV sources), else None.
    source : str
        The file path as given, the bundled name, or ``"<DataFrame>"``.
    problems : list of dict
        Violations found while reading (records with the wrong number of fields).
    """

    frame: pd.DataFrame
    lines: np.ndarray | None
    source: str
    problems: list[dict] = field(default_factory=list)


def _fatal(source: str, check: str, message: str) -> DataError:
    violations = pd.DataFrame(
        [{"check": check, "column": None, "rows": [], "message": message}],
        columns=list(DataError.COLUMNS),
    )
    return DataError(f"Dataset '{source}' cannot be read:", violations=violations, source=source)


def read_csv_file(path: str | os.PathLike, source: str | None = None) -> RawTable:
    """Read a comma-separated file with a header line.

    Parameters
    ----------
    path : str or path-like
        The CSV file. The first line is the header; blank lines (and lines whose every
        field is empty) are skipped, but the file line of every record is kept.
    source : str, optional
        The name used in messages (default: ``path`` as given).

    Returns
    -------
    RawTable
        The records as text.

    Raises
    ------
    DataError
        If the file does not exist, cannot be decoded, is empty, has no data rows, or
        has empty or duplicate column names.
    """
    source = str(path) if source is None else source
    path = Path(path)
    if not path.exists():
        raise _fatal(source, "file", f"file not found: '{path}'")
    if path.is_dir():
        raise _fatal(source, "file", f"'{path}' is a directory, not a CSV file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            records = []
            for fields in reader:
                records.append((reader.line_num, fields))
    except UnicodeDecodeError as exc:
        raise _fatal(source, "file", f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (OSError, csv.Error) as exc:
        raise _fatal(source, "file", f"cannot read the file: {exc}") from None
    records = [(line, f) for line, f in records if any(x.strip() for x in f)]
    if not records:
        raise _fatal(source, "file", "the file is empty (expected a header line, then one line per record)")
    header_line, header = records[0]
    names = [h.strip() for h in header]
    _check_header(source, names, header_line)
    body = records[1:]
    if not body:
        raise _fatal(source, "file", "the file has a header but no data rows")
    width = len(names)
    problems = []
    short, long_ = [], []
    rows = []
    for i, (_, fields) in enumerate(body):
        if len(fields) < width:
            short.append(i + 1)
            fields = fields + [""] * (width - len(fields))
        elif len(fields) > width and any(x.strip() for x in fields[width:]):
            long_.append(i + 1)
        rows.append([x.strip() for x in fields[:width]])
    lines = np.array([line for line, _ in body], dtype=int)
    for bad, what in ((short, "fewer"), (long_, "more")):
        if bad:
            problems.append(
                {
                    "check": "fields",
                    "column": None,
                    "rows": bad,
                    "message": f"{what} fields than the {width} columns of the header in {{where}}",
                }
            )
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    return RawTable(frame, lines, source, problems)


def _check_header(source: str, names: list[str], line: int) -> None:
    """Raise a DataError for a header with empty or duplicate column names."""
    if len(names) == 1 and any(sep in names[0] for sep in (";", "\t", " ")):
        raise _fatal(
            source,
            "file",
            f"the header (line {line}) has a single column {names[0]!r}; the file must be comma-separated",
        )
    empty = [i + 1 for i, n in enumerate(names) if not n]
    if empty:
        raise _fatal(
            source,
            "columns",
            f"the header (line {line}) has empty column names at positions {empty}",
        )
    lowered = [n.lower() for n in names]
    dupes = sorted({n for n in names if lowered.count(n.lower()) > 1})
    if dupes:
        raise _fatal(
            source,
            "columns",
            "duplicate column names in the header (names are compared ignoring case): "
            + ", ".join(repr(d) for d in dupes),
        )


def from_frame(frame: pd.DataFrame, source: str = "<DataFrame>") -> RawTable:
    """Wrap a pandas DataFrame as a raw table.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per record; its index is ignored (row 1 is the first row).
    source : str, optional
        The name used in messages.

    Returns
    -------
    RawTable
        A copy of the frame with string column names and a fresh index.

    Raises
    ------
    DataError
        If the frame has no rows, or empty or duplicate column names.
    """
    if not isinstance(frame, pd.DataFrame):
        raise _fatal(source, "file", f"expected a pandas DataFrame, got {type(frame).__name__}")
    names = [str(c).strip() for c in frame.columns]
    if not names:
        raise _fatal(source, "file", "the DataFrame has no columns")
    _check_header(source, names, 0)
    if len(frame) == 0:
        raise _fatal(source, "file", "the DataFrame has no rows")
    copy = frame.copy()
    copy.columns = names
    copy = copy.reset_index(drop=True)
    return RawTable(copy, None, source, [])


def parse_numeric(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse a column into floats.

    Parameters
    ----------
    values : pandas.Series
        Text (as read from a CSV file) or numbers (from a DataFrame). Empty fields,
        ``.``, None and NaN are missing.

    Returns
    -------
    numbers : numpy.ndarray of float
        The values, NaN where missing or not valid.
    bad : numpy.ndarray of bool
        True where a value is present but is not a finite number (text such as ``"M"``,
        ``"NA"`` or ``"inf"``).
    """
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=float), np.zeros(len(values), dtype=bool)
    if pd.api.types.is_numeric_dtype(values.dtype):
        out = values.to_numpy(dtype=float, na_value=np.nan)
        return np.where(np.isinf(out), np.nan, out), np.isinf(out)
    items = pd.Series(values.to_numpy(dtype=object), dtype=object)
    missing = items.isna().to_numpy()
    text = items.where(~missing, "").astype(str).str.strip()
    missing = missing | text.isin(MISSING_TEXT).to_numpy()
    text = text.where(~missing, "nan")
    try:  # fast path; numpy also accepts "1_000", which is not a number here
        if text.str.contains("_", regex=False).any():
            raise ValueError
        out = text.to_numpy(dtype=str).astype(float)
    except ValueError:
        out = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    bad = ~missing & ~np.isfinite(out)
    return np.where(bad, np.nan, out), bad
