"""Bayesian model builder: a model spec and a dataset become a PyMC model.

>>> from bayes_nlme.build import build_model
>>> model = build_model(spec, "theophylline")   # doctest: +SKIP
"""

from __future__ import annotations

from .flipflop import guard_enabled, terminal_rate
from .model import BuiltModel, build, build_model, prior_data, resolve_dataset, theta_name
from .omega import variance_name
from .priors import hyper_name

__all__ = [
    "BuiltModel",
    "build",
    "build_model",
    "prior_data",
    "resolve_dataset",
    "theta_name",
    "variance_name",
    "hyper_name",
    "guard_enabled",
    "terminal_rate",
]
