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
import os
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
    "check_out_dir",
    "check_out_file",
    "FIT_FILES",
    "FitDirectory",
]

SPEC_ATTR = "bayes_nlme_spec_toml"
DATA_ATTR = "bayes_nlme_data_csv"
DATA_SOURCE_ATTR = "bayes_nlme_data_source"
COLUMNS_ATTR = "bayes_nlme_columns_json"
METHOD_ATTR = "bayes_nlme_method"

#: The files that make a directory a fit directory.
FIT_FILES = ("summary.csv", "fit.json", "fit.nc")


def _is_fit_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in FIT_FILES)


def _check_parent(path: Path, flag: str) -> None:
    """The nearest existing ancestor of ``path`` must be a writable directory."""
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(f"{flag} '{path}': '{parent}' is a file, not a directory; give a path in a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{flag} '{path}': the directory '{parent}' is not writable; give a writable path")
    try:  # permissions alone do not tell (read-only mounts, /proc, /sys, root)
        probe = tempfile.mkdtemp(prefix=".bayes_nlme-write-test-", dir=parent)
        os.rmdir(probe)
    except OSError as exc:
        raise InputError(
            f"{flag} '{path}': cannot write in '{parent}' ({exc.strerror or exc}); give a writable path"
        ) from None


def check_out_dir(out: str | Path, *, overwrite: bool = False, flag: str = "--out") -> Path:
    """Check a fit directory path before any work is done.

    Parameters
    ----------
    out : path
        The fit directory to write.
    overwrite : bool
        Whether an existing fit directory may be replaced (whole).
    flag : str
        The option named in messages.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InputError
        When ``out`` is an existing file, a non-empty directory that is not a fit
        directory, an existing fit directory without ``overwrite``, or lies in a
        directory that cannot be written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{flag} '{out}' is an existing file; give the path of a new directory")
    if out.is_dir() and any(out.iterdir()):
        if not _is_fit_dir(out):
            raise InputError(
                f"{flag} '{out}' is a non-empty directory that is not a fit directory; "
                "give the path of a new or empty directory"
            )
        if not overwrite:
            raise InputError(
                f"{flag} '{out}' already holds a fit; add --overwrite to replace it (the whole "
                "directory is replaced), or give a new path"
            )
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
        raise InputError(f"{flag} '{out}': the directory is not writable; give a writable path")
    _check_parent(out, flag)
    return out


def check_out_file(out: str | Path, *, flag: str = "--out") -> Path:
    """Check an output file path (a CSV or HTML file) before any work is done.

    Parameters
    ----------
    out : path
        The file to write (an existing file is replaced).
    flag : str
        The option named in messages.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InputError
        When ``out`` is a directory, or lies in a directory that cannot be written.
    """
    out = Path(out)
    if out.is_dir():
        raise InputError(f"{flag} '{out}' is a directory; give the path of a file")
    if out.name in (*FIT_FILES, "ebe.csv") and _is_fit_dir(out.parent):
        raise InputError(f"{flag} '{out}' is a file of the fit directory '{out.parent}'; give another path")
    if out.exists() and not os.access(out, os.W_OK):
        raise InputError(f"{flag} '{out}' is not writable; give a writable path")
    _check_parent(out, flag)
    return out


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

    Everything is written into a temporary sibling directory first, which is then
    renamed into place, so a failure or an interrupt leaves no partial output. An
    existing fit directory at ``out`` is replaced whole (no stale ``report.html`` or
    ``ebe.csv`` of an earlier fit stays behind).

    Parameters
    ----------
    out : path
        The fit directory. It must not exist, be empty, or be a fit directory.
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

    Raises
    ------
    InputError
        When ``out`` is a file or a non-empty directory that is not a fit directory.
    """
    out = check_out_dir(out, overwrite=True, flag="fit directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    old = None
    try:
        summary.to_csv(staging / "summary.csv", index=False)
        for name, frame in (tables or {}).items():
            frame.to_csv(staging / name, index=False)
        tree.to_netcdf(staging / "fit.nc", engine="h5netcdf")
        # fit.json last: a directory without it is never taken for a fit
        (staging / "fit.json").write_text(json.dumps(_jsonable(info), indent=2) + "\n")
        staging.chmod(0o777 & ~_umask())
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            old.rmdir()
            out.rename(old)
        staging.rename(out)
    except BaseException:
        if old is not None and not out.exists():
            old.rename(out)
            old = None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


def _read_json(path: Path) -> dict:
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"'{path}' cannot be read ({exc}); the fit directory is damaged: run the fit again") from None
    if not isinstance(info, dict):
        raise InputError(f"'{path}' is not a JSON object; the fit directory is damaged: run the fit again")
    return info


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"'{path}' cannot be read ({exc}); the fit directory is damaged: run the fit again") from None
    return frame


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
        When the directory or one of its files is missing, damaged or unreadable, or
        when it holds an incomplete fit (``fit.json`` has ``complete: false``: the
        sampling was interrupted).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(
            f"'{path}' is a file, not a fit directory (a fit directory is written by 'bayes-nlme fit ... --out DIR')"
        )
    if not path.is_dir():
        raise InputError(f"fit directory '{path}' does not exist")
    missing = [n for n in FIT_FILES if not (path / n).is_file()]
    if missing or path.name.endswith(".partial"):
        raise InputError(
            f"'{path}' is not a complete fit directory: {', '.join(missing) or 'a partial write'} "
            "(a fit directory is written by 'bayes-nlme fit ... --out DIR')"
        )
    info = _read_json(path / "fit.json")
    if info.get("complete") is False:
        raise InputError(
            f"'{path}' holds an incomplete fit (fit.json: complete = false): the sampling was interrupted "
            "or failed, so its draws are not a sample of the posterior; run the fit again"
        )
    try:
        with xr.open_datatree(path / "fit.nc", engine="h5netcdf") as handle:
            tree = handle.load()
    except Exception as exc:  # noqa: BLE001 - any reader failure is bad input here
        raise InputError(f"'{path / 'fit.nc'}' cannot be read: {exc}") from exc
    summary = _read_csv(path / "summary.csv")
    if "parameter" not in summary.columns:
        raise InputError(f"'{path / 'summary.csv'}' has no 'parameter' column; the fit directory is damaged")
    ebe = _read_csv(path / "ebe.csv") if (path / "ebe.csv").is_file() else None
    spec, dataset = extract_inputs(tree)
    return FitDirectory(path=path, tree=tree, summary=summary, info=info, spec=spec, dataset=dataset, ebe=ebe)
