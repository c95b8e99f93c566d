# ruff: noqa: F821
"""Integrators and the engine protocol of ODE models: a template (Numba source).

This file is not imported. :mod:`bayes_nlme.core.odegen` puts its text (below the
marker) into a generated module after the model's own functions, which define

* ``N``, ``P``: numbers of states and parameters; ``RTOL``, ``ATOL``, ``STEADY_TOL``;
* ``_f(p, a, r, out)``: the right-hand side plus the input rates;
* ``_fjac(p, a, J)``: its Jacobian with respect to the states (N x N);
* ``_fp(p, a, Jp)``: its Jacobian with respect to the parameters (N x P);
* ``_x0(p, x, dx)``: initial amounts and their parameter derivatives;
* ``_g(p, a, ga, gp, k)``: output ``k``, with its derivatives;

and then the event engine's text (:mod:`bayes_nlme.core.engine`), which calls the
protocol functions defined here: ``advance``, ``event_jump``, ``equilibrium``,
``initial_state`` and ``observe``. The solver is chosen at run time by the engine's
``kind`` (``100 + `` 0 auto, 1 nonstiff, 2 stiff), so one compiled module serves all three.

The integrated system is the state with its forward sensitivities: ``y = (a, Phi,
S)`` with ``Phi = da/da(0)`` (N x N) and ``S = da/dp`` (N x P), ``Phi' = J Phi``,
``S' = J S + f_p``. Nonstiff: Dormand-Prince 5(4) with the error of every component
controlled. Stiff: the L-stable Rosenbrock method of ``ode23s`` (Shampine and Reichelt
1997, order 2 with a third-order error estimate) on the same system, with its exact
block-triangular Jacobian (the coupling of the sensitivities to the state by a
directional difference). ``auto`` starts with Dormand-Prince and switches to the stiff
method for an interval that takes more than ``NONSTIFF_STEPS`` steps.
A failed integration (too many steps, step size underflow, non-finite values) gives
NaN amounts, so that the log density at that point is not finite.
"""

import numpy as np
from numba import njit

# ---- template below ----

M = N + N * N + N * P
NONSTIFF_STEPS = 3000
MAX_STEPS = 200000


@njit(cache=True, error_model="numpy")
def _aug(p, y, r, out, J, Jp, fa):
    """Right-hand side of the state with its sensitivities."""
    _f(p, y[:N], r, fa)
    _fjac(p, y[:N], J)
    _fp(p, y[:N], Jp)
    for i in range(N):
        out[i] = fa[i]
    for i in range(N):
        for j in range(N):
            acc = 0.0
            for k in range(N):
                acc += J[i, k] * y[N + k * N + j]
            out[N + i * N + j] = acc
        for q in range(P):
            acc = Jp[i, q]
            for k in range(N):
                acc += J[i, k] * y[N + N * N + k * P + q]
            out[N + N * N + i * P + q] = acc


@njit(cache=True, error_model="numpy")
def _norm(e, y0, y1):
    acc = 0.0
    for i in range(M):
        sc = ATOL + RTOL * max(abs(y0[i]), abs(y1[i]))
        acc += (e[i] / sc) ** 2
    return np.sqrt(acc / M)


@njit(cache=True, error_model="numpy")
def _first_step(p, y, r, f0, dt, work, J, Jp, fa):
    d0 = _norm(y, y, y)
    d1 = _norm(f0, y, y)
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    h0 = min(h0, dt)
    y1 = y + h0 * f0
    _aug(p, y1, r, work, J, Jp, fa)
    d2 = _norm(work - f0, y, y) / h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** 0.2
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
def _dopri(p, y, r, dt, limit):
    """Dormand-Prince 5(4) over ``dt`` (in place); returns the number of steps, or -1
    when it failed or needed more than ``limit`` steps."""
    J = np.empty((N, N))
    Jp = np.empty((N, P))
    fa = np.empty(N)
    k1, k2, k3, k4 = np.empty(M), np.empty(M), np.empty(M), np.empty(M)
    k5, k6, k7 = np.empty(M), np.empty(M), np.empty(M)
    ys, y1 = np.empty(M), np.empty(M)
    _aug(p, y, r, k1, J, Jp, fa)
    h = _first_step(p, y, r, k1, dt, k2, J, Jp, fa)
    t = 0.0
    steps = 0
    while t < dt:
        if steps >= limit or not np.isfinite(h) or h <= 1e-14 * max(dt, 1.0):
            return -1
        if t + h >= dt * (1.0 - 1e-12):
            h = dt - t
        for i in range(M):
            ys[i] = y[i] + h * _A21 * k1[i]
        _aug(p, ys, r, k2, J, Jp, fa)
        for i in range(M):
            ys[i] = y[i] + h * (_A31 * k1[i] + _A32 * k2[i])
        _aug(p, ys, r, k3, J, Jp, fa)
        for i in range(M):
            ys[i] = y[i] + h * (_A41 * k1[i] + _A42 * k2[i] + _A43 * k3[i])
        _aug(p, ys, r, k4, J, Jp, fa)
        for i in range(M):
            ys[i] = y[i] + h * (_A51 * k1[i] + _A52 * k2[i] + _A53 * k3[i] + _A54 * k4[i])
        _aug(p, ys, r, k5, J, Jp, fa)
        for i in range(M):
            ys[i] = y[i] + h * (_A61 * k1[i] + _A62 * k2[i] + _A63 * k3[i] + _A64 * k4[i] + _A65 * k5[i])
        _aug(p, ys, r, k6, J, Jp, fa)
        for i in range(M):
            y1[i] = y[i] + h * (_B1 * k1[i] + _B3 * k3[i] + _B4 * k4[i] + _B5 * k5[i] + _B6 * k6[i])
        _aug(p, y1, r, k7, J, Jp, fa)
        acc = 0.0
        for i in range(M):
            e = h * (_E1 * k1[i] + _E3 * k3[i] + _E4 * k4[i] + _E5 * k5[i] + _E6 * k6[i] + _E7 * k7[i])
            sc = ATOL + RTOL * max(abs(y[i]), abs(y1[i]))
            acc += (e / sc) ** 2
        err = np.sqrt(acc / M)
        steps += 1
        if not np.isfinite(err):
            h *= 0.2
            continue
        if err <= 1.0:
            t += h
            for i in range(M):
                y[i] = y1[i]
                k1[i] = k7[i]
            fac = 5.0 if err == 0.0 else min(5.0, max(0.2, 0.9 * err**-0.2))
        else:
            fac = max(0.2, 0.9 * err**-0.2)
        h *= fac
    return steps


@njit(cache=True, error_model="numpy")
def _lu(a):
    """LU factors with partial pivoting (in place) and the pivots."""
    n = a.shape[0]
    piv = np.arange(n)
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
    return piv


@njit(cache=True, error_model="numpy")
def _lu_solve(lu, piv, b, x):
    n = lu.shape[0]
    for i in range(n):
        x[i] = b[piv[i]]
    for i in range(n):
        for j in range(i):
            x[i] -= lu[i, j] * x[j]
    for i in range(n - 1, -1, -1):
        for j in range(i + 1, n):
            x[i] -= lu[i, j] * x[j]
        x[i] /= lu[i, i]


@njit(cache=True, error_model="numpy")
def _sens_rhs(p, a, y, out, J, Jp):
    """Sensitivity part of :func:`_aug` at amounts ``a`` with the sensitivities of ``y``."""
    _fjac(p, a, J)
    _fp(p, a, Jp)
    for i in range(N):
        for j in range(N):
            acc = 0.0
            for k in range(N):
                acc += J[i, k] * y[N + k * N + j]
            out[i * N + j] = acc
        for q in range(P):
            acc = Jp[i, q]
            for k in range(N):
                acc += J[i, k] * y[N + N * N + k * P + q]
            out[N * N + i * P + q] = acc


@njit(cache=True, error_model="numpy")
def _wsolve(p, y, lu, piv, hd, v, x, base, work, J, Jp):
    """``x = W^-1 v`` for the augmented ``W = I - h d J_aug`` (block lower triangular)."""
    xa = np.empty(N)
    _lu_solve(lu, piv, v[:N], xa)
    x[:N] = xa
    size = 0.0
    scale = 0.0
    for i in range(N):
        size = max(size, abs(xa[i]))
        scale = max(scale, abs(y[i]))
    coupling = np.zeros(M - N)
    if size > 0.0:
        eps = 1.4901161193847656e-08 * (1.0 + scale) / size
        _sens_rhs(p, y[:N] + eps * xa, y, work, J, Jp)
        for i in range(M - N):
            coupling[i] = (work[i] - base[i]) / eps
    b = np.empty(N)
    xs = np.empty(N)
    for col in range(N + P):
        for i in range(N):
            if col < N:
                idx = N + i * N + col
            else:
                idx = N + N * N + i * P + (col - N)
            b[i] = v[idx] + hd * coupling[idx - N]
        _lu_solve(lu, piv, b, xs)
        for i in range(N):
            if col < N:
                x[N + i * N + col] = xs[i]
            else:
                x[N + N * N + i * P + (col - N)] = xs[i]


@njit(cache=True, error_model="numpy")
def _rosenbrock(p, y, r, dt):
    """The ``ode23s`` Rosenbrock method over ``dt`` (in place); steps or -1."""
    d = 1.0 / (2.0 + np.sqrt(2.0))
    e32 = 6.0 + np.sqrt(2.0)
    J = np.empty((N, N))
    Jp = np.empty((N, P))
    fa = np.empty(N)
    f0, f1, f2 = np.empty(M), np.empty(M), np.empty(M)
    k1, k2, k3 = np.empty(M), np.empty(M), np.empty(M)
    base = np.empty(M - N)
    work = np.empty(M - N)
    v = np.empty(M)
    _aug(p, y, r, f0, J, Jp, fa)
    h = _first_step(p, y, r, f0, dt, k1, J, Jp, fa)
    t = 0.0
    steps = 0
    while t < dt:
        if steps >= MAX_STEPS or not np.isfinite(h) or h <= 1e-14 * max(dt, 1.0):
            return -1
        if t + h >= dt * (1.0 - 1e-12):
            h = dt - t
        _aug(p, y, r, f0, J, Jp, fa)
        _sens_rhs(p, y[:N], y, base, J, Jp)
        _fjac(p, y[:N], J)
        w = -h * d * J
        for i in range(N):
            w[i, i] += 1.0
        piv = _lu(w)
        _wsolve(p, y, w, piv, h * d, f0, k1, base, work, J, Jp)
        _aug(p, y + 0.5 * h * k1, r, f1, J, Jp, fa)
        _wsolve(p, y, w, piv, h * d, f1 - k1, k2, base, work, J, Jp)
        k2 += k1
        y1 = y + h * k2
        _aug(p, y1, r, f2, J, Jp, fa)
        v[:] = f2 - e32 * (k2 - f1) - 2.0 * (k1 - f0)
        _wsolve(p, y, w, piv, h * d, v, k3, base, work, J, Jp)
        e = (h / 6.0) * (k1 - 2.0 * k2 + k3)
        err = _norm(e, y, y1)
        steps += 1
        if not np.isfinite(err):
            h *= 0.2
            continue
        if err <= 1.0:
            t += h
            y[:] = y1
            fac = 5.0 if err == 0.0 else min(5.0, max(0.2, 0.8 * err ** (-1.0 / 3.0)))
        else:
            fac = max(0.2, 0.8 * err ** (-1.0 / 3.0))
        h *= fac
    return steps


@njit(cache=True, error_model="numpy")
def advance(kind, p, dt, a, r, a_new, phi, jp, n, n_par):
    """The engine protocol: amounts after ``dt``, ``d a_new / d a`` and ``d a_new / d p``."""
    y = np.zeros(M)
    for i in range(N):
        y[i] = a[i]
        y[N + i * N + i] = 1.0
    ok = True
    solver = kind - 100
    if solver == 2:
        ok = _rosenbrock(p, y, r, dt) >= 0
    else:
        start = y.copy()
        steps = _dopri(p, y, r, dt, NONSTIFF_STEPS if solver == 0 else MAX_STEPS)
        if steps < 0 and solver == 0:
            y[:] = start
            ok = _rosenbrock(p, y, r, dt) >= 0
        else:
            ok = steps >= 0
    if not ok:
        y[:] = np.nan
    for i in range(N):
        a_new[i] = y[i]
        for j in range(N):
            phi[i, j] = y[N + i * N + j]
        for q in range(P):
            jp[i, q] = y[N + N * N + i * P + q]


@njit(cache=True, error_model="numpy")
def event_jump(cfg, p, a, r, cmt, bolus, drate, diff):
    """Right-hand side before an event minus after it (``a``, ``r``: after)."""
    before = a.copy()
    rb = r.copy()
    before[cmt] -= bolus
    rb[cmt] -= drate
    after = np.empty(N)
    _f(p, before, rb, diff)
    _f(p, a, r, after)
    for i in range(N):
        diff[i] -= after[i]


@njit(cache=True, error_model="numpy")
def equilibrium(cfg, p, cmt, rate):
    """Steady state of a constant infusion (root of the right-hand side, Newton from
    the initial state) and its parameter derivatives (N, P)."""
    x = np.zeros(N)
    dx = np.zeros((N, P))
    _x0(p, x, dx)
    r = np.zeros(N)
    r[cmt] = rate
    fx = np.empty(N)
    J = np.empty((N, N))
    for _ in range(100):
        _f(p, x, r, fx)
        _fjac(p, x, J)
        step = np.linalg.solve(J, fx)
        x = x - step
        size = 0.0
        err = 0.0
        for i in range(N):
            size = max(size, abs(x[i]))
            err = max(err, abs(step[i]))
        if err <= 1e-13 * (1.0 + size) or not np.isfinite(err):
            break
    _fjac(p, x, J)
    Jp = np.empty((N, P))
    _fp(p, x, Jp)
    return x, np.linalg.solve(J, -Jp)


@njit(cache=True, error_model="numpy")
def initial_state(cfg, p, x, dx):
    """Initial amounts (the ``initial`` table) and their parameter derivatives."""
    _x0(p, x, dx)


@njit(cache=True, error_model="numpy")
def observe(cfg, p, a, ga, gp, k):
    """The model's output ``k`` (the row's output) at an observation, with its derivatives."""
    return _g(p, a, ga, gp, k)
