"""The outer step: the OFV and its exact gradient as a function of the population parameters.

:class:`Evaluator` solves the EBEs (warm-started from the best point so far), evaluates
``OFV = sum_i L_i`` and its gradient by implicit differentiation, and keeps the
per-subject gradients for the sandwich covariance. :func:`minimise` drives
``scipy.optimize.minimize`` (BFGS started from the finite-difference Hessian of the
exact gradient) with it and finishes with Newton steps on that Hessian.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .inner import solve_ebe
from .objective import contributions

__all__ = ["Evaluator", "OuterResult", "minimise", "fd_hessian", "scaled_hessian", "convergence_check", "STEP_TOL"]

#: Progress of the estimation (``verbose=True`` logs at INFO; the CLI shows it).
_LOG = logging.getLogger("bayes_nlme.estimation")

#: Height of the bowl returned where the objective cannot be evaluated.
_BIG = 1e6

#: Largest Newton step (max-norm on the unconstrained scale, i.e. relative for log
#: parameters) allowed at a point reported as converged.
STEP_TOL = 1e-2


@dataclass
class Evaluation:
    """One evaluation of the objective.

    Attributes
    ----------
    ofv : float
    gradient : numpy.ndarray (size,)
    per_subject : numpy.ndarray (n_subjects, size)
        Gradients of each subject's ``L_i``.
    contributions : numpy.ndarray (n_subjects,)
    eta : numpy.ndarray (n_subjects, d)
    ebe_converged : bool
    """

    ofv: float
    gradient: np.ndarray
    per_subject: np.ndarray
    contributions: np.ndarray
    eta: np.ndarray
    ebe_converged: bool


class Evaluator:
    """OFV and exact gradient of a :class:`~bayes_nlme.estimation.problem.Problem`.

    Parameters
    ----------
    problem : Problem
    method : str
        ``fo``, ``foce``, ``focei`` or ``laplace``.
    ebe_tol : float
        Tolerance on the Newton step of the inner step (eta units). The OFV of the
        conditional methods is not stationary in eta, so errors in the EBEs go into the
        OFV and its gradient at first order (summed over subjects): keep it tight.
    """

    def __init__(self, problem, method: str, ebe_tol: float = 1e-10) -> None:
        self.problem = problem
        self.method = method
        self.ebe_tol = ebe_tol
        self.has_inner = problem.d > 0 and method != "fo"
        self.eta_start = np.zeros((problem.n_subjects, problem.d))
        self.best = np.inf
        self.best_psi: np.ndarray | None = None
        self.n_evaluations = 0
        self.n_inner = 0

    def ebe(self, psi: np.ndarray, eta0: np.ndarray | None = None, method: str | None = None):
        """The EBEs at ``psi`` (an :class:`~.inner.EBEResult`)."""
        method = method or self.method
        problem = self.problem
        try:
            omega_inv = np.linalg.inv(problem.pmap.omega_matrix(psi))
        except np.linalg.LinAlgError:
            omega_inv = np.full((problem.d, problem.d), np.nan)
        eta = self.eta_start if eta0 is None else eta0
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            result = solve_ebe(
                lambda x: problem.inner(psi, x, method, omega_inv),
                lambda x: problem.inner_value(psi, x, method, omega_inv),
                eta,
                tol=self.ebe_tol,
            )
        self.n_inner += result.iterations
        return result

    def evaluate(self, psi: np.ndarray, eta0: np.ndarray | None = None) -> Evaluation:
        """Solve the EBEs at ``psi`` and evaluate the OFV and its gradients."""
        self.n_evaluations += 1
        psi = np.asarray(psi, dtype=float)
        eta = np.zeros((self.problem.n_subjects, self.problem.d))
        converged = True
        try:
            if self.has_inner:
                ebe = self.ebe(psi, eta0)
                eta = ebe.eta
                converged = bool(ebe.converged.all())
            contributions_, per_subject = contributions(self.problem, self.method, psi, eta)
        except np.linalg.LinAlgError:  # omega numerically singular (log diagonal far below zero)
            contributions_ = np.full(self.problem.n_subjects, np.nan)
            per_subject = np.full((self.problem.n_subjects, self.problem.size), np.nan)
        ofv = float(np.sum(contributions_))
        grad = per_subject.sum(axis=0)
        if np.isfinite(ofv) and np.all(np.isfinite(grad)) and ofv < self.best:
            self.best = ofv
            self.best_psi = psi.copy()
            self.eta_start = eta
        return Evaluation(ofv, grad, per_subject, contributions_, eta, converged)

    def __call__(self, psi: np.ndarray) -> tuple[float, np.ndarray]:
        """``(ofv, gradient)`` for scipy.

        Where the OFV cannot be evaluated, a steep bowl around the best point so far
        (``_BIG`` above its OFV) steers the line search back.
        """
        ev = self.evaluate(psi)
        if np.isfinite(ev.ofv) and np.all(np.isfinite(ev.gradient)):
            return ev.ofv, ev.gradient
        centre = self.best_psi if self.best_psi is not None else np.zeros_like(psi)
        base = self.best if np.isfinite(self.best) else 0.0
        delta = np.asarray(psi, dtype=float) - centre
        return base + _BIG * (1.0 + delta @ delta), 2.0 * _BIG * delta


def fd_hessian(evaluator: Evaluator, psi: np.ndarray, step: float = 1e-4) -> np.ndarray:
    """Hessian of the OFV: central differences of the exact gradient, symmetrised.

    Each perturbed point re-solves the EBEs, warm-started from those at ``psi``. The
    step is ``step`` on every unconstrained coordinate: log typical values, log
    variances and the log diagonal of omega's Cholesky factor take relative steps of
    the natural values, so the matrix does not depend on the units of the data.
    Coefficients and off-diagonal Cholesky elements take ``step * max(1, |psi|)``.
    """
    base = evaluator.evaluate(psi)
    eta0 = base.eta
    n = len(psi)
    hess = np.empty((n, n))
    for k in range(n):
        h = step if evaluator.problem.pmap.is_log_scale(k) else step * max(1.0, abs(psi[k]))
        up = psi.copy()
        up[k] += h
        down = psi.copy()
        down[k] -= h
        g_up = evaluator.evaluate(up, eta0).gradient
        g_down = evaluator.evaluate(down, eta0).gradient
        hess[:, k] = (g_up - g_down) / (2.0 * h)
    evaluator.evaluate(psi, eta0)  # restore the warm start at psi
    return 0.5 * (hess + hess.T)


def scaled_hessian(evaluator: Evaluator, psi: np.ndarray, step: float = 1e-4):
    """Hessian of the OFV in the well-scaled parameters ``z`` (:meth:`ParameterMap.scaled`).

    Central differences of the exact gradient ``dOFV/dz = (dpsi/dz)' dOFV/dpsi``, with
    steps ``step`` in every log value and correlation (relative steps of the natural
    values, so the matrix does not depend on the units of the data) and
    ``step * max(1, |z|)`` in coefficients. The EBEs are re-solved at every point.

    Parameters
    ----------
    evaluator : Evaluator
    psi : numpy.ndarray
    step : float

    Returns
    -------
    hessian : numpy.ndarray (size, size)
        Symmetrised; NaN where a perturbed point cannot be evaluated.
    dpsi_dz : numpy.ndarray (size, size)
        ``d psi / d z`` at ``psi``.
    """
    from ..errors import ArgumentError

    pm = evaluator.problem.pmap
    base = evaluator.evaluate(psi)
    z0 = pm.scaled(psi)
    n = len(psi)
    hess = np.full((n, n), np.nan)
    try:
        dpsi_dz = np.linalg.inv(pm.scaled_jacobian(psi))
    except np.linalg.LinAlgError:
        return hess, np.full((n, n), np.nan)

    def grad_z(z):
        try:
            point = pm.from_scaled(z)
        except ArgumentError:
            return np.full(n, np.nan)
        g = evaluator.evaluate(point, base.eta).gradient
        try:
            return np.linalg.solve(pm.scaled_jacobian(point).T, g)
        except np.linalg.LinAlgError:
            return np.full(n, np.nan)

    for k in range(n):
        is_log = k < pm.n_theta or k >= pm.n_theta + pm.n_beta
        h = step if is_log else step * max(1.0, abs(z0[k]))
        up, down = z0.copy(), z0.copy()
        up[k] += h
        down[k] -= h
        hess[:, k] = (grad_z(up) - grad_z(down)) / (2.0 * h)
    evaluator.evaluate(psi, base.eta)  # restore the warm start at psi
    return 0.5 * (hess + hess.T), dpsi_dz


@dataclass
class OuterResult:
    """Result of :func:`minimise`.

    Attributes
    ----------
    psi : numpy.ndarray
        Optimum (unconstrained scale).
    evaluation : Evaluation
        At the optimum.
    hessian : numpy.ndarray or None
        Finite-difference Hessian of the OFV at the optimum (when computed).
    converged : bool
    message : str
    n_iterations : int
    scaled_hessian, dpsi_dz : numpy.ndarray or None
        Hessian in the well-scaled parameters ``z`` and ``d psi / d z`` at the optimum
        (:func:`scaled_hessian`): the curvature test and the covariance step use them.
    """

    psi: np.ndarray
    evaluation: Evaluation
    hessian: np.ndarray | None
    converged: bool
    message: str
    n_iterations: int
    scaled_hessian: np.ndarray | None = None
    dpsi_dz: np.ndarray | None = None


def _initial_inverse_hessian(hessian: np.ndarray, grad: np.ndarray, max_step: float) -> np.ndarray:
    """A positive definite inverse of the start Hessian whose first step is at most ``max_step``."""
    w, vec = np.linalg.eigh(0.5 * (hessian + hessian.T))
    top = max(float(np.abs(w).max()), 1e-8)
    w = np.maximum(np.abs(w), 1e-6 * top)
    inv = (vec / w) @ vec.T
    step = float(np.abs(inv @ grad).max())
    if step > max_step:
        inv *= max_step / step
    return 0.5 * (inv + inv.T)


def minimise(
    evaluator: Evaluator,
    psi0: np.ndarray,
    *,
    tol: float = 1e-3,
    maxiter: int = 500,
    newton_steps: int = 3,
    max_step: float = 2.0,
    verbose: bool = False,
) -> OuterResult:
    """Minimise the OFV: BFGS from the start Hessian, then Newton steps.

    The inverse-Hessian approximation of BFGS (``scipy.optimize.minimize``) starts
    from the finite-difference Hessian of the exact gradient at the start (made
    positive definite, its first step capped at ``max_step``), so the first steps are
    Newton steps. Points where the OFV cannot be evaluated count as a steep bowl
    around the best point so far, which the line search backs away from. BFGS stops
    when the largest gradient component is below ``tol``; then Newton steps on the
    finite-difference Hessian polish the optimum (to a gradient below
    ``tol * 1e-3`` when they can), and that Hessian serves the covariance step.

    Parameters
    ----------
    evaluator : Evaluator
    psi0 : numpy.ndarray
        Start (unconstrained scale).
    tol : float
        Convergence: the largest absolute component of the OFV gradient (with respect
        to log-parameters, Cholesky elements and coefficients) is below ``tol``. With
        the Newton polish the OFV is then within about ``tol**2`` of its minimum.
    maxiter : int
        Most BFGS iterations.
    newton_steps : int
        Most Newton steps after BFGS.
    max_step : float
        Largest first step (max-norm, unconstrained scale).
    verbose : bool
        Print progress.

    Returns
    -------
    OuterResult
    """
    history = {"n": 0}

    def callback(intermediate_result):
        history["n"] += 1
        if verbose:
            _LOG.info(f"  iteration {history['n']:3d}  OFV {intermediate_result.fun:.6f}")

    psi0 = np.asarray(psi0, dtype=float)
    start = evaluator.evaluate(psi0)
    hess0 = fd_hessian(evaluator, psi0)
    options = {"maxiter": maxiter, "gtol": tol, "norm": np.inf}
    if np.all(np.isfinite(hess0)):
        options["hess_inv0"] = _initial_inverse_hessian(hess0, start.gradient, max_step)
    res = optimize.minimize(evaluator, psi0, jac=True, method="BFGS", callback=callback, options=options)
    psi = np.asarray(res.x, dtype=float)
    if not evaluator.best < np.inf or res.fun >= _BIG:
        psi = psi0
    ev = evaluator.evaluate(psi)
    psi, ev = _best_visited(evaluator, psi, ev)
    message = str(res.message)
    psi, ev, hessian = _newton_polish(evaluator, psi, ev, tol, newton_steps, max_step, history, verbose)
    psi_best, ev_best = _best_visited(evaluator, psi, ev)
    if psi_best is not psi:
        psi, ev = psi_best, ev_best
        hessian = fd_hessian(evaluator, psi)
    h_z, dpsi_dz = scaled_hessian(evaluator, psi) if len(psi) else (hessian, np.eye(0))
    g_z = dpsi_dz.T @ ev.gradient
    converged, reason = convergence_check(ev.ofv, ev.gradient, h_z, tol, ev.ebe_converged, scaled_gradient=g_z)
    if not converged:
        message = f"{message}; not converged: {reason}"
    return OuterResult(psi, ev, hessian, converged, message, history["n"], h_z, dpsi_dz)


def _best_visited(evaluator: Evaluator, psi: np.ndarray, ev: Evaluation):
    """The best point the evaluator has visited when it is clearly better than ``psi``."""
    best = evaluator.best_psi
    if best is None or not evaluator.best < ev.ofv - 1e-9 * (1.0 + abs(evaluator.best)):
        return psi, ev
    _LOG.debug(f"  keeping the best point visited (OFV {evaluator.best:.6f} < {ev.ofv:.6f})")
    return best.copy(), evaluator.evaluate(best)


def _newton_polish(evaluator, psi, ev, tol, newton_steps, max_step, history, verbose):
    """Newton steps on one finite-difference Hessian (recomputed only if the polish
    moves far enough to change it); the same Hessian serves the covariance step."""
    hessian = fd_hessian(evaluator, psi)
    at = psi.copy()
    for _ in range(newton_steps):
        if np.max(np.abs(ev.gradient)) < tol * 1e-3:
            break
        try:
            w, vec = np.linalg.eigh(hessian)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(w)) or w.min() <= 0:
            break
        step = -vec @ ((vec.T @ ev.gradient) / w)
        if np.abs(step).max() > max_step:
            break
        trial = psi + step
        new = evaluator.evaluate(trial, ev.eta)
        noise = 1e-9 * (1.0 + abs(ev.ofv))
        better = new.ofv <= ev.ofv + noise and np.abs(new.gradient).max() < np.abs(ev.gradient).max()
        if not np.isfinite(new.ofv) or not better:
            evaluator.evaluate(psi, ev.eta)
            break
        history["n"] += 1
        psi, ev = trial, new
        if verbose:
            _LOG.info(f"  newton    {history['n']:3d}  OFV {ev.ofv:.6f}")
        if np.abs(psi - at).max() > 1e-2:
            hessian = fd_hessian(evaluator, psi)
            at = psi.copy()
    if np.abs(psi - at).max() > 1e-3:
        hessian = fd_hessian(evaluator, psi)
    return psi, ev, hessian


def convergence_check(
    ofv, gradient, hessian, tol: float, ebe_converged: bool = True, scaled_gradient=None
) -> tuple[bool, str]:
    """Whether a point is a minimum: the gradient and step test of the outer step.

    A point passes when the OFV is finite, every EBE converged, the largest gradient
    component is below ``tol``, the Hessian is finite and positive definite, and the
    Newton step ``H^-1 g`` is shorter than :data:`STEP_TOL` in every coordinate (so a
    flat region, where the gradient vanishes but the curvature does too, and a saddle
    point do not pass).

    Parameters
    ----------
    ofv : float
    gradient : numpy.ndarray
    hessian : numpy.ndarray or None
        Hessian of the OFV: on the unconstrained scale ``psi``, or in the well-scaled
        parameters ``z`` with ``scaled_gradient`` given.
    tol : float
        Bound on the largest component of ``gradient`` (``dOFV/dpsi``).
    ebe_converged : bool
    scaled_gradient : numpy.ndarray, optional
        ``dOFV/dz``, for the Newton step with a Hessian in ``z``.

    Returns
    -------
    converged : bool
    reason : str
        Why not ("" when converged).
    """
    gradient = np.asarray(gradient, dtype=float)
    if gradient.size == 0:
        return bool(np.isfinite(ofv)), "" if np.isfinite(ofv) else "the OFV is not finite"
    if not np.isfinite(ofv) or not np.all(np.isfinite(gradient)):
        return False, "the OFV or its gradient is not finite at the end point"
    if not ebe_converged:
        return False, "the conditional modes (EBEs) of some subjects did not converge"
    gmax = float(np.max(np.abs(gradient)))
    if gmax >= tol:
        return False, f"largest OFV gradient {gmax:.3g} (tol {tol:g})"
    if hessian is None or not np.all(np.isfinite(hessian)):
        return False, (
            "the Hessian of the OFV cannot be computed at the end point (a point one step away is "
            "not valid, e.g. omega is not positive definite there)"
        )
    w, vec = np.linalg.eigh(0.5 * (hessian + hessian.T))
    if w.min() <= 1e-9 * max(float(np.abs(w).max()), 1.0):
        return False, (
            f"the Hessian of the OFV is not positive definite at the end point (eigenvalues {w.min():.3g} "
            f"to {w.max():.3g}): a flat region or a saddle point, not a minimum"
        )
    g = gradient if scaled_gradient is None else np.asarray(scaled_gradient, dtype=float)
    step = float(np.abs(vec @ ((vec.T @ g) / w)).max())
    if step >= STEP_TOL:
        return (
            False,
            f"the Newton step from the end point is {step:.3g} (limit {STEP_TOL:g}): the minimum is further on",
        )
    return True, ""
