"""Independent reference for the PK library: numerical integration of the ODEs.

Nothing here uses ``bayes_nlme.pk`` or ``bayes_nlme.data.events``. Each dose record
(with its ADDL doses and, for steady state, its whole dosing regimen) is simulated by
``scipy.integrate.solve_ivp`` (LSODA, rtol 1e-11, atol 1e-13) between events, in
micro-constant form (``dA/dt = K A + input``): boluses are added to the state, infusions
are zero-order inputs over ``[t + lag, t + lag + F*AMT/RATE)``. The steady state before
an SS dose is the fixed point of one dosing interval: ``x = M x + b`` with the interval
map ``M`` and the response ``b`` of one interval of the regimen (overlapping infusions
included) both obtained by integration. A steady-state constant infusion starts from
``K x + R e_c = 0``. The model is linear, so the responses of the dose records that a
point sees (no reset since, NONMEM rules) are summed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

RTOL, ATOL = 1e-11, 1e-13

# compartment layout: (oral, two_compartment)
LAYOUT = {
    "one_compartment_iv": (False, False),
    "one_compartment_oral": (True, False),
    "two_compartment_iv": (False, True),
    "two_compartment_oral": (True, True),
}


def rate_matrix(structural: str, p: dict) -> tuple[np.ndarray, int, float]:
    """ODE matrix K, index of the central compartment and the central volume."""
    oral, two = LAYOUT[structural]
    if two:
        k10, k12, k21 = p["CL"] / p["V1"], p["Q"] / p["V1"], p["Q"] / p["V2"]
        disp = np.array([[-(k10 + k12), k21], [k12, -k21]])
        vol = p["V1"]
    else:
        disp = np.array([[-p["CL"] / p["V"]]])
        vol = p["V"]
    if not oral:
        return disp, 0, vol
    n = disp.shape[0] + 1
    K = np.zeros((n, n))
    K[0, 0] = -p["ka"]
    K[1, 0] = p["ka"]
    K[1:, 1:] = disp
    return K, 1, vol


def _integrate(K, x, t0, t1, u):
    if t1 <= t0:
        return x
    sol = solve_ivp(lambda t, y: K @ y + u, (t0, t1), x, method="LSODA", rtol=RTOL, atol=ATOL, jac=lambda t, y: K)
    assert sol.success, sol.message
    return sol.y[:, -1]


def simulate(K, t_init, x_init, boluses, infusions, out_times):
    """State at each of ``out_times`` (after boluses given at that very time)."""
    out_times = np.asarray(out_times, dtype=float)
    t_end = out_times.max()
    marks = {t_init, *out_times}
    marks |= {b[0] for b in boluses if t_init <= b[0] <= t_end}
    for start, end, _, _ in infusions:
        marks |= {t for t in (start, end) if t_init <= t <= t_end}
    x, t_cur = np.array(x_init, dtype=float), t_init
    states = {}
    for t in sorted(marks):
        if t > t_cur:
            mid = 0.5 * (t_cur + t)
            u = np.zeros(len(x))
            for start, end, cmt, rate in infusions:
                if start <= mid < end:
                    u[cmt] += rate
            x = _integrate(K, x, t_cur, t, u)
            t_cur = t
        for tb, cmt, amount in boluses:
            if tb == t:
                x = x.copy()
                x[cmt] += amount
        states[t] = x.copy()
    return np.array([states[t] for t in out_times])


def _steady_state(K, kind_infusion, cmt, amount, rate, duration, ii):
    """State just before a dose of the periodic regimen (fixed point of one interval)."""
    n = K.shape[0]
    M = np.column_stack([_integrate(K, np.eye(n)[j], 0.0, ii, np.zeros(n)) for j in range(n)])
    if kind_infusion:
        n_prev = math.ceil(duration / ii) + 1
        infusions = [(-j * ii, -j * ii + duration, cmt, rate) for j in range(n_prev)]
        b = simulate(K, 0.0, np.zeros(n), [], infusions, [ii])[0]
    else:
        b = simulate(K, 0.0, np.zeros(n), [(0.0, cmt, amount)], [], [ii])[0]
    return np.linalg.solve(np.eye(n) - M, b)


def source_states(structural, p, rec, out_times):
    """States at ``out_times`` caused by one dose record (with ADDL and SS regimen)."""
    oral, _ = LAYOUT[structural]
    K, _, _ = rate_matrix(structural, p)
    n = K.shape[0]
    cmt = int(rec["CMT"]) - 1 if not np.isnan(rec["CMT"]) and rec["CMT"] != 0 else 0
    applies = (cmt == 0) if oral else True
    lag = p.get("tlag", 0.0) if applies else 0.0
    bio = p.get("F", 1.0) if applies else 1.0
    t, amt, rate, ii = rec["TIME"], rec["AMT"], rec["RATE"], rec["II"]
    ss, addl = int(rec["SS"]), int(rec["ADDL"])
    infusion = rate > 0
    duration = bio * amt / rate if infusion else 0.0

    def dose(start, boluses, infusions):
        if infusion:
            infusions.append((start, start + duration, cmt, rate))
        else:
            boluses.append((start, cmt, bio * amt))

    boluses, infusions = [], []
    t_init, x_init = t, np.zeros(n)
    if ss > 0 and amt == 0 and infusion:  # constant infusion at steady state, goes on
        u = np.zeros(n)
        u[cmt] = rate
        x_init = np.linalg.solve(K, -u)
        infusions.append((t, np.inf, cmt, rate))
    elif ss > 0:
        t0 = t + lag
        j = math.ceil(lag / ii) if lag > 0 else 0
        t_init = t0 - j * ii
        x_init = _steady_state(K, infusion, cmt, bio * amt, rate, duration, ii)
        for i in range(j + 1):
            dose(t_init + i * ii, boluses, infusions)
        if infusion:
            for i in range(1, math.ceil(duration / ii) + 1):
                infusions.append((t_init - i * ii, t_init - i * ii + duration, cmt, rate))
    else:
        dose(t + lag, boluses, infusions)
    for k in range(1, addl + 1):
        dose(t + k * ii + lag, boluses, infusions)
    out_times = np.asarray(out_times, dtype=float)
    if t_init > out_times.min():
        raise AssertionError("oracle: a point before its source")
    return simulate(K, t_init, x_init, boluses, infusions, out_times)


def oracle_concentrations(df: pd.DataFrame, structural: str, params: dict, points="observations"):
    """Central concentrations at the prediction points of ``df`` (table order).

    Parameters
    ----------
    df : DataFrame
        Columns ``ID, TIME, AMT, EVID, MDV, CMT, RATE, II, ADDL, SS``.
    structural : str
    params : dict of str to array
        One value per subject (subjects in order of first appearance).
    points : {"observations", "all"}
    """
    df = df.reset_index(drop=True)
    ids = pd.unique(df["ID"])
    out = []
    for s, sid in enumerate(ids):
        p = {k: float(np.broadcast_to(v, (len(ids),))[s]) for k, v in params.items()}
        _, central, vol = rate_matrix(structural, p)
        recs = df[df["ID"] == sid]
        positions = list(recs.index)
        is_point = [
            points == "all" or (r["EVID"] == 0 and r["MDV"] == 0) for _, r in recs.iterrows()
        ]
        is_reset = [
            r["EVID"] in (3, 4) or (r["EVID"] in (1, 4) and r["SS"] == 1) for _, r in recs.iterrows()
        ]
        conc = {pos: 0.0 for pos, flag in zip(positions, is_point) if flag}
        for i, pos_r in enumerate(positions):
            rec = recs.loc[pos_r]
            if rec["EVID"] not in (1, 4):
                continue
            seen = []
            for j in range(i, len(positions)):
                if j > i and is_reset[j]:
                    break
                if is_point[j]:
                    seen.append(positions[j])
            if not seen:
                continue
            states = source_states(structural, p, rec, [df.loc[q, "TIME"] for q in seen])
            for q, x in zip(seen, states):
                conc[q] += x[central] / vol
        out.extend(conc[q] for q in sorted(conc))
    # table order across subjects
    order = []
    for sid in ids:
        recs = df[df["ID"] == sid]
        for pos, r in recs.iterrows():
            if points == "all" or (r["EVID"] == 0 and r["MDV"] == 0):
                order.append(pos)
    values = dict(zip(order, out))
    return np.array([values[q] for q in sorted(values)])
