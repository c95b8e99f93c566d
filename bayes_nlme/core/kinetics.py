"""Linear compartment kinetics over one interval: the exact state transition and its
parameter derivatives (Numba).

Every built-in structural model is a linear system ``dA/dt = K(p) A + r`` with a
constant input rate ``r`` over an interval of length ``dt``. Over that interval

    A(dt) = Phi A(0) + Gamma r,   Phi = exp(K dt),   Gamma = int_0^dt exp(K s) ds.

:func:`advance` returns ``A(dt)``, ``Phi = dA(dt)/dA(0)`` and ``dA(dt)/dp`` (one column
per structural parameter). One-compartment models use closed forms whose divided
differences are evaluated stably (smooth at ``ka == k``). Two- and three-compartment
models use the eigen-decomposition of ``K`` (closed-form eigenvalues: the quadratic, or
the trigonometric roots of the cubic; Daleckii-Krein divided differences for the
derivatives), and, where two eigenvalues come within a relative ``1e-3`` of each other
(the eigenvectors then become ill-conditioned), the matrix exponential of the augmented
generator ``[[K, I], [0, 0]]`` and its Frechet derivatives (Van Loan's block form),
which is exact to rounding for any parameter values.

Model kinds (the ``kind`` argument) and parameter columns:

====  ========================  ==============================  =====================
kind  structural                parameters (columns)            states
====  ========================  ==============================  =====================
0     one_compartment_iv        CL, V                           central
1     one_compartment_oral      ka, CL, V                       depot, central
2     two_compartment_iv        CL, V1, Q, V2                   central, peripheral
3     two_compartment_oral      ka, CL, V1, Q, V2               depot, central, periph.
4     three_compartment_iv      CL, V1, Q2, V2, Q3, V3          central, p2, p3
5     three_compartment_oral    ka, CL, V1, Q2, V2, Q3, V3      depot, central, p2, p3
====  ========================  ==============================  =====================
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .dense import expm
from .eigen import _spectral, _three_eigen, _two_eigen, spectral_workspace
from .exp_integrals import _divided_known, _gamma

__all__ = [
    "rate_matrix",
    "advance",
    "workspace_size",
    "expm",
    "event_jump",
    "equilibrium",
    "initial_state",
    "observe",
    "STEADY_TOL",
]

#: Convergence tolerance (relative) of the steady-state Newton iteration of the engine.
STEADY_TOL = 1e-13


@njit(cache=True, error_model="numpy")
def _flow(K, dK, src, dst, q, v, iq, iv):
    """Add a first-order flow ``q / v`` from state ``src`` to ``dst`` (``dst < 0``: out)."""
    k = q / v
    K[src, src] -= k
    dK[iq, src, src] -= 1.0 / v
    dK[iv, src, src] += k / v
    if dst >= 0:
        K[dst, src] += k
        dK[iq, dst, src] += 1.0 / v
        dK[iv, dst, src] -= k / v


@njit(cache=True, error_model="numpy")
def rate_matrix(kind, p, K, dK):
    """Fill ``K`` (n x n) and ``dK`` (P x n x n, ``dK[j] = dK/dp_j``) for parameters ``p``.

    Parameters
    ----------
    kind : int
        Model kind (see the module docstring).
    p : numpy.ndarray
        Parameter values in the kind's column order (extra columns are ignored).
    K, dK : numpy.ndarray
        Output arrays, overwritten.
    """
    K[:] = 0.0
    dK[:] = 0.0
    oral = kind % 2 == 1
    o = 1 if oral else 0  # column offset of CL
    c = 1 if oral else 0  # central state
    if oral:
        K[0, 0] = -p[0]
        K[1, 0] = p[0]
        dK[0, 0, 0] = -1.0
        dK[0, 1, 0] = 1.0
    if kind <= 1:
        _flow(K, dK, c, -1, p[o], p[o + 1], o, o + 1)
    elif kind <= 3:
        cl, v1, q, v2 = p[o], p[o + 1], p[o + 2], p[o + 3]
        _flow(K, dK, c, -1, cl, v1, o, o + 1)
        _flow(K, dK, c, c + 1, q, v1, o + 2, o + 1)
        _flow(K, dK, c + 1, c, q, v2, o + 2, o + 3)
    else:
        cl, v1, q2, v2, q3, v3 = p[o], p[o + 1], p[o + 2], p[o + 3], p[o + 4], p[o + 5]
        _flow(K, dK, c, -1, cl, v1, o, o + 1)
        _flow(K, dK, c, c + 1, q2, v1, o + 2, o + 1)
        _flow(K, dK, c + 1, c, q2, v2, o + 2, o + 3)
        _flow(K, dK, c, c + 2, q3, v1, o + 4, o + 1)
        _flow(K, dK, c + 2, c, q3, v3, o + 4, o + 5)


@njit(cache=True, error_model="numpy", inline="always")
def _one_iv(p, dt, a, r, a_new, phi, jp):
    cl, v = p[0], p[1]
    k = cl / v
    e = np.exp(-k * dt)
    gam = dgam = 0.0
    if r[0] != 0.0:
        gam, dgam = _gamma(k, dt)
    a_new[0] = e * a[0] + gam * r[0]
    phi[0, 0] = e
    dk = -dt * e * a[0] + dgam * r[0]
    jp[0, 0] = dk / v
    jp[0, 1] = -dk * k / v


@njit(cache=True, error_model="numpy", inline="always")
def _one_oral(p, dt, a, r, a_new, phi, jp):
    ka, cl, v = p[0], p[1], p[2]
    k = cl / v
    ed = np.exp(-ka * dt)
    ec = np.exp(-k * dt)
    gd = dgd = gc = dgc = 0.0
    if r[0] != 0.0 or r[1] != 0.0:
        gd, dgd = _gamma(ka, dt)
        gc, dgc = _gamma(k, dt)
    div, ddiv_a, ddiv_b = _divided_known(ka, k, dt, ed, ec)
    w = ka * a[0] - r[0]
    a_new[0] = ed * a[0] + gd * r[0]
    a_new[1] = ec * a[1] + (r[1] + r[0]) * gc + w * div
    phi[0, 0] = ed
    phi[0, 1] = 0.0
    phi[1, 0] = ka * div
    phi[1, 1] = ec
    jp[0, 0] = -dt * ed * a[0] + dgd * r[0]
    jp[1, 0] = a[0] * div + w * ddiv_a
    dk = -dt * ec * a[1] + (r[1] + r[0]) * dgc + w * ddiv_b
    jp[0, 1] = 0.0
    jp[0, 2] = 0.0
    jp[1, 1] = dk / v
    jp[1, 2] = -dk * k / v


@njit(cache=True, error_model="numpy")
def workspace_size(n, n_par):
    """Length of the work array of :func:`advance` (``ws``) for ``n`` states and
    ``n_par`` kinetic parameters."""
    return (n_par + 2) * n * n + n + spectral_workspace(n)


@njit(cache=True, error_model="numpy")
def _general(kind, p, dt, a, r, a_new, phi, jp, n, n_par, ws):
    nn = n * n
    K = ws[:nn].reshape((n, n))
    dK = ws[nn : nn + n_par * nn].reshape((n_par, n, n))
    o = nn + n_par * nn
    vec = ws[o : o + nn].reshape((n, n))
    lam = ws[o + nn : o + nn + n]
    rate_matrix(kind, p, K, dK)
    if _two_eigen(kind, K, lam, vec) if kind <= 3 else _three_eigen(kind, K, lam, vec):
        _spectral(K, dK, lam, vec, dt, a, r, a_new, phi, jp, n, n_par, ws[o + nn + n :])
        return
    infusing = False
    for i in range(n):
        if r[i] != 0.0:
            infusing = True
    # the input rates need the augmented generator [[K, I], [0, 0]]; without them, K alone
    m = 2 * n if infusing else n
    big = np.zeros((2 * m, 2 * m))
    for i in range(n):
        for j in range(n):
            big[i, j] = K[i, j] * dt
            big[m + i, m + j] = K[i, j] * dt
        if infusing:
            big[i, n + i] = dt
            big[m + i, m + n + i] = dt
    for q in range(n_par):
        for i in range(n):
            for j in range(n):
                big[i, m + j] = dK[q, i, j] * dt
        e = expm(big)
        if q == 0:
            for i in range(n):
                s = 0.0
                for j in range(n):
                    phi[i, j] = e[i, j]
                    s += e[i, j] * a[j]
                    if infusing:
                        s += e[i, n + j] * r[j]
                a_new[i] = s
        for i in range(n):
            s = 0.0
            for j in range(n):
                s += e[i, m + j] * a[j]
                if infusing:
                    s += e[i, m + n + j] * r[j]
            jp[i, q] = s


@njit(cache=True, error_model="numpy", inline="always")
def advance(kind, p, dt, a, r, a_new, phi, jp, n, n_par, ws):
    """Advance the amounts over ``dt`` with constant input rates ``r``.

    Parameters
    ----------
    kind : int
        Model kind (module docstring).
    p : numpy.ndarray
        Parameters (kind column order).
    dt : float
        Interval length, ``>= 0``.
    a, r : numpy.ndarray (n,)
        Amounts at the start and input rates.
    a_new : numpy.ndarray (n,)
        Output: amounts at the end.
    phi : numpy.ndarray (n, n)
        Output: ``d a_new / d a``.
    jp : numpy.ndarray (n, P)
        Output: ``d a_new / d p`` for the first ``n_par`` columns (others untouched).
    n, n_par : int
        Number of states and of kinetic parameters.
    ws : numpy.ndarray
        Work array of at least :func:`workspace_size` elements (two- and
        three-compartment models; no allocation per interval).
    """
    if kind == 0:
        _one_iv(p, dt, a, r, a_new, phi, jp)
    elif kind == 1:
        _one_oral(p, dt, a, r, a_new, phi, jp)
    else:
        _general(kind, p, dt, a, r, a_new, phi, jp, n, n_par, ws)


# ----------------------------------------------------------------------------- protocol
# The engine (engine.py) calls only ``advance`` and the four functions below; an ODE
# model (core/odegen.py) provides its own implementations with the same signatures.


@njit(cache=True, error_model="numpy")
def event_jump(cfg, p, t, a, r, cmt, bolus, drate, diff):
    """Right-hand side before an event at time ``t`` minus after it, into ``diff`` (n,).

    The event added ``bolus`` to the amount and ``drate`` to the input rate of state
    ``cmt``; ``a`` and ``r`` are the amounts and rates after it.
    """
    n = cfg[1]
    K = np.zeros((n, n))
    dK = np.zeros((cfg[6], n, n))
    rate_matrix(cfg[0], p, K, dK)
    for i in range(n):
        diff[i] = -bolus * K[i, cmt]
    diff[cmt] -= drate


@njit(cache=True, error_model="numpy")
def equilibrium(cfg, p, cmt, rate):
    """Amounts at the steady state of a constant infusion (``K x + rate e_cmt = 0``)
    and their parameter derivatives (n, P)."""
    n, n_kin, n_par = cfg[1], cfg[6], cfg[7]
    K = np.zeros((n, n))
    dK = np.zeros((n_kin, n, n))
    rate_matrix(cfg[0], p, K, dK)
    u = np.zeros(n)
    u[cmt] = -rate
    x = np.linalg.solve(K, u)
    rhs = np.zeros((n, n_par))
    for q in range(n_kin):
        rhs[:, q] = -(dK[q] @ x)
    return x, np.linalg.solve(K, rhs)


@njit(cache=True, error_model="numpy")
def initial_state(cfg, p, t, x, dx):
    """Amounts at the start of a subject and after a reset at time ``t`` (``x`` (n,)) and
    their parameter derivatives (``dx`` (n, P)): zero for the linear models."""
    x[:] = 0.0
    dx[:] = 0.0


@njit(cache=True, error_model="numpy")
def observe(cfg, p, t, a, ga, gp, k):
    """The prediction at an observation at time ``t``: the central concentration
    ``a[central] / V``.

    ``ga`` (n,) and ``gp`` (P,) receive its derivatives with respect to the amounts and
    the parameters. ``k`` (the row's output) is unused: a built-in model's ``[outputs]``
    are applied to this concentration afterwards (:mod:`.outputs`).
    """
    cen, vcol = cfg[2], cfg[3]
    v = p[vcol]
    ga[:] = 0.0
    gp[:] = 0.0
    ga[cen] = 1.0 / v
    gp[vcol] = -a[cen] / (v * v)
    return a[cen] / v
