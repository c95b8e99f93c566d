"""Small dense matrices in Numba: product, linear solve and the matrix exponential.

Loops rather than BLAS: at the sizes of compartment models (at most 8 x 8 for the
augmented generator) the calls cost more than the work. Used by :mod:`.kinetics` and
:mod:`.eigen`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["expm"]

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
def _inverse(a, out, lu):
    """``a^-1`` into ``out`` (``lu``: a work matrix of ``a``'s shape; no allocation)."""
    n = a.shape[0]
    for i in range(n):
        for j in range(n):
            lu[i, j] = a[i, j]
            out[i, j] = 1.0 if i == j else 0.0
    _eliminate(lu, out)


@njit(cache=True, error_model="numpy")
def _solve(a, b):
    """``a^-1 b`` by Gaussian elimination with partial pivoting (small matrices)."""
    x = b.copy()
    _eliminate(a.copy(), x)
    return x


@njit(cache=True, error_model="numpy")
def _eliminate(lu, x):
    """Overwrite ``x`` with ``lu^-1 x`` by Gaussian elimination with partial pivoting
    (``lu`` is overwritten too)."""
    n, m = lu.shape[0], x.shape[1]
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
