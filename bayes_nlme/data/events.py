"""Dose records a structural model cannot take: one DataError with every row.

:func:`check_dose_records` runs the dose checks of the event engine's record layout
(:func:`bayes_nlme.core.engine_design`): a dose into a peripheral compartment or into a
compartment the model does not have (``CMT`` in ADVAN numbering; missing or 0 means the
depot for oral models and the central compartment for IV models), modelled rates
(``RATE < 0``), steady state or ``ADDL`` without ``II > 0``, and ``ADDL`` on a
steady-state constant infusion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError, format_rows
from ..pk.models import StructuralModel, structural_model

__all__ = ["check_dose_records"]

_DEFAULTS = {"AMT": 0.0, "RATE": 0.0, "II": 0.0, "ADDL": 0.0, "SS": 0.0, "MDV": 0.0, "CMT": np.nan}


def _column(table: pd.DataFrame, name: str) -> np.ndarray:
    if name in table.columns:
        return pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if name in _DEFAULTS:
        return np.full(len(table), _DEFAULTS[name])
    raise DataError(f"event design: the table has no column {name!r}")


def _problem(items: list, check: str, column: str, rows: np.ndarray, message: str) -> None:
    rows = [int(r) for r in rows]
    items.append({"check": check, "column": column, "rows": rows, "message": f"{message} in {format_rows(rows)}"})


def _routes(model: StructuralModel, cmt: np.ndarray, dose: np.ndarray, rows: np.ndarray, items: list):
    """Route of every record ("depot"/"central"; only meaningful for doses)."""
    default = model.compartment_role(model.default_dose_compartment)
    cmt_int = np.where(np.isnan(cmt) | (cmt == 0), model.default_dose_compartment, np.nan_to_num(cmt))
    roles = np.array([model.compartment_role(c) if float(c).is_integer() else None for c in cmt_int], dtype=object)
    peripheral = dose & (roles == "peripheral")
    if peripheral.any():
        _problem(
            items,
            "dose_cmt",
            "CMT",
            rows[peripheral],
            f"CMT: dose into the peripheral compartment (model {model.name} takes doses into "
            f"{', '.join(f'{k} = {v}' for k, v in model.compartments.items() if v != 'peripheral')})",
        )
    invalid = dose & np.array([r is None for r in roles])
    if invalid.any():
        _problem(
            items,
            "dose_cmt",
            "CMT",
            rows[invalid],
            f"CMT: not a compartment of {model.name} "
            f"(valid: {', '.join(f'{k} = {v}' for k, v in model.compartments.items())})",
        )
    return np.where(roles == "depot", "depot", np.where(roles == "central", "central", default))


def check_dose_records(data, structural) -> None:
    """Check the dose records of a dataset against a structural model.

    Parameters
    ----------
    data : Dataset or pandas.DataFrame
        A :class:`~bayes_nlme.data.Dataset` (its ``table`` is used) or a table with
        ``TIME, EVID`` and optionally ``AMT, CMT, RATE, II, ADDL, SS, ROW``.
    structural : str or StructuralModel

    Raises
    ------
    DataError
        Listing every dose the model cannot take, with its rows.
    SpecError
        For an unknown structural model.
    """
    model = structural_model(structural)
    table = data.table if hasattr(data, "table") else data
    evid = _column(table, "EVID")
    amt, rate, ii = (np.nan_to_num(_column(table, c)) for c in ("AMT", "RATE", "II"))
    addl, ss = (np.nan_to_num(_column(table, c)) for c in ("ADDL", "SS"))
    rows = table["ROW"].to_numpy().astype(int) if "ROW" in table.columns else np.arange(1, len(table) + 1)
    dose = np.isin(evid, (1, 4))
    items: list = []
    _routes(model, _column(table, "CMT"), dose, rows, items)
    if (dose & (rate < 0)).any():
        _problem(
            items,
            "rate",
            "RATE",
            rows[dose & (rate < 0)],
            "RATE: modelled rates or durations (RATE < 0) are not supported",
        )
    constant = dose & (ss > 0) & (amt == 0) & (rate > 0)
    if (dose & (ss > 0) & ~constant & (ii <= 0)).any():
        _problem(
            items,
            "ss_ii",
            "II",
            rows[dose & (ss > 0) & ~constant & (ii <= 0)],
            "II: steady-state dose (SS > 0) without an interval II > 0",
        )
    if (dose & (addl > 0) & (ii <= 0)).any():
        _problem(
            items,
            "addl_ii",
            "ADDL",
            rows[dose & (addl > 0) & (ii <= 0)],
            "ADDL: additional doses without an interval II > 0",
        )
    if (constant & (addl > 0)).any():
        _problem(
            items,
            "addl_ss",
            "ADDL",
            rows[constant & (addl > 0)],
            "ADDL: additional doses of a steady-state constant infusion",
        )
    if items:
        raise DataError(
            f"Dataset has {len(items)} problem(s) for model {model.name}:",
            pd.DataFrame(items, columns=list(DataError.COLUMNS)),
        )
