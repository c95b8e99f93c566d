"""The eigen-decomposition path of the two- and three-compartment models (Numba).

Closed-form eigenvalues of the rate matrix (the quadratic, or the trigonometric roots of
the cubic polished by Newton), its eigenvectors, and the transition with its parameter
derivatives from ``K = V diag(lam) V^-1`` (Daleckii-Krein divided differences). Where
two eigenvalues come within a relative :data:`_SEPARATION` of each other the
decompositions return False and :func:`.kinetics._general` uses the matrix exponential.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .dense import _inverse, _solve
from .exp_integrals import _g, _gamma

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
def spectral_workspace(n):
    """Length of the work array of :func:`_spectral` for ``n`` states."""
    return 6 * n * n + 6 * n


@njit(cache=True, error_model="numpy")
def _spectral(K, dK, lam, vec, dt, a, r, a_new, phi, jp, n, n_par, ws):
    """The transition and its parameter derivatives from the eigen-decomposition
    ``K = V diag(lam) V^-1`` (Daleckii-Krein: the Frechet derivative of ``f(K)`` in
    direction ``E`` is ``V ((V^-1 E V) o F) V^-1`` with ``F`` the divided differences of
    ``f`` at the eigenvalues), for ``f(x) = exp(x dt)`` and ``f(x) = int_0^dt exp(x s) ds``."""
    nn = n * n
    vinv = ws[:nn].reshape((n, n))
    lu = ws[nn : 2 * nn].reshape((n, n))
    fe = ws[2 * nn : 3 * nn].reshape((n, n))
    fg = ws[3 * nn : 4 * nn].reshape((n, n))
    w = ws[4 * nn : 5 * nn].reshape((n, n))
    o = 6 * nn
    b, c, e, g, dg, y = (
        ws[o : o + n],
        ws[o + n : o + 2 * n],
        ws[o + 2 * n : o + 3 * n],
        ws[o + 3 * n : o + 4 * n],
        ws[o + 4 * n : o + 5 * n],
        ws[o + 5 * n : o + 6 * n],
    )
    _inverse(vec, vinv, lu)
    b[:] = 0.0
    c[:] = 0.0
    for i in range(n):
        for j in range(n):
            b[i] += vinv[i, j] * a[j]
            c[i] += vinv[i, j] * r[j]
    infusing = False
    for i in range(n):
        if r[i] != 0.0:
            infusing = True
    for i in range(n):
        e[i] = np.exp(lam[i] * dt)
        g[i] = dg[i] = 0.0
        if infusing:  # without input rates c is zero and so are the terms of g
            g[i], dgk = _gamma(-lam[i], dt)
            dg[i] = -dgk  # d/dlam int_0^dt exp(lam s) ds
    for i in range(n):
        fe[i, i] = dt * e[i]
        fg[i, i] = dg[i]
        for j in range(i):  # divided differences are symmetric
            # int_0^dt exp(lam_i s) exp(lam_j (dt - s)) ds, from the larger exponential
            if lam[i] <= lam[j]:
                fe[i, j] = e[j] * dt * _g((lam[j] - lam[i]) * dt)
            else:
                fe[i, j] = e[i] * dt * _g((lam[i] - lam[j]) * dt)
            fe[j, i] = fe[i, j]
            fg[i, j] = fg[j, i] = (g[i] - g[j]) / (lam[i] - lam[j]) if infusing else 0.0
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
    # y_i = sum_j (V^-1 dK_q V)_ij u_ij with u_ij = fe_ij b_j + fg_ij c_j, reordered as
    # y_i = sum_(k, l) (V^-1)_ik (dK_q)_kh z_ih with z_ih = sum_j V_hj u_ij (once for all
    # q), so each parameter costs its few non-zero rate-matrix entries
    z = w
    for i in range(n):
        for h in range(n):
            acc = 0.0
            for j in range(n):
                acc += vec[h, j] * (fe[i, j] * b[j] + fg[i, j] * c[j])
            z[i, h] = acc
    for q in range(n_par):
        for i in range(n):
            y[i] = 0.0
        for k in range(n):
            for h in range(n):
                x = dK[q, k, h]
                if x != 0.0:
                    for i in range(n):
                        y[i] += vinv[i, k] * x * z[i, h]
        for i in range(n):
            s = 0.0
            for j in range(n):
                s += vec[i, j] * y[j]
            jp[i, q] = s


@njit(cache=True, error_model="numpy")
def _cubic_roots(d, roots):
    """The eigenvalues of the 3 x 3 block ``d`` into ``roots`` (3,): the trigonometric
    roots of its characteristic cubic, each polished by two Newton steps. False where the
    cubic has no three real roots."""
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
    for k in range(3):
        x = m * np.cos(np.arccos(arg) / 3.0 - 2.0 * np.pi * k / 3.0) - a2 / 3.0
        for _ in range(2):
            f = ((x + a2) * x + a1) * x + a0
            df = (3.0 * x + 2.0 * a2) * x + a1
            if df != 0.0:
                x -= f / df
        roots[k] = x
    return True


@njit(cache=True, error_model="numpy")
def _cross_eigvec(d, root, vec, o, col):
    """An eigenvector of the 3 x 3 block ``d`` for eigenvalue ``root`` into
    ``vec[o:o+3, col]``: the longest cross product of two rows of ``d - root I``."""
    best = -1.0
    for r1 in range(3):
        for r2 in range(r1 + 1, 3):
            u0, u1, u2 = d[r1, 0], d[r1, 1], d[r1, 2]
            w0, w1, w2 = d[r2, 0], d[r2, 1], d[r2, 2]
            if r1 == 0:
                u0 -= root
            elif r1 == 1:
                u1 -= root
            else:
                u2 -= root
            if r2 == 1:
                w1 -= root
            else:
                w2 -= root
            c0, c1, c2 = u1 * w2 - u2 * w1, u2 * w0 - u0 * w2, u0 * w1 - u1 * w0
            norm = c0 * c0 + c1 * c1 + c2 * c2
            if norm > best:
                best = norm
                vec[o, col], vec[o + 1, col], vec[o + 2, col] = c0, c1, c2


@njit(cache=True, error_model="numpy")
def _three_eigen(kind, K, lam, vec):
    """Eigenvalues (trigonometric roots of the characteristic cubic, polished by Newton)
    and eigenvectors (cross products of rows of ``D - lam I``) of a three-compartment rate
    matrix (oral: with the depot). False where eigenvalues are too close to separate."""
    o = 1 if kind == 5 else 0
    d = K[o : o + 3, o : o + 3]
    roots = np.empty(3)
    if not _cubic_roots(d, roots):
        return False
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
        _cross_eigvec(d, roots[k], vec, o, o + k)
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
