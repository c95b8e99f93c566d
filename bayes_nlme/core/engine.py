"""The event engine: compartment amounts advanced from record to record (Numba).

For each subject, records are taken in file order. Between two records the amounts are
advanced by the structural model's exact transition (:func:`.kinetics.advance`) with
the parameters in force over that interval; dose events whose times depend on
parameters (absorption lag, end of an infusion whose duration is ``F * AMT / RATE``,
additional doses) wait in a pending list and are applied, in time order, when the
clock reaches them. A record applies its own events after the amounts have reached its
time, so an observation listed above a dose at the same time sees the amounts before
the dose.

Forward sensitivities ``S = dA / d(params of every parameter segment of the subject)``
are carried along (``S`` has ``n_segments x P`` columns), so every prediction comes with
its exact Jacobian. An event at a parameter-dependent time ``tau`` adds
``(rhs(A-) - rhs(A+)) dtau/dp`` to the sensitivities (the jump of the right-hand side).
Steady state (``SS`` 1 and 2) is the fixed point of one dosing interval, found by
Newton's method on the interval map (exact in one step for linear kinetics), with
sensitivities by the implicit function theorem; a steady-state constant infusion is
the root of the right-hand side.

Record layout (see :mod:`.design`): ``recf`` (n_records, 4) = time, amount, rate,
interval; ``reci`` (n_records, 9) = dose (1: dose record), reset (1: EVID 3/4 or
SS = 1), addl, ss, state index, observation index (-1: none), parameter segment of the
record, parameter segment of the interval that ends at the record, output of the
observation (``observe``'s index; CONTRACT 5.4); plus the F/lag flag
in ``recl``. Every array is float64 (whole numbers where they are counts or indices), so
that the compiled log density takes them as data, not as compiled-in constants.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .borrow import borrow
from .kinetics import STEADY_TOL, advance, equilibrium, event_jump, initial_state, observe, workspace_size

__all__ = ["simulate", "simulate_values"]

# reci columns (OUT: the output of an observation, CONTRACT 5.4)
DOSE, RESET, ADDL, SS, CMT, OBS, SEG, ISEG, OUT = range(9)


@njit(cache=True, error_model="numpy")
def _buffers(cfg):
    """Work arrays of :func:`_step`."""
    n, n_kin = cfg[1], cfg[6]
    return np.empty(n), np.empty((n, n)), np.zeros((n, n_kin)), np.empty(n), np.empty(workspace_size(n, n_kin))


@njit(cache=True, error_model="numpy")
def _new_subject(buf):
    """Hook at the start of each subject (an ODE engine clears its solver memory there,
    so that a subject's predictions do not depend on the subjects before it)."""
    return


@njit(cache=True, error_model="numpy", inline="always")
def _step(cfg, p, t0, dt, a, s, r, c0, ncol, buf):
    """Advance ``a`` and the sensitivity block ``s`` from time ``t0`` over ``dt`` (in place).

    ``t0`` is the absolute time (the dataset's ``TIME``); the closed forms ignore it.

    ``s`` columns ``c0 .. c0 + n_kin`` receive the parameter derivatives of ``p``.
    Only the first ``ncol`` columns of ``s`` are propagated. ``buf`` holds work
    arrays (:func:`_buffers`).
    """
    kind, n, n_kin = cfg[0], cfg[1], cfg[6]
    if dt <= 0.0:
        return
    a_new, phi, jp, tmp, ws = buf
    advance(kind, p, dt, a, r, a_new, phi, jp, n, n_kin, ws)
    for col in range(ncol):
        for i in range(n):
            acc = 0.0
            for j in range(n):
                acc += phi[i, j] * s[j, col]
            tmp[i] = acc
        for i in range(n):
            s[i, col] = tmp[i]
    for i in range(n):
        a[i] = a_new[i]
        for q in range(n_kin):
            s[i, c0 + q] += jp[i, q]


@njit(cache=True, error_model="numpy")
def _jump(cfg, p, t, a, r, s, cmt, bolus, drate, dtau, c0_tau):
    """Sensitivity correction of an event at a parameter-dependent time.

    ``bolus``: amount added to ``cmt``; ``drate``: change of the input rate into
    ``cmt``; ``a``, ``r``: amounts and rates after the event; ``dtau`` (P,):
    derivative of the event time with respect to the parameters whose columns start
    at ``c0_tau``. The correction is (right-hand side before - after) x ``dtau``.
    """
    n, n_par = cfg[1], cfg[7]
    nonzero = False
    for q in range(n_par):
        if dtau[q] != 0.0:
            nonzero = True
    if not nonzero:
        return
    diff = np.empty(n)
    event_jump(cfg, p, t, a, r, cmt, bolus, drate, diff)
    for i in range(n):
        if diff[i] != 0.0:
            for q in range(n_par):
                s[i, c0_tau + q] += diff[i] * dtau[q]


@njit(cache=True, error_model="numpy")
def _dose_terms(cfg, p, amt, rate, fl):
    """Bioavailable amount, lag, infusion duration and their parameter derivatives."""
    n_par, lag_col, f_col = cfg[7], cfg[4], cfg[5]
    f = p[f_col] if (fl and f_col >= 0) else 1.0
    lag = p[lag_col] if (fl and lag_col >= 0) else 0.0
    dlag = np.zeros(n_par)
    if fl and lag_col >= 0:
        dlag[lag_col] = 1.0
    damt = np.zeros(n_par)
    if fl and f_col >= 0:
        damt[f_col] = amt
    dur = 0.0
    ddur = np.zeros(n_par)
    if rate > 0.0:
        dur = f * amt / rate
        for q in range(n_par):
            ddur[q] = damt[q] / rate
    return f * amt, damt, lag, dlag, dur, ddur


@njit(cache=True, error_model="numpy")
def _push(pend, pendv, count, tau, kind, cmt, value, dtau, dval, c0):
    """Insert a pending event, keeping the list in time order (after the events of the
    same time: ties keep the order they were scheduled in); returns the new count (-1
    when the list is full)."""
    if count >= pend.shape[0]:
        return -1
    n_par = dtau.shape[0]
    j = count
    while j > 0 and pend[j - 1, 0] > tau:
        j -= 1
    for e in range(count, j, -1):
        pend[e] = pend[e - 1]
        pendv[e] = pendv[e - 1]
    pend[j, 0] = tau
    pend[j, 1] = kind  # 0 bolus, 1 rate change
    pend[j, 2] = cmt
    pend[j, 3] = value
    pend[j, 4] = c0
    for q in range(n_par):
        pendv[j, q] = dtau[q]
        pendv[j, n_par + q] = dval[q]
    return count + 1


@njit(cache=True, error_model="numpy")
def _apply(cfg, p_int, a, s, r, pend, pendv, e):
    """Apply pending event ``e`` at its time (amounts already advanced to it)."""
    n_par = cfg[7]
    cmt = int(pend[e, 2])
    c0 = int(pend[e, 4])
    value = pend[e, 3]
    if pend[e, 1] == 0.0:
        a[cmt] += value
        for q in range(n_par):
            s[cmt, c0 + q] += pendv[e, n_par + q]
        _jump(cfg, p_int, pend[e, 0], a, r, s, cmt, value, 0.0, pendv[e, :n_par], c0)
    else:
        r[cmt] += value
        _jump(cfg, p_int, pend[e, 0], a, r, s, cmt, 0.0, value, pendv[e, :n_par], c0)


@njit(cache=True, error_model="numpy", inline="always")
def _run_until(cfg, p_int, t, t_end, a, s, r, pend, pendv, head, count, ncol, c0_int, buf):
    """Advance from ``t`` to ``t_end``, applying the pending events (rows ``head`` to
    ``count`` of ``pend``, in time order) with times ``<= t_end``. Returns the time
    reached and the first event still pending."""
    while True:
        due = head < count and pend[head, 0] <= t_end
        t_next = pend[head, 0] if due else t_end
        _step(cfg, p_int, t, t_next - t, a, s, r, c0_int, ncol, buf)
        t = max(t, t_next)
        if not due:
            return t, head
        _apply(cfg, p_int, a, s, r, pend, pendv, head)
        head += 1


@njit(cache=True, error_model="numpy")
def _apply_due(cfg, p, t, a, s, r, pend, pendv, head, count):
    """Apply the pending events due at time ``t`` (the amounts are at ``t``); returns
    the first event still pending."""
    while head < count and pend[head, 0] <= t:
        _apply(cfg, p, a, s, r, pend, pendv, head)
        head += 1
    return head


@njit(cache=True, error_model="numpy")
def _drop_applied(pend, pendv, head, count):
    """Move the pending events (rows ``head`` to ``count``) to the top of the list;
    returns their number."""
    for e in range(head, count):
        pend[e - head] = pend[e]
        pendv[e - head] = pendv[e]
    return count - head


@njit(cache=True, error_model="numpy")
def _period(cfg, p, x0, cmt, amt, rate, ii, fl, w):
    """One interval of a steady-state regimen from the amounts ``x0``.

    Returns the amounts at the end; ``w`` (n, n + P) receives their derivatives with
    respect to ``x0`` (first n columns) and to the parameters.
    """
    n, n_par = cfg[1], cfg[7]
    buf = _buffers(cfg)
    a = x0.copy()
    w[:] = 0.0
    for i in range(n):
        w[i, i] = 1.0
    r = np.zeros(n)
    famt, damt, lag, dlag, dur, ddur = _dose_terms(cfg, p, amt, rate, fl)
    ncol = n + n_par
    phase = np.full(2, np.inf)
    value = np.zeros(2)
    kinds = np.zeros(2)
    dtau = np.zeros((2, n_par))
    dval = np.zeros((2, n_par))
    if rate > 0.0:
        n0 = np.ceil((lag + dur) / ii) - np.ceil(lag / ii)
        r[cmt] = n0 * rate
        phase[0] = lag % ii
        phase[1] = (lag + dur) % ii
        value[0] = rate
        value[1] = -rate
        kinds[:] = 1.0
        dtau[0] = dlag
        dtau[1] = dlag + ddur
        for e in range(2):
            if phase[e] == 0.0:  # at phase 0: in the initial rate; only its time derivative is left
                _jump(cfg, p, 0.0, a, r, w, cmt, 0.0, value[e], dtau[e], n)
                phase[e] = np.inf
    else:
        phase[0] = lag % ii
        value[0] = famt
        dtau[0] = dlag
        dval[0] = damt
        if phase[0] == 0.0:
            a[cmt] += famt
            for q in range(n_par):
                w[cmt, n + q] += damt[q]
            _jump(cfg, p, 0.0, a, r, w, cmt, famt, 0.0, dlag, n)
            phase[0] = np.inf
    order = (0, 1) if phase[0] <= phase[1] else (1, 0)
    t = 0.0
    for e in order:
        if not np.isfinite(phase[e]):
            continue
        _step(cfg, p, t, phase[e] - t, a, w, r, n, ncol, buf)
        t = phase[e]
        if kinds[e] == 0.0:
            a[cmt] += value[e]
            for q in range(n_par):
                w[cmt, n + q] += dval[e, q]
            _jump(cfg, p, t, a, r, w, cmt, value[e], 0.0, dtau[e], n)
        else:
            r[cmt] += value[e]
            _jump(cfg, p, t, a, r, w, cmt, 0.0, value[e], dtau[e], n)
    _step(cfg, p, t, ii - t, a, w, r, n, ncol, buf)
    return a


@njit(cache=True, error_model="numpy")
def _steady(cfg, p, cmt, amt, rate, ii, fl):
    """Steady-state amounts before the regimen's dose at phase 0, and their
    parameter derivatives (n, P)."""
    n, n_par = cfg[1], cfg[7]
    x = np.zeros(n)
    initial_state(cfg, p, 0.0, x, np.zeros((n, n_par)))
    w = np.zeros((n, n + n_par))
    eye = np.eye(n)
    for it in range(60):
        z = _period(cfg, p, x, cmt, amt, rate, ii, fl, w)
        resid = z - x
        size = 0.0
        err = 0.0
        for i in range(n):
            size = max(size, abs(x[i]))
            err = max(err, abs(resid[i]))
        if it > 0 and err <= STEADY_TOL * (1.0 + size):
            break
        if not np.isfinite(err):
            break
        x = x + np.linalg.solve(eye - w[:, :n], resid)
    sens = np.linalg.solve(eye - w[:, :n], np.ascontiguousarray(w[:, n:]))
    return x, sens


@njit(cache=True, error_model="numpy")
def _dose(cfg, p, t, amt, rate, ii, addl, ss, cmt, fl, a, s, r, pend, pendv, count, c0):
    """Apply a dose record at time ``t``: steady state, then schedule its events."""
    n_par = cfg[7]
    famt, damt, lag, dlag, dur, ddur = _dose_terms(cfg, p, amt, rate, fl)
    zero = np.zeros(n_par)
    dend = dlag + ddur
    if ss > 0:
        constant = amt == 0.0 and rate > 0.0
        if constant:
            x, sens = equilibrium(cfg, p, cmt, rate)
        else:
            x, sens = _steady(cfg, p, cmt, amt, rate, ii, fl)
        # x is the whole state: superposed on the amounts less the initial state
        x0 = np.zeros(x.shape[0])
        dx0 = np.zeros((x.shape[0], n_par))
        initial_state(cfg, p, t, x0, dx0)
        for i in range(x.shape[0]):
            a[i] += x[i] - x0[i]
            for q in range(n_par):
                s[i, c0 + q] += sens[i, q] - dx0[i, q]
        if constant:
            r[cmt] += rate
            return count
        if rate > 0.0:
            r[cmt] += (np.ceil((lag + dur) / ii) - np.ceil(lag / ii)) * rate
        k = 0
        while count >= 0 and k < 100000:
            base = t - k * ii + lag
            if rate > 0.0:
                if base + dur <= t:
                    if base + dur == t:  # ended exactly now: only its time derivative is left
                        _jump(cfg, p, t, a, r, s, cmt, 0.0, -rate, dend, c0)
                    break
                if base > t:
                    count = _push(pend, pendv, count, base, 1.0, cmt, rate, dlag, zero, c0)
                elif base == t:  # started exactly now: in the rate already; its time derivative
                    _jump(cfg, p, t, a, r, s, cmt, 0.0, rate, dlag, c0)
                count = _push(pend, pendv, count, base + dur, 1.0, cmt, -rate, dend, zero, c0)
            else:
                if base < t:
                    break
                count = _push(pend, pendv, count, base, 0.0, cmt, famt, dlag, damt, c0)
            k += 1
        first = 1
    else:
        first = 0
    for k in range(first, addl + 1):
        tau = t + k * ii + lag
        if count < 0:
            break
        if rate > 0.0:
            count = _push(pend, pendv, count, tau, 1.0, cmt, rate, dlag, zero, c0)
            count = _push(pend, pendv, count, tau + dur, 1.0, cmt, -rate, dend, zero, c0)
        else:
            count = _push(pend, pendv, count, tau, 0.0, cmt, famt, dlag, damt, c0)
    return count


@njit(cache=True, error_model="numpy")
def _reset(cfg, p, t, a, s, c0, x0, dx0):
    """Amounts to the initial state at time ``t`` (of parameters ``p``, columns from ``c0``)."""
    initial_state(cfg, p, t, x0, dx0)
    s[:] = 0.0
    for i in range(a.shape[0]):
        a[i] = x0[i]
        for q in range(dx0.shape[1]):
            s[i, c0 + q] = dx0[i, q]


@njit(cache=True, error_model="numpy")
def _walk(params, recf, reci, recl, subj, cfg, n_obs, max_seg, capacity, sens):
    """The event walk of :func:`simulate`; without ``sens`` the sensitivities are not
    propagated and ``jac`` is empty (the predictions are the same, bit for bit).

    Allocates the outputs and the work arrays; :func:`_records` walks with borrowed
    views of them (:func:`.borrow.borrow`), which this function keeps alive.
    """
    n, n_par = cfg[1], cfg[7]
    f = np.zeros(n_obs)
    jac = np.zeros((n_obs if sens else 0, max_seg, n_par))
    work = (
        np.zeros(n),  # amounts
        np.zeros((n, max_seg * n_par)),  # their sensitivities
        np.zeros(n),  # input rates
        np.zeros(n),  # initial state
        np.zeros((n, n_par)),  # its derivatives
        np.zeros(n),  # derivatives of a prediction: amounts
        np.zeros(n_par),  # and parameters
        np.zeros((capacity, 5)),  # pending events (time order)
        np.zeros((capacity, 2 * n_par)),  # their derivatives
    )
    _records(params, recf, reci, recl, subj, cfg, f, jac, work, _buffers(cfg), sens)
    return f, jac


@njit(cache=True, error_model="numpy")
def _records(params, recf, reci, recl, subj, cfg, f, jac, work, buf, sens):
    """The record loop of :func:`_walk` (every array borrowed: see :mod:`.borrow`)."""
    params, recf, reci, recl, subj, cfg = borrow((params, recf, reci, recl, subj, cfg))
    f, jac, buf = borrow((f, jac, buf))
    a, s, rates, x0, dx0, ga, gp, pend, pendv = borrow(work)
    n_par = cfg[7]
    for i in range(subj.shape[0] - 1):
        r0, r1, s0 = int(subj[i, 0]), int(subj[i + 1, 0]), int(subj[i, 1])
        ncol = (int(subj[i + 1, 1]) - s0) * n_par if sens else 0
        a[:] = 0.0
        s[:] = 0.0
        rates[:] = 0.0
        _reset(cfg, params[int(reci[r0, SEG])], recf[r0, 0], a, s, (int(reci[r0, SEG]) - s0) * n_par, x0, dx0)
        _new_subject(buf)
        head = count = 0
        t = recf[r0, 0]
        failed = False
        for rec in range(r0, r1):
            ti = recf[rec, 0]
            iseg, seg = int(reci[rec, ISEG]), int(reci[rec, SEG])
            t, head = _run_until(
                cfg, params[iseg], t, ti, a, s, rates, pend, pendv, head, count, ncol, (iseg - s0) * n_par, buf
            )
            p = params[seg]
            c0 = (seg - s0) * n_par
            if reci[rec, RESET]:
                _reset(cfg, p, ti, a, s, c0, x0, dx0)
                rates[:] = 0.0
                head = count = 0
                t = ti
            if reci[rec, DOSE]:
                count = _drop_applied(pend, pendv, head, count)
                head = 0
                count = _dose(
                    cfg,
                    p,
                    ti,
                    recf[rec, 1],
                    recf[rec, 2],
                    recf[rec, 3],
                    int(reci[rec, ADDL]),
                    int(reci[rec, SS]),
                    int(reci[rec, CMT]),
                    recl[rec] != 0,
                    a,
                    s,
                    rates,
                    pend,
                    pendv,
                    count,
                    c0,
                )
                if count < 0:
                    failed = True
                    break
                head = _apply_due(cfg, p, ti, a, s, rates, pend, pendv, head, count)
            obs = int(reci[rec, OBS])
            if obs >= 0:
                f[obs] = observe(cfg, p, ti, a, ga, gp, int(reci[rec, OUT]))
                if sens:
                    _observed_jacobian(jac, obs, seg - s0, ncol // n_par, s, ga, gp)
        if failed:
            for rec in range(r0, r1):
                if reci[rec, OBS] >= 0:
                    f[int(reci[rec, OBS])] = np.nan


@njit(cache=True, error_model="numpy")
def _observed_jacobian(jac, obs, own, n_seg, s, ga, gp):
    """Row ``obs`` of the Jacobian: ``ga`` through the sensitivities of ``n_seg``
    segments, plus ``gp`` on the observation's own segment ``own``."""
    n, n_par = s.shape[0], gp.shape[0]
    k = 0
    for sg in range(n_seg):
        for q in range(n_par):
            acc = 0.0
            for i in range(n):
                if ga[i] != 0.0:
                    acc += ga[i] * s[i, k]
            jac[obs, sg, q] = acc
            k += 1
    for q in range(n_par):
        jac[obs, own, q] += gp[q]


@njit(cache=True, error_model="numpy")
def simulate(params, recf, reci, recl, subj, cfg, n_obs, max_seg, capacity):
    """Predictions at every observation record and their Jacobians.

    Parameters
    ----------
    params : numpy.ndarray (n_segments, P)
        Individual parameters of every parameter segment (rows), in the column order
        of the design.
    recf, reci, recl : numpy.ndarray
        Record layout (module docstring).
    subj : numpy.ndarray (n_subjects + 1, 2)
        First record and first parameter segment of each subject (and the totals).
    cfg : numpy.ndarray of int
        ``kind, n_states, central, volume column, lag column, F column, n_kinetic, P``.
    n_obs, max_seg, capacity : int
        Number of observations, most segments in a subject, pending-list capacity.

    Returns
    -------
    f : numpy.ndarray (n_obs,)
        Central concentrations.
    jac : numpy.ndarray (n_obs, max_seg, P)
        ``jac[j, s, q] = d f_j / d params[first segment of j's subject + s, q]``.
    """
    return _walk(params, recf, reci, recl, subj, cfg, n_obs, max_seg, capacity, True)


@njit(cache=True, error_model="numpy")
def simulate_values(params, recf, reci, recl, subj, cfg, n_obs, max_seg, capacity):
    """Predictions only: :func:`simulate` without the sensitivities (the same ``f``, bit
    for bit, at a fraction of the cost; for Metropolis steps and importance sampling).

    Parameters and ``f`` as :func:`simulate`.
    """
    return _walk(params, recf, reci, recl, subj, cfg, n_obs, max_seg, capacity, False)[0]
