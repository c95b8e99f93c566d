"""Model specifications: TOML model files and their frozen dataclasses.

Examples
--------
>>> from bayes_nlme.spec import load_model, to_toml
>>> spec = load_model("models/theophylline.toml")  # doctest: +SKIP
>>> spec.iiv_names  # doctest: +SKIP
('ka', 'CL', 'V')
"""

from .model import (
    COLUMN_ROLES,
    COVARIATE_EFFECTS,
    OMEGA_STRUCTURES,
    RESIDUAL_MODELS,
    RESIDUAL_VARIANCES,
    CovariateEffect,
    ModelSpec,
    Omega,
    Parameter,
    Residual,
    Sampling,
)
from .outputs import OutputResiduals, ResidualPart, residual_parts
from .priors import (
    LKJ,
    PRIOR_KINDS,
    HalfNormal,
    InverseGamma,
    InverseWishart,
    LogNormal,
    Normal,
    Prior,
)
from .structural_names import (
    OPTIONAL_PARAMETERS,
    ORAL_MODELS,
    STRUCTURAL_PARAMETERS,
    valid_parameter_names,
)
from .toml_io import dump_model, load_model, model_to_dict, parse_model, parse_prior, to_toml

__all__ = [
    "load_model",
    "parse_model",
    "parse_prior",
    "model_to_dict",
    "to_toml",
    "dump_model",
    "ModelSpec",
    "Parameter",
    "CovariateEffect",
    "Omega",
    "Residual",
    "OutputResiduals",
    "ResidualPart",
    "residual_parts",
    "Sampling",
    "Prior",
    "LogNormal",
    "Normal",
    "HalfNormal",
    "InverseGamma",
    "InverseWishart",
    "LKJ",
    "PRIOR_KINDS",
    "STRUCTURAL_PARAMETERS",
    "OPTIONAL_PARAMETERS",
    "ORAL_MODELS",
    "valid_parameter_names",
    "COLUMN_ROLES",
    "COVARIATE_EFFECTS",
    "OMEGA_STRUCTURES",
    "RESIDUAL_MODELS",
    "RESIDUAL_VARIANCES",
]
