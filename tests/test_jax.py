"""The JAX route: the event engine in JAX, and short numpyro and blackjax fits (the ``jax`` extra)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

# Cheap XLA compilation: the short fits below spend most of their time compiling
# (read when the JAX backend starts, so it applies when this module is imported first).
os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true"]
).strip()

pytest.importorskip("jax")
pytest.importorskip("numpyro")
pytest.importorskip("blackjax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import pymc.sampling.jax  # noqa: E402,F401  (first: it asks for several XLA CPU devices before JAX starts)
import pytensor  # noqa: E402
import pytensor.tensor as pt  # noqa: E402

from bayes_nlme.fit import BayesFit, ConvergenceWarning, sample  # noqa: E402

MODEL = "models/theophylline.toml"
#: Posterior means of the bundled Theophylline fit (nutpie, 4 x 1000 draws).
REFERENCE = {"theta_ka": 1.62, "theta_CL": 2.76, "theta_V": 31.9}


@pytest.mark.slow  # about 75 s of JAX compilation
def test_event_engine_in_jax_matches_numba():
    """The event engine's JAX implementation (a host callback) gives the Numba values,
    and ``jax.grad`` of the jaxified graph equals PyTensor's gradient."""
    from pytensor.link.jax.dispatch import jax_funcify

    from bayes_nlme.core import engine_design
    from bayes_nlme.core.op import structural_predictions
    from bayes_nlme.data import load_dataset

    design = engine_design(load_dataset("theophylline"), "one_compartment_oral", declared=("ka", "CL", "V"))
    x = pt.dmatrix("x")
    loss = pt.sum(structural_predictions(design, x) ** 2)
    grad = pytensor.grad(loss, x)
    value = np.tile([1.5, 2.8, 32.0], (design.n_segments, 1)) * np.exp(
        np.random.default_rng(0).normal(0.0, 0.2, (design.n_segments, 3))
    )
    want_loss, want_grad = pytensor.function([x], [loss, grad], mode="NUMBA")(value)
    got_loss, got_grad = pytensor.function([x], [loss, grad], mode="JAX")(value)
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-10)
    fgraph = pytensor.graph.fg.FunctionGraph([x], [loss], clone=True)
    fn = jax_funcify(fgraph)
    jgrad = np.asarray(jax.grad(lambda v: fn(v)[0])(jnp.asarray(value)))
    np.testing.assert_allclose(jgrad, want_grad, rtol=1e-10)


def test_import_without_jax():
    """bayes_nlme and its model core import when jax cannot be imported."""
    code = "import sys; sys.modules['jax'] = None\nimport bayes_nlme, bayes_nlme.fit, bayes_nlme.core.op\n"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "sampler",
    [pytest.param(s, marks=pytest.mark.slow) for s in ("numpyro", "blackjax")],  # ~50 s of JAX compilation each
)
def test_jax_sampler_fit(sampler, tmp_path):
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", ConvergenceWarning)  # a short fit: ESS/R-hat warnings expected
        # blackjax's window adaptation needs more than 100 tuning steps on this model
        # (with 100, a chain can keep a poor step size: dozens of divergences)
        tune = 300 if sampler == "blackjax" else 100
        fit = sample(MODEL, "theophylline", sampler=sampler, draws=100, tune=tune, chains=2, seed=3, quiet=True)
    assert fit.sampler == sampler
    post = fit.tree["posterior"]
    for name in ("ipred", "individual", "eta", *REFERENCE):
        assert name in post
        assert np.isfinite(post[name].values).all()
    for name, value in REFERENCE.items():
        assert float(post[name].mean()) == pytest.approx(value, rel=0.2)
    stats = fit.tree["sample_stats"]
    for name in ("diverging", "energy", "tree_depth", "reached_max_treedepth", "lp"):
        assert name in stats
    assert stats["diverging"].dtype == bool
    # lp is the log density for both samplers (numpyro records the potential energy):
    # energy = -lp + kinetic energy >= -lp
    assert (stats["energy"] + stats["lp"]).min() >= -1e-8
    assert "log_likelihood" in fit.tree.children
    summary = fit.summary()
    assert list(summary["parameter"][:3]) == ["theta_ka", "theta_CL", "theta_V"]
    verdict = fit.convergence
    assert verdict.divergences == int(stats["diverging"].sum())
    assert np.isfinite(verdict.min_bfmi)
    assert verdict.treedepth_fraction == pytest.approx(float(stats["reached_max_treedepth"].mean()))
    loaded = BayesFit.load(fit.save(tmp_path / "fit"))
    assert loaded.sampler == sampler
    pd.testing.assert_frame_equal(loaded.summary(), summary)
