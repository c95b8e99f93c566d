"""The objective by importance sampling around the conditional modes (NONMEM's IMP).

For subject ``i`` the likelihood is ``L_i = integral p(y_i | eta) p(eta) d eta``. With the
conditional mode ``eta_i`` and the Hessian ``H_i`` of ``O_i = -2 log p(y_i, eta)`` there
(from the FOCE-I inner step, interaction included), the proposal is a multivariate
Student t with :data:`DF` degrees of freedom centred at the mode with scale matrix
``2 H_i^-1`` (the inverse of the Hessian of ``-log p``): heavier tails than the posterior
keep the weights' variance finite. With ``M`` draws ``eta_m`` and weights
``w_m = p(y_i, eta_m) / q(eta_m)``, ``L_i ~ mean(w)``, and

``OFV = -2 sum_i log mean(w_i)`` (without ``n_obs log 2 pi``, as the other OFVs).

Its Monte-Carlo standard error is the delta method on the independent subject means:
``MCSE = 2 sqrt(sum_i var(w_i) / (M mean(w_i)^2))``. The data part of ``p(y_i | eta)``
is the loss of :mod:`.loss` (M3 censored rows included) on the model core's
predictions (the SAEM target, :class:`.saem._Target`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, logsumexp

__all__ = ["importance_sampling_ofv", "DF"]

#: Degrees of freedom of the t proposal.
DF = 4.0


def importance_sampling_ofv(
    problem, psi: np.ndarray, mode: np.ndarray, hessian: np.ndarray, *, samples: int = 3000, seed: int = 0
):
    """OFV by importance sampling, with its Monte-Carlo standard error.

    Parameters
    ----------
    problem : Problem
        Of the dataset, or of the dataset with every subject repeated ``K`` times
        (:func:`.saem.replicate`; subject ``c * n + i`` is a copy of ``i``): then each
        call of the model core evaluates ``K`` draws of every subject.
    psi : numpy.ndarray
        Population parameters (unconstrained scale).
    mode : numpy.ndarray (n_subjects, d)
        Conditional modes.
    hessian : numpy.ndarray (n_subjects, d, d)
        Hessians of ``O_i`` at the modes.
    samples : int
        Draws per subject.
    seed : int

    Returns
    -------
    ofv : float
    mcse : float
    per_subject : numpy.ndarray (n_subjects,)
        ``-2 log L_i``.
    """
    from .saem import _Target

    rng = np.random.default_rng(seed)
    n, d = mode.shape
    copies = problem.n_subjects // n
    target = _Target(problem)
    target.set(psi)
    w, vec = np.linalg.eigh(0.5 * (hessian + np.swapaxes(hessian, 1, 2)))
    w = np.maximum(w, 1e-8 * np.maximum(np.abs(w).max(axis=1, keepdims=True), 1.0))  # a valid proposal
    cov = 2.0 * np.einsum("nij,nj,nkj->nik", vec, 1.0 / w, vec)
    chol = np.tile(np.linalg.cholesky(cov), (copies, 1, 1))
    centre = np.tile(mode, (copies, 1))
    log_det_cov = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
    const = -0.5 * (np.linalg.slogdet(target.omega)[1] + d * np.log(2.0 * np.pi))
    log_t = gammaln(0.5 * (DF + d)) - gammaln(0.5 * DF) - 0.5 * d * np.log(DF * np.pi) - 0.5 * log_det_cov
    rounds = -(-samples // copies)
    logw = np.empty((rounds * copies, n))
    for m in range(rounds):
        z = rng.standard_normal((n * copies, d))
        scale = np.sqrt(DF / rng.chisquare(DF, size=n * copies))
        eta = centre + scale[:, None] * np.einsum("nij,nj->ni", chol, z)
        quad = np.sum(z**2, axis=1) * scale**2  # (eta - mode)' cov^-1 (eta - mode)
        log_q = log_t - 0.5 * (DF + d) * np.log1p(quad / DF)
        joint = -0.5 * (target.data_part(eta) + target.prior_part(eta)) + const
        logw[m * copies : (m + 1) * copies] = (np.where(np.isfinite(joint), joint, -np.inf) - log_q).reshape(copies, n)
    samples = len(logw)
    log_mean = logsumexp(logw, axis=0) - np.log(samples)
    w = np.exp(logw - log_mean)  # weights relative to their mean
    rel_var = np.var(w, axis=0) / samples
    per_subject = -2.0 * log_mean
    return float(per_subject.sum()), float(2.0 * np.sqrt(rel_var.sum())), per_subject
