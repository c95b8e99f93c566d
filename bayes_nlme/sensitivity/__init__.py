"""Prior sensitivity: power-scaling diagnostics and refits under alternative priors.

>>> from bayes_nlme.sensitivity import power_scaling, run_sensitivity
>>> power_scaling(fit)                                            # doctest: +SKIP
>>> study = run_sensitivity("models/theophylline.toml", "theophylline", out="sens")  # doctest: +SKIP
>>> study.psense, study.variants, study.compilations                       # doctest: +SKIP
"""

from __future__ import annotations

from .psense import PSENSE_COLUMNS, log_prior_dataset, power_scaling
from .runner import SensitivityStudy, run_sensitivity
from .variants import prior_variants
from .verdicts import EXPLANATIONS, THRESHOLD, VERDICTS, verdict, verdict_kind

__all__ = [
    "EXPLANATIONS",
    "PSENSE_COLUMNS",
    "SensitivityStudy",
    "THRESHOLD",
    "VERDICTS",
    "log_prior_dataset",
    "power_scaling",
    "prior_variants",
    "run_sensitivity",
    "verdict",
    "verdict_kind",
]
