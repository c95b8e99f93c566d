"""The model core: one place that defines the structural prediction of every path.

``design`` lays a dataset out as records; ``engine`` advances compartment amounts from
record to record (with exact sensitivities) through the structural model's transition
(``kinetics``); ``op`` wraps the engine as a PyTensor operation for the Bayesian and
frequentist engines alike.
"""

from .design import MODEL_KINDS, EngineDesign, engine_design, parameter_columns, zero_observations

__all__ = ["MODEL_KINDS", "EngineDesign", "engine_design", "parameter_columns", "zero_observations"]
