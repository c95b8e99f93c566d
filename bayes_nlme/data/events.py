"""Event design: dataset records -> flat numpy arrays of (prediction point, dose) pairs.

:func:`build_event_design` turns the records of a dataset into the arrays that
:func:`bayes_nlme.pk.concentrations` superposes. Nothing here depends on parameter
values, so a design is built once per dataset and model.

Rules (NONMEM semantics)
------------------------
* **Prediction points.** ``points="observations"``: records with ``EVID == 0`` and
  ``MDV == 0``; ``points="all"``: every record. Points keep the table order.
* **Doses** are records with ``EVID`` 1 or 4. ``CMT`` gives the compartment in ADVAN
  numbering; a missing (or 0) ``CMT`` means the depot for oral models and the central
  compartment for IV models. A dose into a peripheral compartment, or into a
  compartment the model does not have, is a :class:`~bayes_nlme.errors.DataError`.
  A dose with ``AMT == 0`` (other than a steady-state constant infusion) adds nothing.
* **Kinds.** ``RATE > 0`` makes an infusion at ``RATE`` (its duration, ``F*AMT/RATE``,
  is computed in pk); otherwise a bolus. ``SS`` 1 or 2 with ``II > 0`` makes a
  steady-state dose (``bolus_ss``, ``infusion_ss``); ``SS > 0`` with ``AMT == 0`` and
  ``RATE > 0`` is a steady-state constant infusion (``infusion_ss_constant``) that
  goes on after the record.
* **ADDL.** A dose with ``ADDL = n`` and ``II`` implies n additional doses at
  ``t + k*II`` (k = 1..n) with the same ``AMT``, ``RATE`` and ``CMT``; they are not
  steady-state doses (``SS`` is not repeated).
* **Resets.** ``EVID`` 3, ``EVID`` 4 and a dose with ``SS == 1`` are resets: they drop
  every dose of earlier records (including their pending additional doses) for every
  later point. ``SS == 2`` does not reset: its steady state adds to what is there.
* **Pairs.** A dose of record r affects point p of the same subject iff r comes no later
  than p in record order (an implied ADDL dose at ``t_k``: iff ``t_k <= t_p``), and no
  reset record q with ``r < q <= p`` exists. A dose at a point's own record (points
  ``"all"``) is given before the prediction. ``elapsed = t_p - t_dose >= 0``; the
  absorption lag is applied later in pk, so pairs that the lag makes inactive are
  kept. Steady-state pairs are kept whenever the dose precedes the point (earlier
  doses of the regimen act even before a lagged dose).

Each pair is put into one :class:`PairGroup` by dose kind and route (``"depot"`` or
``"central"``); only non-empty groups are created.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, format_rows
from ..pk.models import StructuralModel, structural_model

__all__ = ["PairGroup", "EventDesign", "build_event_design", "KINDS", "ROUTES"]

#: Dose kinds, in the order groups are created.
KINDS = ("bolus", "infusion", "bolus_ss", "infusion_ss", "infusion_ss_constant")
#: Dose routes.
ROUTES = ("depot", "central")

_DEFAULTS = {"AMT": 0.0, "RATE": 0.0, "II": 0.0, "ADDL": 0.0, "SS": 0.0, "MDV": 0.0, "CMT": np.nan}


@dataclass(frozen=True, eq=False)
class PairGroup:
    """(Point, dose) pairs of one dose kind and route, as flat arrays of equal length.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    route : str
        ``"depot"`` or ``"central"``.
    point : numpy.ndarray of int
        Index of the prediction point (into ``EventDesign.point_*``).
    subject : numpy.ndarray of int
        0-based subject index (for gathering individual parameters).
    elapsed : numpy.ndarray of float
        ``t_point - t_dose`` (>= 0 except for steady-state doses).
    amount : numpy.ndarray of float
        ``AMT`` of the dose (before bioavailability).
    rate : numpy.ndarray of float
        ``RATE`` (0 for boluses).
    interval : numpy.ndarray of float
        ``II`` for steady-state doses (0 otherwise).
    """

    kind: str
    route: str
    point: np.ndarray
    subject: np.ndarray
    elapsed: np.ndarray
    amount: np.ndarray
    rate: np.ndarray
    interval: np.ndarray

    def __len__(self) -> int:
        return len(self.point)


@dataclass(frozen=True, eq=False)
class EventDesign:
    """Prediction points and dose pairs of a dataset under a structural model.

    Parameters
    ----------
    structural : StructuralModel
        The model the design was built for (it fixes dose routes).
    n_subjects : int
    n_points : int
    point_subject : numpy.ndarray of int
        Subject index of each prediction point.
    point_time : numpy.ndarray of float
        Time of each prediction point.
    point_row : numpy.ndarray of int
        Positional index (0-based) of each point's record in the dataset table.
    groups : tuple of PairGroup
        The non-empty pair groups.
    """

    structural: StructuralModel
    n_subjects: int
    n_points: int
    point_subject: np.ndarray
    point_time: np.ndarray
    point_row: np.ndarray
    groups: tuple

    @property
    def n_pairs(self) -> int:
        """Total number of (point, dose) pairs."""
        return int(sum(len(g) for g in self.groups))


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


def build_event_design(data, structural, *, points: str = "observations") -> EventDesign:
    """Build the event design of a dataset for a structural model.

    The rules (dose kinds, ADDL, steady state, resets, which doses affect which point)
    are given in the module docstring.

    Parameters
    ----------
    data : Dataset or pandas.DataFrame
        A :class:`~bayes_nlme.data.Dataset` (its ``table`` is used) or a table with the
        columns ``ID, TIME, EVID`` and optionally ``DV, AMT, MDV, CMT, RATE, II, ADDL,
        SS, ROW, SUBJECT`` (floats, NaN for missing).
    structural : str or StructuralModel
        The structural model (a name of :data:`bayes_nlme.pk.STRUCTURAL_MODELS`).
    points : {"observations", "all"}
        Which records are prediction points.

    Returns
    -------
    EventDesign

    Raises
    ------
    DataError
        For doses that the model cannot take (peripheral or unknown compartment,
        modelled rates ``RATE < 0``, steady state or ADDL without ``II > 0``, ADDL on a
        steady-state constant infusion), with their row numbers.
    SpecError
        For an unknown structural model.
    """
    model = structural_model(structural)
    if points not in ("observations", "all"):
        from ..errors import ArgumentError

        raise ArgumentError(f"points must be 'observations' or 'all', got {points!r}")
    table = data.table if hasattr(data, "table") else data
    n = len(table)
    time, evid = _column(table, "TIME"), _column(table, "EVID")
    amt, rate, ii = (np.nan_to_num(_column(table, c)) for c in ("AMT", "RATE", "II"))
    addl, ss, mdv = (np.nan_to_num(_column(table, c)) for c in ("ADDL", "SS", "MDV"))
    rows = table["ROW"].to_numpy().astype(int) if "ROW" in table.columns else np.arange(1, n + 1)
    if "SUBJECT" in table.columns:
        subject = table["SUBJECT"].to_numpy().astype(np.int64)
    else:
        subject = pd.factorize(table["ID"], sort=False)[0].astype(np.int64)
    n_subjects = int(getattr(data, "n_subjects", subject.max() + 1 if n else 0))

    dose = np.isin(evid, (1, 4))
    items: list = []
    route = _routes(model, _column(table, "CMT"), dose, rows, items)
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

    # Record order: rank in a stable sort by subject (file order within subject).
    order = np.argsort(subject, kind="stable")
    subj_s = subject[order]
    starts = np.searchsorted(subj_s, np.arange(n_subjects), side="left")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    reset_s = (np.isin(evid, (3, 4)) | (dose & (ss == 1)))[order]
    floor = starts[subj_s] - 1 if n else np.zeros(0, dtype=np.int64)
    last_reset_s = np.maximum.accumulate(np.where(reset_s, np.arange(n), floor)) if n else floor
    last_reset = last_reset_s[rank]

    # Prediction points, in table order.
    is_point = np.ones(n, bool) if points == "all" else (evid == 0) & (mdv == 0)
    point_row = np.flatnonzero(is_point)
    point_subject, point_time = subject[point_row], time[point_row]
    # Points of each subject, in record order.
    p_order = point_row[np.argsort(rank[point_row], kind="stable")]
    point_index = np.empty(n, dtype=np.int64)
    point_index[point_row] = np.arange(len(point_row))
    p_count = np.bincount(subject[point_row], minlength=n_subjects)
    p_start = np.concatenate([[0], np.cumsum(p_count)[:-1]]) if n_subjects else np.zeros(0, np.int64)

    # Expanded doses: record r gives k = 0..ADDL at t_r + k II.
    effective = dose & ((amt > 0) | constant)
    d_rec = np.flatnonzero(effective)
    n_extra = addl[d_rec].astype(np.int64)
    e_rec = np.repeat(d_rec, n_extra + 1)
    e_k = np.arange(len(e_rec)) - np.repeat(np.cumsum(n_extra + 1) - (n_extra + 1), n_extra + 1)
    e_time = time[e_rec] + e_k * ii[e_rec]
    e_ss = (ss[e_rec] > 0) & (e_k == 0)
    e_kind = np.where(
        e_ss,
        np.where(constant[e_rec], "infusion_ss_constant", np.where(rate[e_rec] > 0, "infusion_ss", "bolus_ss")),
        np.where(rate[e_rec] > 0, "infusion", "bolus"),
    )

    # Cross every expanded dose with every point of its subject.
    e_subj = subject[e_rec]
    reps = p_count[e_subj]
    pair_e = np.repeat(np.arange(len(e_rec)), reps)
    within = np.arange(len(pair_e)) - np.repeat(np.cumsum(reps) - reps, reps)
    pair_rec_p = p_order[p_start[e_subj][pair_e] + within] if len(pair_e) else np.zeros(0, np.int64)
    src = e_rec[pair_e]
    elapsed = time[pair_rec_p] - e_time[pair_e]
    explicit = e_k[pair_e] == 0
    keep = np.where(explicit, rank[src] <= rank[pair_rec_p], elapsed >= 0)
    keep &= last_reset[pair_rec_p] <= rank[src]
    keep &= e_ss[pair_e] | (elapsed >= 0)
    pair_e, src, pair_rec_p, elapsed = pair_e[keep], src[keep], pair_rec_p[keep], elapsed[keep]
    pair_kind, pair_route = e_kind[pair_e], route[src]

    groups = []
    for kind in KINDS:
        for rt in ROUTES:
            sel = (pair_kind == kind) & (pair_route == rt)
            if not sel.any():
                continue
            s, p = src[sel], pair_rec_p[sel]
            steady = kind.endswith("_ss")
            groups.append(
                PairGroup(
                    kind=kind,
                    route=rt,
                    point=point_index[p],
                    subject=subject[p],
                    elapsed=elapsed[sel].astype(float),
                    amount=amt[s].astype(float),
                    rate=rate[s].astype(float) if kind != "bolus" and kind != "bolus_ss" else np.zeros(len(s)),
                    interval=ii[s].astype(float) if steady else np.zeros(len(s)),
                )
            )
    return EventDesign(
        structural=model,
        n_subjects=n_subjects,
        n_points=len(point_row),
        point_subject=point_subject.astype(np.int64),
        point_time=point_time.astype(float),
        point_row=point_row.astype(np.int64),
        groups=tuple(groups),
    )
