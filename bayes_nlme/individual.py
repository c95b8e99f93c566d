"""Individual parameters: typical value x covariate factors x exp(eta).

``P_i = theta_P * prod_c f_c(x_ic) * exp(eta_P,i)`` (CONTRACT section 2), shared by the
Bayesian builder, the frequentist estimator and ``predict``. Written with PyTensor
operations so that the same expression serves gradients and numeric evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytensor.tensor as pt

from .errors import DataError

__all__ = [
    "coefficient_name",
    "estimated_coefficients",
    "subject_covariates",
    "covariate_factor",
    "individual_parameters",
]


def coefficient_name(parameter: str, column: str) -> str:
    """Canonical name of a covariate coefficient: ``beta_<P>_<COLUMN>``."""
    return f"beta_{parameter}_{column}"


def estimated_coefficients(spec) -> dict:
    """Map canonical coefficient names to their priors, for estimated effects only.

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    dict of str to Prior
    """
    return {
        coefficient_name(p.name, c.column): c.coefficient
        for p in spec.parameters
        for c in p.covariates
        if c.estimated
    }


def subject_covariates(spec, dataset) -> dict[str, np.ndarray]:
    """Per-subject covariate values of the columns that the spec uses.

    The value of each subject's first record is used (a per-subject covariate is
    constant within the subject; time-varying covariates enter at baseline).

    Parameters
    ----------
    spec : ModelSpec
    dataset : Dataset

    Returns
    -------
    dict of str to numpy.ndarray
        Column name -> values, one per subject, in subject order.
    """
    table = dataset.table
    first = table.groupby("SUBJECT", sort=True).head(1).sort_values("SUBJECT")
    out = {}
    for column in spec.covariate_columns:
        if column not in table.columns:
            raise DataError(
                f"Dataset '{dataset.source}': covariate column '{column}' used by model "
                f"'{spec.name}' is absent (covariates found: {', '.join(dataset.covariates) or 'none'})"
            )
        values = first[column].to_numpy(dtype=float)
        if np.isnan(values).any():
            rows = first.loc[np.isnan(values), "ROW"].astype(int).tolist()
            raise DataError(
                f"Dataset '{dataset.source}': covariate '{column}' is missing at the first "
                f"record of a subject (rows {', '.join(map(str, rows))})"
            )
        out[column] = values
    return out


def covariate_factor(effect, values, coefficient):
    """The multiplicative factor of one covariate effect.

    Parameters
    ----------
    effect : CovariateEffect
    values : array-like
        Covariate values, one per subject.
    coefficient : scalar or tensor
        The exponent (``power``) or ``beta``.

    Returns
    -------
    pytensor tensor
    """
    x = pt.as_tensor_variable(np.asarray(values, dtype=float))
    if effect.effect == "power":
        return (x / effect.reference) ** coefficient
    if effect.effect == "linear":
        return 1.0 + coefficient * (x - effect.reference)
    return pt.exp(coefficient * (x - effect.reference))


def individual_parameters(
    spec,
    theta: Mapping,
    eta,
    covariates: Mapping[str, np.ndarray],
    coefficients: Mapping | None = None,
    n_subjects: int | None = None,
) -> dict:
    """Individual parameter vectors, one value per subject.

    Parameters
    ----------
    spec : ModelSpec
    theta : mapping
        Parameter name -> typical value (scalar or tensor), for estimated parameters.
        Fixed parameters take their fixed value from the spec.
    eta : tensor of shape (n_subjects, len(spec.iiv_names)), list of vectors, or None
        Random effects, columns in ``spec.iiv_names`` order (a list: one vector per
        column, which keeps a PyTensor graph free of stack-then-slice). ``None``: all
        zero.
    covariates : mapping
        Column -> per-subject values (:func:`subject_covariates`).
    coefficients : mapping, optional
        Canonical coefficient name -> value, for estimated covariate coefficients.
    n_subjects : int, optional
        Needed when ``eta`` is None and no covariates are used.

    Returns
    -------
    dict of str to pytensor vector
        Parameter name -> vector of individual values (n_subjects,).
    """
    coefficients = dict(coefficients or {})
    if n_subjects is None:
        if eta is not None:
            n_subjects = eta[0].shape[0] if isinstance(eta, (list, tuple)) else eta.shape[0]
        elif covariates:
            n_subjects = len(next(iter(covariates.values())))
        else:
            raise ValueError("n_subjects is needed when there are no etas and no covariates")
    ones = pt.ones((n_subjects,))
    iiv = list(spec.iiv_names)
    out = {}
    for p in spec.parameters:
        value = pt.as_tensor_variable(float(p.fixed)) if p.is_fixed else pt.as_tensor_variable(theta[p.name])
        value = value * ones
        for c in p.covariates:
            coef = coefficients[coefficient_name(p.name, c.column)] if c.estimated else float(c.coefficient)
            value = value * covariate_factor(c, covariates[c.column], coef)
        if eta is not None and p.name in iiv:
            j = iiv.index(p.name)
            value = value * pt.exp(eta[j] if isinstance(eta, (list, tuple)) else eta[:, j])
        out[p.name] = value
    return out
