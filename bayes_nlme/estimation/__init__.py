"""Frequentist estimation: FO, FOCE, FOCE-I and Laplace (maximum likelihood, NONMEM conventions).

>>> from bayes_nlme.estimation import estimate  # doctest: +SKIP
>>> fit = estimate(spec, "theophylline", method="focei")  # doctest: +SKIP
>>> fit.ofv, fit.summary()  # doctest: +SKIP

Modules: :mod:`.parameters` (the estimated parameters and their scales),
:mod:`.kernel` (predictions and their derivatives), :mod:`.problem` (the conditional
objective), :mod:`.inner` (EBEs), :mod:`.objective` (the OFV of each method and its
exact gradient), :mod:`.outer` (optimisation), :mod:`.covariance`,
:mod:`.diagnostics`, :mod:`.result` and :mod:`.estimator` (the entry points).
"""

from .compare import compare_fits
from .covariance import COVARIANCE_METHODS, CovarianceWarning
from .estimator import estimate, objective
from .problem import METHODS
from .result import EstimationResult

__all__ = [
    "estimate",
    "objective",
    "EstimationResult",
    "CovarianceWarning",
    "compare_fits",
    "METHODS",
    "COVARIANCE_METHODS",
]
