"""Record layout for the event engine: a dataset under a structural model, as arrays.

:func:`engine_design` turns the records of a :class:`~bayes_nlme.data.Dataset` into the
arrays that :func:`bayes_nlme.core.engine.simulate` walks through, once per dataset and
model; nothing here depends on parameter values.

Parameter segments
------------------
Individual parameters may change at any record (time-varying covariates, occasions).
Within a subject, consecutive records whose model inputs (the covariates the model
uses) are equal form one **parameter segment**; parameters are computed once per
segment, and the engine carries sensitivities with respect to every segment of the
subject. A subject whose covariates never change has one segment.

Which segment governs the interval that ends at a record follows the contract (5.1):
under ``"locf"`` (default) the values of a record apply from its time until the next
record, so the interval ending at record r uses the previous record's segment; under
``"nocb"`` the values of a record apply back to the previous record, so it uses its own.
Doses, steady states and observations use their own record's values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.events import check_dose_records
from ..data.outputs import output_index
from ..pk.models import StructuralModel, structural_model

__all__ = ["EngineDesign", "engine_design", "MODEL_KINDS", "parameter_columns"]

#: Engine kind of each built-in structural model (see :mod:`.kinetics`).
MODEL_KINDS = {
    "one_compartment_iv": 0,
    "one_compartment_oral": 1,
    "two_compartment_iv": 2,
    "two_compartment_oral": 3,
    "three_compartment_iv": 4,
    "three_compartment_oral": 5,
}


@dataclass(frozen=True, eq=False)
class EngineDesign:
    """Records of a dataset laid out for the event engine.

    Attributes
    ----------
    structural : StructuralModel
    columns : tuple of str
        Parameter columns: the model's kinetic parameters, then ``tlag`` and ``F`` when
        the spec declares them.
    cfg : numpy.ndarray of int
        Engine configuration (``kind, n_states, central, volume column, lag column, F
        column, n_kinetic, P``).
    recf, reci, recl, subj : numpy.ndarray
        Record layout (see :mod:`.engine`).
    n_obs, max_seg, capacity : int
    obs_row : numpy.ndarray of int
        Positional index (0-based) in the dataset table of each observation.
    obs_subject : numpy.ndarray of int
    seg_subject : numpy.ndarray of int
        Subject of each parameter segment.
    seg_row : numpy.ndarray of int
        Positional index of the first record of each segment (its covariate values).
    jac_index : numpy.ndarray of int (n_obs, max_seg)
        Segment row of each Jacobian block (padding points at the subject's first).
    seg_occasion : numpy.ndarray of int or None
        With occasions (inter-occasion variability, CONTRACT 5.3): the occasion of each
        segment, an index into the subject-occasions below. None without occasions.
    occasion_subject, occasion_label, occasion_slot : numpy.ndarray of int or None
        Per subject-occasion (ordered by subject, then first appearance): its subject,
        its ``OCC`` value, and its rank among the subject's occasions (0, 1, ...). An
        occasion is identified by its ``OCC`` value: a subject that returns to an
        earlier value returns to that occasion.
    """

    structural: StructuralModel
    columns: tuple
    cfg: np.ndarray
    recf: np.ndarray
    reci: np.ndarray
    recl: np.ndarray
    subj: np.ndarray
    n_obs: int
    max_seg: int
    capacity: int
    obs_row: np.ndarray
    obs_subject: np.ndarray
    seg_subject: np.ndarray
    seg_row: np.ndarray
    jac_index: np.ndarray
    engine_key: str = ""

    @property
    def engine(self):
        """The event engine's ``simulate`` for this design's model (built-in or generated)."""
        from .op import engine_function

        return engine_function(self.engine_key)

    seg_occasion: np.ndarray | None = None
    occasion_subject: np.ndarray | None = None
    occasion_label: np.ndarray | None = None
    occasion_slot: np.ndarray | None = None
    obs_output: np.ndarray | None = None

    @property
    def output_names(self) -> tuple[str, ...]:
        """The model's output names (``("C",)`` without ``[outputs]``)."""
        return tuple(o[0] for o in self.structural.outputs) or ("C",)

    @property
    def output_map(self) -> tuple:
        """The output trees of a built-in model with ``[outputs]`` (applied to the engine's
        concentration by :mod:`.outputs`); empty for ODE models and plain built-ins."""
        if getattr(self.structural, "is_ode", False):
            return ()
        return tuple((o[0], o[2]) for o in self.structural.outputs)

    @property
    def obs_segment(self) -> np.ndarray:
        """The parameter segment of each prediction point (its own record's)."""
        return self.reci[self.obs_row, 6]

    @property
    def n_occasions(self) -> int:
        """Number of subject-occasions (0 without occasions)."""
        return 0 if self.occasion_subject is None else len(self.occasion_subject)

    @property
    def max_occasions(self) -> int:
        """Most occasions of one subject (0 without occasions)."""
        return 0 if self.occasion_slot is None or not len(self.occasion_slot) else int(self.occasion_slot.max()) + 1

    @property
    def n_segments(self) -> int:
        """Number of parameter segments (rows of the parameter matrix)."""
        return len(self.seg_subject)

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        return len(self.subj) - 1

    @property
    def engine_inputs(self) -> dict:
        """The arrays the engine reads, as float64 (data of the compiled log density):
        ``recf, reci, recl, subj, jac_index``."""
        cached = self.__dict__.get("_engine_inputs")
        if cached is None:
            cached = {
                name: np.ascontiguousarray(getattr(self, name), dtype=np.float64)
                for name in ("recf", "reci", "recl", "subj", "jac_index")
            }
            object.__setattr__(self, "_engine_inputs", cached)
        return cached

    @property
    def constant_within_subject(self) -> bool:
        """Whether every subject has a single parameter segment."""
        return self.n_segments == self.n_subjects


def parameter_columns(structural, declared) -> tuple[str, ...]:
    """The engine's parameter columns: kinetic parameters, then ``tlag``/``F`` if declared."""
    model = structural_model(structural)
    if getattr(model, "is_ode", False):
        return tuple(model.parameters)
    columns = tuple(model.parameters) + tuple(name for name in ("tlag", "F") if name in set(declared))
    return columns + output_parameters(model, declared, columns)


def output_parameters(model, declared, columns=()) -> tuple[str, ...]:
    """The declared parameters that a built-in model's ``[outputs]`` use, beyond ``columns``."""
    from ..spec.expression import names_in

    used = set().union(*(names_in(o[2]) for o in model.outputs)) if model.outputs else set()
    return tuple(name for name in declared if name in used and name not in columns)


def _num(table: pd.DataFrame, name: str, default: float) -> np.ndarray:
    if name not in table.columns:
        return np.full(len(table), default)
    values = pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(values), default, values)


def _segments(table: pd.DataFrame, subject: np.ndarray, columns) -> np.ndarray:
    """Segment number (global, 0-based) of every record."""
    n = len(table)
    new = np.ones(n, dtype=bool)
    if n:
        new[1:] = subject[1:] != subject[:-1]
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        changed = np.ones(n, dtype=bool)
        if n:
            a, b = values[1:], values[:-1]
            changed[1:] = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        new |= changed
    return np.cumsum(new) - 1


def _occasions(table: pd.DataFrame, seg_row: np.ndarray, seg_subject: np.ndarray):
    """Subject-occasions of the segments: ``(seg_occasion, subject, label, slot)``."""
    occ = pd.to_numeric(table["OCC"], errors="coerce").to_numpy(dtype=float)[seg_row]
    if np.isnan(occ).any():
        raise ValueError("OCC is missing where a parameter segment starts (check the dataset against the model first)")
    pairs = pd.DataFrame({"s": seg_subject, "o": occ.astype(np.int64)})
    codes, uniques = pd.factorize(pd.MultiIndex.from_frame(pairs))
    subject = np.array([u[0] for u in uniques], dtype=np.int64)
    label = np.array([u[1] for u in uniques], dtype=np.int64)
    start = np.searchsorted(subject, subject, side="left")
    slot = np.arange(len(subject)) - start
    return codes.astype(np.int64), subject, label, slot.astype(np.int64)


def engine_design(
    dataset,
    structural,
    *,
    declared=(),
    covariates=(),
    time_varying: str = "locf",
    points: str = "observations",
    occasions: bool = False,
) -> EngineDesign:
    """Lay out a dataset's records for the event engine.

    Parameters
    ----------
    dataset : Dataset
    structural : str or StructuralModel
    declared : iterable of str
        The parameters the spec declares (``tlag`` and ``F`` become columns when present).
    covariates : iterable of str
        Covariate columns the model uses: a change of any starts a parameter segment.
    time_varying : {"locf", "nocb"}
        Which record's values govern the interval between two records.
    points : {"observations", "all"}
        Prediction points: observation records (``EVID 0``, ``MDV 0``) or every record.
    occasions : bool
        Inter-occasion variability: a change of ``OCC`` starts a parameter segment too,
        and every segment gets its subject-occasion (``seg_occasion``). The dataset
        must have ``OCC`` on every record.

    Returns
    -------
    EngineDesign

    Raises
    ------
    DataError
        For doses the model cannot take (:func:`bayes_nlme.data.events.check_dose_records`).
    """
    model = structural_model(structural)
    table = dataset.table
    check_dose_records(dataset.table, model)
    keys = tuple(covariates) + (("OCC",) if occasions else ())
    fields = _record_layout(table, model, int(dataset.n_subjects), keys, time_varying, points)
    columns = parameter_columns(model, declared)
    if getattr(model, "is_ode", False):
        cfg, engine_key = _ode_config(model, columns)
    else:
        cfg, engine_key = _linear_config(model, columns), ""
    occ = _occasions(table, fields["seg_row"], fields["seg_subject"]) if occasions else (None, None, None, None)
    return EngineDesign(
        structural=model,
        columns=columns,
        cfg=cfg,
        engine_key=engine_key,
        seg_occasion=occ[0],
        occasion_subject=occ[1],
        occasion_label=occ[2],
        occasion_slot=occ[3],
        **fields,
    )


def _record_layout(table: pd.DataFrame, model, n_subjects: int, keys, time_varying: str, points: str) -> dict:
    """The record arrays of :class:`EngineDesign` (``recf``, ``reci``, ``recl``, ``subj``,
    segments, prediction points and the Jacobian index); ``keys``: the columns whose
    change starts a parameter segment."""
    n = len(table)
    subject = table["SUBJECT"].to_numpy().astype(np.int64)
    evid = _num(table, "EVID", 0.0)
    mdv = _num(table, "MDV", 0.0)
    dose = np.isin(evid, (1, 4))
    state, applies = _dose_targets(table, model, n)
    is_point = np.ones(n, dtype=bool) if points == "all" else (evid == 0) & (mdv == 0)
    obs_row = np.flatnonzero(is_point)
    obs_index = np.full(n, -1, dtype=np.int64)
    obs_index[obs_row] = np.arange(len(obs_row))
    seg, iseg, seg_row, seg_start, max_seg = _segment_layout(table, subject, n_subjects, keys, time_varying)
    seg_subject = subject[seg_row]
    rec_start = np.searchsorted(subject, np.arange(n_subjects + 1), side="left")
    subj = np.stack([rec_start, seg_start], axis=1).astype(np.int64)
    outputs = np.maximum(output_index(table, model.output_ids), 0)
    reci = _record_integers(table, evid, dose, state, obs_index, seg, iseg, outputs)
    amt, rate, ii = _num(table, "AMT", 0.0), _num(table, "RATE", 0.0), _num(table, "II", 0.0)
    recf = np.ascontiguousarray(np.stack([_num(table, "TIME", 0.0), amt, rate, ii], axis=1))
    per_record = np.where(dose, 2 * (reci[:, 2] + 1), 0)
    capacity = int(np.bincount(subject, weights=per_record, minlength=n_subjects).max(initial=0)) + 256
    obs_subject = subject[obs_row]
    jac_index = seg_start[obs_subject][:, None] + np.arange(max_seg)[None, :]
    jac_index = np.where(jac_index < seg_start[obs_subject + 1][:, None], jac_index, seg_start[obs_subject][:, None])
    return {
        "recf": recf,
        "reci": np.ascontiguousarray(reci),
        "recl": applies.astype(np.int64),
        "subj": subj,
        "n_obs": len(obs_row),
        "max_seg": max(max_seg, 1),
        "capacity": capacity,
        "obs_row": obs_row.astype(np.int64),
        "obs_subject": obs_subject.astype(np.int64),
        "seg_subject": seg_subject.astype(np.int64),
        "seg_row": seg_row.astype(np.int64),
        "jac_index": np.ascontiguousarray(jac_index.astype(np.int64)),
        "obs_output": reci[obs_row, 8].astype(np.int64),
    }


def _dose_targets(table: pd.DataFrame, model, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each record's state index (its ``CMT``, else the model's dose compartment) and
    whether lag time and bioavailability apply to a dose there."""
    cmt = _num(table, "CMT", np.nan)
    cmt = np.where(np.isnan(cmt) | (cmt == 0), model.default_dose_compartment, cmt)
    state = cmt.astype(np.int64) - 1
    roles = np.array([model.compartment_role(c) for c in cmt.astype(np.int64)], dtype=object)
    if getattr(model, "is_ode", False):
        applies = np.isin(roles, model.modified_compartments)
    else:
        applies = (roles == "depot") if model.oral else np.ones(n, dtype=bool)
    return state, applies


def _segment_layout(table: pd.DataFrame, subject: np.ndarray, n_subjects: int, keys, time_varying: str):
    """Parameter segments: each record's segment and that of the interval ending at it
    (LOCF: the previous record's, NOCB: its own), each segment's first row, each subject's
    first segment (``n_subjects + 1`` bounds) and the most segments of one subject."""
    n = len(table)
    seg = _segments(table, subject, keys)
    first = np.ones(n, dtype=bool)
    if n:
        first[1:] = subject[1:] != subject[:-1]
    if time_varying == "nocb":
        iseg = seg.copy()
    else:
        iseg = np.where(first, seg, np.concatenate([[0], seg[:-1]]) if n else seg)
    seg_row = np.flatnonzero(np.concatenate([[True], seg[1:] != seg[:-1]])) if n else np.zeros(0, np.int64)
    seg_subject = subject[seg_row]
    seg_start = np.searchsorted(seg_subject, np.arange(n_subjects + 1), side="left")
    counts = np.diff(seg_start)
    max_seg = int(counts.max()) if n_subjects else 1
    return seg, iseg, seg_row, seg_start, max_seg


def _record_integers(table: pd.DataFrame, evid, dose, state, obs_index, seg, iseg, outputs) -> np.ndarray:
    """``reci``: dose, reset, ADDL, SS, state, observation index, segment, interval
    segment, output (CONTRACT 5.4)."""
    addl, ss = _num(table, "ADDL", 0.0), _num(table, "SS", 0.0)
    reci = np.zeros((len(table), 9), dtype=np.int64)
    reci[:, 0] = dose
    reci[:, 1] = np.isin(evid, (3, 4)) | (dose & (ss == 1))
    reci[:, 2] = np.where(dose, addl, 0).astype(np.int64)
    reci[:, 3] = np.where(dose, ss, 0).astype(np.int64)
    reci[:, 4] = state
    reci[:, 5] = obs_index
    reci[:, 6] = seg
    reci[:, 7] = iseg
    reci[:, 8] = outputs
    return reci


def _linear_config(model, columns) -> np.ndarray:
    """The engine configuration of a built-in linear model (see :mod:`.kinetics`)."""
    lag_col = columns.index("tlag") if "tlag" in columns else -1
    f_col = columns.index("F") if "F" in columns else -1
    kin = len(model.parameters)
    central = 1 if model.oral else 0
    return np.array(
        [
            MODEL_KINDS[model.name],
            len(model.compartments),
            central,
            columns.index(model.volume),
            lag_col,
            f_col,
            kin,
            len(columns),
        ],
        dtype=np.int64,
    )


def _ode_config(model, columns) -> tuple[np.ndarray, str]:
    """Engine configuration of an ODE model and the key of its generated engine."""
    from .odegen import SOLVER_KINDS, ode_module

    system = model.system
    lag = next(iter(system.lag.values()), None)
    f = next(iter(system.bioavailability.values()), None)
    cfg = np.array(
        [
            SOLVER_KINDS[system.solver],
            len(system.states),
            -1,
            -1,
            columns.index(lag) if lag else -1,
            columns.index(f) if f else -1,
            len(columns),
            len(columns),
        ],
        dtype=np.int64,
    )
    return cfg, ode_module(system).__name__


def zero_observations(design: EngineDesign) -> np.ndarray:
    """Observations at which no dose acts yet (prediction structurally 0).

    A dose acts on the records after it in time (a bolus into the central compartment
    also at its own time; a steady-state dose always), until the next reset. Lags are
    not considered.

    Returns
    -------
    numpy.ndarray of bool, one per observation
    """
    reci, recf, central = design.reci, design.recf, int(design.cfg[2])
    out = np.zeros(design.n_obs, dtype=bool)
    if design.engine_key:  # an ODE model: initial states and outputs may be non-zero
        return out
    for i in range(design.n_subjects):
        from_incl, from_excl = np.inf, np.inf
        for rec in range(design.subj[i, 0], design.subj[i + 1, 0]):
            t = recf[rec, 0]
            if reci[rec, 1]:
                from_incl, from_excl = np.inf, np.inf
            if reci[rec, 0] and (recf[rec, 1] > 0 or recf[rec, 2] > 0):
                if reci[rec, 3]:
                    from_incl = -np.inf
                elif reci[rec, 4] == central and recf[rec, 2] == 0:
                    from_incl = min(from_incl, t)
                else:
                    from_excl = min(from_excl, t)
            if reci[rec, 5] >= 0 and not (t >= from_incl or t > from_excl):
                out[reci[rec, 5]] = True
    return out
