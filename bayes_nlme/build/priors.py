"""Spec priors as PyMC random variables, with their hyperparameters as data.

Every hyperparameter of a prior (a log-normal median and sigma, an inverse-gamma
alpha and beta ...) enters the model as a named :func:`pymc.Data` container called
``prior__<variable>__<field>`` (see :func:`hyper_name`). A compiled model can then
be re-used with other priors of the same kinds without recompiling: build the new
values with :func:`bayes_nlme.build.prior_data` and pass them to
``nutpie``'s ``CompiledModel.with_data(**values)``.

The distributions are:

=================  ==========================================  ========================
spec prior         PyMC distribution                            hyperparameters
=================  ==========================================  ========================
``LogNormal``      ``LogNormal(mu=log(median), sigma)``         ``median``, ``sigma``
``Normal``         ``Normal(mean, sd)``                         ``mean``, ``sd``
``HalfNormal``     ``HalfNormal(sigma)``                        ``sigma``
``InverseGamma``   ``InverseGamma(alpha, beta)``                ``alpha``, ``beta``
=================  ==========================================  ========================

Each has the density of the prior's :meth:`scipy` reference distribution.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..errors import SpecError
from ..spec.priors import HalfNormal, InverseGamma, LogNormal, Normal, Prior

__all__ = [
    "UNIVARIATE",
    "POSITIVE",
    "hyper_name",
    "hyperparameters",
    "hyper_data",
    "prior_distribution",
    "prior_variable",
    "prior_logp",
    "check_prior",
]

#: The univariate prior classes and the fields that are their hyperparameters.
UNIVARIATE: dict[type, tuple[str, ...]] = {
    LogNormal: ("median", "sigma"),
    Normal: ("mean", "sd"),
    HalfNormal: ("sigma",),
    InverseGamma: ("alpha", "beta"),
}

#: Priors whose support is the positive reals (valid for typical values and variances).
POSITIVE: tuple[type, ...] = (LogNormal, HalfNormal, InverseGamma)


def hyper_name(variable: str, field: str) -> str:
    """Name of the data container of one hyperparameter: ``prior__<variable>__<field>``.

    Parameters
    ----------
    variable : str
        The model variable the prior is on, e.g. ``theta_CL``.
    field : str
        The hyperparameter, e.g. ``median``.

    Returns
    -------
    str
    """
    return f"prior__{variable}__{field}"


def check_prior(prior, key: str, allowed: tuple[type, ...]) -> Prior:
    """Check that ``prior`` is given and of an allowed kind.

    Parameters
    ----------
    prior : Prior or None
    key : str
        Dotted model-file key, for the error message.
    allowed : tuple of type
        The allowed prior classes.

    Returns
    -------
    Prior

    Raises
    ------
    SpecError
        When the prior is missing (the Bayesian path needs every prior) or of a kind
        that is not allowed here.
    """
    valid = [cls.kind for cls in allowed]
    if prior is None:
        raise SpecError("a prior is required for Bayesian fitting (method 'nuts' or 'prior')", key=key, valid=valid)
    if not isinstance(prior, allowed):
        raise SpecError(f"prior '{prior.kind}' cannot be used here", key=key, valid=valid)
    return prior


def hyperparameters(variable: str, prior: Prior) -> dict[str, np.ndarray]:
    """The hyperparameter values of a univariate prior, keyed by data-container name.

    Parameters
    ----------
    variable : str
        The model variable (``theta_CL``, ``sigma2_add`` ...).
    prior : Prior
        A :class:`LogNormal`, :class:`Normal`, :class:`HalfNormal` or
        :class:`InverseGamma`.

    Returns
    -------
    dict of str to numpy.ndarray
        ``{hyper_name(variable, field): value}`` (0-d float arrays).
    """
    fields = UNIVARIATE[type(prior)]
    return {hyper_name(variable, f): np.asarray(float(getattr(prior, f))) for f in fields}


def hyper_data(values: Mapping[str, np.ndarray]) -> dict[str, pt.TensorVariable]:
    """Register hyperparameter values as :func:`pymc.Data` in the current model.

    Containers that already exist in the model are re-used.

    Parameters
    ----------
    values : mapping
        Data-container name -> value.

    Returns
    -------
    dict of str to tensor
        The same keys, mapped to the registered containers.
    """
    model = pm.modelcontext(None)
    out = {}
    for name, value in values.items():
        if name in model.named_vars:
            out[name] = model[name]
        else:
            out[name] = pm.Data(name, np.asarray(value, dtype=float))
    return out


def _arguments(prior: Prior, h: Mapping[str, pt.TensorVariable]) -> tuple[type, dict]:
    if isinstance(prior, LogNormal):
        return pm.LogNormal, {"mu": pt.log(h["median"]), "sigma": h["sigma"]}
    if isinstance(prior, Normal):
        return pm.Normal, {"mu": h["mean"], "sigma": h["sd"]}
    if isinstance(prior, HalfNormal):
        return pm.HalfNormal, {"sigma": h["sigma"]}
    if isinstance(prior, InverseGamma):
        return pm.InverseGamma, {"alpha": h["alpha"], "beta": h["beta"]}
    raise TypeError(f"not a univariate prior: {prior!r}")


def _hyper_tensors(variable: str, prior: Prior) -> dict[str, pt.TensorVariable]:
    data = hyper_data(hyperparameters(variable, prior))
    return {f: data[hyper_name(variable, f)] for f in UNIVARIATE[type(prior)]}


def prior_distribution(variable: str, prior: Prior, **kwargs):
    """An unregistered PyMC distribution (``.dist``) equal to the prior.

    The hyperparameters are registered as data containers of the current model
    under ``variable``'s names.

    Parameters
    ----------
    variable : str
        The model variable the prior belongs to (names the hyperparameter data).
    prior : Prior
    **kwargs
        Passed to ``.dist`` (e.g. ``shape``).

    Returns
    -------
    pytensor.tensor.TensorVariable
    """
    cls, args = _arguments(prior, _hyper_tensors(variable, prior))
    return cls.dist(**args, **kwargs)


def prior_variable(variable: str, prior: Prior, *, hyper: str | None = None, **kwargs) -> pt.TensorVariable:
    """Create the random variable ``variable`` with the given prior in the current model.

    Parameters
    ----------
    variable : str
        Canonical name (``theta_CL``, ``beta_CL_WT``, ``sigma2_add`` ...).
    prior : Prior
        A univariate prior.
    hyper : str, optional
        The variable that names the hyperparameter data (default ``variable``).
    **kwargs
        Passed to the PyMC distribution (``dims``, ``initval`` ...).

    Returns
    -------
    pytensor.tensor.TensorVariable
    """
    cls, args = _arguments(prior, _hyper_tensors(hyper or variable, prior))
    return cls(variable, **args, **kwargs)


def prior_logp(variable: str, prior: Prior, value) -> pt.TensorVariable:
    """The log prior density of ``value`` (elementwise), as a tensor.

    Used where a variable is reparameterised and its stated prior enters through a
    :func:`pymc.Potential` (the flip-flop guard).

    Parameters
    ----------
    variable : str
        The model variable (names the hyperparameter data).
    prior : Prior
    value : tensor

    Returns
    -------
    pytensor.tensor.TensorVariable
    """
    return pm.logp(prior_distribution(variable, prior), value)
