"""Checks of a dataset against a model: dose compartments, what the structural model
can observe, and covariates that enter as powers (``(COV/ref)^beta`` needs COV > 0)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .columns import column_label
from .occasions import check_occasion_records
from .validate import MAX_MAGNITUDE, Problems, format_value

__all__ = ["check_model_records"]


def check_model_records(
    dataset, structural: str, compartments: Mapping[int, str], problems: Problems, spec=None, observations=True
) -> None:
    """Dataset checks that depend on the model; violations go to ``problems``.

    Parameters
    ----------
    dataset : Dataset
        A loaded dataset.
    structural : str
        The structural model.
    compartments : mapping of int to str
        Its compartments (number -> ``depot``, ``central`` or ``peripheral``).
    problems : Problems
        Receives every violation.
    spec : ModelSpec, optional
        The model; when given, the values under its covariate effects are checked too.
    observations : bool
        Check the ``CMT`` of observations (built-in models predict the central
        compartment only); ``False`` for ODE models, whose output is an expression.

    Notes
    -----
    * An observation's CMT, when given, must be the central compartment: the built-in
      models predict only the central concentration, so an observation of another
      compartment (say neutrophil counts on CMT 3) would be fitted as a concentration.
    * At least one observation must be uncensored (``BLQ`` 0): with every observation
      below the limit of quantification nothing is measured.
    * Under a ``power`` covariate effect ``(x / ref) ** exponent`` every value must be
      positive; 0, or a missing-value code such as -99, gives 0, infinity or NaN.
    * Covariate values used by the model must be below :data:`MAX_MAGNITUDE`.
    """
    table = dataset.table
    obs = dataset.observation_mask
    cmt = table["CMT"].to_numpy()
    central = [k for k, v in compartments.items() if v == "central"]
    label = column_label("CMT", dataset.columns.get("CMT"))
    other = obs & ~np.isnan(cmt) & ~np.isin(cmt, central)
    if observations and other.any():
        shown = ", ".join(sorted({format_value(v) for v in cmt[other]}))
        layout = ", ".join(f"{k} = {v}" for k, v in compartments.items())
        problems.add(
            "observation_cmt",
            dataset.columns.get("CMT", "CMT"),
            table["ROW"][other],
            f"{label}: observation of compartment {shown} in {{where}}, but {structural} predicts only the "
            f"central compartment (CMT {central[0]}; {layout}); remove those rows, set MDV 1 on them, "
            f"or give CMT {central[0]} (or '.')",
        )
    blq = table["BLQ"].fillna(0.0).to_numpy() > 0
    if obs.any() and (blq[obs]).all():
        problems.add(
            "all_blq",
            dataset.columns.get("BLQ", "BLQ"),
            [],
            f"{column_label('BLQ', dataset.columns.get('BLQ'))}: every observation is below the limit of "
            f"quantification (BLQ 1 on all {int(obs.sum())} observation rows): nothing is measured, "
            "so there is nothing to fit",
        )
    if spec is None:
        return
    _time_steady_state(dataset, spec, problems)
    check_occasion_records(dataset, spec, problems)
    for name in spec.covariate_columns:
        if name not in table.columns:
            continue
        values = table[name].to_numpy(dtype=float)
        huge = np.abs(values) >= MAX_MAGNITUDE
        if huge.any():
            problems.add(
                "magnitude",
                name,
                table["ROW"][huge],
                f"column {name!r}: covariate value too large in {{where}} (below {MAX_MAGNITUDE:g} needed)",
            )
    _power_covariates(table, spec, problems)


def _time_steady_state(dataset, spec, problems: Problems) -> None:
    """Steady state (``SS`` 1/2) under equations that use ``t``: no periodic state exists."""
    system = spec.ode_system if getattr(spec, "structural", None) == "ode" else None
    if system is None or not system.uses_time:
        return
    table = dataset.table
    ss = table["SS"].fillna(0.0).to_numpy() > 0
    if ss.any():
        problems.add(
            "ss",
            dataset.columns.get("SS", "SS"),
            table["ROW"][ss],
            f"{column_label('SS', dataset.columns.get('SS'))}: steady-state dose in {{where}}, but the "
            "model's equations use the time 't', so no steady state exists; give the doses "
            "explicitly (ADDL/II) with SS 0",
        )


def _power_covariates(table: pd.DataFrame, spec, problems: Problems) -> None:
    """Values under a ``power`` covariate effect must be positive."""
    for p in spec.parameters:
        for c in p.covariates:
            if c.effect != "power" or c.column not in table.columns:
                continue
            values = table[c.column].to_numpy(dtype=float)
            bad = ~np.isnan(values) & ~(values > 0)
            if bad.any():
                shown = ", ".join(sorted({format_value(v) for v in values[bad]})[:5])
                code = (
                    " (-99 and similar are missing-value codes: leave the field empty or '.')"
                    if (values[bad] < 0).any()
                    else ""
                )
                problems.add(
                    "power_covariate",
                    c.column,
                    table["ROW"][bad],
                    f"column {c.column!r}: value {shown} in {{where}} under the power effect on {p.name} "
                    f"(({c.column} / {format_value(c.reference)}) ^ exponent needs values > 0){code}",
                )
