"""Small symbolic linear algebra, unrolled over a static dimension.

The frequentist path works with one small ``d x d`` matrix per subject (omega, the
Hessian of the conditional objective, the linearised information matrix). Written as
nested lists of PyTensor vectors (one entry per subject), the Cholesky factor, the log
determinant and the solves are plain elementwise operations over all subjects at once:
vectorised, differentiable to any order and free of per-subject Python loops at run time.
"""

from __future__ import annotations

import pytensor.tensor as pt

__all__ = ["cholesky", "logdet_from_cholesky", "forward_solve", "backward_solve", "cho_solve", "quad_form_inv"]


def cholesky(a: list[list]) -> list[list]:
    """Lower Cholesky factor of a symmetric positive definite matrix.

    Parameters
    ----------
    a : list of list of tensor
        ``a[i][j]``: element ``(i, j)``, each a vector over subjects (or a scalar).
        Only the lower triangle is read.

    Returns
    -------
    list of list of tensor
        ``L`` with ``L[i][j]`` for ``j <= i`` (``None`` above the diagonal).
        A matrix that is not positive definite gives NaN.
    """
    d = len(a)
    low: list[list] = [[None] * d for _ in range(d)]
    for j in range(d):
        s = a[j][j]
        for k in range(j):
            s = s - low[j][k] ** 2
        low[j][j] = pt.sqrt(s)
        for i in range(j + 1, d):
            s = a[i][j]
            for k in range(j):
                s = s - low[i][k] * low[j][k]
            low[i][j] = s / low[j][j]
    return low


def logdet_from_cholesky(low: list[list]):
    """``log det(L L')`` from a Cholesky factor ``L``."""
    return 2.0 * sum(pt.log(low[j][j]) for j in range(len(low)))


def forward_solve(low: list[list], b: list) -> list:
    """Solve ``L z = b`` for lower-triangular ``L`` (``b``: list of tensors)."""
    z: list = []
    for i in range(len(low)):
        s = b[i]
        for k in range(i):
            s = s - low[i][k] * z[k]
        z.append(s / low[i][i])
    return z


def backward_solve(low: list[list], z: list) -> list:
    """Solve ``L' x = z`` for lower-triangular ``L``."""
    d = len(low)
    x: list = [None] * d
    for i in reversed(range(d)):
        s = z[i]
        for k in range(i + 1, d):
            s = s - low[k][i] * x[k]
        x[i] = s / low[i][i]
    return x


def cho_solve(low: list[list], b: list) -> list:
    """Solve ``(L L') x = b``."""
    return backward_solve(low, forward_solve(low, b))


def quad_form_inv(low: list[list], b: list):
    """``b' (L L')^{-1} b``."""
    return sum(z**2 for z in forward_solve(low, b))
