"""Residual error models: the likelihood, its pointwise values and predictive draws.

With ``f`` the individual prediction of an observation:

==============  =========================================  ===========================
model           distribution of the observation ``y``       variances (priors)
==============  =========================================  ===========================
additive        ``N(f, sigma2_add)``                        ``sigma2_add``
proportional    ``N(f, sigma2_prop * f^2)``                 ``sigma2_prop``
combined        ``N(f, sigma2_add + sigma2_prop * f^2)``    ``sigma2_add, sigma2_prop``
exponential     ``log y ~ N(log f, sigma2_exp)``            ``sigma2_exp``
==============  =========================================  ===========================

The exponential model's density is taken on the ``y`` scale (a log-normal), so that
pointwise log-likelihoods of different error models are comparable (LOO).

Observations flagged ``BLQ = 1`` are left-censored at their ``DV`` (the limit of
quantification; the M3 method): their likelihood is ``P(y < DV)``.

The model uses :func:`likelihood`; the same densities are evaluated in numpy over
posterior draws by :func:`pointwise_loglik` (the ``log_likelihood`` group) and
drawn by :func:`predictive_draws` (the ``posterior_predictive`` group), which avoids
compiling further PyTensor functions after sampling.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import stats

from ..errors import DataError
from .priors import POSITIVE, check_prior, hyper_data, hyperparameters, prior_variable

__all__ = [
    "residual_hyperparameters",
    "residual_variances",
    "check_observations",
    "zero_predictions",
    "likelihood",
    "pointwise_loglik",
    "predictive_draws",
]

_FIELD = {"sigma2_add": "add", "sigma2_prop": "prop", "sigma2_exp": "exp"}


def _priors(spec) -> dict:
    residual = spec.residual
    return {
        name: check_prior(getattr(residual, _FIELD[name]), f"residual.{_FIELD[name]}", POSITIVE)
        for name in residual.variances
    }


def residual_hyperparameters(spec) -> dict[str, np.ndarray]:
    """The hyperparameter data of the residual-variance priors.

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    dict of str to numpy.ndarray

    Raises
    ------
    SpecError
        When a prior the error model needs is missing (key ``residual.add`` ...).
    """
    out: dict[str, np.ndarray] = {}
    for name, prior in _priors(spec).items():
        out.update(hyperparameters(name, prior))
    return out


def residual_variances(spec) -> dict[str, pt.TensorVariable]:
    """Create the residual variances (``sigma2_add`` ...) in the current model.

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    dict of str to tensor
    """
    hyper_data(residual_hyperparameters(spec))
    return {name: prior_variable(name, prior) for name, prior in _priors(spec).items()}


def zero_predictions(design) -> np.ndarray:
    """Which prediction points have a structurally zero concentration.

    A point is zero when no dose acts on it yet: it has no (point, dose) pair with
    ``elapsed > 0`` (``>= 0`` for a bolus into the central compartment, which acts
    at once; steady-state doses always act). An absorption lag can make more points
    zero; that depends on parameter values and is not checked here.

    Parameters
    ----------
    design : EventDesign

    Returns
    -------
    numpy.ndarray of bool, one per point
    """
    acting = np.zeros(design.n_points, dtype=bool)
    for group in design.groups:
        if group.kind in ("bolus_ss", "infusion_ss", "infusion_ss_constant"):
            on = np.ones(len(group), dtype=bool)
        elif group.kind == "bolus" and group.route == "central":
            on = group.elapsed >= 0
        else:
            on = group.elapsed > 0
        acting[np.asarray(group.point, dtype=int)[on]] = True
    return ~acting


def check_observations(spec, dv: np.ndarray, rows: np.ndarray, source: str, zero=None) -> None:
    """Check that the observations suit the error model.

    Parameters
    ----------
    spec : ModelSpec
    dv : numpy.ndarray
        Observed values.
    rows : numpy.ndarray
        Their 1-based data rows.
    source : str
        The dataset, for the message.
    zero : numpy.ndarray of bool, optional
        Observations whose prediction is structurally zero (:func:`zero_predictions`).

    Raises
    ------
    DataError
        For the exponential model, when an observation is <= 0 (its log is undefined);
        for the proportional and exponential models, when an observation sits where
        the model predicts exactly 0 (before the first dose acts), since the error
        variance is 0 there.
    """
    from ..errors import format_rows

    model = spec.residual.model
    items = []
    if model == "exponential":
        bad = ~(dv > 0)
        if bad.any():
            bad_rows = [int(r) for r in rows[bad]]
            items.append(
                {
                    "check": "dv_positive",
                    "column": "DV",
                    "rows": bad_rows,
                    "message": f"DV <= 0 in {format_rows(bad_rows)}: the exponential error model needs positive "
                    "observations (use an additive or combined error model, or set MDV = 1 on those rows)",
                }
            )
    if model in ("proportional", "exponential") and zero is not None and np.any(zero):
        bad_rows = [int(r) for r in rows[np.asarray(zero)]]
        items.append(
            {
                "check": "zero_prediction",
                "column": "TIME",
                "rows": bad_rows,
                "message": f"observations before any dose acts (prediction 0) in {format_rows(bad_rows)}: the "
                f"{model} error model has zero variance there (use a combined error model, or set MDV = 1 "
                "on those rows)",
            }
        )
    if items:
        import pandas as pd

        raise DataError(
            f"Dataset '{source}' cannot be used with model '{spec.name}' ({model} residual error)",
            violations=pd.DataFrame(items),
            source=source,
        )


def _scale(model: str, f, sigma2: dict, xp):
    if model == "additive":
        return xp.sqrt(sigma2["sigma2_add"]) + 0.0 * f
    if model == "proportional":
        return xp.sqrt(sigma2["sigma2_prop"]) * f
    if model == "combined":
        return xp.sqrt(sigma2["sigma2_add"] + sigma2["sigma2_prop"] * f**2)
    return xp.sqrt(sigma2["sigma2_exp"]) + 0.0 * f


def likelihood(spec, f, dv, sigma2: dict, lower: np.ndarray | None = None):
    """Create the observed variable ``y`` (dims ``observation``) in the current model.

    Parameters
    ----------
    spec : ModelSpec
    f : tensor
        Individual predictions, one per observation.
    dv : array-like or shared variable
        The observations.
    sigma2 : dict of str to tensor
        The residual variances (:func:`residual_variances`).
    lower : numpy.ndarray, optional
        Censoring limits: the LLOQ on BLQ rows, ``-inf`` elsewhere. None: no censoring.

    Returns
    -------
    tensor
    """
    model = spec.residual.model
    scale = _scale(model, f, sigma2, pt)
    cls = pm.LogNormal if model == "exponential" else pm.Normal
    mu = pt.log(f) if model == "exponential" else f
    if lower is None:
        return cls("y", mu=mu, sigma=scale, observed=dv, dims="observation")
    dist = cls.dist(mu=mu, sigma=scale)
    return pm.Censored("y", dist, lower=lower, upper=None, observed=dv, dims="observation")


def _scipy(model: str, f, scale):
    if model == "exponential":
        return stats.lognorm(s=scale, scale=f)
    return stats.norm(loc=f, scale=scale)


def pointwise_loglik(spec, f: np.ndarray, sigma2: dict, dv: np.ndarray, lower: np.ndarray | None = None) -> np.ndarray:
    """Log-likelihood of every observation for every draw (numpy).

    Parameters
    ----------
    spec : ModelSpec
    f : numpy.ndarray (..., n_obs)
        Individual predictions per draw.
    sigma2 : dict of str to numpy.ndarray (...)
        Residual variances per draw.
    dv : numpy.ndarray (n_obs,)
    lower : numpy.ndarray (n_obs,), optional
        Censoring limits (see :func:`likelihood`).

    Returns
    -------
    numpy.ndarray (..., n_obs)
    """
    model = spec.residual.model
    s2 = {k: np.asarray(v)[..., None] for k, v in sigma2.items()}
    dist = _scipy(model, f, _scale(model, f, s2, np))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = dist.logpdf(dv)
        if lower is not None:
            censored = np.isfinite(lower)
            if censored.any():
                out = np.where(censored, dist.logcdf(lower), out)
    return out


def predictive_draws(spec, f: np.ndarray, sigma2: dict, rng, lower: np.ndarray | None = None) -> np.ndarray:
    """Draws of the observations, residual error included (numpy).

    Parameters
    ----------
    spec : ModelSpec
    f : numpy.ndarray (..., n_obs)
    sigma2 : dict of str to numpy.ndarray (...)
    rng : numpy.random.Generator
    lower : numpy.ndarray (n_obs,), optional
        Censoring limits: draws below are reported at the limit.

    Returns
    -------
    numpy.ndarray (..., n_obs)
    """
    model = spec.residual.model
    s2 = {k: np.asarray(v)[..., None] for k, v in sigma2.items()}
    scale = _scale(model, f, s2, np)
    noise = rng.standard_normal(np.shape(f))
    with np.errstate(divide="ignore", invalid="ignore"):
        y = f * np.exp(scale * noise) if model == "exponential" else f + scale * noise
    if lower is not None:
        y = np.where(np.isfinite(lower) & (y < lower), lower, y)
    return y
