"""``estimate(method="saem")``: SAEM on the chains' problem, then the pieces every
frequentist fit reports (conditional modes, linearised information, flip-flop rule)."""

from __future__ import annotations

import logging
import time

import numpy as np

from .outer import OuterResult, convergence_check, scaled_hessian
from .saem import default_chains, replicate, run_saem
from .starts import flip_flop_state, omega_boundary

__all__ = ["run_saem_fit"]

_LOG = logging.getLogger("bayes_nlme.estimation")


def run_saem_fit(spec, dataset, problem, psi0, evaluator, settings, seed: int, verbose: bool):
    """Fit by SAEM and evaluate the result like the other methods.

    The chains run on a problem whose dataset repeats every subject once per chain, so
    one call of the model core simulates all of them. ``converged`` means: finite
    estimates, the linearised (FOCE-I) information at them positive definite (the
    curvature part of :func:`~.outer.convergence_check`) and the flip-flop rule met;
    SAEM has no gradient test (its estimate is not the FOCE-I optimum), so look at the
    trajectories too.

    Parameters
    ----------
    spec : ModelSpec
    dataset : Dataset
    problem : Problem
        Of the dataset itself.
    psi0 : numpy.ndarray
    evaluator : Evaluator
        FOCE-I evaluator of ``problem``.
    settings : SaemSettings
    seed : int
    verbose : bool

    Returns
    -------
    outer : OuterResult
    search : dict
        For ``fit.json`` (``saem`` settings, ``convergence_reason``, ``advice``,
        ``flip_flop``, ``covariance_basis``) and ``trajectory`` (a DataFrame).
    """
    from .estimator import build_problem

    chains = default_chains(settings, dataset.n_subjects)
    started, cpu = time.perf_counter(), time.process_time()
    chained = build_problem(spec, replicate(dataset, chains))[0] if chains > 1 else problem
    chained.kernel.warm_up(chained.log_parameters(psi0, None)[0])
    if verbose:
        _LOG.info(f"saem: {settings.n_burn} + {settings.n_em} iterations, {chains} chains per subject")
    psi, trajectory = run_saem(chained, psi0, settings, chains=chains, seed=seed, verbose=verbose)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    ev, h_z, dpsi_dz, ok, reason, flip = _saem_verdict(problem, evaluator, psi)
    message = f"SAEM: {settings.n_burn} + {settings.n_em} iterations, {chains} chains per subject"
    outer = OuterResult(psi, ev, None, ok, message, settings.n_burn + settings.n_em, h_z, dpsi_dz)
    search = {
        "saem": {
            "n_burn": settings.n_burn,
            "n_em": settings.n_em,
            "chains": chains,
            "kernel_steps": list(settings.kernel_steps),
            "is_samples": settings.is_samples,
            "seed": seed,
            "seconds": seconds,
            "cpu_seconds": cpu,
        },
        "starts": [],
        "flip_flop": flip,
        "convergence_reason": reason,
        "advice": ""
        if ok
        else "Look at the SAEM trajectories; try more iterations ([saem] n_burn, n_em) or other initial values",
        "covariance_basis": "linearised (FOCE-I) Fisher information at the SAEM estimates",
        "n_evaluations": 0,
        "trajectory": trajectory,
    }
    return outer, search


def _saem_verdict(problem, evaluator, psi):
    """The FOCE-I evaluation at SAEM's estimates, its scaled Hessian, and whether they pass
    (positive definite information, flip-flop rule, finite estimates) with the reason.

    Returns ``evaluation, h_z, dpsi_dz, ok, reason, flip_flop``.
    """
    ev = evaluator.evaluate(psi)
    h_z, dpsi_dz = scaled_hessian(evaluator, psi)
    g_z = dpsi_dz.T @ ev.gradient
    # no gradient test: SAEM's estimate is not the FOCE-I optimum (tolerance inf)
    ok, reason = convergence_check(ev.ofv, ev.gradient, h_z, np.inf, ev.ebe_converged, scaled_gradient=0 * g_z)
    flip = flip_flop_state(problem, psi)
    if flip is not None and flip["violated"]:
        ok, reason = (
            False,
            (
                f"flip-flop: the absorption rate ka {flip['ka']:.4g} is not above the terminal elimination rate "
                f"{flip['terminal_rate']:.4g} (the rule of the Bayesian path)"
            ),
        )
    boundary = "" if ok else omega_boundary(problem, psi)
    if boundary:
        reason = f"{boundary} ({reason})"
    if not np.all(np.isfinite(psi)):
        ok, reason = False, "the estimates are not finite"
    return ev, h_z, dpsi_dz, ok, reason, flip
