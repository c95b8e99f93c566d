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

__all__ = ["random_effects"]

_LOG_2PI = float(np.log(2.0 * np.pi))


def _bounded(free, bound):
    """``bound + softplus(free - bound)`` and its log-Jacobian ``log sigmoid(free - bound)``."""
    return bound + pt.softplus(free - bound), -pt.softplus(bound - free)


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
    centered : bool
        Centred (True) or non-centred (False, default) parameterisation.
    bounded : str, optional
        A parameter whose eta is bounded below (the absorption rate).
    lower_bound : callable, optional
        Non-centred: ``lower_bound(eta) -> tensor (n_subjects,)``, the bound on
        ``eta[:, bounded]``; it must not depend on that column. Centred:
        ``lower_bound(log_params) -> tensor (n_subjects,)``, the bound on the log
        individual value of ``bounded``, from a dict of the other IIV parameters' log
        individual values.
    mean : list of tensors, optional
        ``mu_i``, the log typical individual parameters (needed when centred), one
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
    if not centered:
        z = pm.Normal("eta_z", 0.0, 1.0, dims=dims, shape=(n, p))
        z_cols = [z[:, j] for j in range(p)]
        if k is None:
            eta_cols = sm.apply_columns(f, z_cols)
        else:
            eta_cols = sm.apply_columns(f, [None if j == k else z_cols[j] for j in range(p)])
            rest = eta_cols[k] if eta_cols[k] is not None else pt.zeros_like(z_cols[k])
            eta_cols[k] = rest
            fkk = f[k][k]
            t = (lower_bound(list(eta_cols)) - rest) / fkk
            zk, log_jac = _bounded(z_cols[k], t)
            pm.Potential("flip_flop_eta", pt.sum(-0.5 * zk**2 + 0.5 * z_cols[k] ** 2 + log_jac))
            eta_cols[k] = rest + fkk * zk
    else:
        if mean is None:
            raise ValueError("the centred parameterisation needs the log typical parameters (mean)")
        init = None if initial is None else np.tile(np.asarray(initial, dtype=float), (n, 1))
        free = pm.Flat("log_individual", dims=dims, shape=(n, p), initval=init)
        log_cols = [free[:, j] for j in range(p)]
        if k is not None:
            bound = lower_bound({names[j]: log_cols[j] for j in range(p) if j != k})
            log_cols[k], log_jac = _bounded(log_cols[k], bound)
            pm.Potential("flip_flop_eta", pt.sum(log_jac))
        if log_individual is not None:
            log_individual.update({names[j]: log_cols[j] for j in range(p)})
        eta_cols = [log_cols[j] - mean[j] for j in range(p)]
        z_cols = sm.apply_columns(omega.inverse_factor, eta_cols)
        pm.Potential(
            "eta_prior",
            -0.5 * sum(pt.sum(c**2) for c in z_cols) - n * omega.log_det_factor - 0.5 * n * p * _LOG_2PI,
        )
    if columns is not None:
        columns[:] = eta_cols
    return pm.Deterministic("eta", pt.stack(eta_cols, axis=1), dims=dims)
