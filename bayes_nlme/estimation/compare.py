"""Side-by-side comparison of fits (Bayesian and frequentist) of the same model.

``compare_fits`` is the one implementation in :mod:`bayes_nlme.compare` (also behind
``bayes-nlme compare``); it is re-exported here so that the frequentist path offers
it next to :func:`~bayes_nlme.estimation.estimate`. For each fit it shows:

- Bayesian fits (``nuts``, ``prior``): the posterior median and the 90% central
  interval (``<label> median``, ``<label> 5%``, ``<label> 95%``);
- frequentist fits: the estimate and the 95% Wald interval ``estimate -/+ 1.96 se``
  on the natural scale (``<label> estimate``, ``<label> 2.5%``, ``<label> 97.5%``),
  the same interval as ``ci_low``/``ci_high`` in ``summary.csv``.

Inputs are fit directories (read with :func:`bayes_nlme.fitdir.load_fit_dir`) or live
fit objects with a ``save`` method, such as an
:class:`~bayes_nlme.estimation.EstimationResult`.
"""

from __future__ import annotations

from ..compare import compare_fits

__all__ = ["compare_fits"]
