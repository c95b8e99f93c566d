"""Checks of the occasion column ``OCC`` (inter-occasion variability, CONTRACT 5.3)."""

from __future__ import annotations

import numpy as np

from .columns import column_label

__all__ = ["MAX_OCC", "check_occasion_values", "check_occasion_records"]


def _rows(mask: np.ndarray) -> np.ndarray:
    """1-based row numbers where ``mask`` is true."""
    return np.flatnonzero(mask) + 1


def _format(value: float) -> str:
    value = float(value)
    return str(int(value)) if np.isfinite(value) and value == int(value) else repr(value)


#: The largest occasion number (OCC) accepted.
MAX_OCC = 1e6


def check_occasion_values(occ: np.ndarray, names, lab, problems) -> None:
    """``OCC`` (CONTRACT 5.3): where given, a whole number from 1 (missing fields are carried forward).

    Parameters
    ----------
    occ : numpy.ndarray
        The parsed ``OCC`` values (NaN where missing).
    names : mapping of str to str
        Role -> dataset column name (nothing is checked without an ``OCC`` column).
    lab : mapping of str to str
        Role -> column label for messages.
    problems : Problems
        Receives the violation, with its rows.
    """
    if "OCC" not in names:
        return
    given = ~np.isnan(occ)
    wrong = given & ((occ != np.round(occ)) | (occ < 1) | (occ > MAX_OCC))
    if wrong.any():
        shown = ", ".join(sorted({_format(v) for v in occ[wrong]})[:5])
        problems.add(
            "occ",
            names["OCC"],
            _rows(wrong),
            f"{lab['OCC']}: occasion {shown} in {{where}} is not valid; an occasion is a whole number "
            f"from 1 to {MAX_OCC:g} (1, 2, 3, ...; gaps are allowed)",
        )


def check_occasion_records(dataset, spec, problems) -> None:
    """A model with inter-occasion variability needs an ``OCC`` value on every record.

    Parameters
    ----------
    dataset : Dataset
        A loaded dataset (``OCC`` already carried forward within each subject).
    spec : ModelSpec
        The model; nothing is checked when no parameter has ``iov``.
    problems : Problems
        Receives the violations: no ``OCC`` column (CONTRACT 5.3: exit 2), or records
        before the first ``OCC`` value of their subject (values are carried forward,
        not backward).
    """
    iov = tuple(getattr(spec, "iov_names", ()))
    if not iov:
        return
    table = dataset.table
    params = ", ".join(iov)
    if "OCC" not in dataset.columns:
        problems.add(
            "occ",
            "OCC",
            [],
            f"model '{spec.name}' has inter-occasion variability (iov on {params}) but the dataset has no "
            "OCC column; add an OCC column (the occasion of each record, 1, 2, ...) or map one with "
            '[columns] OCC = "..."',
        )
        return
    missing = table["OCC"].isna().to_numpy()
    if missing.any():
        problems.add(
            "occ_missing",
            dataset.columns["OCC"],
            table["ROW"][missing],
            f"{column_label('OCC', dataset.columns['OCC'])}: occasion missing in {{where}} (iov on {params}); "
            "values are carried forward within a subject, so each subject's first record needs one",
        )
