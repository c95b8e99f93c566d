"""Start points of the outer step: screened starts for far-off initial values, the choice
among several runs, and the flip-flop guard of the frequentist path.

A start far from the optimum can sit on a plateau (for example ``V`` 100 times too small
and ``CL`` 100 times too large: every prediction is about zero, the gradient vanishes and
the Hessian is singular). :func:`screened_starts` finds better start points by
evaluating the population (``eta = 0``) objective, with the residual variances profiled
on a grid, on a scrambled Sobol set of typical values spread over a factor of
:data:`SPREAD` either side of the given start.

The flip-flop guard is the rule of the Bayesian path (:mod:`bayes_nlme.build.flipflop`):
the population absorption rate must exceed the terminal elimination rate
(:func:`~bayes_nlme.build.flipflop.terminal_rate`). :func:`mirror_start` gives the
mirrored start (``ka`` and the terminal rate swapped by scaling the volumes).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SPREAD", "screened_starts", "choose_run", "flip_flop_state", "mirror_start", "omega_boundary"]

#: Screened typical values lie within this factor either side of the given start.
SPREAD = 1e3
#: Candidate points of the screen.
N_SCREEN = 512
#: Multipliers of the start residual variances tried at each candidate.
_SIGMA_GRID = 10.0 ** np.arange(-3.0, 3.5, 0.5)


def _pooled_value(problem, psi: np.ndarray) -> tuple[float, np.ndarray]:
    """The naive-pooled ``-2 log L`` (etas zero) with the residual variances profiled on a grid."""
    u, _ = problem.log_parameters(psi, None)
    with np.errstate(all="ignore"):
        f = problem.kernel.value(u)
    if not np.all(np.isfinite(f)):
        return np.inf, psi
    at = problem.pmap.n_theta + problem.pmap.n_beta + problem.pmap.n_omega
    best, best_psi = np.inf, psi
    for m in _SIGMA_GRID:
        trial = psi.copy()
        trial[at:] += np.log(m)
        with np.errstate(all="ignore"):
            res = problem.residual(trial, f, True)
            value = float(np.sum(problem.loss(f, res)["l"]))
        if np.isfinite(value) and value < best:
            best, best_psi = value, trial
    return best, best_psi


def screened_starts(problem, psi0: np.ndarray, n: int, *, seed: int = 0) -> list[np.ndarray]:
    """Up to ``n`` distinct start points ranked by the naive-pooled objective.

    Parameters
    ----------
    problem : Problem
    psi0 : numpy.ndarray
        The given start (unconstrained scale); omega and the covariate coefficients
        keep their start values.
    n : int
        Number of start points wanted.
    seed : int
        Seed of the scrambled Sobol sequence.

    Returns
    -------
    list of numpy.ndarray
        Best first; two starts differ by at least a factor 2 in some typical value.
    """
    from scipy.stats import qmc

    k = problem.pmap.n_theta
    if n <= 0 or k == 0:
        return []
    unit = qmc.Sobol(k, scramble=True, seed=seed).random(N_SCREEN)
    scored = []
    for row in unit:
        psi = np.array(psi0, dtype=float)
        psi[:k] += np.log(SPREAD) * (2.0 * row - 1.0)
        value, psi = _pooled_value(problem, psi)
        if np.isfinite(value):
            scored.append((value, psi))
    scored.sort(key=lambda item: item[0])
    chosen: list[np.ndarray] = []
    for _, psi in scored:
        if all(np.abs(psi[:k] - c[:k]).max() > np.log(2.0) for c in chosen):
            chosen.append(psi)
        if len(chosen) == n:
            break
    return chosen


def choose_run(runs: list):
    """The run to report: the converged run with the lowest OFV, else the lowest OFV.

    Parameters
    ----------
    runs : list of OuterResult

    Returns
    -------
    OuterResult
    """
    finite = [r for r in runs if np.isfinite(r.evaluation.ofv)] or runs
    converged = [r for r in finite if r.converged]
    pool = converged or finite
    return min(pool, key=lambda r: r.evaluation.ofv)


def _typical(problem, psi: np.ndarray) -> dict:
    """Typical values of every structural parameter (estimated or fixed) at ``psi``."""
    pm = problem.pmap
    values = {name: float(np.exp(psi[k])) for k, name in enumerate(pm.theta_names)}
    for p in problem.spec.parameters:
        if p.is_fixed:
            values[p.name] = float(p.fixed)
    return values


def flip_flop_state(problem, psi: np.ndarray) -> dict | None:
    """The flip-flop rule at ``psi``: ``ka`` against the terminal elimination rate.

    Parameters
    ----------
    problem : Problem
    psi : numpy.ndarray

    Returns
    -------
    dict or None
        ``ka``, ``terminal_rate`` and ``violated`` (``ka <= terminal_rate``); None when
        the guard does not apply (not an oral model, ``ka`` fixed, or
        ``flip_flop_guard = false``).
    """
    from ..build.flipflop import ABSORPTION, guard_enabled, terminal_rate

    if not guard_enabled(problem.spec):
        return None
    values = _typical(problem, psi)
    try:
        rate = float(terminal_rate(values, xp=np))
    except KeyError:
        return None
    ka = values[ABSORPTION]
    return {"ka": ka, "terminal_rate": rate, "violated": bool(ka <= rate)}


def mirror_start(problem, psi: np.ndarray, psi0: np.ndarray | None = None) -> np.ndarray | None:
    """The mirrored start of a flip-flop point: ``ka`` and the terminal rate swapped.

    The volumes are multiplied by ``k / ka`` (which divides every disposition rate, so
    the terminal rate becomes the old ``ka``) and ``ka`` is set to the old terminal rate.

    Omega and the residual variances restart from ``psi0`` (the start values) when
    given: at a flip-flop optimum the IIV of ``ka`` often collapses.

    Parameters
    ----------
    problem : Problem
    psi : numpy.ndarray
    psi0 : numpy.ndarray, optional

    Returns
    -------
    numpy.ndarray or None
        None when the rule is not violated, does not apply, or a volume is fixed.
    """
    state = flip_flop_state(problem, psi)
    if state is None or not state["violated"]:
        return None
    pm = problem.pmap
    volumes = [p.name for p in problem.spec.parameters if p.name.startswith("V")]
    if not volumes or any(name not in pm.theta_names for name in volumes):
        return None
    factor = np.log(state["terminal_rate"] / state["ka"]) + np.log(1.05)
    out = np.array(psi, dtype=float)
    if psi0 is not None:
        at = pm.n_theta + pm.n_beta
        out[at:] = np.asarray(psi0, dtype=float)[at:]
    for name in volumes:
        out[pm.index(name)] += factor
    out[pm.index("ka")] = np.log(state["terminal_rate"] * 1.05)
    return out


#: A random effect whose variance the others explain to more than 1 - this is at
#: omega's boundary (when the Hessian is not positive definite there).
BOUNDARY_RATIO = 0.05


def omega_boundary(problem, psi: np.ndarray) -> str:
    """Why omega is at the boundary of the positive definite matrices at ``psi``, or "".

    For each random effect the share of its variance that the others do not explain,
    ``1 / (omega_ii (omega^-1)_ii)``; below :data:`BOUNDARY_RATIO` (or a variance
    below 1e-6) omega is nearly singular.

    Parameters
    ----------
    problem : Problem
    psi : numpy.ndarray

    Returns
    -------
    str
    """
    pm = problem.pmap
    d = len(pm.iiv)  # the etas' omega (the IOV slots that follow are diagonal)
    if d == 0:
        return ""
    omega = pm.omega_matrix(psi)[:d, :d]
    small = [pm.iiv[i] for i in range(d) if omega[i, i] < 1e-6]
    if small:
        return f"the IIV variance of {', '.join(small)} tends to zero"
    try:
        ratio = 1.0 / (np.diag(omega) * np.diag(np.linalg.inv(omega)))
    except np.linalg.LinAlgError:
        return "omega is singular"
    low = [pm.iiv[i] for i in range(d) if ratio[i] < BOUNDARY_RATIO]
    if not low:
        return ""
    sd = np.sqrt(np.diag(omega))
    smallest = float(np.linalg.eigvalsh(omega / np.outer(sd, sd)).min())
    return (
        f"omega tends to a singular matrix: the random effects of {', '.join(low)} are nearly linear "
        f"combinations of the others (smallest eigenvalue of their correlation matrix {smallest:.2g}), so the "
        "maximum likelihood lies on the boundary and has no Wald standard errors"
    )
