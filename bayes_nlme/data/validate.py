"""Record-level checks of a dataset, collected into one DataError.

Every check adds a violation (``check``, ``column``, ``rows``, ``message``) to a
:class:`Problems` collector; the collector raises a single :class:`DataError` listing all
of them. ``rows`` are 1-based data-row numbers (row 1 is the first line below the header);
messages about CSV files also give the file lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError, format_rows
from .columns import DEFAULTS, ROLES, column_label
from .occasions import MAX_OCC, check_occasion_records, check_occasion_values

__all__ = [
    "Problems",
    "complete_roles",
    "format_value",
    "check_occasion_records",
    "MAX_MAGNITUDE",
    "MAX_ID",
    "MAX_OCC",
]

EVID_VALUES = (0, 1, 2, 3, 4)

#: The largest magnitude a number in a role or covariate column may have. Larger values
#: (1e300 as a time, 1e308 as an amount) overflow the model's arithmetic to infinity or
#: NaN, and no real dataset has them.
MAX_MAGNITUDE = 1e12

#: IDs are read as numbers; from 2^53 on, different integers share one float and
#: subjects would be merged.
MAX_ID = 2.0**53


def format_value(value: float) -> str:
    """Format a number for a message: ``3`` rather than ``3.0``.

    Parameters
    ----------
    value : float
        The number.

    Returns
    -------
    str
        Its shortest text.
    """
    value = float(value)
    if np.isfinite(value) and value == int(value):
        return str(int(value))
    return repr(value)


class Problems:
    """Collects violations and raises them together.

    Parameters
    ----------
    source : str
        The dataset's name, for the headline.
    lines : numpy.ndarray, optional
        The file line of each record (CSV sources); messages then give file lines too.
    """

    def __init__(self, source: str, lines: np.ndarray | None = None) -> None:
        self.source = source
        self.lines = lines
        self.items: list[dict] = []

    def __len__(self) -> int:
        return len(self.items)

    def where(self, rows: Sequence[int]) -> str:
        """Describe rows: ``rows 3, 7 (file lines 4, 8)``.

        Parameters
        ----------
        rows : sequence of int
            1-based data-row numbers.

        Returns
        -------
        str
            The description.
        """
        text = format_rows(rows)
        if self.lines is not None and len(rows):
            lines = [int(self.lines[r - 1]) for r in rows]
            text += " (file " + format_rows(lines).replace("row", "line") + ")"
        return text

    def add(self, check: str, column: str | None, rows: Iterable[int], message: str) -> None:
        """Add one violation.

        Parameters
        ----------
        check : str
            A short name of the check (``"negative_time"``).
        column : str or None
            The dataset column concerned.
        rows : iterable of int
            1-based data rows (may be empty for whole-dataset problems).
        message : str
            What is wrong. ``{where}`` is replaced by the rows (and file lines); if it
            is absent and there are rows, `` in <rows>`` is appended.
        """
        rows = sorted(int(r) for r in rows)
        where = self.where(rows)
        if "{where}" in message:
            message = message.replace("{where}", where)
        elif rows:
            message = f"{message} in {where}"
        self.items.append({"check": check, "column": column, "rows": rows, "message": message})

    def extend(self, items: Iterable[Mapping]) -> None:
        """Add violations given as dicts with ``check``, ``column``, ``rows``, ``message``.

        Parameters
        ----------
        items : iterable of mapping
            The violations; ``{where}`` in a message is filled in as in :meth:`add`.
        """
        for item in items:
            self.add(item["check"], item["column"], item["rows"], item["message"])

    def error(self) -> DataError:
        """The DataError listing every violation collected.

        Returns
        -------
        DataError
            With headline ``Dataset '<source>' has N problems:``.
        """
        n = len(self.items)
        word = "problem" if n == 1 else "problems"
        violations = pd.DataFrame(self.items, columns=list(DataError.COLUMNS))
        return DataError(f"Dataset '{self.source}' has {n} {word}:", violations, self.source)

    def raise_if_any(self) -> None:
        """Raise :meth:`error` when any violation was collected.

        Raises
        ------
        DataError
            If there is at least one violation.
        """
        if self.items:
            raise self.error()


def _rows(mask: np.ndarray) -> np.ndarray:
    """1-based row numbers where ``mask`` is true."""
    return np.flatnonzero(mask) + 1


def complete_roles(
    values: Mapping[str, np.ndarray],
    bad: Mapping[str, np.ndarray],
    names: Mapping[str, str],
    problems: Problems,
    id_labels: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Check the role columns, derive EVID and MDV, and fill in defaults.

    Parameters
    ----------
    values : mapping of str to numpy.ndarray
        Role -> parsed floats (NaN for missing), for the roles present.
    bad : mapping of str to numpy.ndarray
        Role -> mask of non-numeric fields (already reported); those rows are not
        reported again as missing.
    names : mapping of str to str
        Role -> actual dataset column name, for messages.
    problems : Problems
        Receives every violation.

    id_labels : sequence of str, optional
        When given, ``values["ID"]`` holds subject codes (0, 1, ... in order of first
        appearance; the exact IDs are kept by the caller) and ``id_labels[code]`` is the
        ID as messages show it.

    Returns
    -------
    dict of str to numpy.ndarray
        Every role in :data:`~bayes_nlme.data.columns.ROLES`, as float arrays. EVID is
        derived where absent or missing (AMT > 0: dose, 1; a DV: observation, 0; else 2).
        MDV is 1 on every record that is not an observation (EVID != 0), and where MDV is
        absent or missing, 1 also for an observation without DV.
    """
    n = len(values["ID"])
    nan = np.full(n, np.nan)
    lab = {r: column_label(r, names.get(r)) for r in ROLES}
    get = {r: np.asarray(values.get(r, nan), dtype=float) for r in ROLES}
    notbad = {r: ~np.asarray(bad.get(r, np.zeros(n, bool))) for r in ROLES}
    ident, time = get["ID"], get["TIME"]

    for role in ("ID", "TIME"):
        miss = np.isnan(get[role]) & notbad[role]
        if miss.any():
            problems.add(f"missing_{role.lower()}", names[role], _rows(miss), f"{lab[role]}: missing value")
    neg = time < 0
    if neg.any():
        problems.add("negative_time", names["TIME"], _rows(neg), f"{lab['TIME']}: negative time")
    inexact = _exact_ids_and_magnitudes(get, names, lab, problems, check_ids=id_labels is None)

    bad_evid, bad_mdv = _check_flags(get, names, lab, problems)
    evid, mdv, mdv_given, has_dv, observation, dose = _derive_evid_mdv(
        get, bad_evid, bad_mdv, notbad, names, lab, problems
    )
    amt = get["AMT"]
    constant = _check_doses(get, dose, notbad, names, lab, problems)

    _contradictions(get, evid, mdv_given, has_dv, dose, constant, names, lab, problems)
    if not inexact.any():
        _check_subjects(ident, time, evid, observation, names, lab, problems, id_labels)

    out = {role: get[role].copy() for role in ROLES}
    for role, default in DEFAULTS.items():
        out[role] = np.where(np.isnan(out[role]), default, out[role])
    out["AMT"] = np.where(np.isnan(amt), 0.0, amt)
    out["EVID"] = evid
    out["MDV"] = mdv
    return out


def _check_flags(get, names, lab, problems: Problems) -> tuple[np.ndarray, np.ndarray]:
    """Flags with a closed set of values, whole numbers, OCC and CMT; returns the rows
    whose EVID and MDV are invalid."""

    def _in_set(role: str, allowed: tuple[int, ...], check: str) -> np.ndarray:
        col = get[role]
        wrong = ~np.isnan(col) & ~np.isin(col, allowed)
        if role in names and wrong.any():
            shown = ", ".join(sorted({format_value(v) for v in col[wrong]}))
            valid = ", ".join(str(a) for a in allowed)
            message = f"{lab[role]}: value {shown} not in {{{valid}}}"
            problems.add(check, names[role], _rows(wrong), message)
        return wrong

    bad_evid = _in_set("EVID", EVID_VALUES, "evid")
    bad_mdv = _in_set("MDV", (0, 1), "mdv")
    _in_set("SS", (0, 1, 2), "ss")
    _in_set("BLQ", (0, 1), "blq")
    for role in ("ADDL", "CMT", "DVID"):
        if role not in get:
            continue
        col = get[role]
        frac = ~np.isnan(col) & (col != np.round(col))
        if frac.any():
            problems.add("integer", names[role], _rows(frac), f"{lab[role]}: not a whole number")
    check_occasion_values(get["OCC"], names, lab, problems)
    cmt = get["CMT"]
    nonpos = cmt <= 0
    if nonpos.any():
        problems.add(
            "cmt",
            names["CMT"],
            _rows(nonpos),
            f"{lab['CMT']}: compartment numbers must be positive (turning a compartment off "
            "with a negative CMT is not supported)",
        )
    return bad_evid, bad_mdv


def _derive_evid_mdv(get, bad_evid, bad_mdv, notbad, names, lab, problems: Problems) -> tuple:
    """EVID and MDV where absent or missing (see :func:`complete_roles`), with the
    record kinds they imply: ``(evid, mdv, mdv_given, has_dv, observation, dose)``."""
    dv = get["DV"]
    mdv_given = np.where(bad_mdv, np.nan, get["MDV"])
    amt = get["AMT"]
    has_dv = ~np.isnan(dv)
    is_dose = amt > 0
    is_obs = (has_dv & (mdv_given != 1)) | (mdv_given == 0)
    evid = np.where(bad_evid, np.nan, get["EVID"])
    derive = np.isnan(evid) & ~bad_evid
    clash = derive & is_dose & is_obs
    if clash.any():
        problems.add(
            "dose_and_observation",
            names["AMT"],
            _rows(clash),
            f"{lab['AMT']}: record is both a dose (AMT > 0) and an observation (DV given, "
            "MDV not 1) in {where}; give an EVID column, set MDV = 1, or split it in two",
        )
    evid = np.where(derive, np.where(is_dose, 1.0, np.where(is_obs, 0.0, 2.0)), evid)
    mdv = np.where(np.isnan(mdv_given), np.where((evid == 0) & has_dv, 0.0, 1.0), mdv_given)
    mdv = np.where(evid == 0, mdv, 1.0)
    observation = (evid == 0) & (mdv == 0)
    dose = np.isin(evid, (1, 4))

    nodv = observation & ~has_dv & notbad["DV"]
    if nodv.any():
        problems.add(
            "observation_dv",
            names["DV"],
            _rows(nodv),
            f"{lab['DV']}: observation without DV in {{where}}; set MDV = 1 to skip it",
        )
    return evid, mdv, mdv_given, has_dv, observation, dose


def _check_doses(get, dose, notbad, names, lab, problems: Problems) -> np.ndarray:
    """Amounts, rates, intervals, ADDL and SS of the dose records; returns the rows that
    are constant infusions at steady state (SS = 1, AMT = 0, RATE > 0)."""
    amt = get["AMT"]
    ss = np.nan_to_num(get["SS"], nan=0.0)
    rate = np.nan_to_num(get["RATE"], nan=0.0)
    ii = np.nan_to_num(get["II"], nan=0.0)
    constant = (ss == 1) & (rate > 0) & (amt == 0)
    noamt = dose & (np.isnan(amt) | (amt <= 0)) & ~constant & notbad["AMT"]
    if noamt.any():
        problems.add(
            "dose_amt",
            names["AMT"],
            _rows(noamt),
            f"{lab['AMT']}: dose record (EVID 1 or 4) without a positive amount",
        )
    negamt = ~dose & (amt < 0)
    if negamt.any():
        problems.add("negative_amt", names["AMT"], _rows(negamt), f"{lab['AMT']}: negative amount")
    modelled = np.isin(rate, (-1, -2))
    if modelled.any():
        problems.add(
            "rate",
            names["RATE"],
            _rows(modelled),
            f"{lab['RATE']}: modelled rate or duration (RATE = -1 or -2) in {{where}} is not "
            "supported; give the infusion rate",
        )
    negrate = (rate < 0) & ~modelled
    if negrate.any():
        problems.add("rate", names["RATE"], _rows(negrate), f"{lab['RATE']}: negative rate")
    for role in ("II", "ADDL"):
        negative = get[role] < 0
        if negative.any():
            problems.add(f"negative_{role.lower()}", names[role], _rows(negative), f"{lab[role]}: negative value")
    addl = np.nan_to_num(get["ADDL"], nan=0.0)
    addl_ii = (addl > 0) & (ii <= 0)
    if addl_ii.any():
        problems.add(
            "addl_ii",
            names["ADDL"],
            _rows(addl_ii),
            f"{lab['ADDL']}: additional doses (ADDL > 0) without an interval II > 0",
        )
    ss_ii = dose & np.isin(ss, (1, 2)) & (ii <= 0) & ~constant
    if ss_ii.any():
        problems.add(
            "ss_ii",
            names["SS"],
            _rows(ss_ii),
            f"{lab['SS']}: steady-state dose (SS = 1 or 2) without an interval II > 0 "
            "in {where}; "
            "a constant infusion has SS = 1, AMT = 0 and RATE > 0",
        )
    return constant


def _exact_ids_and_magnitudes(get, names, lab, problems: Problems, check_ids: bool = True) -> np.ndarray:
    """IDs that a float cannot hold exactly, and values too large for the model's arithmetic.

    Returns the mask of records whose ID is inexact (the subject checks are then skipped:
    their merged subjects would only add confusing messages).
    """
    ident = get["ID"]
    inexact = (np.abs(ident) >= MAX_ID) if check_ids else np.zeros(len(ident), dtype=bool)
    if inexact.any():
        problems.add(
            "id_exact",
            names["ID"],
            _rows(inexact),
            f"{lab['ID']}: IDs of 2^53 (9007199254740992) or more in {{where}} cannot be told apart "
            "(different IDs would be merged into one subject); renumber the subjects 1, 2, 3, ...",
        )
    for role in ("TIME", "DV", "AMT", "RATE", "II"):
        huge = np.abs(get[role]) >= MAX_MAGNITUDE
        if role in names and huge.any():
            shown = ", ".join(sorted({format_value(v) for v in get[role][huge]})[:3])
            problems.add(
                "magnitude",
                names[role],
                _rows(huge),
                f"{lab[role]}: value {shown} in {{where}} is too large (the model's arithmetic "
                f"overflows); values must be below {MAX_MAGNITUDE:g} in magnitude. Check the units",
            )
    return inexact


def _contradictions(get, evid, mdv_given, has_dv, dose, constant, names, lab, problems) -> None:
    """Records whose fields contradict each other (as NONMEM's data checks reject them).

    * ``AMT > 0`` on a record whose EVID says it is not a dose (0, 2 or 3): the amount
      would be ignored;
    * ``EVID`` 1 to 4 with a DV and ``MDV 0``: a measurement would be dropped silently;
    * ``SS`` 1 or 2 on a record that is not a dose;
    * ``II > 0`` with neither ``ADDL > 0`` nor ``SS``: the interval would have no effect.
    """
    amt = get["AMT"]
    given = ~np.isnan(get["EVID"])
    ignored = given & np.isin(evid, (0, 2, 3)) & (amt > 0)
    if ignored.any():
        problems.add(
            "amt_not_dose",
            names["AMT"],
            _rows(ignored),
            f"{lab['AMT']}: amount on a record that is not a dose (EVID 0, 2 or 3) in {{where}}; it would "
            "be ignored. Set EVID 1 (or 4) for a dose, or AMT 0 (or '.') otherwise",
        )
    dropped = given & np.isin(evid, (1, 2, 3, 4)) & has_dv & (mdv_given == 0)
    if dropped.any():
        shown = ", ".join(sorted({format_value(v) for v in evid[dropped]}))
        problems.add(
            "evid_observation",
            names["EVID"],
            _rows(dropped),
            f"{lab['EVID']}: EVID {shown} (not an observation) with a DV and MDV 0 in {{where}}; the measurement "
            "would be dropped. Set EVID 0 to use it as an observation (a dose goes on its own record), "
            "or MDV 1 to skip it",
        )
    ss = np.nan_to_num(get["SS"], nan=0.0)
    nondose = ~dose & ~np.isnan(evid)
    ss_wrong = nondose & np.isin(ss, (1, 2))
    if ss_wrong.any():
        hint = " (a constant infusion is a dose: EVID 1, AMT 0, RATE > 0, SS 1)" if constant[ss_wrong].any() else ""
        problems.add(
            "ss_not_dose",
            names.get("SS", "SS"),
            _rows(ss_wrong),
            f"{lab['SS']}: steady state (SS 1 or 2) on a record that is not a dose in {{where}}; "
            f"SS applies to doses only{hint}",
        )
    ii = np.nan_to_num(get["II"], nan=0.0)
    addl = np.nan_to_num(get["ADDL"], nan=0.0)
    idle = (ii > 0) & (addl <= 0) & ~np.isin(ss, (1, 2))
    if idle.any():
        problems.add(
            "ii_unused",
            names.get("II", "II"),
            _rows(idle),
            f"{lab['II']}: interval II > 0 with neither ADDL > 0 nor SS 1 or 2 in {{where}}; the interval "
            "would have no effect. Give ADDL (additional doses) or SS, or set II 0",
        )


def _check_subjects(
    ident: np.ndarray,
    time: np.ndarray,
    evid: np.ndarray,
    observation: np.ndarray,
    names: Mapping[str, str],
    lab: Mapping[str, str],
    problems: Problems,
    id_labels: Sequence[str] | None = None,
) -> None:
    """Time order within subjects, contiguous subjects, and subjects without observations."""

    def label(value) -> str:
        return format_value(value) if id_labels is None else str(id_labels[int(value)])

    has_id = ~np.isnan(ident)
    frame = pd.DataFrame({"id": ident, "time": time, "evid": evid, "obs": observation})
    frame["row"] = np.arange(1, len(frame) + 1)
    frame = frame[has_id]
    if frame.empty:
        return
    timed = frame[~np.isnan(frame["time"].to_numpy())]
    previous = timed.groupby("id", sort=False)["time"].shift(1)
    back = (timed["time"] < previous) & (timed["time"] >= 0) & ~timed["evid"].isin((3, 4))
    if back.any():
        problems.add(
            "time_order",
            names["TIME"],
            timed["row"][back],
            f"{lab['TIME']}: time decreases within a subject in {{where}}; "
            "sort each subject's records by time (only EVID 3 or 4 may reset it)",
        )
    ids = frame["id"].to_numpy()
    start = np.r_[True, ids[1:] != ids[:-1]]
    seen: set[float] = set()
    again_rows, again_ids = [], []
    for pos in np.flatnonzero(start):
        if ids[pos] in seen:
            again_rows.append(int(frame["row"].iloc[pos]))
            again_ids.append(label(ids[pos]))
        seen.add(ids[pos])
    if again_rows:
        problems.add(
            "subject_order",
            names["ID"],
            again_rows,
            f"{lab['ID']}: subject {', '.join(dict.fromkeys(again_ids))} reappears after "
            "other subjects in {where}; keep each subject's records together",
        )
    counts = frame.groupby("id", sort=False)["obs"].any()
    empty = counts.index[~counts.to_numpy()]
    if len(empty):
        rows = frame["row"][frame["id"].isin(empty)]
        shown = ", ".join(label(i) for i in empty)
        word = "subject" if len(empty) == 1 else "subjects"
        problems.add(
            "no_observations",
            names["ID"],
            rows,
            f"{lab['ID']}: {word} {shown} without observations (EVID 0, MDV 0) in {{where}}",
        )
