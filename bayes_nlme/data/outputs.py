"""Which output each observation row is of (CONTRACT 5.4).

With several outputs, an observation row's ``DVID`` (or, when the dataset has no
``DVID`` column, its ``CMT``) must equal the ``id`` of one output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["output_index", "output_selector"]


def output_selector(table: pd.DataFrame) -> str:
    """``"DVID"`` when the dataset has DVID values, else ``"CMT"``."""
    if "DVID" in table.columns and table["DVID"].notna().any():
        return "DVID"
    return "CMT"


def output_index(table: pd.DataFrame, ids) -> np.ndarray:
    """The output (position in ``ids``) of every record; -1 where none matches.

    Parameters
    ----------
    table : pandas.DataFrame
        The records (``Dataset.table``).
    ids : sequence of int or None
        The outputs' ids, in order. With one output every record is of output 0.

    Returns
    -------
    numpy.ndarray of int
    """
    ids = list(ids)
    n = len(table)
    if len(ids) < 2:
        return np.zeros(n, dtype=np.int64)
    column = output_selector(table)
    values = (
        pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float) if column in table else np.full(n, np.nan)
    )
    out = np.full(n, -1, dtype=np.int64)
    for k, value in enumerate(ids):
        out[values == float(value)] = k
    return out
