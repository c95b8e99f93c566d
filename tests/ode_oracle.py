"""Independent reference for the model core: numerical integration of the ODEs.

Nothing here uses ``bayes_nlme``. Every structural model (one, two and three
compartments; IV and oral, NONMEM ADVAN 1-4, 11, 12) is the linear system
``dA/dt = K A + u`` in micro-constant form, integrated by ``scipy.integrate.solve_ivp``
(LSODA, rtol 1e-11, atol 1e-13) between events: boluses are added to the state,
infusions are zero-order inputs over ``[t + lag, t + lag + F*AMT/RATE)``. The steady
state before an SS dose is the fixed point of one dosing interval: ``x = M x + b`` with
the interval map ``M`` and the response ``b`` of one interval of the regimen
(overlapping infusions included) both obtained by integration. A steady-state constant
infusion starts from ``K x + R e_c = 0``.

Two oracles:

* :func:`oracle_concentrations` (parameters constant within each subject): the model is
  linear, so the responses of the dose records that a point sees (no reset since, NONMEM
  rules) are integrated one dose record at a time and summed.
* :func:`oracle_records` (parameters given per record, piecewise constant between
  records): one integration through the records of each subject in file order. The
  interval that ends at record r runs with the parameters of record r-1 (``"locf"``:
  a record's values apply from its time until the next record) or of record r
  (``"nocb"``: a record's values apply back to the previous record); between records at
  equal times nothing happens, so LOCF takes the last of them and NOCB the first. A dose (its F,
  lag, infusion duration and, for SS, its whole steady state), a reset and a prediction
  use their own record's values; events a dose schedules later (lagged doses, infusion
  ends, additional doses) keep the dose record's amount, rate and times and act under
  the parameters of the interval they fall in.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

RTOL, ATOL = 1e-11, 1e-13

# structural -> (oral, peripheral (Q, V) parameter pairs, central volume)
LAYOUT = {
    "one_compartment_iv": (False, (), "V"),
    "one_compartment_oral": (True, (), "V"),
    "two_compartment_iv": (False, (("Q", "V2"),), "V1"),
    "two_compartment_oral": (True, (("Q", "V2"),), "V1"),
    "three_compartment_iv": (False, (("Q2", "V2"), ("Q3", "V3")), "V1"),
    "three_compartment_oral": (True, (("Q2", "V2"), ("Q3", "V3")), "V1"),
}


def rate_matrix(structural: str, p: dict) -> tuple[np.ndarray, int, float]:
    """ODE matrix K (NONMEM compartment order), index of the central compartment and
    the central volume."""
    oral, peripherals, volume = LAYOUT[structural]
    vol = p[volume]
    m = 1 + len(peripherals)
    disp = np.zeros((m, m))
    disp[0, 0] = -p["CL"] / vol
    for j, (q, v) in enumerate(peripherals, start=1):
        disp[0, 0] -= p[q] / vol
        disp[j, 0] += p[q] / vol
        disp[0, j] += p[q] / p[v]
        disp[j, j] -= p[q] / p[v]
    if not oral:
        return disp, 0, vol
    K = np.zeros((m + 1, m + 1))
    K[0, 0] = -p["ka"]
    K[1, 0] = p["ka"]
    K[1:, 1:] = disp
    return K, 1, vol


def _integrate(K, x, t0, t1, u):
    if t1 <= t0:
        return np.array(x, dtype=float)
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


def _dose_terms(structural, p, rec):
    """Compartment index (0-based), lag, bioavailability and infusion duration of a dose."""
    oral = LAYOUT[structural][0]
    cmt = int(rec["CMT"]) - 1 if not np.isnan(rec["CMT"]) and rec["CMT"] != 0 else 0
    applies = (cmt == 0) if oral else True
    lag = p.get("tlag", 0.0) if applies else 0.0
    bio = p.get("F", 1.0) if applies else 1.0
    duration = bio * rec["AMT"] / rec["RATE"] if rec["RATE"] > 0 else 0.0
    return cmt, lag, bio, duration


def _regimen(structural, p, rec):
    """The steady-state regimen of an SS dose record (without its ADDL doses): initial
    time and state (just before the regimen's dose at that time), boluses, infusions."""
    K, _, _ = rate_matrix(structural, p)
    cmt, lag, bio, duration = _dose_terms(structural, p, rec)
    t, amt, rate, ii = rec["TIME"], rec["AMT"], rec["RATE"], rec["II"]
    infusion = rate > 0
    j = math.ceil(lag / ii) if lag > 0 else 0
    t_init = t + lag - j * ii
    x_init = _steady_state(K, infusion, cmt, bio * amt, rate, duration, ii)
    boluses, infusions = [], []
    for i in range(j + 1):
        if infusion:
            infusions.append((t_init + i * ii, t_init + i * ii + duration, cmt, rate))
        else:
            boluses.append((t_init + i * ii, cmt, bio * amt))
    if infusion:
        for i in range(1, math.ceil(duration / ii) + 1):
            infusions.append((t_init - i * ii, t_init - i * ii + duration, cmt, rate))
    return t_init, x_init, boluses, infusions


def source_states(structural, p, rec, out_times):
    """States at ``out_times`` caused by one dose record (with ADDL and SS regimen)."""
    K, _, _ = rate_matrix(structural, p)
    n = K.shape[0]
    cmt, lag, bio, duration = _dose_terms(structural, p, rec)
    t, amt, rate, ii = rec["TIME"], rec["AMT"], rec["RATE"], rec["II"]
    ss, addl = int(rec["SS"]), int(rec["ADDL"])
    infusion = rate > 0

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
        t_init, x_init, boluses, infusions = _regimen(structural, p, rec)
    else:
        dose(t + lag, boluses, infusions)
    for k in range(1, addl + 1):
        dose(t + k * ii + lag, boluses, infusions)
    out_times = np.asarray(out_times, dtype=float)
    if t_init > out_times.min():
        raise AssertionError("oracle: a point before its source")
    return simulate(K, t_init, x_init, boluses, infusions, out_times)


_DEFAULTS = {"MDV": 0.0, "CMT": np.nan, "AMT": 0.0, "RATE": 0.0, "II": 0.0, "ADDL": 0.0, "SS": 0.0}


def _complete(df: pd.DataFrame) -> pd.DataFrame:
    """The table with its row positions as index and every column the oracles read
    (absent optional columns get their defaults)."""
    df = df.reset_index(drop=True).copy()
    for column, default in _DEFAULTS.items():
        df[column] = df[column].astype(float).fillna(default) if column in df else default
    return df


def _is_point(r, points):
    return points == "all" or (r["EVID"] == 0 and r["MDV"] == 0)


def oracle_concentrations(df: pd.DataFrame, structural: str, params: dict, points="observations"):
    """Central concentrations at the prediction points of ``df`` (table order);
    parameters constant within each subject.

    Parameters
    ----------
    df : DataFrame
        Columns ``ID, TIME, EVID`` and optionally ``AMT, MDV, CMT, RATE, II, ADDL, SS``.
    structural : str
    params : dict of str to array
        One value per subject (subjects in order of first appearance).
    points : {"observations", "all"}
    """
    df = _complete(df)
    ids = pd.unique(df["ID"])
    values = {}
    for s, sid in enumerate(ids):
        p = {k: float(np.broadcast_to(v, (len(ids),))[s]) for k, v in params.items()}
        _, central, vol = rate_matrix(structural, p)
        recs = df[df["ID"] == sid]
        positions = list(recs.index)
        is_point = [_is_point(r, points) for _, r in recs.iterrows()]
        is_reset = [r["EVID"] in (3, 4) or (r["EVID"] in (1, 4) and r["SS"] == 1) for _, r in recs.iterrows()]
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
        values.update(conc)
    return np.array([values[q] for q in sorted(values)])


# ----------------------------------------------------------------------------- time-varying


def _advance(K, x, u, t0, t1, pending):
    """Integrate from ``t0`` to ``t1``, applying the pending events due by ``t1`` in
    time order (ties: in the order they were scheduled). Returns ``x, u``."""
    while True:
        due = [e for e in pending if e[0] <= t1]
        if not due:
            break
        event = min(due, key=lambda e: (e[0], e[1]))
        pending.remove(event)
        tau, _, kind, cmt, value = event
        x = _integrate(K, x, t0, tau, u)
        t0 = max(t0, tau)
        if kind == "bolus":
            x = x.copy()
            x[cmt] += value
        else:
            u = u.copy()
            u[cmt] += value
    return _integrate(K, x, t0, t1, u), u


def oracle_records(df: pd.DataFrame, structural: str, params: dict, points="observations", time_varying="locf"):
    """Central concentrations at the prediction points of ``df`` (table order), with
    parameters given per record (see the module docstring for the rules).

    Parameters
    ----------
    df : DataFrame
        Columns ``ID, TIME, EVID`` and optionally ``AMT, MDV, CMT, RATE, II, ADDL, SS``;
        the records of a subject in file order.
    structural : str
    params : dict of str to array
        One value per record of ``df`` (in its row order), or a scalar.
    points : {"observations", "all"}
    time_varying : {"locf", "nocb"}
        Which record's parameters govern the interval between two records.
    """
    if time_varying not in ("locf", "nocb"):
        raise ValueError(time_varying)
    df = _complete(df)
    n = len(df)
    per_record = {k: np.broadcast_to(np.asarray(v, dtype=float), (n,)) for k, v in params.items()}

    def at(i):
        return {k: float(v[i]) for k, v in per_record.items()}

    values = {}
    for sid in pd.unique(df["ID"]):
        rows = list(df.index[df["ID"] == sid])
        K0, central, _ = rate_matrix(structural, at(rows[0]))
        x, u = np.zeros(K0.shape[0]), np.zeros(K0.shape[0])
        pending, seq = [], 0
        t, prev = df.loc[rows[0], "TIME"], rows[0]
        for i in rows:
            rec = df.loc[i]
            K_int, _, _ = rate_matrix(structural, at(prev if time_varying == "locf" else i))
            x, u = _advance(K_int, x, u, t, rec["TIME"], pending)
            t, prev = rec["TIME"], i
            p = at(i)
            K, _, vol = rate_matrix(structural, p)
            dose = rec["EVID"] in (1, 4)
            if rec["EVID"] in (3, 4) or (dose and rec["SS"] == 1):
                x, u, pending = np.zeros_like(x), np.zeros_like(u), []
            if dose:
                cmt, lag, bio, duration = _dose_terms(structural, p, rec)
                amt, rate, ii = rec["AMT"], rec["RATE"], rec["II"]
                boluses, infusions = [], []
                first = 0
                if rec["SS"] > 0 and amt == 0 and rate > 0:  # constant infusion, goes on
                    x = x + np.linalg.solve(K, -rate * np.eye(len(x))[cmt])
                    u = u.copy()
                    u[cmt] += rate
                elif rec["SS"] > 0:  # the regimen up to now; its later events are pending
                    t_init, x_init, reg_bol, reg_inf = _regimen(structural, p, rec)
                    x = x + simulate(K, t_init, x_init, reg_bol, reg_inf, [t])[0]
                    boluses += [b for b in reg_bol if b[0] > t]
                    for start, end, c, r in reg_inf:
                        if start <= t < end:
                            u = u.copy()
                            u[c] += r
                            infusions.append((np.nan, end, c, r))
                        elif start > t:
                            infusions.append((start, end, c, r))
                    first = 1
                for k in range(first, int(rec["ADDL"]) + 1):
                    start = t + k * ii + lag
                    if rate > 0:
                        infusions.append((start, start + duration, cmt, rate))
                    else:
                        boluses.append((start, cmt, bio * amt))
                for tau, c, amount in boluses:
                    pending.append((tau, seq, "bolus", c, amount))
                    seq += 1
                for start, end, c, r in infusions:
                    if not np.isnan(start):
                        pending.append((start, seq, "rate", c, r))
                        seq += 1
                    pending.append((end, seq, "rate", c, -r))
                    seq += 1
                x, u = _advance(K, x, u, t, t, pending)  # events at the dose's own time
            if _is_point(rec, points):
                values[i] = x[central] / vol
    return np.array([values[q] for q in sorted(values)])
