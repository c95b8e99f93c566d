"""The covariance step: sandwich, R-only or S-only standard errors.

With ``R`` the Hessian of ``OFV/2 = -log L`` and ``S = sum_i s_i s_i'`` the outer
products of the per-subject gradients ``s_i = dL_i/dpsi / 2``, the covariance of the
estimates is (NONMEM's ``$COV MATRIX=``):

- ``"sandwich"`` (default): ``R^-1 S R^-1``;
- ``"r"``: ``R^-1``;
- ``"s"``: ``S^-1``.

``R`` is the central-difference Jacobian of the exact gradient (EBEs re-solved at
every point). Both are computed on the unconstrained scale ``psi`` and carried to the
natural scale (``theta``, omega elements, ``sigma2``) with the exact Jacobian of the
transformation (delta method); at the optimum the sandwich is invariant to that
change of variables. A singular or non-positive-definite matrix gives a
:class:`CovarianceWarning` and NaN standard errors.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["CovarianceWarning", "CovarianceResult", "COVARIANCE_METHODS", "covariance_step", "nan_covariance"]

#: Valid ``covariance`` arguments of :func:`~bayes_nlme.estimation.estimate`.
COVARIANCE_METHODS = ("sandwich", "r", "s")


class CovarianceWarning(UserWarning):
    """The covariance step failed (singular or non-positive-definite matrix)."""


@dataclass
class CovarianceResult:
    """Covariance of the estimates on the natural scale.

    Attributes
    ----------
    method : str or None
        ``sandwich``, ``r``, ``s``, or None when not computed.
    ok : bool
        False when the step failed (every SE is then NaN).
    covariance : numpy.ndarray (size, size)
    se : numpy.ndarray (size,)
    correlation : numpy.ndarray (size, size)
    message : str
    """

    method: str | None
    ok: bool
    covariance: np.ndarray
    se: np.ndarray
    correlation: np.ndarray
    message: str = ""


def nan_covariance(size: int, method: str | None, message: str = "") -> CovarianceResult:
    """A covariance result with every entry NaN."""
    nan = np.full((size, size), np.nan)
    return CovarianceResult(method, False, nan, np.full(size, np.nan), nan.copy(), message)


def _inverse_pd(matrix: np.ndarray, name: str) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix, or raise ``LinAlgError``."""
    matrix = 0.5 * (matrix + matrix.T)
    if not np.all(np.isfinite(matrix)):
        raise np.linalg.LinAlgError(f"{name} has non-finite entries")
    w, vec = np.linalg.eigh(matrix)
    if w.min() <= 1e-10 * max(abs(w).max(), 1e-300):
        raise np.linalg.LinAlgError(
            f"{name} is not positive definite (smallest eigenvalue {w.min():.3g}, largest {w.max():.3g})"
        )
    return (vec / w) @ vec.T


def covariance_step(
    hessian_ofv: np.ndarray,
    per_subject: np.ndarray,
    jacobian: np.ndarray,
    method: str,
) -> CovarianceResult:
    """Covariance of the natural-scale estimates.

    Parameters
    ----------
    hessian_ofv : numpy.ndarray (size, size)
        Hessian of the OFV with respect to ``psi`` at the optimum.
    per_subject : numpy.ndarray (n_subjects, size)
        Per-subject gradients of the OFV contributions at the optimum.
    jacobian : numpy.ndarray (size, size)
        ``d natural / d psi``.
    method : {"sandwich", "r", "s"}

    Returns
    -------
    CovarianceResult
        With a :class:`CovarianceWarning` issued when the step fails.
    """
    size = len(jacobian)
    r_mat = 0.5 * hessian_ofv
    s_vec = 0.5 * per_subject
    s_mat = s_vec.T @ s_vec
    try:
        if method == "s":
            cov = _inverse_pd(s_mat, "the S matrix")
        else:
            r_inv = _inverse_pd(r_mat, "the R matrix (Hessian)")
            cov = r_inv if method == "r" else r_inv @ s_mat @ r_inv
    except np.linalg.LinAlgError as exc:
        message = f"covariance step ({method}) failed: {exc}; standard errors are NaN"
        warnings.warn(message, CovarianceWarning, stacklevel=3)
        return nan_covariance(size, method, message)
    natural = jacobian @ cov @ jacobian.T
    natural = 0.5 * (natural + natural.T)
    var = np.diag(natural)
    if np.any(var < 0) or not np.all(np.isfinite(var)):
        message = f"covariance step ({method}) failed: negative variances; standard errors are NaN"
        warnings.warn(message, CovarianceWarning, stacklevel=3)
        return nan_covariance(size, method, message)
    se = np.sqrt(var)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = natural / np.outer(se, se)
    return CovarianceResult(method, True, natural, se, corr)
