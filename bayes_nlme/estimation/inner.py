"""The inner step: empirical Bayes estimates (conditional modes of eta), all subjects at once.

A batched, safeguarded Newton method on the conditional objective ``O_i(eta_i)``:
every iteration makes one call of the compiled ``(O, g, H)`` function for all
subjects, takes a modified-Newton direction per subject (the Hessian's eigenvalues
floored so that the direction descends), caps its length and backtracks each
subject's step on its own until the Armijo condition holds. Subjects stop when their
Newton step is below ``tol``, or after a full Newton step below ``sqrt(tol)``, taken
without line search (the quadratic convergence of Newton's method then leaves an error
of order ``tol``); the implicit gradients rely on this accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EBEResult", "solve_ebe"]

#: Relative predicted decrease below which a Newton step is rounding noise.
_NOISE = 1e-16


@dataclass
class EBEResult:
    """Conditional modes and the objective pieces at them.

    Attributes
    ----------
    eta : numpy.ndarray (n_subjects, d)
    objective, gradient, hessian : numpy.ndarray
        At the last point where they were evaluated (the mode, or the point before the
        final Newton step when that step was below ``sqrt(tol)``).
    converged : numpy.ndarray of bool (n_subjects,)
    iterations : int
    """

    eta: np.ndarray
    objective: np.ndarray
    gradient: np.ndarray
    hessian: np.ndarray
    converged: np.ndarray
    iterations: int


def _direction(g: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Modified Newton directions ``-H^-1 g`` with eigenvalues floored to stay positive."""
    h = 0.5 * (h + np.swapaxes(h, 1, 2))
    w, vec = np.linalg.eigh(h)
    scale = np.maximum(np.abs(w).max(axis=1, keepdims=True), 1.0)
    w = np.maximum(w, 1e-8 * scale)
    coef = np.einsum("nki,nk->ni", vec, g) / w
    return -np.einsum("nki,ni->nk", vec, coef)


def solve_ebe(
    inner,
    inner_value,
    eta0: np.ndarray,
    *,
    tol: float = 1e-10,
    maxiter: int = 100,
    max_step: float = 2.0,
) -> EBEResult:
    """Minimise every subject's conditional objective.

    Parameters
    ----------
    inner : callable
        ``inner(eta) -> (O, g, H)`` for all subjects (objective, gradient, Hessian).
    inner_value : callable
        ``inner_value(eta) -> O``.
    eta0 : numpy.ndarray (n_subjects, d)
        Start (warm start from the previous evaluation, or zeros).
    tol : float
        Convergence when the largest component of a subject's Newton step is below
        ``tol``, or when the decrease it predicts (``g' H^-1 g``) is at rounding level
        (``1e-16 * (1 + |O|)``). A step below ``sqrt(tol)`` is taken in full without
        line search, and ends the iterations (its error is of order ``tol``). A subject
        whose line search fails is left where it is (not converged).
    maxiter : int
        Most Newton iterations.
    max_step : float
        Largest step (max-norm, in eta units) per iteration.

    Returns
    -------
    EBEResult
    """
    eta = np.array(eta0, dtype=float, copy=True)
    obj, g, h = inner(eta)
    if not np.all(np.isfinite(obj)):
        bad = ~np.isfinite(obj)
        eta[bad] = 0.0
        obj, g, h = inner(eta)
    n = len(eta)
    done = np.zeros(n, dtype=bool)
    stuck = np.zeros(n, dtype=bool)
    iterations = 0
    for iterations in range(1, maxiter + 1):  # noqa: B007 (read after the loop)
        step = _direction(g, h)
        step = np.where(np.isfinite(step), step, 0.0)
        size = np.abs(step).max(axis=1) if step.shape[1] else np.zeros(n)
        decrement = -np.einsum("nk,nk->n", g, step)
        # converged: tiny Newton step, or a predicted decrease at rounding level
        done = (size < tol) | (decrement <= _NOISE * (1.0 + np.abs(obj)))
        if (done | stuck).all():
            break
        step *= np.minimum(1.0, max_step / np.maximum(size, 1e-300))[:, None]
        step[done | stuck] = 0.0
        # near the mode a full Newton step needs no line search (which would only see
        # rounding noise in ill-conditioned subjects); its error is of order size**2
        small = size < np.sqrt(tol)
        slope = np.einsum("nk,nk->n", g, step)
        t = np.ones(n)
        accepted = done | stuck | small
        for _ in range(30):
            if accepted.all():
                break
            new = inner_value(eta + t[:, None] * step)
            ok = np.isfinite(new) & (new <= obj + 1e-4 * t * slope + 1e-12 * np.abs(obj))
            accepted |= ok
            t = np.where(accepted, t, 0.5 * t)
        t = np.where(accepted, t, 0.0)
        stuck |= ~accepted
        eta = eta + t[:, None] * step
        done = done | small
        if (done | stuck).all():
            break
        obj, g, h = inner(eta)
    return EBEResult(eta=eta, objective=obj, gradient=g, hessian=h, converged=done, iterations=iterations)
