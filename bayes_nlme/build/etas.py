"""Random effects: etas from the omega factor, non-centred (default) or centred.

Non-centred (default): ``z ~ N(0, 1)`` (variable ``eta_z``, dims ``subject x
parameter``) and ``eta_i = F z_i`` with ``F F^T = Omega``
(:func:`bayes_nlme.build.omega.omega_factor`). This suits sparse data, where the etas
are shrunk towards zero.

Centred: the log individual parameters ``log P_i = mu_i + eta_i`` are the free
variable (``log_individual``, dims ``subject x parameter``), with the density
``N(log P_i; mu_i, Omega)`` added as a :func:`pymc.Potential` (``eta_prior``),
computed through ``F^-1`` and ``log|det F|``; ``mu_i`` is the log of the typical value
times the subject's covariate factors. Centring on the individual parameters, rather
than on the etas, removes the ridge between a typical value and the mean of its etas:
given the individual parameters, ``theta`` has a well-conditioned normal conditional.
This suits rich data per subject (e.g. Theophylline: 11 samples per subject).

Mixed (``centered`` a tuple of parameter names): those parameters are centred, the
others non-centred. With ``L`` the Cholesky factor of Omega in the order (non-centred,
centred), ``eta_N = L_NN z_N`` and the centred etas get the conditional density
``N(eta_C; L_CN z_N, L_CC L_CC^T)``, so the joint density of the etas is exactly that
of the other two forms. A variance with mass near zero (a shrunk parameter) then gets
the non-centred form it needs without taking it from the well-informed parameters.

Either way the deterministic ``eta`` (``subject x parameter``) holds the etas, with
columns in ``spec.iiv_names`` order. With the flip-flop guard, the absorption-rate
column is bounded below (:mod:`bayes_nlme.build.flipflop`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from . import smallmatrix as sm
from .omega import OmegaFactor

__all__ = ["random_effects", "centring"]

_LOG_2PI = float(np.log(2.0 * np.pi))


def _bounded(free, bound):
    """``bound + softplus(free - bound)`` and its log-Jacobian ``log sigmoid(free - bound)``."""
    return bound + pt.softplus(free - bound), -pt.softplus(bound - free)


def centring(spec, centered) -> bool | tuple:
    """The eta parameterisation in canonical form: True, False or a tuple of names.

    Parameters
    ----------
    spec : ModelSpec
    centered : bool or iterable of str
        All centred (True), none (False), or the names of the centred IIV parameters.

    Returns
    -------
    bool or tuple of str
        A tuple only for a proper, non-empty subset (in ``spec.iiv_names`` order);
        all names give True, none False.

    Raises
    ------
    ValueError
        A name that is not a parameter with IIV.
    """
    if isinstance(centered, (bool, np.bool_)):
        return bool(centered)
    wanted = {centered} if isinstance(centered, str) else set(centered)
    names = list(spec.iiv_names)
    unknown = sorted(wanted - set(names))
    if unknown:
        raise ValueError(
            f"centred parameters {', '.join(unknown)} have no IIV (parameters with IIV: {', '.join(names) or 'none'})"
        )
    subset = tuple(n for n in names if n in wanted)
    if not subset or len(subset) == len(names):
        return bool(subset)
    return subset


def random_effects(
    spec,
    omega: OmegaFactor,
    *,
    centered: bool = False,
    bounded: str | None = None,
    lower_bound: Callable | None = None,
    mean=None,
    initial=None,
    log_individual: dict | None = None,
    columns: list | None = None,
) -> pt.TensorVariable:
    """Create the etas in the current model (dims ``subject`` x ``parameter``).

    Parameters
    ----------
    spec : ModelSpec
    omega : OmegaFactor
        From :func:`~bayes_nlme.build.omega.omega_factor`; when ``bounded`` is given it
        must have been built with ``first=bounded``.
    centered : bool or tuple of str
        Centred (True) or non-centred (False, default) parameterisation, or the names
        of the centred parameters (mixed, see :func:`centring`).
    bounded : str, optional
        A parameter whose eta is bounded below (the absorption rate).
    lower_bound : callable, optional
        Non-centred: ``lower_bound(eta) -> tensor (n_subjects,)``, the bound on
        ``eta[:, bounded]``; it must not depend on that column. Centred and mixed:
        ``lower_bound(log_params) -> tensor (n_subjects,)``, the bound on the log
        individual value of ``bounded``, from a dict of the other IIV parameters' log
        individual values.
    mean : list of tensors, optional
        ``mu_i``, the log typical individual parameters (needed when centred or mixed), one
        tensor per IIV parameter in ``spec.iiv_names`` order: a scalar, or a vector
        over subjects when covariates enter. Kept as columns (not one stacked matrix):
        the graph and its gradient then need no joins, splits or partial sums.
    initial : numpy.ndarray (n_iiv,), optional
        Initial log individual parameters of the centred parameterisation, the same for
        every subject (default 0).
    log_individual : dict, optional
        Centred only: filled with each IIV parameter's log individual values (a tensor
        per name), so the caller can use ``exp`` of them rather than
        ``exp(mean + eta)``.
    columns : list, optional
        Filled with the eta columns (one vector per IIV parameter, in
        ``spec.iiv_names`` order), for callers that use them one by one: slicing the
        stacked ``eta`` again would add joins, slices and their gradients to the graph.

    Returns
    -------
    tensor (n_subjects, n_iiv)
        The deterministic ``eta``.
    """
    names = list(spec.iiv_names)
    p = len(names)
    k = names.index(bounded) if bounded is not None else None
    f = omega.factor
    dims = ("subject", "parameter")
    n = len(pm.modelcontext(None).coords["subject"])
    centered = centring(spec, centered)
    if centered is not False and mean is None:
        raise ValueError("the centred and mixed parameterisations need the log typical parameters (mean)")
    if isinstance(centered, tuple):
        eta_cols, logs = _mixed(names, omega, centered, k, lower_bound, mean, initial, n)
    elif centered:
        eta_cols, logs = _centred(names, omega, k, lower_bound, mean, initial, n)
    else:
        eta_cols, logs = _non_centred(p, f, k, lower_bound, n), {}
    if log_individual is not None:
        log_individual.update(logs)
    if columns is not None:
        columns[:] = eta_cols
    return pm.Deterministic("eta", pt.stack(eta_cols, axis=1), dims=dims)


def _non_centred(p, f, k, lower_bound, n) -> list:
    """``eta = F z`` with ``z ~ N(0, 1)`` (``eta_z``); the bounded column ``k`` owns its ``z``."""
    z = pm.Normal("eta_z", 0.0, 1.0, dims=("subject", "parameter"), shape=(n, p))
    z_cols = [z[:, j] for j in range(p)]
    if k is None:
        return sm.apply_columns(f, z_cols)
    eta_cols = sm.apply_columns(f, [None if j == k else z_cols[j] for j in range(p)])
    rest = eta_cols[k] if eta_cols[k] is not None else pt.zeros_like(z_cols[k])
    eta_cols[k] = rest
    fkk = f[k][k]
    t = (lower_bound(list(eta_cols)) - rest) / fkk
    zk, log_jac = _bounded(z_cols[k], t)
    pm.Potential("flip_flop_eta", pt.sum(-0.5 * zk**2 + 0.5 * z_cols[k] ** 2 + log_jac))
    eta_cols[k] = rest + fkk * zk
    return eta_cols


def _centred(names, omega, k, lower_bound, mean, initial, n) -> tuple[list, dict]:
    """Free log individual parameters (``log_individual``) with ``N(mean, Omega)`` as a potential."""
    p = len(names)
    init = None if initial is None else np.tile(np.asarray(initial, dtype=float), (n, 1))
    free = pm.Flat("log_individual", dims=("subject", "parameter"), shape=(n, p), initval=init)
    log_cols = [free[:, j] for j in range(p)]
    if k is not None:
        bound = lower_bound({names[j]: log_cols[j] for j in range(p) if j != k})
        log_cols[k], log_jac = _bounded(log_cols[k], bound)
        pm.Potential("flip_flop_eta", pt.sum(log_jac))
    eta_cols = [log_cols[j] - mean[j] for j in range(p)]
    z_cols = sm.apply_columns(omega.inverse_factor, eta_cols)
    pm.Potential(
        "eta_prior",
        -0.5 * sum(pt.sum(c**2) for c in z_cols) - n * omega.log_det_factor - 0.5 * n * p * _LOG_2PI,
    )
    return eta_cols, {names[j]: log_cols[j] for j in range(p)}


def _mixed(names, omega, centred, k, lower_bound, mean, initial, n) -> tuple[list, dict]:
    """Etas with the parameters ``centred`` centred and the others non-centred.

    Free variables: ``eta_z`` (``n x |N|``, standard normal) and ``log_individual``
    (``n x |C|``, flat), columns in the order of ``names`` within each set, except that
    a bounded non-centred parameter (``k``) comes last among the non-centred ones, so
    that its ``z`` moves its own eta only. Returns the eta columns (``names`` order) and
    the centred parameters' log individual values.
    """
    p = len(names)
    c_idx = [j for j in range(p) if names[j] in centred]
    n_idx = [j for j in range(p) if names[j] not in centred and j != k]
    n_idx += [k] if k is not None and names[k] not in centred else []
    m, order = len(n_idx), n_idx + c_idx
    chol = sm.cholesky(sm.submatrix(sm.matmul(omega.factor, sm.transpose(omega.factor)), order, order))
    z = pm.Normal("eta_z", 0.0, 1.0, shape=(n, m))
    z_cols = [z[:, r] for r in range(m)]
    init = None if initial is None else np.tile(np.asarray(initial, dtype=float)[c_idx], (n, 1))
    free = pm.Flat("log_individual", shape=(n, len(c_idx)), initval=init)
    logs = {names[j]: free[:, q] for q, j in enumerate(c_idx)}
    bounded_free = k is not None and names[k] not in centred
    eta_n = sm.apply_columns(sm.submatrix(chol, range(m), range(m)), z_cols[:-1] + [None] if bounded_free else z_cols)
    eta = {names[j]: eta_n[r] if eta_n[r] is not None else pt.zeros_like(z_cols[r]) for r, j in enumerate(n_idx)}
    others = {names[j]: mean[j] + eta[names[j]] for j in n_idx if j != k} | {n_: v for n_, v in logs.items()}
    if bounded_free:
        rest, lkk = eta[names[k]], chol[m - 1][m - 1]
        t = (lower_bound({n_: v for n_, v in others.items() if n_ != names[k]}) - mean[k] - rest) / lkk
        zk, log_jac = _bounded(z_cols[-1], t)
        pm.Potential("flip_flop_eta", pt.sum(-0.5 * zk**2 + 0.5 * z_cols[-1] ** 2 + log_jac))
        z_cols[-1] = zk
        eta[names[k]] = rest + lkk * zk
    elif k is not None:
        logs[names[k]], log_jac = _bounded(
            logs[names[k]], lower_bound({n_: v for n_, v in others.items() if n_ != names[k]})
        )
        pm.Potential("flip_flop_eta", pt.sum(log_jac))
    for j in c_idx:
        eta[names[j]] = logs[names[j]] - mean[j]
    residual = []
    for q, j in enumerate(c_idx):
        mean_c = sm.apply_columns([chol[m + q][:m]], z_cols)[0]  # E[eta_C | z_N]
        residual.append(eta[names[j]] if mean_c is None else eta[names[j]] - mean_c)
    chol_cc = sm.submatrix(chol, range(m, p), range(m, p))
    z_c = sm.apply_columns(sm.lower_inverse(chol_cc), residual)
    pm.Potential(
        "eta_prior",
        -0.5 * sum(pt.sum(c**2) for c in z_c) - n * sm.log_diagonal_sum(chol_cc) - 0.5 * n * len(c_idx) * _LOG_2PI,
    )
    return [eta[name] for name in names], logs
