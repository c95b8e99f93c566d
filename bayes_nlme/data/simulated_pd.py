"""Simulated PK/PD studies of the bundled ODE models (indirect response, Friberg).

Every profile is integrated with ``scipy.integrate.solve_ivp`` (LSODA, rtol 1e-10,
atol 1e-12) between dose events, written out here from the model's equations: nothing
uses the package's own ODE code, so these studies (and :func:`indirect_response_solution`
and :func:`friberg_solution`) can check it.

* :func:`simulate_indirect_response_study` -- ``models/indirect_response.toml``
  (indirect response I on a fixed one-compartment oral PK model), truth
  :data:`IDR_TRUTH`;
* :func:`simulate_friberg_study` -- ``models/friberg.toml`` (Friberg myelosuppression on
  a fixed one-compartment IV PK model, three 1 h infusions 21 days apart), truth
  :data:`FRIBERG_TRUTH`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "IDR_TRUTH",
    "FRIBERG_TRUTH",
    "indirect_response_solution",
    "friberg_solution",
    "simulate_indirect_response_study",
    "simulate_friberg_study",
]

#: True values of the simulated indirect-response (type I) study (``models/indirect_response.toml``):
#: PK fixed (ka, CL, V, Imax as in the model file), log-normal IIV (variance ``omega``) on
#: R0, kout and IC50, additive error SD ``add_sd``.
IDR_TRUTH = {
    "ka": 1.0,
    "CL": 4.0,
    "V": 30.0,
    "R0": 100.0,
    "kout": 0.1,
    "Imax": 0.9,
    "IC50": 1.0,
    "omega": 0.09,
    "add_sd": 3.0,
}

#: True values of the simulated Friberg study (``models/friberg.toml``): PK fixed (CL, V),
#: log-normal IIV (variance ``omega``) on circ0, MTT and slope, gamma without IIV,
#: proportional error SD ``prop_sd``.
FRIBERG_TRUTH = {
    "CL": 5.0,
    "V": 20.0,
    "circ0": 5.0,
    "MTT": 100.0,
    "gamma": 0.2,
    "slope": 0.1,
    "omega": 0.09,
    "prop_sd": 0.1,
}

_TOL = {"method": "LSODA", "rtol": 1e-10, "atol": 1e-12}


def _integrate_regimen(rhs, y0, doses, times) -> np.ndarray:
    """States at ``times`` (rows) of ``dy/dt = rhs(t, y, u)`` from ``y0`` at time 0.

    ``doses`` are ``(time, state index, amount, duration)``: a bolus when the duration
    is 0, else a zero-order input ``amount / duration`` over ``[time, time + duration)``
    (``u`` is the vector of input rates). A point at a bolus's time sees the bolus.
    """
    times = np.asarray(times, dtype=float)
    y = np.array(y0, dtype=float)
    marks = sorted({0.0, times.max(), *(d[0] for d in doses), *(d[0] + d[3] for d in doses if d[3] > 0)})
    out = np.full((times.size, y.size), np.nan)
    t0 = 0.0
    for t1 in marks:
        if t1 > t0:
            mid = 0.5 * (t0 + t1)
            u = np.zeros(y.size)
            for start, index, amount, duration in doses:
                if duration > 0 and start <= mid < start + duration:
                    u[index] += amount / duration
            sol = _solve(rhs, (t0, t1), y, u)
            inside = (times > t0) & (times < t1)
            if inside.any():
                out[inside] = sol.sol(times[inside]).T
            y, t0 = sol.y[:, -1].copy(), t1
        for start, index, amount, duration in doses:
            if start == t1 and duration == 0:
                y[index] += amount
        out[times == t1] = y
    return out


def _solve(rhs, span, y, u):
    from scipy.integrate import solve_ivp

    sol = solve_ivp(lambda t, x: rhs(t, x, u), span, y, dense_output=True, **_TOL)
    if not sol.success:  # pragma: no cover - a simulation setting error
        raise RuntimeError(sol.message)
    return sol


def indirect_response_solution(p: dict, doses, times, kind: int = 1) -> np.ndarray:
    """Response of an indirect-response model I-IV on one-compartment oral PK.

    ``d/dt(response) = kin * S - kout * L * response`` with ``kin = R0 * kout`` and the
    response starting at ``R0``: type I ``S = 1 - Imax C / (IC50 + C)``, II
    ``L = 1 - Imax C / (IC50 + C)``, III ``S = 1 + Emax C / (EC50 + C)``, IV
    ``L = 1 + Emax C / (EC50 + C)`` (the other factor 1), ``C = central / V``.

    Parameters
    ----------
    p : dict
        ``ka, CL, V, R0, kout`` and ``Imax, IC50`` (I, II) or ``Emax, EC50`` (III, IV).
    doses : sequence of (float, float)
        Oral doses ``(time, amount)`` into the depot.
    times : sequence of float
        Output times (h), after 0.
    kind : {1, 2, 3, 4}

    Returns
    -------
    numpy.ndarray
        The response at each time.
    """
    if kind not in (1, 2, 3, 4):
        raise ValueError(f"indirect response type must be 1-4, not {kind!r}")
    kin = p["R0"] * p["kout"]

    def rhs(t, y, u):
        c = y[1] / p["V"]
        inhibit = 1.0 - p["Imax"] * c / (p["IC50"] + c) if kind <= 2 else None
        stimulate = 1.0 + p["Emax"] * c / (p["EC50"] + c) if kind >= 3 else None
        production = kin * {1: inhibit, 3: stimulate}.get(kind, 1.0)
        loss = p["kout"] * {2: inhibit, 4: stimulate}.get(kind, 1.0) * y[2]
        return [u[0] - p["ka"] * y[0], p["ka"] * y[0] - p["CL"] / p["V"] * y[1], production - loss]

    states = _integrate_regimen(rhs, [0.0, 0.0, p["R0"]], [(t, 0, a, 0.0) for t, a in doses], times)
    return states[:, 2]


def friberg_solution(p: dict, doses, times) -> np.ndarray:
    """Circulating cells of the Friberg model on one-compartment IV PK.

    Parameters
    ----------
    p : dict
        ``CL, V, circ0, MTT, gamma, slope``.
    doses : sequence of (float, float, float)
        ``(time, amount, duration)`` into the central compartment: a bolus when the
        duration is 0, else a zero-order infusion.
    times : sequence of float
        Output times (h), from 0.

    Returns
    -------
    numpy.ndarray
        ``circ`` at each time (every cell compartment starts at ``circ0``).
    """
    ktr = 4.0 / p["MTT"]

    def rhs(t, y, u):
        drug = p["slope"] * y[0] / p["V"]
        prol = ktr * y[1] * (1.0 - drug) * (p["circ0"] / y[5]) ** p["gamma"] - ktr * y[1]
        return [u[0] - p["CL"] / p["V"] * y[0], prol, *(ktr * (y[i - 1] - y[i]) for i in range(2, 6))]

    y0 = [0.0] + [p["circ0"]] * 5
    states = _integrate_regimen(rhs, y0, [(t, 0, a, d) for t, a, d in doses], times)
    return states[:, 5]


def _draw(truth: dict, names, rng) -> dict:
    """One subject's parameters: the truth with log-normal IIV on ``names``."""
    p = dict(truth)
    p.update({k: truth[k] * np.exp(rng.normal(0.0, np.sqrt(truth["omega"]))) for k in names})
    return p


def simulate_indirect_response_study(
    n_subjects: int = 30,
    *,
    seed: int = 21,
    times=(2, 6, 12, 24, 30, 48, 54, 72, 96, 120),
    dose: float = 100.0,
) -> pd.DataFrame:
    """A simulated indirect-response (type I) study (``models/indirect_response.toml``).

    Three oral doses of ``dose`` mg every 24 h (one record with ``ADDL = 2``, ``II = 24``)
    into the depot (``CMT 1``); the response (``CMT 3``) observed at ``times``. Truth
    :data:`IDR_TRUTH`: fixed PK, log-normal IIV on R0, kout and IC50, additive error.

    Parameters
    ----------
    n_subjects : int
    seed : int
    times : sequence of float
        Sampling times (h) after the first dose.
    dose : float

    Returns
    -------
    pandas.DataFrame
        ``ID, TIME, DV, AMT, EVID, MDV, CMT, II, ADDL``.
    """
    truth = IDR_TRUTH
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(1, n_subjects + 1):
        p = _draw(truth, ("R0", "kout", "IC50"), rng)
        response = indirect_response_solution(p, [(0.0, dose), (24.0, dose), (48.0, dose)], times)
        dv = response + truth["add_sd"] * rng.standard_normal(response.size)
        rows.append((i, 0.0, np.nan, dose, 1, 1, 1, 24.0, 2))
        rows.extend((i, float(t), float(round(v, 6)), 0.0, 0, 0, 3, 0.0, 0) for t, v in zip(times, dv))
    return pd.DataFrame(rows, columns=["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "II", "ADDL"])


def simulate_friberg_study(
    n_subjects: int = 30,
    *,
    seed: int = 22,
    times=(0, 168, 240, 288, 408, 504, 672, 744, 840, 1008, 1176, 1248, 1512),
    dose: float = 1000.0,
) -> pd.DataFrame:
    """A simulated myelosuppression study (``models/friberg.toml``).

    Three cycles: a 1 h intravenous infusion of ``dose`` mg (``RATE = dose``, ``CMT 1``)
    every 21 days (one record with ``ADDL = 2``, ``II = 504``); the absolute neutrophil
    count (``CMT 6``) sampled at ``times`` (a baseline at 0, the nadirs near days 10-14
    and the recoveries; a sample at a dose's time is taken before it). Truth
    :data:`FRIBERG_TRUTH`: fixed PK, log-normal IIV on circ0, MTT and slope,
    proportional error.

    Parameters
    ----------
    n_subjects : int
    seed : int
    times : sequence of float
        Sampling times (h) after the first dose.
    dose : float

    Returns
    -------
    pandas.DataFrame
        ``ID, TIME, DV, AMT, RATE, EVID, MDV, CMT, II, ADDL``.
    """
    truth = FRIBERG_TRUTH
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(1, n_subjects + 1):
        p = _draw(truth, ("circ0", "MTT", "slope"), rng)
        anc = friberg_solution(p, [(k * 504.0, dose, 1.0) for k in range(3)], times)
        dv = anc * (1.0 + truth["prop_sd"] * rng.standard_normal(anc.size))
        obs = [(i, float(t), float(round(v, 6)), 0.0, 0.0, 0, 0, 6, 0.0, 0) for t, v in zip(times, dv)]
        rows.extend(r for r in obs if r[1] <= 0.0)  # the baseline, above the first dose
        rows.append((i, 0.0, np.nan, dose, dose, 1, 1, 1, 504.0, 2))
        rows.extend(r for r in obs if r[1] > 0.0)
    return pd.DataFrame(rows, columns=["ID", "TIME", "DV", "AMT", "RATE", "EVID", "MDV", "CMT", "II", "ADDL"])
