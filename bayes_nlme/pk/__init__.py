"""Analytic PK library, in PyTensor: structural models and central concentrations.

``concentrations(design, params)`` is written once in PyTensor and serves NUTS
(gradients), the frequentist path (gradients and Hessians with respect to individual
parameters) and compiled numeric prediction (:func:`predict_concentrations`).
"""

from __future__ import annotations

from .models import OPTIONAL_PARAMETERS, STRUCTURAL_MODELS, StructuralModel, structural_model
from .superposition import concentrations, dose_response, predict_concentrations

__all__ = [
    "OPTIONAL_PARAMETERS",
    "STRUCTURAL_MODELS",
    "StructuralModel",
    "structural_model",
    "concentrations",
    "predict_concentrations",
    "dose_response",
]
