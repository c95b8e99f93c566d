"""The Dataset object, :func:`load_dataset`, and the checks of a dataset against a model."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ArgumentError, DataError, SpecError
from .bundled import bundled_names, bundled_path
from .columns import COMPARTMENTS, REQUIRED, ROLES, column_label, resolve_columns
from .model_checks import check_model_records
from .reader import MISSING_TEXT, RawTable, from_frame, parse_numeric, read_csv_file
from .validate import Problems, complete_roles, format_value

__all__ = ["Dataset", "load_dataset", "read_dataset", "check_for_model", "id_array", "subject_keys"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A validated NONMEM-style dataset.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per record, in file order, with every role column (``ID, TIME, DV,
        AMT, EVID, MDV, CMT, RATE, II, ADDL, SS, BLQ, LLOQ, OCC``) as float (NaN for missing;
        defaults AMT, RATE, II, ADDL, SS, BLQ 0; CMT NaN when absent), then ``ROW``
        (1-based data row), ``SUBJECT`` (0-based subject index in order of first
        appearance) and the covariates, carried forward (LOCF) within each subject.
        ``ID`` keeps the original subject values. EVID is derived where absent; MDV is
        1 on every record that is not an observation.
    covariates : tuple of str
        Covariate column names (every column that plays no role).
    source : str
        The file path as given, the bundled name, or ``"<DataFrame>"``.
    columns : dict of str to str
        Role -> dataset column name, for the roles found in the input.
    original : pandas.DataFrame
        The input columns under their original names, in input order, as numbers where
        they parse (integers where every value is a whole number), one row per record
        (the same rows as ``table``).
    lines : numpy.ndarray or None
        The file line of each record (CSV sources), for messages.
    """

    table: pd.DataFrame
    covariates: tuple[str, ...]
    source: str
    columns: dict[str, str]
    original: pd.DataFrame
    lines: np.ndarray | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (
            f"Dataset(source={self.source!r}, subjects={self.n_subjects}, "
            f"observations={self.n_observations}, doses={self.n_doses}, "
            f"covariates={list(self.covariates)})"
        )

    @property
    def n_records(self) -> int:
        """Number of records (rows)."""
        return len(self.table)

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        return int(self.table["SUBJECT"].max()) + 1

    @property
    def observation_mask(self) -> np.ndarray:
        """Boolean array, true on observation records (EVID 0 and MDV 0)."""
        return ((self.table["EVID"] == 0) & (self.table["MDV"] == 0)).to_numpy()

    @property
    def dose_mask(self) -> np.ndarray:
        """Boolean array, true on dose records (EVID 1 or 4)."""
        return self.table["EVID"].isin((1, 4)).to_numpy()

    @property
    def n_observations(self) -> int:
        """Number of observation records (EVID 0 and MDV 0)."""
        return int(self.observation_mask.sum())

    @property
    def n_doses(self) -> int:
        """Number of dose records (EVID 1 or 4); additional doses (ADDL) are not counted."""
        return int(self.dose_mask.sum())

    @property
    def subject_ids(self) -> tuple:
        """Original subject IDs in order of first appearance: ints when every ID is a whole
        number that fits 64 bits, otherwise the IDs as text."""
        ids = pd.unique(self.table["ID"].to_numpy())
        if self.table["ID"].dtype.kind in "iu":
            return tuple(int(i) for i in ids)
        if self.table["ID"].dtype.kind == "f":
            return tuple(int(i) if float(i).is_integer() else float(i) for i in ids)
        return tuple(str(i) for i in ids)

    @property
    def observations(self) -> pd.DataFrame:
        """The observation records of ``table`` (EVID 0 and MDV 0)."""
        return self.table[self.observation_mask]

    @property
    def doses(self) -> pd.DataFrame:
        """The dose records of ``table`` (EVID 1 or 4)."""
        return self.table[self.dose_mask]

    def summary(self) -> dict:
        """A short description.

        Returns
        -------
        dict
            ``source``, ``n_records``, ``n_subjects``, ``n_observations``, ``n_doses``,
            ``covariates`` (list) and ``columns`` (role -> column).
        """
        return {
            "source": self.source,
            "n_records": self.n_records,
            "n_subjects": self.n_subjects,
            "n_observations": self.n_observations,
            "n_doses": self.n_doses,
            "covariates": list(self.covariates),
            "columns": dict(self.columns),
        }

    def to_frame(self) -> pd.DataFrame:
        """``table`` with mapped role columns under their dataset names.

        Returns
        -------
        pandas.DataFrame
            A copy of ``table`` where, e.g., ``ID`` is called ``Subject`` when
            ``[columns]`` maps ``ID = "Subject"``.
        """
        rename = {r: n for r, n in self.columns.items() if n != r}
        return self.table.rename(columns=rename)

    def subject_covariates(self, names: Sequence[str] | None = None) -> pd.DataFrame:
        """Each subject's covariate values on its first record (after LOCF).

        Parameters
        ----------
        names : sequence of str, optional
            Covariates to return (default: all).

        Returns
        -------
        pandas.DataFrame
            Indexed by ``SUBJECT``, with ``ID`` and the covariates.
        """
        names = list(self.covariates if names is None else names)
        first = self.table.groupby("SUBJECT", sort=True).head(1).set_index("SUBJECT")
        return first[["ID", *names]]


def _compact(values: np.ndarray, raw: pd.Series, bad: np.ndarray) -> pd.Series:
    """The original column: numbers (ints when whole), or the raw values if not numeric."""
    if bad.any():
        return raw
    finite = values[~np.isnan(values)]
    whole = np.all(finite == np.round(finite)) and np.all(np.abs(finite) < 2**53)
    if whole and not np.isnan(values).any():
        return pd.Series(values.astype(np.int64))
    return pd.Series(values)


def id_array(values) -> np.ndarray:
    """Subject IDs as an array a file can hold: int64 for whole numbers, else text.

    Parameters
    ----------
    values : array-like or pandas.Series

    Returns
    -------
    numpy.ndarray
    """
    arr = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        whole = np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)) and np.all(np.abs(arr) < 2**53)
        return arr.astype(np.int64) if whole else arr
    return arr.astype(str)


_INTEGER = re.compile(r"[+-]?\d+")


def _subject_key(value):
    """One ID as an exact key: an int for a whole number (any size), else the stripped text."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else float(value)
    text = str(value).strip()
    if text in MISSING_TEXT or text == "":
        return None
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return text
    if np.isfinite(number) and number.is_integer() and abs(number) < 2**53:
        return int(number)  # "12.0" is subject 12
    return text


def subject_keys(column: pd.Series) -> tuple[np.ndarray, pd.Series, list[str]]:
    """Read ``ID`` as an exact key (CONTRACT: integer or string), never through a float.

    Parameters
    ----------
    column : pandas.Series
        The raw ID column.

    Returns
    -------
    codes : numpy.ndarray of float
        0, 1, ... by order of first appearance; NaN where the ID is missing.
    ids : pandas.Series
        The IDs: int64 when all are whole numbers within 64 bits, else text.
    labels : list of str
        ``labels[code]``: the ID as messages show it.
    """
    keys = [_subject_key(v) for v in column.to_numpy(dtype=object)]
    present = [k for k in keys if k is not None]
    numeric = all(isinstance(k, int) and -(2**63) <= k < 2**63 for k in present)
    as_text = [None if k is None else str(k) for k in keys]
    codes, uniques = pd.factorize(pd.Series(as_text, dtype=object), use_na_sentinel=True)
    codes = np.where(codes < 0, np.nan, codes.astype(float))
    if numeric:
        ids = pd.Series([np.nan if k is None else k for k in keys], dtype="Int64" if None in keys else "int64")
    else:
        ids = pd.Series(as_text, dtype=object)
    return codes, ids, [str(u) for u in uniques]


def _parse_all(raw: RawTable, used: Sequence[str], problems: Problems):
    """Parse every column; report non-numeric fields of the columns in ``used``."""
    values, bad, original = {}, {}, {}
    for name in raw.frame.columns:
        col = raw.frame[name]
        values[name], bad[name] = parse_numeric(col)
        original[name] = _compact(values[name], col, bad[name])
        if name in used and bad[name].any():
            offending = col.to_numpy(dtype=object)[bad[name]]
            texts = list(dict.fromkeys(str(x).strip() for x in offending))
            shown = ", ".join(repr(t) for t in texts[:5]) + (", ..." if len(texts) > 5 else "")
            problems.add(
                "numeric",
                name,
                np.flatnonzero(bad[name]) + 1,
                f"column {name!r}: non-numeric value {shown} in {{where}}; a missing value is an empty field or '.'",
            )
    return values, bad, pd.DataFrame(original)


def _read(source, name: str | None = None) -> RawTable:
    """Read any supported source into a raw table."""
    if isinstance(source, pd.DataFrame):
        return from_frame(source, name or "<DataFrame>")
    if not isinstance(source, str | os.PathLike):
        raise ArgumentError(
            f"a dataset is a bundled name, a path to a CSV file or a pandas DataFrame, not {type(source).__name__}"
        )
    path = Path(source)
    if path.exists():
        return read_csv_file(path, str(source))
    bundled = bundled_path(str(source)) if isinstance(source, str) else None
    if bundled is not None:
        return read_csv_file(bundled, str(source).strip().lower())
    try:
        return read_csv_file(path, str(source))
    except DataError as exc:
        if isinstance(source, str) and "/" not in source and not path.suffix:
            raise DataError(
                exc.headline,
                exc.violations.assign(
                    message=exc.violations["message"] + f"; nor is it a bundled dataset ({', '.join(bundled_names())})"
                ),
                exc.source,
            ) from None
        raise


def load_dataset(source, *, columns: Mapping[str, str] | None = None, name: str | None = None) -> Dataset:
    """Load and validate a NONMEM-style dataset.

    Parameters
    ----------
    source : str, path-like, pandas.DataFrame or Dataset
        A bundled dataset name (``"theophylline"``), a path to a CSV file, or a
        DataFrame. A Dataset is returned unchanged (when ``columns`` is None).
    columns : mapping of str to str, optional
        Role -> dataset column name (a model file's ``[columns]`` table), e.g.
        ``{"ID": "Subject"}``. Unmapped roles match columns of the same name, ignoring
        case.
    name : str, optional
        The name that messages and ``Dataset.source`` use for a DataFrame source.

    Returns
    -------
    Dataset
        The validated dataset.

    Raises
    ------
    DataError
        Listing every problem found, each with its column and rows.
    SpecError
        If ``columns`` is not a valid role mapping.
    ArgumentError
        If ``source`` is of an unsupported type.

    Examples
    --------
    >>> ds = load_dataset("theophylline")
    >>> ds.n_subjects, ds.n_observations, ds.n_doses
    (12, 132, 12)
    """
    if isinstance(source, Dataset):
        if columns is not None:
            raise ArgumentError("columns cannot be given with an already loaded Dataset")
        return source
    raw = _read(source, name)
    problems = Problems(raw.source, raw.lines)
    problems.extend(raw.problems)
    resolved = resolve_columns(list(raw.frame.columns), columns)
    problems.extend(resolved.problems)
    id_column = resolved.roles.get("ID")
    used = (set(resolved.roles.values()) | set(resolved.covariates)) - {id_column}
    values, bad, original = _parse_all(raw, used, problems)
    if any(role not in resolved.roles for role in REQUIRED):
        problems.raise_if_any()
    codes, ids, labels = subject_keys(raw.frame[id_column])
    role_values = {r: (codes if r == "ID" else values[n]) for r, n in resolved.roles.items()}
    role_bad = {r: (np.zeros(len(codes), bool) if r == "ID" else bad[n]) for r, n in resolved.roles.items()}
    out = complete_roles(role_values, role_bad, resolved.roles, problems, id_labels=labels)
    problems.raise_if_any()

    table = pd.DataFrame({role: out[role] for role in ROLES})
    table["ID"] = ids.astype(np.int64) if ids.dtype.name == "Int64" else ids
    original[id_column] = table["ID"].to_numpy()  # exact IDs in the embedded copy too
    table["ROW"] = np.arange(1, len(table) + 1)
    table["SUBJECT"] = pd.factorize(table["ID"])[0]
    if "OCC" in resolved.roles:  # occasions are carried forward within a subject (CONTRACT 5.3)
        table["OCC"] = table.groupby("SUBJECT", sort=False)["OCC"].ffill()
    covariates = resolved.covariates
    if covariates:
        cov = pd.DataFrame({c: values[c] for c in covariates})
        cov["SUBJECT"] = table["SUBJECT"]
        filled = cov.groupby("SUBJECT", sort=False)[list(covariates)].ffill()
        table = pd.concat([table, filled], axis=1)
    return Dataset(
        table=table,
        covariates=tuple(covariates),
        source=raw.source,
        columns=dict(resolved.roles),
        original=original,
        lines=raw.lines,
    )


#: Alias of :func:`load_dataset`.
read_dataset = load_dataset


def check_for_model(dataset: Dataset, structural: str, covariates: Sequence[str] = (), *, spec=None) -> None:
    """Check a dataset against a model; raise one DataError listing every problem.

    Parameters
    ----------
    dataset : Dataset
        A loaded dataset.
    structural : str or StructuralModel
        The structural model (``one_compartment_iv``, ``one_compartment_oral``,
        ``two_compartment_iv`` ...), or a model object such as the ODE model of a spec
        (:func:`bayes_nlme.pk.models.model_of`).
    covariates : sequence of str
        The covariate columns that the model uses.
    spec : ModelSpec, optional
        The model: its covariate effects are checked too (values under a ``power``
        effect must be positive).

    Raises
    ------
    SpecError
        If ``structural`` is not a known structural model (key ``structural``).
    DataError
        If a covariate column is absent, or missing on some record (covariates are only
        carried forward, so a subject's leading records need a value); if a subject with
        observations has no dose; or if a dose's CMT is not a compartment of the model,
        or is the peripheral compartment (not supported); if an observation's CMT is not
        the central compartment; if every observation is BLQ; and the checks of
        :func:`~bayes_nlme.data.model_checks.check_model_records`.
    """
    model = None
    if not isinstance(structural, str):  # a StructuralModel object (an ODE model: bayes_nlme.pk.model_of)
        model, structural = structural, structural.name
    if model is None and structural not in COMPARTMENTS:
        raise SpecError(f"unknown structural model {structural!r}", key="structural", valid=list(COMPARTMENTS))
    table = dataset.table
    problems = Problems(dataset.source, dataset.lines)
    available = ", ".join(repr(c) for c in dataset.covariates) or "none"
    for name in dict.fromkeys(covariates):
        if name not in dataset.covariates:
            role = next((r for r, n in dataset.columns.items() if n == name), None)
            if role is not None or name in ROLES:
                why = f"column {name!r} is the {role or name} column, not a covariate"
            else:
                close = [c for c in dataset.covariates if c.lower() == str(name).lower()]
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                why = f"covariate column {name!r} used by the model is not in the dataset{hint}"
            problems.add("covariate", name, [], f"{why}; covariates available: {available}")
            continue
        missing = table[name].isna().to_numpy()
        if missing.any():
            problems.add(
                "covariate_missing",
                name,
                table["ROW"][missing],
                f"column {name!r}: covariate used by the model is missing in {{where}}; "
                "values are carried forward within a subject, not backward",
            )

    obs = dataset.observation_mask
    dose = dataset.dose_mask
    per = pd.DataFrame({"s": table["SUBJECT"], "obs": obs, "dose": dose})
    agg = per.groupby("s").agg(obs=("obs", "any"), dose=("dose", "any"))
    nodose = agg.index[agg["obs"] & ~agg["dose"]]
    if len(nodose):
        ids = dataset.subject_ids
        shown = ", ".join(format_value(ids[s]) for s in nodose)
        rows = table["ROW"][table["SUBJECT"].isin(nodose)]
        problems.add(
            "no_doses",
            dataset.columns.get("ID", "ID"),
            rows,
            f"{column_label('ID', dataset.columns.get('ID'))}: subject {shown} has observations "
            "but no dose (EVID 1 or 4) in {where}",
        )

    compartments = COMPARTMENTS[structural] if model is None else model.compartments
    layout = ", ".join(f"{k} = {v}" for k, v in compartments.items())
    cmt = table["CMT"].to_numpy()
    label = column_label("CMT", dataset.columns.get("CMT"))
    column = dataset.columns.get("CMT", "CMT")
    unknown = dose & ~np.isnan(cmt) & ~np.isin(cmt, list(compartments))
    if unknown.any():
        shown = ", ".join(sorted({format_value(v) for v in cmt[unknown]}))
        problems.add(
            "cmt",
            column,
            table["ROW"][unknown],
            f"{label}: dose into compartment {shown} in {{where}}, which {structural} does not have ({layout})",
        )
    peripheral = [k for k, v in compartments.items() if v == "peripheral"]
    into_periph = dose & np.isin(cmt, peripheral)
    if into_periph.any():
        problems.add(
            "cmt",
            column,
            table["ROW"][into_periph],
            f"{label}: dose into the peripheral compartment ({peripheral[0]}) in {{where}}; "
            f"doses into the peripheral compartment are not supported ({layout})",
        )
    ode = getattr(model, "is_ode", False)
    several = spec is not None and len(getattr(spec, "outputs", ())) > 1
    if several:
        _check_outputs(dataset, spec, obs, problems)
    check_model_records(dataset, structural, compartments, problems, spec, observations=not ode and not several)
    problems.raise_if_any()


def _check_outputs(dataset: Dataset, spec, obs: np.ndarray, problems) -> None:
    """Every observation's DVID (or CMT without DVID) must be the id of an output."""
    from .outputs import output_index, output_selector

    table = dataset.table
    ids = [o.id for o in spec.outputs]
    unmatched = obs & (output_index(table, ids) < 0)
    if unmatched.any():
        role = output_selector(table)
        valid = ", ".join(f"{o.id} ({o.name})" for o in spec.outputs)
        problems.add(
            "output",
            dataset.columns.get(role, role),
            table["ROW"][unmatched],
            f"{column_label(role, dataset.columns.get(role))}: an observation in {{where}} matches no output "
            f"(the model's outputs have ids {valid})",
        )
