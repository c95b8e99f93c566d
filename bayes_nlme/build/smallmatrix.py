"""Small matrices as nested lists of scalar tensors (``None`` for a structural zero).

Omega blocks are small (a handful of parameters). Writing their algebra element by
element, instead of with ``Dot`` and ``SolveTriangular`` ops, gives graphs of scalar
operations that PyTensor fuses and Numba compiles in seconds; the BLAS/LAPACK ops
cost minutes of cold Numba compilation (measured: a 3x3 ``dot`` with its gradient
190 s, ``solve_triangular`` 65 s, against seconds for the scalar form). Known zeros
(``None``) are skipped, so block-diagonal structure costs nothing.
"""

from __future__ import annotations

import pytensor.tensor as pt

__all__ = [
    "entries",
    "matmul",
    "transpose",
    "lower_inverse",
    "cholesky",
    "submatrix",
    "to_tensor",
    "apply_columns",
    "log_diagonal_sum",
]


def entries(matrix, n: int, *, lower: bool = False) -> list[list]:
    """The entries of an ``n x n`` tensor as scalars (``None`` above the diagonal when ``lower``)."""
    return [[matrix[i, j] if (not lower or j <= i) else None for j in range(n)] for i in range(n)]


def _sum(terms):
    terms = [t for t in terms if t is not None]
    if not terms:
        return None
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _mul(a, b):
    return None if a is None or b is None else a * b


def matmul(a: list[list], b: list[list]) -> list[list]:
    """The product ``a b`` of nested-list matrices."""
    n, m, q = len(a), len(b), len(b[0])
    return [[_sum(_mul(a[i][k], b[k][j]) for k in range(m)) for j in range(q)] for i in range(n)]


def transpose(a: list[list]) -> list[list]:
    """The transpose of a nested-list matrix."""
    return [list(row) for row in zip(*a)]


def lower_inverse(m: list[list]) -> list[list]:
    """The inverse of a lower-triangular matrix by forward substitution.

    ``X_ii = 1/M_ii`` and ``X_ij = -(sum_{k=j}^{i-1} M_ik X_kj) / M_ii`` for ``i > j``.
    """
    n = len(m)
    x: list[list] = [[None] * n for _ in range(n)]
    for j in range(n):
        x[j][j] = 1.0 / m[j][j]
        for i in range(j + 1, n):
            s = _sum(_mul(m[i][k], x[k][j]) for k in range(j, i))
            x[i][j] = None if s is None else -s / m[i][i]
    return x


def cholesky(m: list[list]) -> list[list]:
    """The lower-triangular Cholesky factor ``L`` of a symmetric positive-definite matrix.

    ``L_jj = sqrt(M_jj - sum_{k<j} L_jk^2)`` and
    ``L_ij = (M_ij - sum_{k<j} L_ik L_jk) / L_jj`` for ``i > j``; structural zeros
    (``None``) stay zeros where the sums vanish.
    """
    n = len(m)
    x: list[list] = [[None] * n for _ in range(n)]
    for j in range(n):
        s = _sum(_mul(x[j][k], x[j][k]) for k in range(j))
        x[j][j] = pt.sqrt(m[j][j] if s is None else m[j][j] - s)
        for i in range(j + 1, n):
            s = _sum(_mul(x[i][k], x[j][k]) for k in range(j))
            if m[i][j] is None and s is None:
                continue
            num = -s if m[i][j] is None else (m[i][j] if s is None else m[i][j] - s)
            x[i][j] = num / x[j][j]
    return x


def submatrix(a: list[list], rows, cols) -> list[list]:
    """The nested-list submatrix ``a[rows][:, cols]``."""
    return [[a[i][j] for j in cols] for i in rows]


def to_tensor(a: list[list]):
    """A dense ``n x q`` tensor of a nested-list matrix (zeros where ``None``)."""
    rows = [pt.stack([pt.as_tensor_variable(v if v is not None else 0.0) for v in row]) for row in a]
    return pt.stack(rows)


def apply_columns(a: list[list], columns: list) -> list:
    """``Y = X A^T`` column by column: ``Y[:, i] = sum_j A_ij X[:, j]``.

    Parameters
    ----------
    a : nested list (n x q)
    columns : list of q vectors (or None for zero columns)

    Returns
    -------
    list of n vectors (None where the result is structurally zero)
    """
    return [_sum(_mul(a[i][j], columns[j]) for j in range(len(columns))) for i in range(len(a))]


def log_diagonal_sum(a: list[list]):
    """``sum_i log A_ii`` of a triangular nested-list matrix with a positive diagonal."""
    return _sum(pt.log(a[i][i]) for i in range(len(a)))
