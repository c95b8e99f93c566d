# ruff: noqa: F821, F811
"""Integrators and the engine protocol of ODE models: a template (Numba source).

This file is not imported. :mod:`bayes_nlme.core.odegen` puts its text (below the
first marker) into a generated module after the model's own functions, which define

* ``N``, ``P``: numbers of states and parameters; ``K``: number of parameters in the
  right-hand side and ``SENS_COLS`` their columns (the others, such as ``F`` and a lag,
  have zero sensitivities over an interval and are not integrated); ``RTOL``,
  ``ATOL``, ``STEADY_TOL``;
* ``USES_T``: whether the equations use the time ``t``;
* ``_f(p, t, a, r, out)``: the right-hand side at time ``t`` plus the input rates (``out[:N]``);
* ``_sens(p, t, a, y, out, o)``: the right-hand side of the sensitivities at amounts ``a``
  with the sensitivities of ``y``, written from ``out[o]`` (generated with only the
  structurally non-zero Jacobian entries, unrolled);
* ``_fjac(p, t, a, J)``: the Jacobian with respect to the states (N x N);
* ``_fp(p, t, a, Jp)``: the Jacobian with respect to the parameters (N x P);
* ``_x0(p, t, x, dx)``: initial amounts and their parameter derivatives;
* ``_g(p, t, a, ga, gp, k)``: output ``k``, with its derivatives;

then the event engine's text (:mod:`bayes_nlme.core.engine`), which calls the protocol
functions defined here (``advance``, ``event_jump``, ``equilibrium``, ``initial_state``,
``observe``), then the text below the second marker: the engine's ``_buffers`` and
``_step`` again, with a solver workspace (work arrays allocated once per engine call,
the last accepted step size and the stiffness flag carried from one interval to the
next). Numba resolves a function's globals when it compiles it, so the engine's
functions call these later definitions.

The solver is chosen at run time by the engine's ``kind`` (``100 +`` 0 auto, 1
nonstiff, 2 stiff), so one compiled module serves all three.

The integrated system is the state with its forward sensitivities: ``y = (a, Phi,
S)`` with ``Phi = da/da(0)`` (N x N) and ``S = da/dp`` (N x K), ``Phi' = J Phi``,
``S' = J S + f_p``. Nonstiff: Dormand-Prince 5(4) (first same as last), the local error
controlled on the states (the sensitivities share the states' linearised dynamics and
their step sizes; their accuracy is checked against finite differences and closed forms
in the tests), with Hairer's stiffness test. Stiff: the L-stable Rosenbrock method of
``ode23s`` (Shampine and Reichelt 1997, order 2 with a third-order error estimate) on
the same system, with its exact block-triangular Jacobian (the coupling of the
sensitivities to the state by a directional difference), its error controlled on
every component (for equations that use ``t``, with the time derivative of the
right-hand side, by a forward difference). ``auto`` starts with Dormand-Prince and switches to the stiff method
when Hairer's test (``h |lambda| > 3.25`` at 15 accepted steps without 6 non-stiff
ones between) or the step limit says so; the next interval then starts stiff, until a
stiff interval's steps are all within the explicit method's stability region.
A failed integration (too many steps, step size underflow, non-finite values) gives
NaN amounts, so that the log density at that point is not finite.
"""

import numpy as np
from numba import njit

# ---- template below ----

M = N + N * N + N * K
NONSTIFF_STEPS = 3000
MAX_STEPS = 100000
STIFF_SIGNALS = 15
#: a state's tolerance floor, as a fraction of its largest amount so far in the subject
PEAK_FLOOR = 1e-3
#: the stiff method's relative tolerance, as a fraction of RTOL: its global error (order 2)
#: is not below its local error estimate the way Dormand-Prince's (order 5, local
#: extrapolation) is
STIFF_RTOL = 1e-2
# solver memory (mem): last accepted step (nonstiff, stiff), stiff flag, time reached,
# then the largest amount of each state so far (from PEAKS) and the weights of the
# error norm (from WEIGHTS)
H_NONSTIFF, H_STIFF, STIFF, T_REACHED, PEAKS = 0, 1, 2, 3, 4
WEIGHTS = PEAKS + N


@njit(cache=True, error_model="numpy")
def _workspace():
    """Work arrays of the integrators (rows of M) and the solver memory."""
    return np.zeros((18, M)), np.zeros(4 + N + M), np.empty((N, N)), np.empty((N, N))


@njit(cache=True, error_model="numpy")
def _aug(p, t, y, r, out):
    """Right-hand side of the state with its sensitivities at time ``t``."""
    _f(p, t, y, r, out)
    _sens(p, t, y, y, out, N)


@njit(cache=True, error_model="numpy")
def _norm(e, y0, y1, n, mem, rtol):
    """Weighted RMS norm of the first ``n`` components of ``e``.

    A state's tolerance is ``ATOL + rtol * max(|a|, PEAK_FLOOR * its peak)``. The error
    of a sensitivity is converted into the amount of its state that it moves: the error
    of ``Phi[i, j]`` times ``|a_j|`` at the interval's start, of ``S[i, q]`` times
    ``|p_q|`` (weights in ``mem``), and compared with state ``i``'s tolerance."""
    acc = 0.0
    for i in range(N):
        big = max(abs(y0[i]), abs(y1[i]), PEAK_FLOOR * mem[PEAKS + i])
        inv = 1.0 / (ATOL + rtol * big)
        part = e[i] * e[i]
        if n > N:
            c = N + i * N
            for j in range(N):
                v = e[c + j] * mem[WEIGHTS + c + j]
                part += v * v
            c = N + N * N + i * K
            for k in range(K):
                v = e[c + k] * mem[WEIGHTS + c + k]
                part += v * v
        acc += part * inv * inv
    return np.sqrt(acc / n)


@njit(cache=True, error_model="numpy")
def _peaks(y, mem):
    for i in range(N):
        mem[PEAKS + i] = max(mem[PEAKS + i], abs(y[i]))


@njit(cache=True, error_model="numpy")
def _weights(p, a, mem):
    """Weights of the sensitivities in :func:`_norm` for an interval from ``a``."""
    for i in range(N):
        for j in range(N):
            mem[WEIGHTS + N + i * N + j] = max(abs(a[j]), 1e-6 * mem[PEAKS + j])
        for k in range(K):
            mem[WEIGHTS + N + N * N + i * K + k] = abs(p[SENS_COLS[k]])


@njit(cache=True, error_model="numpy")
def _first_step(p, t0, y, r, f0, dt, y1, f1, order, n, mem, rtol):
    """Hairer's starting step size (one right-hand side evaluation)."""
    d0 = _norm(y, y, y, n, mem, rtol)
    d1 = _norm(f0, y, y, n, mem, rtol)
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    h0 = min(h0, dt)
    for i in range(M):
        y1[i] = y[i] + h0 * f0[i]
    _aug(p, t0 + h0, y1, r, f1)
    for i in range(M):
        y1[i] = f1[i] - f0[i]
    d2 = _norm(y1, y, y, n, mem, rtol) / h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1.0))
    return min(100 * h0, h1, dt)


# Dormand-Prince 5(4) tableau
_A21 = 0.2
_A31, _A32 = 3.0 / 40.0, 9.0 / 40.0
_A41, _A42, _A43 = 44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0
_A51, _A52, _A53, _A54 = 19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0
_A61, _A62, _A63, _A64, _A65 = 9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0
_B1, _B3, _B4, _B5, _B6 = 35.0 / 384.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0
_E1, _E3, _E4, _E5, _E6, _E7 = (
    71.0 / 57600.0,
    -71.0 / 16695.0,
    71.0 / 1920.0,
    -17253.0 / 339200.0,
    22.0 / 525.0,
    -1.0 / 40.0,
)


@njit(cache=True, error_model="numpy")
def _stiffness(h, k6, k7, ys, y1):
    """Hairer's estimate of ``h |lambda|`` from the last two stages (states only)."""
    num = 0.0
    den = 0.0
    for i in range(N):
        num += (k7[i] - k6[i]) ** 2
        den += (y1[i] - ys[i]) ** 2
    return h * np.sqrt(num / den) if den > 0.0 else 0.0


@njit(cache=True, error_model="numpy")
def _dopri(p, t0, y, r, dt, limit, detect, work, mem):
    """Dormand-Prince 5(4) from time ``t0`` over ``dt`` (in place). Returns the number of steps; -1 when
    it failed or needed more than ``limit`` steps; -2 when ``detect`` and the problem is
    stiff (``y`` then holds the state at ``mem[T_REACHED]``)."""
    k1, k2, k3, k4, k5, k6, k7 = work[0], work[1], work[2], work[3], work[4], work[5], work[6]
    ys, y1, e = work[7], work[8], work[9]
    _aug(p, t0, y, r, k1)
    h = mem[H_NONSTIFF]
    if h <= 0.0:
        h = _first_step(p, t0, y, r, k1, dt, ys, k2, 4.0, M, mem, RTOL)
    t = 0.0
    steps = 0
    signals = 0
    calm = 0
    mem[T_REACHED] = 0.0
    while t < dt:
        if steps >= limit or not np.isfinite(h) or h <= 1e-14 * max(dt, 1.0):
            return -1
        free = h
        last = t + h >= dt * (1.0 - 1e-12)
        if last:
            h = dt - t
        for i in range(M):
            ys[i] = y[i] + h * _A21 * k1[i]
        _aug(p, t0 + t + 0.2 * h, ys, r, k2)
        for i in range(M):
            ys[i] = y[i] + h * (_A31 * k1[i] + _A32 * k2[i])
        _aug(p, t0 + t + 0.3 * h, ys, r, k3)
        for i in range(M):
            ys[i] = y[i] + h * (_A41 * k1[i] + _A42 * k2[i] + _A43 * k3[i])
        _aug(p, t0 + t + 0.8 * h, ys, r, k4)
        for i in range(M):
            ys[i] = y[i] + h * (_A51 * k1[i] + _A52 * k2[i] + _A53 * k3[i] + _A54 * k4[i])
        _aug(p, t0 + t + 8.0 / 9.0 * h, ys, r, k5)
        for i in range(M):
            ys[i] = y[i] + h * (_A61 * k1[i] + _A62 * k2[i] + _A63 * k3[i] + _A64 * k4[i] + _A65 * k5[i])
        _aug(p, t0 + t + h, ys, r, k6)
        for i in range(M):
            y1[i] = y[i] + h * (_B1 * k1[i] + _B3 * k3[i] + _B4 * k4[i] + _B5 * k5[i] + _B6 * k6[i])
        _aug(p, t0 + t + h, y1, r, k7)
        for i in range(M):
            e[i] = h * (_E1 * k1[i] + _E3 * k3[i] + _E4 * k4[i] + _E5 * k5[i] + _E6 * k6[i] + _E7 * k7[i])
        err = _norm(e, y, y1, M, mem, RTOL)
        steps += 1
        finite = np.isfinite(err)
        if finite and err <= 1.0:
            for i in range(M):
                if not np.isfinite(y1[i]):
                    finite = False
        if not finite:
            h *= 0.2
            continue
        if err <= 1.0:
            if detect:
                if _stiffness(h, k6, k7, ys, y1) > 3.25:
                    calm = 0
                    signals += 1
                else:
                    calm += 1
                    if calm >= 6:
                        signals = 0
            t = dt if last else t + h
            for i in range(M):
                y[i] = y1[i]
                k1[i] = k7[i]
            _peaks(y, mem)
            fac = 5.0 if err == 0.0 else min(5.0, max(0.2, 0.9 * err**-0.2))
            h *= fac
            mem[H_NONSTIFF] = max(h, free) if last else h
            if detect and signals >= STIFF_SIGNALS and t < dt:
                mem[T_REACHED] = t
                return -2
        else:
            h *= max(0.2, 0.9 * err**-0.2)
    return steps


@njit(cache=True, error_model="numpy")
def _lu(a, piv):
    """LU factors with partial pivoting (in place) and the pivots."""
    n = a.shape[0]
    for c in range(n):
        piv[c] = c
    for c in range(n):
        best = c
        for i in range(c + 1, n):
            if abs(a[i, c]) > abs(a[best, c]):
                best = i
        if best != c:
            for j in range(n):
                a[c, j], a[best, j] = a[best, j], a[c, j]
            piv[c], piv[best] = piv[best], piv[c]
        d = a[c, c]
        if d == 0.0:
            continue
        for i in range(c + 1, n):
            a[i, c] /= d
            f = a[i, c]
            if f != 0.0:
                for j in range(c + 1, n):
                    a[i, j] -= f * a[c, j]


@njit(cache=True, error_model="numpy")
def _lu_solve(lu, piv, b, x):
    n = lu.shape[0]
    for i in range(n):
        x[i] = b[int(piv[i])]
    for i in range(n):
        for j in range(i):
            x[i] -= lu[i, j] * x[j]
    for i in range(n - 1, -1, -1):
        for j in range(i + 1, n):
            x[i] -= lu[i, j] * x[j]
        x[i] /= lu[i, i]


@njit(cache=True, error_model="numpy")
def _wsolve(p, t, y, lu, piv, hd, v, x, base, work):
    """``x = W^-1 v`` for the augmented ``W = I - h d J_aug`` (block lower triangular).

    ``base``: the sensitivity right-hand side at ``y`` (from index N); ``work``: rows
    9.. of the workspace."""
    xa, b, xs, probe, coupling = work[9], work[10], work[11], work[12], work[13]
    _lu_solve(lu, piv, v, xa)
    for i in range(N):
        x[i] = xa[i]
    size = 0.0
    scale = 0.0
    for i in range(N):
        size = max(size, abs(xa[i]))
        scale = max(scale, abs(y[i]))
    coupling[:] = 0.0
    if size > 0.0:
        eps = 1.4901161193847656e-08 * (1.0 + scale) / size
        for i in range(N):
            probe[i] = y[i] + eps * xa[i]
        _sens(p, t, probe, y, coupling, N)
        for i in range(N, M):
            coupling[i] = (coupling[i] - base[i]) / eps
    for col in range(N + K):
        for i in range(N):
            idx = N + i * N + col if col < N else N + N * N + i * K + (col - N)
            b[i] = v[idx] + hd * coupling[idx]
        _lu_solve(lu, piv, b, xs)
        for i in range(N):
            idx = N + i * N + col if col < N else N + N * N + i * K + (col - N)
            x[idx] = xs[i]


@njit(cache=True, error_model="numpy")
def _time_term(p, t, y, r, f0, hd, tdot):
    """``h d`` times the time derivative of the right-hand side at ``(t, y)`` (forward
    difference; ``f0`` is the right-hand side there), into ``tdot``."""
    delta = 1.4901161193847656e-08 * max(1.0, abs(t))
    _aug(p, t + delta, y, r, tdot)
    for i in range(M):
        tdot[i] = hd * (tdot[i] - f0[i]) / delta


@njit(cache=True, error_model="numpy")
def _rosenbrock(p, t0, y, r, dt, work, mem, J, w):
    """The ``ode23s`` Rosenbrock method from time ``t0`` over ``dt`` (in place); steps or -1. Sets the
    stiff flag of ``mem`` unless every step stayed within Dormand-Prince's stability
    region (``h ||J|| < 3.3``)."""
    d = 1.0 / (2.0 + np.sqrt(2.0))
    e32 = 6.0 + np.sqrt(2.0)
    f0, f1, f2, k1, k2, k3, y1, v, base = (
        work[0],
        work[1],
        work[2],
        work[3],
        work[4],
        work[5],
        work[6],
        work[7],
        work[8],
    )
    piv, tdot = work[14], work[17]
    _aug(p, t0, y, r, f0)
    h = mem[H_STIFF]
    if h <= 0.0:
        h = _first_step(p, t0, y, r, f0, dt, k1, k2, 2.0, M, mem, RTOL * STIFF_RTOL)
    t = 0.0
    steps = 0
    stiff = False
    while t < dt:
        if steps >= MAX_STEPS or not np.isfinite(h) or h <= 1e-14 * max(dt, 1.0):
            return -1
        free = h
        last = t + h >= dt * (1.0 - 1e-12)
        if last:
            h = dt - t
        _aug(p, t0 + t, y, r, f0)
        base[:] = f0
        _fjac(p, t0 + t, y, J)
        if USES_T:
            _time_term(p, t0 + t, y, r, f0, h * d, tdot)
        norm_j = 0.0
        for i in range(N):
            row = 0.0
            for j in range(N):
                w[i, j] = -h * d * J[i, j]
                row += abs(J[i, j])
            w[i, i] += 1.0
            norm_j = max(norm_j, row)
        _lu(w, piv)
        for i in range(M):
            v[i] = f0[i] + tdot[i] if USES_T else f0[i]
        _wsolve(p, t0 + t, y, w, piv, h * d, v, k1, base, work)
        for i in range(M):
            y1[i] = y[i] + 0.5 * h * k1[i]
        _aug(p, t0 + t + 0.5 * h, y1, r, f1)
        for i in range(M):
            v[i] = f1[i] - k1[i]
        _wsolve(p, t0 + t, y, w, piv, h * d, v, k2, base, work)
        for i in range(M):
            k2[i] += k1[i]
            y1[i] = y[i] + h * k2[i]
        _aug(p, t0 + t + h, y1, r, f2)
        for i in range(M):
            v[i] = f2[i] - e32 * (k2[i] - f1[i]) - 2.0 * (k1[i] - f0[i])
            if USES_T:
                v[i] += tdot[i]
        _wsolve(p, t0 + t, y, w, piv, h * d, v, k3, base, work)
        for i in range(M):
            v[i] = (h / 6.0) * (k1[i] - 2.0 * k2[i] + k3[i])
        err = _norm(v, y, y1, M, mem, RTOL * STIFF_RTOL)
        steps += 1
        if not np.isfinite(err):
            h *= 0.2
            continue
        if err <= 1.0:
            if h * norm_j >= 3.3:
                stiff = True
            t = dt if last else t + h
            y[:] = y1
            _peaks(y, mem)
            h *= 5.0 if err == 0.0 else min(5.0, max(0.2, 0.8 * err ** (-1.0 / 3.0)))
            mem[H_STIFF] = max(h, free) if last else h
        else:
            h *= max(0.2, 0.8 * err ** (-1.0 / 3.0))
    mem[STIFF] = 1.0 if stiff else 0.0
    return steps


@njit(cache=True, error_model="numpy")
def _solve(kind, p, t0, dt, y, r, work, mem, J, w):
    """Integrate the augmented state ``y`` over ``dt`` with the engine's solver; False
    when the integration failed."""
    solver = kind - 100
    if solver == 2 or (solver == 0 and mem[STIFF] != 0.0):
        return _rosenbrock(p, t0, y, r, dt, work, mem, J, w) >= 0
    start = work[15]
    start[:] = y
    steps = _dopri(p, t0, y, r, dt, NONSTIFF_STEPS if solver == 0 else MAX_STEPS, solver == 0, work, mem)
    if steps == -2:  # stiff: the rest of the interval with the stiff method
        mem[STIFF] = 1.0
        return _rosenbrock(p, t0 + mem[T_REACHED], y, r, dt - mem[T_REACHED], work, mem, J, w) >= 0
    if steps < 0 and solver == 0:
        y[:] = start
        ok = _rosenbrock(p, t0, y, r, dt, work, mem, J, w) >= 0
        mem[STIFF] = 1.0
        return ok
    return steps >= 0


@njit(cache=True, error_model="numpy")
def _advance(kind, p, t0, dt, a, r, a_new, phi, jp, space):
    """:func:`advance` with a solver workspace (:func:`_workspace`)."""
    work, mem, J, w = space
    y = work[16]
    y[:] = 0.0
    for i in range(N):
        y[i] = a[i]
        y[N + i * N + i] = 1.0
    _peaks(y, mem)
    _weights(p, a, mem)
    if not _solve(kind, p, t0, dt, y, r, work, mem, J, w):
        y[:] = np.nan
        mem[H_NONSTIFF] = 0.0
        mem[H_STIFF] = 0.0
    for i in range(N):
        a_new[i] = y[i]
        for j in range(N):
            phi[i, j] = y[N + i * N + j]
        for q in range(P):
            jp[i, q] = 0.0
        for k in range(K):
            jp[i, SENS_COLS[k]] = y[N + N * N + i * K + k]


@njit(cache=True, error_model="numpy")
def advance(kind, p, dt, a, r, a_new, phi, jp, n, n_par):
    """The engine protocol: amounts after ``dt``, ``d a_new / d a`` and ``d a_new / d p``.

    Not called: the ``_step`` below (which knows the absolute time) replaces the
    engine's; kept so that the engine's text compiles unchanged."""
    _advance(kind, p, 0.0, dt, a, r, a_new, phi, jp, _workspace())


@njit(cache=True, error_model="numpy")
def event_jump(cfg, p, t, a, r, cmt, bolus, drate, diff):
    """Right-hand side before an event at time ``t`` minus after it (``a``, ``r``: after)."""
    before = a.copy()
    rb = r.copy()
    before[cmt] -= bolus
    rb[cmt] -= drate
    after = np.empty(N)
    _f(p, t, before, rb, diff)
    _f(p, t, a, r, after)
    for i in range(N):
        diff[i] -= after[i]


@njit(cache=True, error_model="numpy")
def equilibrium(cfg, p, cmt, rate):
    """Steady state of a constant infusion (root of the right-hand side, Newton from
    the initial state) and its parameter derivatives (N, P). Steady state is refused for
    equations that use ``t`` (data checks), so the time here is 0."""
    x = np.zeros(N)
    dx = np.zeros((N, P))
    _x0(p, 0.0, x, dx)
    r = np.zeros(N)
    r[cmt] = rate
    fx = np.empty(N)
    J = np.empty((N, N))
    for _ in range(100):
        _f(p, 0.0, x, r, fx)
        _fjac(p, 0.0, x, J)
        step = np.linalg.solve(J, fx)
        x = x - step
        size = 0.0
        err = 0.0
        for i in range(N):
            size = max(size, abs(x[i]))
            err = max(err, abs(step[i]))
        if err <= 1e-13 * (1.0 + size) or not np.isfinite(err):
            break
    _fjac(p, 0.0, x, J)
    Jp = np.empty((N, P))
    _fp(p, 0.0, x, Jp)
    return x, np.linalg.solve(J, -Jp)


@njit(cache=True, error_model="numpy")
def initial_state(cfg, p, t, x, dx):
    """Initial amounts at time ``t`` (the ``initial`` table) and their parameter derivatives."""
    _x0(p, t, x, dx)


@njit(cache=True, error_model="numpy")
def observe(cfg, p, t, a, ga, gp, k):
    """The model's output ``k`` (the row's output) at an observation at time ``t``, with its
    derivatives."""
    return _g(p, t, a, ga, gp, k)


# ---- after the engine ----


@njit(cache=True, error_model="numpy")
def _buffers(cfg):
    """Work arrays of :func:`_step`, with the solver workspace."""
    n, n_kin = cfg[1], cfg[6]
    return np.empty(n), np.empty((n, n)), np.zeros((n, n_kin)), np.empty(n), _workspace()


@njit(cache=True, error_model="numpy")
def _new_subject(buf):
    """Clear the solver memory (step sizes, stiff flag, peaks) at a subject's start."""
    buf[4][1][:] = 0.0


@njit(cache=True, error_model="numpy")
def _step(cfg, p, t0, dt, a, s, r, c0, ncol, buf):
    """The engine's ``_step`` (same contract), integrating with the workspace of ``buf``."""
    kind, n, n_kin = cfg[0], cfg[1], cfg[6]
    if dt <= 0.0:
        return
    a_new, phi, jp, tmp, space = buf
    _advance(kind, p, t0, dt, a, r, a_new, phi, jp, space)
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
