"""The inner step: empirical Bayes estimates (conditional modes of eta), all subjects at once.

A batched, safeguarded Newton method on the conditional objective ``O_i(eta_i)``:
every iteration makes one call of the compiled ``(O, g, H)`` function for all
subjects, takes a modified-Newton direction per subject (the Hessian's eigenvalues
floored so that the direction descends), caps its length and backtracks each
subject's step on its own until the Armijo condition holds. Subjects stop when their
Newton step is below ``tol``, or after a full Newton step below ``sqrt(tol)`` (the
quadratic convergence of Newton's method then leaves an error of order ``tol``); the
implicit gradients rely on this accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EBEResult", "solve_ebe"]


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
    tol: float = 1e-8,
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
        Convergence when the largest component of a subject's Newton step is
        below ``tol``.
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
    done = np.zeros(len(eta), dtype=bool)
    iterations = 0
    for iterations in range(1, maxiter + 1):
        step = _direction(g, h)
        step = np.where(np.isfinite(step), step, 0.0)
        size = np.abs(step).max(axis=1) if step.shape[1] else np.zeros(len(eta))
        done = size < tol
        if done.all():
            break
        step *= np.minimum(1.0, max_step / np.maximum(size, 1e-300))[:, None]
        step[done] = 0.0
        slope = np.einsum("nk,nk->n", g, step)
        t = np.ones(len(eta))
        accepted = done.copy()
        trial = eta
        for _ in range(40):
            trial = eta + t[:, None] * step
            new = inner_value(trial)
            ok = np.isfinite(new) & (new <= obj + 1e-4 * t * slope + 1e-12 * np.abs(obj))
            accepted |= ok
            if accepted.all():
                break
            t = np.where(accepted, t, 0.5 * t)
        t = np.where(accepted, t, 0.0)
        eta = eta + t[:, None] * step
        # a full Newton step this small leaves an error of order size**2: done
        done = done | ((t == 1.0) & (size < np.sqrt(tol)))
        stalled = ~accepted
        if done.all():
            break
        obj, g, h = inner(eta)
        if stalled.all():
            break
    return EBEResult(eta=eta, objective=obj, gradient=g, hessian=h, converged=done, iterations=iterations)
