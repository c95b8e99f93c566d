"""Simulated population PK studies with known true values (tests and benchmarks).

:func:`simulate_oral_study` draws a NONMEM-style dataset of an oral study with
log-normal between-subject variability and proportional residual error, computed in
closed form (superposition of single-dose curves), so it depends on nothing in the
model code it is used to test. The defaults reproduce the design of the 120-subject
benchmark study of issue 17: one compartment, ``TVCL = 4`` L/h, ``TVV = 70`` L,
``TVKA = 1`` 1/h, omega variances 0.09 (CL), 0.075 (V), 0.11 (ka), proportional SD
0.19, a 100 mg dose and 15 samples per subject over 48 h.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "STUDY_TRUTH",
    "STUDY_TIMES",
    "IOV_TIMES",
    "simulate_oral_study",
    "simulate_iov_study",
    "MM_TRUTH",
    "simulate_michaelis_menten_study",
]

#: True values of the simulated oral Michaelis-Menten study (``models/oral_mm.toml``).
MM_TRUTH = {"ka": 1.0, "V": 30.0, "Vmax": 10.0, "Km": 2.0, "omega": 0.09, "prop_sd": 0.1}

#: True values of the benchmark study (``two_compartment_oral`` adds Q and V2).
STUDY_TRUTH = {
    "CL": 4.0,
    "V": 70.0,
    "ka": 1.0,
    "V1": 70.0,
    "Q": 8.0,
    "V2": 100.0,
    "omega": {"CL": 0.09, "V": 0.075, "ka": 0.11, "V1": 0.075, "Q": 0.1, "V2": 0.1},
    "prop_sd": 0.19,
}
#: Sampling times after each dose (h): 15 samples.
STUDY_TIMES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 36.0, 48.0)
IOV_TIMES = (0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0)


def _one_dose(structural: str, p: dict, dose: float, t: np.ndarray) -> np.ndarray:
    """Central concentration ``t`` hours after one oral dose (0 before it)."""
    t = np.asarray(t, dtype=float)
    out = np.zeros_like(t)
    m = t > 0
    ka = p["ka"]
    if structural == "one_compartment_oral":
        k = p["CL"] / p["V"]
        out[m] = dose * ka / (p["V"] * (ka - k)) * (np.exp(-k * t[m]) - np.exp(-ka * t[m]))
        return out
    k, k12, k21 = p["CL"] / p["V1"], p["Q"] / p["V1"], p["Q"] / p["V2"]
    s = k + k12 + k21
    root = np.sqrt(s * s - 4.0 * k * k21)
    alpha, beta = (s + root) / 2.0, (s - root) / 2.0
    tm = t[m]
    out[m] = (
        dose
        * ka
        / p["V1"]
        * (
            (k21 - alpha) / ((ka - alpha) * (beta - alpha)) * np.exp(-alpha * tm)
            + (k21 - beta) / ((ka - beta) * (alpha - beta)) * np.exp(-beta * tm)
            + (k21 - ka) / ((alpha - ka) * (beta - ka)) * np.exp(-ka * tm)
        )
    )
    return out


def simulate_oral_study(
    n_subjects: int = 120,
    *,
    seed: int = 20260417,
    structural: str = "one_compartment_oral",
    doses: int = 1,
    interval: float = 24.0,
    dose: float = 100.0,
    times=STUDY_TIMES,
) -> pd.DataFrame:
    """A simulated oral PK study (NONMEM layout: ID, TIME, AMT, EVID, DV).

    Parameters
    ----------
    n_subjects : int
        Number of subjects.
    seed : int
        Seed of the draws (etas and residuals).
    structural : {"one_compartment_oral", "two_compartment_oral"}
        The model simulated.
    doses : int
        Number of doses, ``interval`` hours apart. With ``doses > 1`` the sampling
        times follow each dose up to the next one (all of them after the last dose):
        ``doses = 3`` gives 39 samples per subject (4,680 for 120 subjects).
    interval : float
        Dosing interval (h).
    dose : float
        Amount per dose (mg); concentrations are in mg/L with volumes in L.
    times : sequence of float
        Sampling times after each dose (h).

    Returns
    -------
    pandas.DataFrame
        One dose row per dose and one observation row per sample, ordered by subject
        and time.
    """
    if structural not in ("one_compartment_oral", "two_compartment_oral"):
        raise ValueError(f"unknown structural model {structural!r}")
    rng = np.random.default_rng(seed)
    names = ["CL", "V", "ka"] if structural == "one_compartment_oral" else ["CL", "V1", "Q", "V2", "ka"]
    omega = np.array([STUDY_TRUTH["omega"][n] for n in names])
    times = np.asarray(times, dtype=float)
    dose_times = interval * np.arange(doses)
    sample_times = np.unique(
        np.concatenate([d + times[(times < interval) | (i == doses - 1)] for i, d in enumerate(dose_times)])
    )
    rows = []
    for i in range(1, n_subjects + 1):
        eta = rng.normal(0.0, np.sqrt(omega))
        p = {n: STUDY_TRUTH[n] * np.exp(e) for n, e in zip(names, eta)}
        conc = sum(_one_dose(structural, p, dose, sample_times - d) for d in dose_times)
        dv = conc * (1.0 + STUDY_TRUTH["prop_sd"] * rng.standard_normal(conc.size))
        for d in dose_times:
            rows.append((i, float(d), dose, 1, np.nan))
        rows.extend((i, float(t), 0.0, 0, float(y)) for t, y in zip(sample_times, dv))
    frame = pd.DataFrame(rows, columns=["ID", "TIME", "AMT", "EVID", "DV"])
    return frame.sort_values(["ID", "TIME", "EVID"], ascending=[True, True, False], kind="stable").reset_index(
        drop=True
    )


def simulate_michaelis_menten_study(
    n_subjects: int = 40, *, seed: int = 2, times=(0.5, 1, 2, 4, 8, 12.5, 24.5, 26, 28, 32, 36)
) -> pd.DataFrame:
    """A simulated oral study with Michaelis-Menten elimination (``models/oral_mm.toml``).

    Three doses of 100 mg every 12 h (one record with ``ADDL = 2``, ``II = 12``) into
    the depot (``CMT 1``); samples of the central concentration (``CMT 2``). Truth
    :data:`MM_TRUTH`: log-normal IIV (variance 0.09) on ka, V and Vmax, Km fixed across
    subjects, proportional error SD 0.1. Integrated with ``scipy.integrate.solve_ivp``
    (LSODA, rtol 1e-10), independent of the package's ODE code.

    Parameters
    ----------
    n_subjects : int
    seed : int
    times : sequence of float
        Sampling times (h) after the first dose.

    Returns
    -------
    pandas.DataFrame
        ``ID, TIME, DV, AMT, EVID, MDV, CMT, II, ADDL``.
    """
    from scipy.integrate import solve_ivp

    truth = MM_TRUTH
    rng = np.random.default_rng(seed)
    times = np.asarray(times, dtype=float)
    rows = []
    for i in range(1, n_subjects + 1):
        p = {k: truth[k] * np.exp(rng.normal(0.0, np.sqrt(truth["omega"]))) for k in ("ka", "V", "Vmax")}
        p["Km"] = truth["Km"]

        def rhs(t, y, p=p):
            c = y[1] / p["V"]
            return [-p["ka"] * y[0], p["ka"] * y[0] - p["Vmax"] * c / (p["Km"] + c)]

        y = np.zeros(2)
        conc = []
        for start in (0.0, 12.0, 24.0):
            end = start + 12.0 if start < 24.0 else max(times.max(), 36.0)
            y[0] += 100.0
            sol = solve_ivp(rhs, (start, end), y, method="LSODA", rtol=1e-10, atol=1e-12, dense_output=True)
            conc += [sol.sol(t)[1] / p["V"] for t in times if start < t <= end]
            y = sol.y[:, -1].copy()
        dv = np.asarray(conc) * (1.0 + truth["prop_sd"] * rng.standard_normal(len(conc)))
        rows.append((i, 0.0, np.nan, 100.0, 1, 1, 1, 12.0, 2))
        rows.extend((i, float(t), float(round(v, 6)), 0.0, 0, 0, 2, 0.0, 0) for t, v in zip(times, dv))
    return pd.DataFrame(rows, columns=["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "II", "ADDL"])


def simulate_iov_study(
    n_subjects: int = 40,
    *,
    occasions: int = 3,
    seed: int = 20261129,
    omega_iov_cl: float = 0.04,
    omega: dict | None = None,
    prop_sd: float = 0.15,
    dose: float = 100.0,
    times=IOV_TIMES,
    spacing: float = 168.0,
) -> pd.DataFrame:
    """A simulated crossover-like oral study with inter-occasion variability on CL.

    One compartment, ``TVCL = 4`` L/h, ``TVV = 70`` L, ``TVKA = 1`` 1/h;
    ``CL_ik = TVCL * exp(eta_CL,i + kappa_ik)`` with ``kappa ~ N(0, omega_iov_cl)``,
    ``V`` and ``ka`` with IIV only. Each occasion is one 100 mg dose followed by the
    samples ``times``; occasions are ``spacing`` hours apart and every occasion after the
    first starts with a reset (``EVID 4``), so each occasion is an independent single-dose
    profile and the closed form is exact (nothing here uses the model code under test).

    Parameters
    ----------
    n_subjects : int
    occasions : int
        Occasions per subject (``OCC`` 1, 2, ...).
    seed : int
    omega_iov_cl : float
        IOV variance of CL.
    omega : dict, optional
        IIV variances by parameter (default ``CL`` 0.09, ``V`` 0.075, ``ka`` 0.11).
    prop_sd : float
        Proportional residual SD.
    dose : float
    times : sequence of float
        Sampling times after each occasion's dose (h).
    spacing : float
        Hours between the doses of consecutive occasions.

    Returns
    -------
    pandas.DataFrame
        ``ID, TIME, AMT, EVID, DV, OCC``.
    """
    rng = np.random.default_rng(seed)
    omega = {"CL": 0.09, "V": 0.075, "ka": 0.11, **(omega or {})}
    times = np.asarray(times, dtype=float)
    rows = []
    for i in range(1, n_subjects + 1):
        eta = {n: rng.normal(0.0, np.sqrt(omega[n])) for n in ("CL", "V", "ka")}
        for k in range(occasions):
            kappa = rng.normal(0.0, np.sqrt(omega_iov_cl))
            p = {n: STUDY_TRUTH[n] * np.exp(eta[n]) for n in ("CL", "V", "ka")}
            p["CL"] *= np.exp(kappa)
            conc = _one_dose("one_compartment_oral", p, dose, times)
            dv = conc * (1.0 + prop_sd * rng.standard_normal(conc.size))
            start = spacing * k
            rows.append((i, start, dose, 1 if k == 0 else 4, np.nan, k + 1))
            rows.extend((i, start + float(t), 0.0, 0, float(y), k + 1) for t, y in zip(times, dv))
    return pd.DataFrame(rows, columns=["ID", "TIME", "AMT", "EVID", "DV", "OCC"])


#: True values of the simulated PK + direct Emax study (``models/pk_emax.toml``).
EMAX_TRUTH = {
    "ka": 1.0,
    "CL": 2.0,
    "V": 20.0,
    "E0": 10.0,
    "Emax": 50.0,
    "EC50": 2.0,
    "omega": 0.09,
    "prop_sd": 0.1,
    "add_sd": 2.0,
}


def simulate_pk_emax_study(
    n_subjects: int = 30, *, seed: int = 12, times=(0.5, 1, 2, 4, 6, 8, 12, 24), dose: float = 100.0
) -> pd.DataFrame:
    """A simulated oral study with a direct Emax effect (two outputs, ``models/pk_emax.toml``).

    One dose into the depot; at each time a concentration (``DVID 1``) and an effect
    (``DVID 2``, ``E0 + Emax C / (EC50 + C)``). Truth :data:`EMAX_TRUTH`: log-normal
    IIV on ka, CL, V and EC50; proportional error on the concentration, additive on the
    effect. Closed-form one-compartment oral concentrations.

    Parameters
    ----------
    n_subjects, seed : int
    times : sequence of float
    dose : float

    Returns
    -------
    pandas.DataFrame
        ``ID, TIME, DV, AMT, EVID, MDV, CMT, DVID``.
    """
    truth = EMAX_TRUTH
    rng = np.random.default_rng(seed)
    times = np.asarray(times, dtype=float)
    rows = []
    for i in range(1, n_subjects + 1):
        p = {k: truth[k] * np.exp(rng.normal(0.0, np.sqrt(truth["omega"]))) for k in ("ka", "CL", "V", "EC50")}
        k = p["CL"] / p["V"]
        conc = dose * p["ka"] / (p["V"] * (p["ka"] - k)) * (np.exp(-k * times) - np.exp(-p["ka"] * times))
        effect = truth["E0"] + truth["Emax"] * conc / (p["EC50"] + conc)
        rows += _two_output_rows(i, dose, times, conc, effect, truth, rng, effect_cmt=2)
    return _two_output_frame(rows)


def _two_output_rows(i, dose, times, conc, effect, truth, rng, effect_cmt: int) -> list[tuple]:
    """One subject's records: the dose, then at each time a concentration (proportional
    error, DVID 1) and an effect (additive error, DVID 2, into ``effect_cmt``)."""
    y_c = conc * (1.0 + truth["prop_sd"] * rng.standard_normal(conc.size))
    y_e = effect + truth["add_sd"] * rng.standard_normal(conc.size)
    rows = [(i, 0.0, np.nan, dose, 1, 1, 1, np.nan)]
    for t, yc, ye in zip(times, y_c, y_e):
        rows.append((i, float(t), float(round(yc, 6)), 0.0, 0, 0, 2, 1))
        rows.append((i, float(t), float(round(ye, 6)), 0.0, 0, 0, effect_cmt, 2))
    return rows


def _two_output_frame(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "DVID"])
    return frame.astype({"DVID": "Int64"})


#: True values of the simulated warfarin-like PK/PD turnover study (``models/warfarin_turnover.toml``).
TURNOVER_TRUTH = {
    "ka": 1.0,
    "CL": 0.15,
    "V": 8.0,
    "E0": 100.0,
    "kout": 0.05,
    "IC50": 1.0,
    "omega": 0.09,
    "prop_sd": 0.1,
    "add_sd": 3.0,
}


def turnover_solution(p: dict, dose: float, times) -> tuple[np.ndarray, np.ndarray]:
    """Concentration and effect of the turnover model after one oral dose at time 0
    (``scipy.integrate.solve_ivp``, LSODA, rtol 1e-10): independent of the package's ODE code."""
    from scipy.integrate import solve_ivp

    kin = p["E0"] * p["kout"]

    def rhs(t, y):
        c = y[1] / p["V"]
        return [-p["ka"] * y[0], p["ka"] * y[0] - p["CL"] * c, kin * (1.0 - c / (p["IC50"] + c)) - p["kout"] * y[2]]

    times = np.asarray(times, dtype=float)
    sol = solve_ivp(rhs, (0.0, times.max()), [dose, 0.0, p["E0"]], method="LSODA", rtol=1e-10, atol=1e-12, t_eval=times)
    return sol.y[1] / p["V"], sol.y[2]


def simulate_turnover_study(
    n_subjects: int = 30, *, seed: int = 13, times=(1, 3, 6, 12, 24, 48, 72, 96, 120), dose: float = 100.0
) -> pd.DataFrame:
    """A simulated warfarin-like PK/PD study: an indirect response (inhibition of the
    production) observed with the concentration (``models/warfarin_turnover.toml``).

    One oral dose; at each time a concentration (``DVID 1``) and an effect (``DVID 2``).
    Truth :data:`TURNOVER_TRUTH`: log-normal IIV on ka, CL, V and IC50; proportional
    error on the concentration, additive on the effect.

    Returns
    -------
    pandas.DataFrame
        ``ID, TIME, DV, AMT, EVID, MDV, CMT, DVID``.
    """
    truth = TURNOVER_TRUTH
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(1, n_subjects + 1):
        p = dict(truth)
        p.update({k: truth[k] * np.exp(rng.normal(0.0, np.sqrt(truth["omega"]))) for k in ("ka", "CL", "V", "IC50")})
        conc, effect = turnover_solution(p, dose, times)
        rows += _two_output_rows(i, dose, times, conc, effect, truth, rng, effect_cmt=3)
    return _two_output_frame(rows)
