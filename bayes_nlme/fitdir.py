"""The fit directory (CONTRACT section 3): write it atomically, read it back.

A fit directory holds ``summary.csv``, ``fit.json``, ``fit.nc`` (the DataTree, with the
spec and the dataset embedded in its attributes) and, for frequentist methods,
``ebe.csv``. Every fit method writes through :func:`write_fit_dir`, and ``report`` and
``compare`` read through :func:`load_fit_dir`, which needs nothing but the directory.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .errors import InputError

__all__ = [
    "SPEC_ATTR",
    "DATA_ATTR",
    "embed_inputs",
    "extract_inputs",
    "write_fit_dir",
    "load_fit_dir",
    "FitDirectory",
]

SPEC_ATTR = "bayes_nlme_spec_toml"
DATA_ATTR = "bayes_nlme_data_csv"
DATA_SOURCE_ATTR = "bayes_nlme_data_source"
COLUMNS_ATTR = "bayes_nlme_columns_json"
METHOD_ATTR = "bayes_nlme_method"


def embed_inputs(tree: xr.DataTree, spec, dataset, method: str) -> xr.DataTree:
    """Store the spec (as TOML) and the dataset (as CSV text) in the tree's attributes.

    Parameters
    ----------
    tree : xarray.DataTree
        The fit's tree; modified in place and returned.
    spec : ModelSpec
    dataset : Dataset
    method : str
        The fit method (``nuts``, ``prior``, ``focei`` ...).

    Returns
    -------
    xarray.DataTree
    """
    from .spec import to_toml

    tree.attrs[SPEC_ATTR] = to_toml(spec)
    frame = dataset.original if getattr(dataset, "original", None) is not None else dataset.table
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    tree.attrs[DATA_ATTR] = buffer.getvalue()
    tree.attrs[DATA_SOURCE_ATTR] = str(getattr(dataset, "source", ""))
    tree.attrs[COLUMNS_ATTR] = json.dumps(dict(getattr(dataset, "columns", {}) or {}))
    tree.attrs[METHOD_ATTR] = method
    return tree


def extract_inputs(tree: xr.DataTree):
    """Rebuild ``(spec, dataset)`` from a tree written by :func:`embed_inputs`.

    Parameters
    ----------
    tree : xarray.DataTree

    Returns
    -------
    tuple of (ModelSpec, Dataset)
    """
    import tomllib

    from .data import load_dataset
    from .spec import parse_model

    if SPEC_ATTR not in tree.attrs or DATA_ATTR not in tree.attrs:
        raise InputError("this fit.nc holds no bayes_nlme spec and dataset (was it written by bayes_nlme?)")
    spec = parse_model(tomllib.loads(tree.attrs[SPEC_ATTR]), source="fit.nc")
    frame = pd.read_csv(io.StringIO(tree.attrs[DATA_ATTR]), dtype=str, keep_default_na=False)
    columns = json.loads(tree.attrs.get(COLUMNS_ATTR, "{}")) or None
    dataset = load_dataset(frame, columns=columns, name=tree.attrs.get(DATA_SOURCE_ATTR) or "fit.nc")
    return spec, dataset


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    return value


def write_fit_dir(
    out: str | Path,
    *,
    tree: xr.DataTree,
    summary: pd.DataFrame,
    info: dict,
    tables: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """Write a fit directory atomically.

    Everything is written into a temporary sibling directory first and moved into
    ``out`` only when complete, so a failure leaves no partial output.

    Parameters
    ----------
    out : path
        The fit directory; created if needed. Existing fit files in it are replaced.
    tree : xarray.DataTree
        Written as ``fit.nc``.
    summary : pandas.DataFrame
        Written as ``summary.csv`` (must have a ``parameter`` column).
    info : dict
        Written as ``fit.json`` (numpy scalars and non-finite floats are converted).
    tables : dict of str to DataFrame, optional
        Extra CSV files, e.g. ``{"ebe.csv": frame}``.

    Returns
    -------
    pathlib.Path
        The fit directory.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        summary.to_csv(staging / "summary.csv", index=False)
        (staging / "fit.json").write_text(json.dumps(_jsonable(info), indent=2) + "\n")
        for name, frame in (tables or {}).items():
            frame.to_csv(staging / name, index=False)
        tree.to_netcdf(staging / "fit.nc", engine="h5netcdf")
        out.mkdir(exist_ok=True)
        for item in staging.iterdir():
            item.replace(out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


@dataclass(frozen=True)
class FitDirectory:
    """A fit directory read back from disk.

    Attributes
    ----------
    path : pathlib.Path
    tree : xarray.DataTree
        The fit's DataTree (loaded into memory).
    summary : pandas.DataFrame
    info : dict
        The contents of ``fit.json``.
    spec : ModelSpec
    dataset : Dataset
    ebe : pandas.DataFrame or None
    """

    path: Path
    tree: xr.DataTree
    summary: pd.DataFrame
    info: dict
    spec: Any
    dataset: Any
    ebe: pd.DataFrame | None = None

    @property
    def method(self) -> str:
        """The fit method (``nuts``, ``prior``, ``laplace``, ``focei``, ``foce``, ``fo``)."""
        return self.info.get("method", self.tree.attrs.get(METHOD_ATTR, ""))

    @property
    def bayesian(self) -> bool:
        """True for ``nuts`` and ``prior`` fits."""
        return self.method in ("nuts", "prior")


def load_fit_dir(path: str | Path) -> FitDirectory:
    """Read a fit directory written by ``bayes-nlme fit``.

    Parameters
    ----------
    path : path
        The directory.

    Returns
    -------
    FitDirectory

    Raises
    ------
    InputError
        When the directory or one of its files is missing or unreadable.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"fit directory '{path}' does not exist")
    missing = [n for n in ("summary.csv", "fit.json", "fit.nc") if not (path / n).is_file()]
    if missing:
        raise InputError(
            f"'{path}' is not a fit directory: {', '.join(missing)} missing "
            "(a fit directory is written by 'bayes-nlme fit ... --out DIR')"
        )
    try:
        with xr.open_datatree(path / "fit.nc", engine="h5netcdf") as handle:
            tree = handle.load()
    except Exception as exc:  # noqa: BLE001 - any reader failure is bad input here
        raise InputError(f"'{path / 'fit.nc'}' cannot be read: {exc}") from exc
    info = json.loads((path / "fit.json").read_text())
    summary = pd.read_csv(path / "summary.csv")
    ebe = pd.read_csv(path / "ebe.csv") if (path / "ebe.csv").is_file() else None
    spec, dataset = extract_inputs(tree)
    return FitDirectory(path=path, tree=tree, summary=summary, info=info, spec=spec, dataset=dataset, ebe=ebe)
