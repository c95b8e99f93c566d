"""The outer optimisation of the frequentist path from several starts.

One run from the start values; when it does not converge (and omega is not at its
boundary), more runs from screened start points (:mod:`.starts`); a flip-flop optimum is
re-fitted from its mirror image. The chosen run, why it did not converge and what to try.
"""

from __future__ import annotations

import logging

from .outer import Evaluator, minimise
from .starts import choose_run, flip_flop_state, mirror_start, omega_boundary, screened_starts

__all__ = ["multistart_optimise", "ADVICE"]

_LOG = logging.getLogger("bayes_nlme.estimation")


#: What to try after a fit that did not converge.
ADVICE = (
    "Try better initial values in the model file (e.g. from a plot of the data or an FO fit), "
    "more starts (--starts N), or a simpler model (diagonal omega, fewer IIV parameters)"
)


def multistart_optimise(problem, method, psi0, evaluator, tol, maxiter, verbose, starts, seed):
    """The outer optimisation from the start values, screened starts and the flip-flop mirror.

    Parameters
    ----------
    problem : Problem
    method : {"focei", "foce", "fo", "laplace"}
    psi0 : numpy.ndarray
        Packed start values.
    evaluator : Evaluator
        The evaluator of the first run (already warm).
    tol, maxiter, verbose, starts, seed
        As in :func:`.estimator.estimate`.

    Returns
    -------
    outer : OuterResult
        The chosen run.
    evaluator : Evaluator
        Its evaluator.
    search : dict
        ``starts`` (OFV, converged and start of every run), ``flip_flop``,
        ``convergence_reason``, ``advice`` and ``n_evaluations``.
    """
    runs = [(minimise(evaluator, psi0, tol=tol, maxiter=maxiter, verbose=verbose), evaluator, "initial")]
    first = runs[0][0]
    # other starts cannot help a maximum on omega's boundary: that needs a simpler omega
    hopeless = first.converged or "singular matrix" in omega_boundary(problem, first.psi)
    extra = (starts - 1) if starts is not None else (0 if hopeless else 4)
    if extra > 0:
        if verbose:
            _LOG.info(f"{method}: screening {extra} more start points")
        for psi in screened_starts(problem, psi0, extra, seed=seed):
            ev = Evaluator(problem, method)
            runs.append((minimise(ev, psi, tol=tol, maxiter=maxiter, verbose=verbose), ev, "screened"))
    chosen = choose_run([r[0] for r in runs])
    flip = flip_flop_state(problem, chosen.psi)
    if flip is not None and flip["violated"]:
        mirror = mirror_start(problem, chosen.psi, psi0)
        flip["mirror_tried"] = mirror is not None
        if mirror is not None:
            if verbose:
                _LOG.info(
                    f"{method}: flip-flop optimum (ka {flip['ka']:.4g} <= k {flip['terminal_rate']:.4g}); "
                    "refit from its mirror"
                )
            ev = Evaluator(problem, method)
            runs.append((minimise(ev, mirror, tol=tol, maxiter=maxiter, verbose=verbose), ev, "flip-flop mirror"))
        allowed = [r[0] for r in runs if not flip_flop_state(problem, r[0].psi)["violated"]]
        chosen = choose_run(allowed) if allowed else chosen
    outer = chosen
    evaluator = next(r[1] for r in runs if r[0] is chosen)
    reason = "" if outer.converged else outer.message.split("not converged: ")[-1]
    boundary = "" if outer.converged else omega_boundary(problem, outer.psi)
    advice = ADVICE
    if boundary:
        reason = f"{boundary} ({reason})"
        advice = (
            "Remove that IIV (iiv = false)"
            if "tends to zero" in boundary
            else "Simplify omega: a diagonal omega, or blocks without the perfectly correlated pair ([omega] blocks)"
        )
    flip = flip_flop_state(problem, outer.psi)
    if flip is not None and flip["violated"]:
        outer.converged = False
        reason = (
            f"flip-flop: the absorption rate ka {flip['ka']:.4g} is not above the terminal elimination rate "
            f"{flip['terminal_rate']:.4g} (the rule of the Bayesian path), and the mirrored start did not reach "
            "an optimum with ka above it"
        )
    search = {
        "starts": [
            {"kind": kind, "ofv": float(r.evaluation.ofv), "converged": bool(r.converged)} for r, _, kind in runs
        ],
        "flip_flop": flip,
        "convergence_reason": reason,
        "advice": "" if outer.converged else advice,
        "n_evaluations": int(sum(r[1].n_evaluations for r in runs)),
    }
    return outer, evaluator, search
