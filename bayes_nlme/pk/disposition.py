"""Disposition of the central compartment: macro rate constants and coefficients.

The amount in the central compartment after a unit bolus into it is

    h(t) = sum_k c_k exp(-lambda_k t).

* One compartment: ``lambda = k = CL / V``, ``c = 1``.
* Two compartments (micro constants ``k10 = CL/V1``, ``k12 = Q/V1``, ``k21 = Q/V2``):
  ``alpha, beta`` are the roots of ``x**2 - s x + k10 k21`` with ``s = k10 + k12 + k21``.
  The discriminant is written as ``(k10 - k21)**2 + k12 (k12 + 2 (k10 + k21))``, a sum
  of positive terms (no cancellation, and ``alpha > beta`` strictly since ``Q > 0``);
  ``beta = k10 k21 / alpha`` avoids the cancellation of ``(s - disc) / 2``;
  ``c_alpha = (alpha - k21) / (alpha - beta)``, ``c_beta = (k21 - beta) / (alpha - beta)``.

All functions work elementwise on PyTensor tensors (per subject or per pair).
"""

from __future__ import annotations

import pytensor.tensor as pt

from .models import StructuralModel

__all__ = ["macro_constants", "two_compartment_macro"]


def two_compartment_macro(cl, v1, q, v2):
    """Macro rate constants and coefficients of the two-compartment model.

    Parameters
    ----------
    cl, v1, q, v2 : tensor-like
        Clearance, central volume, inter-compartmental clearance, peripheral volume
        (all > 0).

    Returns
    -------
    list of (coefficient, rate) pairs
        ``[(c_alpha, alpha), (c_beta, beta)]``, with ``c_alpha + c_beta = 1``.
    """
    k10 = cl / v1
    k12 = q / v1
    k21 = q / v2
    s = k10 + k12 + k21
    disc = pt.sqrt(pt.sqr(k10 - k21) + k12 * (k12 + 2.0 * (k10 + k21)))
    alpha = 0.5 * (s + disc)
    beta = k10 * k21 / alpha
    c_alpha = (alpha - k21) / disc
    c_beta = (k21 - beta) / disc
    return [(c_alpha, alpha), (c_beta, beta)]


def macro_constants(model: StructuralModel, params: dict):
    """Disposition of a structural model: its exponentials and central volume.

    Parameters
    ----------
    model : StructuralModel
    params : dict of str to tensor
        Individual parameters (``CL``, ``V`` or ``CL``, ``V1``, ``Q``, ``V2``), vectors
        of one value per subject.

    Returns
    -------
    coef : tensor or None
        ``None`` for one compartment (coefficient 1); otherwise the vector
        ``[c_alpha, c_beta]`` of length ``2 n_subjects`` (all alphas, then all betas).
    rate : tensor
        ``k`` for one compartment; otherwise ``[alpha, beta]`` (length
        ``2 n_subjects``). The exponential terms are laid end to end, so that a
        two-compartment model is evaluated by the same one-dimensional graph as a
        one-compartment model, over twice as many (pair, term) entries.
    volume : tensor
        The central volume (``V`` or ``V1``).
    """
    if model.n_compartments == 1:
        return None, params["CL"] / params["V"], params["V"]
    (c_alpha, alpha), (c_beta, beta) = two_compartment_macro(
        params["CL"], params["V1"], params["Q"], params["V2"]
    )
    coef = pt.concatenate([c_alpha, c_beta])
    rate = pt.concatenate([alpha, beta])
    return coef, rate, params["V1"]
