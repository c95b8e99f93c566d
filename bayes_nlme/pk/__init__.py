"""The structural-model registry: parameter names, ADVAN numbers and compartments.

The predictions themselves come from the model core (:mod:`bayes_nlme.core`), whose
event engine implements every model of this registry.
"""

from __future__ import annotations

from .models import OPTIONAL_PARAMETERS, STRUCTURAL_MODELS, StructuralModel, structural_model

__all__ = [
    "OPTIONAL_PARAMETERS",
    "STRUCTURAL_MODELS",
    "StructuralModel",
    "structural_model",
]
