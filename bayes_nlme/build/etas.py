"""Random effects: etas from the omega factor, non-centred (default) or centred.

Non-centred (default): ``z ~ N(0, 1)`` (variable ``eta_z``, dims ``subject x
parameter``) and ``eta_i = F z_i`` with ``F F^T = Omega``
(:func:`bayes_nlme.build.omega.omega_factor`). This suits sparse data, where the etas
are shrunk towards zero.

Centred: ``eta`` itself is the free variable (``eta_c``) with the density
``N(eta_i; 0, Omega)`` added as a :func:`pymc.Potential` (``eta_prior``), computed
through ``F^-1`` and ``log|det F|``. This suits rich data per subject.

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
        ``lower_bound(eta) -> tensor (n_subjects,)``, the bound on ``eta[:, bounded]``;
        it must not depend on that column.

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
    if not centered:
        z = pm.Normal("eta_z", 0.0, 1.0, dims=dims)
        z_cols = [z[:, j] for j in range(p)]
        if k is None:
            eta_cols = sm.apply_columns(f, z_cols)
        else:
            eta_cols = sm.apply_columns(f, [None if j == k else z_cols[j] for j in range(p)])
            rest = eta_cols[k] if eta_cols[k] is not None else pt.zeros_like(z_cols[k])
            eta_cols[k] = rest
            fkk = f[k][k]
            t = (lower_bound(pt.stack(eta_cols, axis=1)) - rest) / fkk
            zk, log_jac = _bounded(z_cols[k], t)
            pm.Potential("flip_flop_eta", pt.sum(-0.5 * zk**2 + 0.5 * z_cols[k] ** 2 + log_jac))
            eta_cols[k] = rest + fkk * zk
        eta = pt.stack(eta_cols, axis=1)
    else:
        free = pm.Flat("eta_c", dims=dims)
        eta_cols = [free[:, j] for j in range(p)]
        if k is not None:
            eta_cols[k], log_jac = _bounded(eta_cols[k], lower_bound(free))
            pm.Potential("flip_flop_eta", pt.sum(log_jac))
        eta = pt.stack(eta_cols, axis=1)
        z_cols = sm.apply_columns(omega.inverse_factor, eta_cols)
        n = eta.shape[0]
        pm.Potential(
            "eta_prior",
            -0.5 * sum(pt.sum(c**2) for c in z_cols) - n * omega.log_det_factor - 0.5 * n * p * _LOG_2PI,
        )
    return pm.Deterministic("eta", eta, dims=dims)
