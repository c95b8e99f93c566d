"""Divergences where the log density was not finite (an ODE solver failure, an
overflow) are counted apart from energy errors, in the verdict and in ``fit.json``."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
import xarray as xr

from bayes_nlme.fit.convergence import assess
from bayes_nlme.fit.sampling import _numeric


def _draws(seed=0):
    rng = np.random.default_rng(seed)
    return xr.Dataset({"theta_CL": (("chain", "draw"), rng.normal(size=(4, 500)))})


def _stats(diverging, non_finite):
    shape = (4, 500)
    d = np.zeros(shape, bool)
    d.flat[:diverging] = True
    nf = np.zeros(shape, bool)
    nf.flat[:non_finite] = True
    rng = np.random.default_rng(1)
    return xr.Dataset(
        {
            "diverging": (("chain", "draw"), d),
            "diverging_non_finite": (("chain", "draw"), nf),
            "energy": (("chain", "draw"), rng.normal(size=shape)),
            "depth": (("chain", "draw"), np.full(shape, 3)),
            "step_size": (("chain", "draw"), np.full(shape, 0.5)),
        }
    )


def test_verdict_tells_solver_failures_from_curvature():
    only = assess(_draws(), _stats(3, 3))
    assert only.divergences == 3 and not only.ok
    text = " ".join(only.messages)
    assert "3 where the log density was not finite" in text and "failed integration" in text
    assert "high curvature" not in text
    mixed = " ".join(assess(_draws(), _stats(5, 2)).messages)
    assert "2 where the log density was not finite" in mixed and "high curvature" in mixed
    plain = " ".join(assess(_draws(), _stats(4, 0)).messages)
    assert "not finite" not in plain and "high curvature" in plain


@pytest.mark.slow  # compiles a model (about 25 s)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_nutpie_non_finite_log_density_is_flagged():
    """nutpie reports a log density of -inf (what a failed integration gives) as a
    divergence with a message; those draws are flagged."""
    nutpie = pytest.importorskip("nutpie")
    with pm.Model() as model:
        x = pm.Normal("x", 0.0, 1.0)
        pm.Potential("solver_failed", pt.switch(x > 1.0, -np.inf, 0.0))
    compiled = nutpie.compile_pymc_model(model, backend="numba")
    trace = nutpie.sample(compiled, draws=200, tune=200, chains=1, progress_bar=False, seed=1)
    stats = _numeric(trace["sample_stats"].to_dataset())
    assert "divergence_message" not in stats
    flagged = int(stats["diverging_non_finite"].sum())
    assert flagged > 0
    assert flagged <= int(stats["diverging"].sum())
