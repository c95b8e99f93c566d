"""Individual parameters: typical value x covariate factors x exp(eta + kappa).

``P = theta_P * prod_c f_c(x_c) * exp(eta_P,i)`` (CONTRACT section 2), times
``exp(kappa_P,ik)`` on occasion ``k`` with inter-occasion variability (5.3), evaluated per
**parameter segment** (:mod:`bayes_nlme.core.design`): the covariates ``x_c`` are those
of the segment's records, so time-varying covariates change the parameters within a
subject, while the etas are the subject's. This is the only definition of the
individual parameters: the Bayesian builder, the frequentist estimator, ``predict`` and
the diagnostics all use it. Written with PyTensor operations so that the same expression
serves gradients and numeric evaluation (``xp=numpy`` evaluates it directly).
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
    "segment_covariates",
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
        coefficient_name(p.name, c.column): c.coefficient for p in spec.parameters for c in p.covariates if c.estimated
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


def segment_covariates(spec, dataset, design) -> dict[str, np.ndarray]:
    """Covariate values of every parameter segment of an engine design.

    Parameters
    ----------
    spec : ModelSpec
    dataset : Dataset
    design : EngineDesign
        From :func:`bayes_nlme.core.engine_design` with the spec's covariates.

    Returns
    -------
    dict of str to numpy.ndarray
        Column name -> values, one per segment.

    Raises
    ------
    DataError
        When a covariate the model uses is absent, or missing at a record where a
        segment starts (its rows are named).
    """
    table = dataset.table
    rows = np.asarray(design.seg_row, dtype=int)
    out = {}
    for column in spec.covariate_columns:
        if column not in table.columns:
            raise DataError(
                f"Dataset '{dataset.source}': covariate column '{column}' used by model "
                f"'{spec.name}' is absent (covariates found: {', '.join(dataset.covariates) or 'none'})"
            )
        values = table[column].to_numpy(dtype=float)[rows]
        if np.isnan(values).any():
            bad = table["ROW"].to_numpy()[rows][np.isnan(values)].astype(int).tolist()
            raise DataError(
                f"Dataset '{dataset.source}': covariate '{column}' is missing where model "
                f"'{spec.name}' uses it (rows {', '.join(map(str, bad))})"
            )
        out[column] = values
    return out


def covariate_factor(effect, values, coefficient, xp=pt):
    """The multiplicative factor of one covariate effect.

    Parameters
    ----------
    effect : CovariateEffect
    values : array-like
        Covariate values, one per subject.
    coefficient : scalar or tensor
        The exponent (``power``) or ``beta``.
    xp : module
        ``pytensor.tensor`` (default) or ``numpy``.

    Returns
    -------
    tensor or numpy.ndarray
    """
    x = np.asarray(values, dtype=float)
    if xp is pt:
        x = pt.as_tensor_variable(x)
    if effect.effect == "power":
        return (x / effect.reference) ** coefficient
    if effect.effect == "linear":
        return 1.0 + coefficient * (x - effect.reference)
    return xp.exp(coefficient * (x - effect.reference))


def individual_parameters(
    spec,
    theta: Mapping,
    eta,
    covariates: Mapping[str, np.ndarray],
    coefficients: Mapping | None = None,
    n_subjects: int | None = None,
    index=None,
    xp=pt,
    kappa: Mapping | None = None,
    occasion=None,
) -> dict:
    """Individual parameter vectors, one value per subject or per parameter segment.

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
        Column -> values per row of the result: per subject (:func:`subject_covariates`)
        or per parameter segment (:func:`segment_covariates`).
    coefficients : mapping, optional
        Canonical coefficient name -> value, for estimated covariate coefficients.
    n_subjects : int, optional
        Number of rows of the result; needed when ``eta`` is None and no covariates
        are used.
    index : numpy.ndarray of int, optional
        Subject of each row (segments): the etas are taken at ``eta[index]``. None:
        one row per subject.
    xp : module
        ``pytensor.tensor`` (default) or ``numpy`` for a direct evaluation.
    kappa : mapping, optional
        Inter-occasion random effects (CONTRACT 5.3): parameter name -> vector over the
        subject-occasions; the parameter is multiplied by ``exp(kappa[occasion])``.
    occasion : numpy.ndarray of int, optional
        Subject-occasion of each row (``EngineDesign.seg_occasion``); needed with
        ``kappa``.

    Returns
    -------
    dict of str to vector
        Parameter name -> vector of individual values, one per row.
    """
    coefficients = dict(coefficients or {})
    if index is not None:
        index = np.asarray(index, dtype=np.int64)
        n_subjects = len(index)
    if n_subjects is None:
        if eta is not None:
            n_subjects = eta[0].shape[0] if isinstance(eta, (list, tuple)) else eta.shape[0]
        elif covariates:
            n_subjects = len(next(iter(covariates.values())))
        else:
            raise ValueError("n_subjects is needed when there are no etas and no covariates")
    ones = xp.ones((n_subjects,))
    iiv = list(spec.iiv_names)
    out = {}
    for p in spec.parameters:
        value = float(p.fixed) if p.is_fixed else theta[p.name]
        value = (pt.as_tensor_variable(value) if xp is pt else np.asarray(value, dtype=float)) * ones
        for c in p.covariates:
            coef = coefficients[coefficient_name(p.name, c.column)] if c.estimated else float(c.coefficient)
            value = value * covariate_factor(c, covariates[c.column], coef, xp)
        if eta is not None and p.name in iiv:
            j = iiv.index(p.name)
            column = eta[j] if isinstance(eta, (list, tuple)) else eta[:, j]
            value = value * xp.exp(column if index is None else column[index])
        if kappa is not None and p.name in kappa:
            value = value * xp.exp(kappa[p.name][np.asarray(occasion, dtype=np.int64)])
        out[p.name] = value
    return out
