"""bayes_nlme: fully Bayesian nonlinear mixed-effects modelling for population PK.

The public API, in the order data flows through it::

    load_dataset -> load_model -> predict / sample / sample_prior / estimate
                 -> report / compare

Heavy modules (PyMC, PyTensor) are imported on first use.
"""

from __future__ import annotations

import importlib

from .errors import ArgumentError, BayesNlmeError, DataError, InputError, SpecError

__version__ = "0.1.0"

_LAZY = {
    "load_dataset": ("bayes_nlme.data", "load_dataset"),
    "Dataset": ("bayes_nlme.data", "Dataset"),
    "check_for_model": ("bayes_nlme.data", "check_for_model"),
    "load_model": ("bayes_nlme.spec", "load_model"),
    "parse_model": ("bayes_nlme.spec", "parse_model"),
    "to_toml": ("bayes_nlme.spec", "to_toml"),
    "ModelSpec": ("bayes_nlme.spec", "ModelSpec"),
    "predict": ("bayes_nlme.predict", "predict"),
    "build_model": ("bayes_nlme.build", "build_model"),
    "sample": ("bayes_nlme.fit", "sample"),
    "sample_prior": ("bayes_nlme.fit", "sample_prior"),
    "BayesFit": ("bayes_nlme.fit", "BayesFit"),
    "estimate": ("bayes_nlme.estimation", "estimate"),
    "EstimationResult": ("bayes_nlme.estimation", "EstimationResult"),
    "load_fit_dir": ("bayes_nlme.fitdir", "load_fit_dir"),
    "compare_fits": ("bayes_nlme.compare", "compare_fits"),
    "write_report": ("bayes_nlme.report", "write_report"),
}

__all__ = ["ArgumentError", "BayesNlmeError", "DataError", "InputError", "SpecError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'bayes_nlme' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
