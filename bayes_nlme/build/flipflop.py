"""Flip-flop guard: keep the absorption rate above the elimination rate.

In oral models the data identify ``{ka, k}`` only as a pair: swapping the absorption
rate ``ka`` with the terminal elimination rate gives nearly the same curve ("flip-flop
kinetics"), so the posterior has two modes and chains may settle in different ones.
The guard (on by default for oral models; ``flip_flop_guard = false`` turns it off)
restricts the **joint prior to the region** where absorption is the faster process:

* population: ``theta_ka > k(theta)``;
* every subject: ``ka_i > k_i``;

where ``k`` is the terminal elimination rate: ``CL/V`` for one compartment, and for two
compartments ``beta = 2 k10 k21 / (s + sqrt(s^2 - 4 k10 k21))`` with
``k10 = CL/V1``, ``k12 = Q/V1``, ``k21 = Q/V2``, ``s = k10 + k12 + k21`` (the slower
disposition rate). Inside the region the density is the stated prior, unchanged
(not renormalised); outside it is zero.

The restriction is implemented smoothly and exactly, by a change of variables onto
the region rather than a hard wall (which NUTS would meet as divergences):

* ``log(theta_ka) = c + softplus(w - c)`` with ``c = log k(theta)``, ``w`` the log of
  a free variable ``theta_ka_raw``; a :func:`pymc.Potential` ``flip_flop_theta``
  replaces the density of ``theta_ka_raw`` by the stated prior density of
  ``theta_ka`` times the Jacobian ``theta_ka * sigmoid(w - c)``;
* for the etas, the standard-normal ``z`` of the absorption rate owns one column of
  the omega factor (see :mod:`bayes_nlme.build.omega`), so ``ka_i > k_i`` is a lower
  bound ``t_i`` on that ``z`` given the other etas; ``z' = t + softplus(z - t)`` with
  the Potential ``flip_flop_eta`` (normal density of ``z'`` and the Jacobian
  ``sigmoid(z - t)``). In the centred parameterisation the free log individual
  absorption rate is bounded the same way, directly by ``log k_i`` computed from the
  subject's other log parameters.

When the bound is far away (the usual case) ``softplus(x) = x`` to many digits, so the
sampler sees the ordinary model. The guard needs an estimated ``ka``; the individual
part needs IIV on ``ka`` (otherwise only the population part applies).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..individual import individual_parameters
from ..spec.structural_names import ORAL_MODELS
from .priors import prior_logp, prior_variable

__all__ = [
    "ABSORPTION",
    "guard_enabled",
    "individual_guard",
    "terminal_rate",
    "guarded_theta_ka",
    "log_terminal_rate",
    "eta_lower_bound",
    "numeric_violations",
]

#: Name of the absorption rate parameter.
ABSORPTION = "ka"


def guard_enabled(spec) -> bool:
    """True when the flip-flop guard applies: an oral model with estimated ``ka``.

    Parameters
    ----------
    spec : ModelSpec
        ``spec.flip_flop_guard`` None or True turns the guard on, False off.

    Returns
    -------
    bool
    """
    if spec.flip_flop_guard is False or spec.structural not in ORAL_MODELS:
        return False
    names = spec.parameter_names
    return ABSORPTION in names and not spec.parameter(ABSORPTION).is_fixed


def individual_guard(spec) -> bool:
    """True when the individual part of the guard applies (``ka`` has IIV)."""
    return guard_enabled(spec) and ABSORPTION in spec.iiv_names


def terminal_rate(params, xp=pt):
    """The terminal elimination rate of a one-, two- or three-compartment model.

    Parameters
    ----------
    params : mapping
        ``CL`` and ``V`` (one compartment), ``CL``, ``V1``, ``Q``, ``V2`` (two), or
        ``CL``, ``V1``, ``Q2``, ``V2``, ``Q3``, ``V3`` (three).
    xp : module
        ``pytensor.tensor`` (default) or ``numpy``.

    Returns
    -------
    tensor or numpy.ndarray
        ``CL/V``, or the slower two-compartment rate ``beta``.
    """
    if "V1" not in params:
        return params["CL"] / params["V"]
    if "Q3" in params:
        return _three_compartment_rate(params, xp)
    k10 = params["CL"] / params["V1"]
    k12 = params["Q"] / params["V1"]
    k21 = params["Q"] / params["V2"]
    s = k10 + k12 + k21
    disc = xp.sqrt(xp.maximum(s * s - 4.0 * k10 * k21, 0.0))
    return 2.0 * k10 * k21 / (s + disc)


def _three_compartment_rate(params, xp):
    """Slowest disposition rate of a three-compartment model (roots of the cubic, as in
    NONMEM's ADVAN11)."""
    k10, k12, k21 = params["CL"] / params["V1"], params["Q2"] / params["V1"], params["Q2"] / params["V2"]
    k13, k31 = params["Q3"] / params["V1"], params["Q3"] / params["V3"]
    a0 = k10 * k21 * k31
    a1 = k10 * k31 + k21 * k31 + k21 * k13 + k10 * k21 + k31 * k12
    a2 = k10 + k12 + k13 + k21 + k31
    p = a1 - a2 * a2 / 3.0
    q = 2.0 * a2**3 / 27.0 - a1 * a2 / 3.0 + a0
    r1 = xp.sqrt(xp.maximum(-(p**3) / 27.0, 1e-300))
    phi = xp.arccos(xp.clip(-q / (2.0 * r1), -1.0, 1.0)) / 3.0
    r2 = 2.0 * r1 ** (1.0 / 3.0)
    # the three roots are a2/3 - r2 cos(phi + 2 pi k / 3); the smallest has k = 0
    return a2 / 3.0 - r2 * xp.cos(phi)


def log_terminal_rate(log_params) -> pt.TensorVariable:
    """``log k`` from log parameters (one compartment: ``log CL - log V``, no exp/log).

    Parameters
    ----------
    log_params : mapping
        Logs of ``CL`` and ``V``, or of ``CL``, ``V1``, ``Q``, ``V2``.

    Returns
    -------
    tensor
    """
    if "V1" not in log_params:
        return log_params["CL"] - log_params["V"]
    return pt.log(terminal_rate({name: pt.exp(value) for name, value in log_params.items()}))


def guarded_theta_ka(prior, rate) -> pt.TensorVariable:
    """Create ``theta_ka`` restricted to ``theta_ka > rate`` (see the module docstring).

    Parameters
    ----------
    prior : Prior
        The stated prior on ``theta_ka`` (positive support).
    rate : tensor
        The population terminal elimination rate ``k(theta)``.

    Returns
    -------
    tensor
        The deterministic ``theta_ka``.
    """
    name = f"theta_{ABSORPTION}"
    raw = prior_variable(f"{name}_raw", prior, hyper=name)
    w = pt.log(raw)
    c = pt.log(rate)
    log_ka = c + pt.softplus(w - c)
    theta = pt.exp(log_ka)
    pm.Potential(
        "flip_flop_theta",
        prior_logp(name, prior, theta) + log_ka - pt.softplus(c - w) - prior_logp(name, prior, raw) - w,
    )
    return pm.Deterministic(name, theta)


def eta_lower_bound(spec, theta, covariates, coefficients, n_subjects):
    """A function giving each subject's lower bound on the absorption-rate eta.

    Parameters
    ----------
    spec : ModelSpec
    theta : mapping
        Typical values (tensors).
    covariates : mapping
        Per-subject covariate values.
    coefficients : mapping
        Estimated covariate coefficients.
    n_subjects : int

    Returns
    -------
    callable
        ``bound(eta) -> tensor (n_subjects,)`` (``eta``: a matrix or a list of columns,
        as for :func:`~bayes_nlme.individual.individual_parameters`):
        ``log k_i - log ka_i(eta_ka = 0)``, where ``k_i`` uses the other columns of
        ``eta`` only (the absorption-rate column
        is ignored), so ``ka_i > k_i`` iff ``eta_ka,i > bound``.
    """
    typical = individual_parameters(spec, theta, None, covariates, coefficients, n_subjects)

    def bound(eta):
        individual = individual_parameters(spec, theta, eta, covariates, coefficients, n_subjects)
        return pt.log(terminal_rate(individual)) - pt.log(typical[ABSORPTION])

    return bound


def numeric_violations(spec, individual: dict, theta: dict) -> np.ndarray:
    """Which draws break the guard (used to restrict forward prior draws).

    Parameters
    ----------
    spec : ModelSpec
    individual : dict of str to numpy.ndarray
        Individual parameters, arrays of shape ``(draws, n_subjects)``.
    theta : dict of str to numpy.ndarray
        Typical values, arrays of shape ``(draws,)`` (fixed ones may be absent).

    Returns
    -------
    numpy.ndarray of bool, shape (draws,)
        True where the population or (with IIV on ``ka``) any subject has
        ``ka <= k``.
    """
    typical = {p.name: (np.asarray(theta[p.name]) if not p.is_fixed else p.fixed) for p in spec.parameters}
    bad = np.asarray(typical[ABSORPTION] <= terminal_rate(typical, np), dtype=bool)
    if individual_guard(spec):
        ka = individual[ABSORPTION]
        bad = bad | np.any(ka <= terminal_rate(individual, np), axis=-1)
    return bad
