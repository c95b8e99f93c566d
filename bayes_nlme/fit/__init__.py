"""Bayesian fitting: NUTS sampling, forward prior draws, results and diagnostics.

>>> from bayes_nlme.fit import sample
>>> fit = sample("models/theophylline.toml", "theophylline")   # doctest: +SKIP
>>> fit.summary()                                              # doctest: +SKIP
>>> fit.save("out/theo")                                       # doctest: +SKIP
"""

from __future__ import annotations

from .convergence import ConvergenceVerdict, ConvergenceWarning
from .result import BayesFit
from .sampling import SAMPLERS, CompiledModel, clear_cache, compile_model, sample, sample_prior

__all__ = [
    "BayesFit",
    "CompiledModel",
    "ConvergenceVerdict",
    "ConvergenceWarning",
    "SAMPLERS",
    "clear_cache",
    "compile_model",
    "sample",
    "sample_prior",
]
