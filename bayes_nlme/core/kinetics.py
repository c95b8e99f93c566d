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

__all__ = ["rate_matrix", "advance", "expm", "event_jump", "equilibrium", "initial_state", "observe", "STEADY_TOL"]

#: Convergence tolerance (relative) of the steady-state Newton iteration of the engine.
STEADY_TOL = 1e-13

_PADE = (
    64764752532480000.0,
    32382376266240000.0,
    7771770303897600.0,
    1187353796428800.0,
    129060195264000.0,
    10559470521600.0,
    670442572800.0,
    33522128640.0,
    1323241920.0,
    40840800.0,
    960960.0,
    16380.0,
    182.0,
    1.0,
)


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


@njit(cache=True, error_model="numpy")
def _mm(a, b):
    """Small dense product (loops: BLAS calls cost more than the work at these sizes)."""
    n, k, m = a.shape[0], a.shape[1], b.shape[1]
    out = np.zeros((n, m))
    for i in range(n):
        for p in range(k):
            x = a[i, p]
            if x != 0.0:
                for j in range(m):
                    out[i, j] += x * b[p, j]
    return out


@njit(cache=True, error_model="numpy")
def _solve(a, b):
    """``a^-1 b`` by Gaussian elimination with partial pivoting (small matrices)."""
    n, m = a.shape[0], b.shape[1]
    lu = a.copy()
    x = b.copy()
    for c in range(n):
        piv = c
        for i in range(c + 1, n):
            if abs(lu[i, c]) > abs(lu[piv, c]):
                piv = i
        if piv != c:
            for j in range(n):
                lu[c, j], lu[piv, j] = lu[piv, j], lu[c, j]
            for j in range(m):
                x[c, j], x[piv, j] = x[piv, j], x[c, j]
        d = lu[c, c]
        for i in range(c + 1, n):
            f = lu[i, c] / d
            if f != 0.0:
                for j in range(c, n):
                    lu[i, j] -= f * lu[c, j]
                for j in range(m):
                    x[i, j] -= f * x[c, j]
    for c in range(n - 1, -1, -1):
        for j in range(m):
            acc = x[c, j]
            for k in range(c + 1, n):
                acc -= lu[c, k] * x[k, j]
            x[c, j] = acc / lu[c, c]
    return x


@njit(cache=True, error_model="numpy")
def expm(a):
    """Matrix exponential by scaling and squaring with the [13/13] Pade approximant."""
    n = a.shape[0]
    norm = 0.0
    for j in range(n):
        s = 0.0
        for i in range(n):
            s += abs(a[i, j])
        norm = max(norm, s)
    squarings = 0
    if norm > 5.371920351148152:
        squarings = int(np.ceil(np.log2(norm / 5.371920351148152)))
    x = a / (2.0**squarings)
    eye = np.eye(n)
    b = _PADE
    x2 = _mm(x, x)
    x4 = _mm(x2, x2)
    x6 = _mm(x4, x2)
    u = _mm(x, _mm(x6, b[13] * x6 + b[11] * x4 + b[9] * x2) + b[7] * x6 + b[5] * x4 + b[3] * x2 + b[1] * eye)
    v = _mm(x6, b[12] * x6 + b[10] * x4 + b[8] * x2) + b[6] * x6 + b[4] * x4 + b[2] * x2 + b[0] * eye
    r = _solve(v - u, v + u)
    for _ in range(squarings):
        r = _mm(r, r)
    return r


@njit(cache=True, error_model="numpy", inline="always")
def _g(x):
    """``int_0^1 exp(-x u) du`` for ``x >= 0``."""
    if x < 0.1:
        return 1.0 + x * (
            -0.5
            + x
            * (
                0.16666666666666666
                + x
                * (
                    -0.041666666666666664
                    + x
                    * (
                        0.008333333333333333
                        + x
                        * (
                            -0.001388888888888889
                            + x
                            * (
                                0.0001984126984126984
                                + x
                                * (
                                    -2.48015873015873e-05
                                    + x
                                    * (
                                        2.7557319223985893e-06
                                        + x
                                        * (
                                            -2.7557319223985894e-07
                                            + x * (2.5052108385441717e-08 + x * -2.08767569878681e-09)
                                        )
                                    )
                                )
                            )
                        )
                    )
                )
            )
        )
    return -np.expm1(-x) / x


@njit(cache=True, error_model="numpy", inline="always")
def _q(x):
    """``int_0^1 u exp(-x u) du`` for ``x >= 0``."""
    if x < 0.1:
        return 0.5 + x * (
            -0.3333333333333333
            + x
            * (
                0.125
                + x
                * (
                    -0.03333333333333333
                    + x
                    * (
                        0.006944444444444444
                        + x
                        * (
                            -0.0011904761904761904
                            + x
                            * (
                                0.00017361111111111112
                                + x
                                * (
                                    -2.2045855379188714e-05
                                    + x
                                    * (
                                        2.48015873015873e-06
                                        + x
                                        * (
                                            -2.5052108385441723e-07
                                            + x * (2.2964432686654907e-08 + x * -1.9270852604185937e-09)
                                        )
                                    )
                                )
                            )
                        )
                    )
                )
            )
        )
    return (1.0 - np.exp(-x) * (1.0 + x)) / (x * x)


@njit(cache=True, error_model="numpy", inline="always")
def _r(x):
    """``int_0^1 (1 - u) exp(-x u) du`` for ``x >= 0``."""
    if x < 0.1:
        return 0.5 + x * (
            -0.16666666666666666
            + x
            * (
                0.041666666666666664
                + x
                * (
                    -0.008333333333333333
                    + x
                    * (
                        0.0013888888888888887
                        + x
                        * (
                            -0.0001984126984126984
                            + x
                            * (
                                2.48015873015873e-05
                                + x
                                * (
                                    -2.7557319223985893e-06
                                    + x
                                    * (
                                        2.755731922398589e-07
                                        + x
                                        * (
                                            -2.505210838544172e-08
                                            + x * (2.0876756987868096e-09 + x * -1.6059043836821616e-10)
                                        )
                                    )
                                )
                            )
                        )
                    )
                )
            )
        )
    return (x + np.expm1(-x)) / (x * x)


@njit(cache=True, error_model="numpy", inline="always")
def _gamma(k, dt):
    """``Gamma = int_0^dt exp(-k s) ds`` and ``dGamma/dk``."""
    x = k * dt
    if x >= 0.0:
        return dt * _g(x), -dt * dt * _q(x)
    e = np.exp(-x)  # k < 0 only for invalid parameters; keep it finite where possible
    return dt * e * _g(-x), -dt * dt * e * _r(-x)


@njit(cache=True, error_model="numpy", inline="always")
def _divided(a, b, dt):
    """``E = int_0^dt exp(-a s) exp(-b (dt - s)) ds`` with ``dE/da`` and ``dE/db``."""
    if a >= b:
        e = np.exp(-b * dt)
        x = (a - b) * dt
        return e * dt * _g(x), -e * dt * dt * _q(x), -e * dt * dt * _r(x)
    e = np.exp(-a * dt)
    x = (b - a) * dt
    return e * dt * _g(x), -e * dt * dt * _r(x), -e * dt * dt * _q(x)


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
    div, ddiv_a, ddiv_b = _divided(ka, k, dt)
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


#: Relative separation of eigenvalues below which the eigen-decomposition is not used
#: (its eigenvector matrix becomes ill-conditioned) and the matrix exponential is.
_SEPARATION = 1e-3


@njit(cache=True, error_model="numpy", inline="always")
def _eigvec2(d11, d12, d21, d22, lam, out, row, col):
    """An eigenvector of the 2 x 2 block for eigenvalue ``lam`` into ``out[row:row+2, col]``."""
    x0, x1 = d12, lam - d11
    y0, y1 = lam - d22, d21
    if x0 * x0 + x1 * x1 >= y0 * y0 + y1 * y1:
        out[row, col], out[row + 1, col] = x0, x1
    else:
        out[row, col], out[row + 1, col] = y0, y1


@njit(cache=True, error_model="numpy")
def _two_eigen(kind, K, lam, vec):
    """Eigenvalues and eigenvectors of a two-compartment rate matrix (oral: with the depot).

    Returns False where they are too close to be separated stably (then the caller uses
    the matrix exponential)."""
    o = 1 if kind == 3 else 0
    d11, d12, d21, d22 = K[o, o], K[o, o + 1], K[o + 1, o], K[o + 1, o + 1]
    tr = d11 + d22
    det = d11 * d22 - d12 * d21
    disc = np.sqrt((d11 - d22) ** 2 + 4.0 * d12 * d21)
    la = 0.5 * (tr - disc)
    if not (la < 0.0) or not (det > 0.0):
        return False
    lb = det / la
    vec[:] = 0.0
    lam[o], lam[o + 1] = lb, la
    _eigvec2(d11, d12, d21, d22, lb, vec, o, o)
    _eigvec2(d11, d12, d21, d22, la, vec, o, o + 1)
    scale = -la
    if not (la - lb < -_SEPARATION * scale):
        return False
    if kind == 3:
        ka = -K[0, 0]
        lam[0] = -ka
        if min(abs(ka + la), abs(ka + lb)) < _SEPARATION * max(ka, scale):
            return False
        det2 = (d11 + ka) * (d22 + ka) - d12 * d21
        vec[0, 0] = 1.0
        vec[1, 0] = -(d22 + ka) * ka / det2
        vec[2, 0] = d21 * ka / det2
    return True


@njit(cache=True, error_model="numpy")
def _spectral(K, dK, lam, vec, dt, a, r, a_new, phi, jp, n, n_par):
    """The transition and its parameter derivatives from the eigen-decomposition
    ``K = V diag(lam) V^-1`` (Daleckii-Krein: the Frechet derivative of ``f(K)`` in
    direction ``E`` is ``V ((V^-1 E V) o F) V^-1`` with ``F`` the divided differences of
    ``f`` at the eigenvalues), for ``f(x) = exp(x dt)`` and ``f(x) = int_0^dt exp(x s) ds``."""
    vinv = _solve(vec, np.eye(n))
    b = np.zeros(n)
    c = np.zeros(n)
    for i in range(n):
        for j in range(n):
            b[i] += vinv[i, j] * a[j]
            c[i] += vinv[i, j] * r[j]
    e = np.empty(n)
    g = np.empty(n)
    dg = np.empty(n)
    for i in range(n):
        e[i] = np.exp(lam[i] * dt)
        g[i], dgk = _gamma(-lam[i], dt)
        dg[i] = -dgk  # d/dlam int_0^dt exp(lam s) ds
    fe = np.empty((n, n))
    fg = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                fe[i, j] = dt * e[i]
                fg[i, j] = dg[i]
            else:
                fe[i, j] = _divided(-lam[i], -lam[j], dt)[0]
                fg[i, j] = (g[i] - g[j]) / (lam[i] - lam[j])
    y = np.empty(n)
    for i in range(n):
        y[i] = e[i] * b[i] + g[i] * c[i]
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += vec[i, j] * y[j]
            t = 0.0
            for k in range(n):
                t += vec[i, k] * e[k] * vinv[k, j]
            phi[i, j] = t
        a_new[i] = s
    w = np.empty((n, n))
    m = np.empty((n, n))
    for q in range(n_par):
        for i in range(n):  # m = V^-1 dK_q V, dK_q is sparse
            for j in range(n):
                acc = 0.0
                for k in range(n):
                    x = dK[q, k, j]
                    if x != 0.0:
                        acc += vinv[i, k] * x
                w[i, j] = acc
        for i in range(n):
            for j in range(n):
                acc = 0.0
                for k in range(n):
                    acc += w[i, k] * vec[k, j]
                m[i, j] = acc
        for i in range(n):
            acc = 0.0
            for j in range(n):
                acc += m[i, j] * (fe[i, j] * b[j] + fg[i, j] * c[j])
            y[i] = acc
        for i in range(n):
            s = 0.0
            for j in range(n):
                s += vec[i, j] * y[j]
            jp[i, q] = s


@njit(cache=True, error_model="numpy")
def _three_eigen(kind, K, lam, vec):
    """Eigenvalues (trigonometric roots of the characteristic cubic, polished by Newton)
    and eigenvectors (cross products of rows of ``D - lam I``) of a three-compartment rate
    matrix (oral: with the depot). False where eigenvalues are too close to separate."""
    o = 1 if kind == 5 else 0
    d = K[o : o + 3, o : o + 3]
    tr = d[0, 0] + d[1, 1] + d[2, 2]
    minors = (
        d[0, 0] * d[1, 1]
        - d[0, 1] * d[1, 0]
        + d[0, 0] * d[2, 2]
        - d[0, 2] * d[2, 0]
        + d[1, 1] * d[2, 2]
        - d[1, 2] * d[2, 1]
    )
    det = (
        d[0, 0] * (d[1, 1] * d[2, 2] - d[1, 2] * d[2, 1])
        - d[0, 1] * (d[1, 0] * d[2, 2] - d[1, 2] * d[2, 0])
        + d[0, 2] * (d[1, 0] * d[2, 1] - d[1, 1] * d[2, 0])
    )
    a2, a1, a0 = -tr, minors, -det  # lam^3 + a2 lam^2 + a1 lam + a0
    pp = a1 - a2 * a2 / 3.0
    qq = 2.0 * a2**3 / 27.0 - a2 * a1 / 3.0 + a0
    if not (pp < 0.0):
        return False
    arg = 1.5 * qq / pp * np.sqrt(-3.0 / pp)
    arg = min(1.0, max(-1.0, arg))
    m = 2.0 * np.sqrt(-pp / 3.0)
    roots = np.empty(3)
    for k in range(3):
        x = m * np.cos(np.arccos(arg) / 3.0 - 2.0 * np.pi * k / 3.0) - a2 / 3.0
        for _ in range(2):
            f = ((x + a2) * x + a1) * x + a0
            df = (3.0 * x + 2.0 * a2) * x + a1
            if df != 0.0:
                x -= f / df
        roots[k] = x
    scale = max(abs(roots[0]), abs(roots[1]), abs(roots[2]))
    for i in range(3):
        if not (roots[i] < 0.0):
            return False
        for j in range(i):
            if abs(roots[i] - roots[j]) < _SEPARATION * scale:
                return False
    vec[:] = 0.0
    for k in range(3):
        lam[o + k] = roots[k]
        best = -1.0
        for r1 in range(3):
            for r2 in range(r1 + 1, 3):
                u0, u1, u2 = d[r1, 0], d[r1, 1], d[r1, 2]
                w0, w1, w2 = d[r2, 0], d[r2, 1], d[r2, 2]
                if r1 == 0:
                    u0 -= roots[k]
                elif r1 == 1:
                    u1 -= roots[k]
                else:
                    u2 -= roots[k]
                if r2 == 1:
                    w1 -= roots[k]
                else:
                    w2 -= roots[k]
                c0, c1, c2 = u1 * w2 - u2 * w1, u2 * w0 - u0 * w2, u0 * w1 - u1 * w0
                norm = c0 * c0 + c1 * c1 + c2 * c2
                if norm > best:
                    best = norm
                    vec[o, o + k], vec[o + 1, o + k], vec[o + 2, o + k] = c0, c1, c2
    if kind == 5:
        ka = -K[0, 0]
        lam[0] = -ka
        for k in range(3):
            if abs(ka + roots[k]) < _SEPARATION * max(ka, scale):
                return False
        shifted = d.copy()
        for i in range(3):
            shifted[i, i] += ka
        rhs = np.zeros((3, 1))
        rhs[0, 0] = -ka
        w = _solve(shifted, rhs)
        vec[0, 0] = 1.0
        for i in range(3):
            vec[1 + i, 0] = w[i, 0]
    return True


@njit(cache=True, error_model="numpy")
def _general(kind, p, dt, a, r, a_new, phi, jp, n, n_par):
    K = np.zeros((n, n))
    dK = np.zeros((n_par, n, n))
    rate_matrix(kind, p, K, dK)
    lam = np.empty(n)
    vec = np.empty((n, n))
    if _two_eigen(kind, K, lam, vec) if kind <= 3 else _three_eigen(kind, K, lam, vec):
        _spectral(K, dK, lam, vec, dt, a, r, a_new, phi, jp, n, n_par)
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
def advance(kind, p, dt, a, r, a_new, phi, jp, n, n_par):
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
    """
    if kind == 0:
        _one_iv(p, dt, a, r, a_new, phi, jp)
    elif kind == 1:
        _one_oral(p, dt, a, r, a_new, phi, jp)
    else:
        _general(kind, p, dt, a, r, a_new, phi, jp, n, n_par)


# ----------------------------------------------------------------------------- protocol
# The engine (engine.py) calls only ``advance`` and the four functions below; an ODE
# model (core/odegen.py) provides its own implementations with the same signatures.


@njit(cache=True, error_model="numpy")
def event_jump(cfg, p, a, r, cmt, bolus, drate, diff):
    """Right-hand side before an event minus after it, into ``diff`` (n,).

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
def initial_state(cfg, p, x, dx):
    """Amounts at the start of a subject and after a reset (``x`` (n,)) and their
    parameter derivatives (``dx`` (n, P)): zero for the linear models."""
    x[:] = 0.0
    dx[:] = 0.0


@njit(cache=True, error_model="numpy")
def observe(cfg, p, a, ga, gp, k):
    """The prediction at an observation: the central concentration ``a[central] / V``.

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
