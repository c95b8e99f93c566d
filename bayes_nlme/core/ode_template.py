# ruff: noqa: F821
"""Integrators and the engine protocol of ODE models: a template (Numba source).

This file is not imported. :mod:`bayes_nlme.core.odegen` puts its text (below the
marker) into a generated module after the model's own functions, which define

* ``N``, ``P``: numbers of states and parameters; ``RTOL``, ``ATOL``, ``STEADY_TOL``;
* ``_f(p, a, r, out)``: the right-hand side plus the input rates;
* ``_fjac(p, a, J)``: its Jacobian with respect to the states (N x N);
* ``_fp(p, a, Jp)``: its Jacobian with respect to the parameters (N x P);
* ``_x0(p, x, dx)``: initial amounts and their parameter derivatives;
* ``_g(p, a, ga, gp)``: the output, with its derivatives;

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


@njit(cache=True, error_model="numpy")
def _dopri(p, y, r, dt, limit):
    """Dormand-Prince 5(4) over ``dt`` (in place); returns the number of steps, or -1
    when it failed or needed more than ``limit`` steps."""
    J = np.empty((N, N))
    Jp = np.empty((N, P))
    fa = np.empty(N)
    k1, k2, k3, k4 = np.empty(M), np.empty(M), np.empty(M), np.empty(M)
    k5, k6, k7 = np.empty(M), np.empty(M), np.empty(M)
    _aug(p, y, r, k1, J, Jp, fa)
    h = _first_step(p, y, r, k1, dt, k2, J, Jp, fa)
    t = 0.0
    steps = 0
    while t < dt:
        if steps >= limit or not np.isfinite(h) or h <= 1e-14 * max(dt, 1.0):
            return -1
        if t + h >= dt * (1.0 - 1e-12):
            h = dt - t
        _aug(p, y + h * (0.2 * k1), r, k2, J, Jp, fa)
        _aug(p, y + h * (3.0 / 40.0 * k1 + 9.0 / 40.0 * k2), r, k3, J, Jp, fa)
        _aug(p, y + h * (44.0 / 45.0 * k1 - 56.0 / 15.0 * k2 + 32.0 / 9.0 * k3), r, k4, J, Jp, fa)
        _aug(
            p,
            y + h * (19372.0 / 6561.0 * k1 - 25360.0 / 2187.0 * k2 + 64448.0 / 6561.0 * k3 - 212.0 / 729.0 * k4),
            r,
            k5,
            J,
            Jp,
            fa,
        )
        _aug(
            p,
            y
            + h
            * (
                9017.0 / 3168.0 * k1
                - 355.0 / 33.0 * k2
                + 46732.0 / 5247.0 * k3
                + 49.0 / 176.0 * k4
                - 5103.0 / 18656.0 * k5
            ),
            r,
            k6,
            J,
            Jp,
            fa,
        )
        y1 = y + h * (
            35.0 / 384.0 * k1 + 500.0 / 1113.0 * k3 + 125.0 / 192.0 * k4 - 2187.0 / 6784.0 * k5 + 11.0 / 84.0 * k6
        )
        _aug(p, y1, r, k7, J, Jp, fa)
        e = h * (
            71.0 / 57600.0 * k1
            - 71.0 / 16695.0 * k3
            + 71.0 / 1920.0 * k4
            - 17253.0 / 339200.0 * k5
            + 22.0 / 525.0 * k6
            - 1.0 / 40.0 * k7
        )
        err = _norm(e, y, y1)
        steps += 1
        if not np.isfinite(err):
            h *= 0.2
            continue
        if err <= 1.0:
            t += h
            y[:] = y1
            k1[:] = k7
            fac = 5.0 if err == 0.0 else min(5.0, max(0.2, 0.9 * err ** -0.2))
        else:
            fac = max(0.2, 0.9 * err ** -0.2)
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
def observe(cfg, p, a, ga, gp):
    """The model's output at an observation, with its derivatives."""
    return _g(p, a, ga, gp)
