"""The JAX route: ExpMoment in JAX, and short numpyro and blackjax fits (the ``jax`` extra)."""

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

import pymc.sampling.jax  # noqa: E402,F401  (first: it asks for several XLA CPU devices before JAX starts)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import pytensor  # noqa: E402
import pytensor.tensor as pt  # noqa: E402

from bayes_nlme.fit import BayesFit, ConvergenceWarning, sample  # noqa: E402
from bayes_nlme.pk.exponentials import (  # noqa: E402
    SERIES_BOUND,
    _exp_moment_py,
    _jax_exp_moment,
    exp_moment,
    register_jax,
)

MODEL = "models/theophylline.toml"
#: Posterior means of the bundled Theophylline fit (nutpie, 4 x 1000 draws).
REFERENCE = {"theta_ka": 1.62, "theta_CL": 2.76, "theta_V": 31.9}
ORDERS = range(5)


def _grid():
    b = SERIES_BOUND
    special = [0.0, 1e-8, -1e-8]
    for sign in (1.0, -1.0):
        special += [sign * b, sign * (b + 1e-9), sign * (b - 1e-9)]
    return np.concatenate([np.linspace(-30.0, 50.0, 801), special])


X = _grid()


@pytest.mark.parametrize("order", ORDERS)
def test_jax_exp_moment_matches_reference(order):
    ref = np.array([_exp_moment_py(order, x) for x in X])
    got = np.asarray(jax.jit(_jax_exp_moment(order))(jnp.asarray(X)))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0.0)
    # through PyTensor's JAX backend (the registered dispatch), vectorised
    assert register_jax()
    x = pt.dvector("x")
    fn = pytensor.function([x], exp_moment(order, x), mode="JAX")
    np.testing.assert_allclose(fn(X), ref, rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("order", ORDERS)
def test_jax_exp_moment_gradient(order):
    f = _jax_exp_moment(order)
    grad = np.asarray(jax.jit(jax.vmap(jax.grad(f)))(jnp.asarray(X)))
    assert np.isfinite(grad).all()
    ref = np.array([-_exp_moment_py(order + 1, x) for x in X])
    np.testing.assert_allclose(grad, ref, rtol=1e-11, atol=0.0)
    # second derivative (d2/dx2 I_n = I_{n+2}), finite at 0 and at the branch bound
    at = jnp.asarray([0.0, SERIES_BOUND, -SERIES_BOUND, 3.0])
    hess = np.asarray(jax.vmap(jax.grad(jax.grad(f)))(at))
    np.testing.assert_allclose(hess, [_exp_moment_py(order + 2, float(v)) for v in at], rtol=1e-10)


def test_pytensor_gradients_in_jax_mode():
    """PyTensor's symbolic derivatives (again ExpMoment nodes) compiled with mode="JAX"."""
    from bayes_nlme.pk.exponentials import phi1

    register_jax()
    xs = np.array([0.0, 1e-12, 1e-6, 0.3, 0.99999, 1.0, 1.5, 10.0, 700.0, -0.5, -1.5, -5.0])
    x = pt.dvector("x")
    outputs = [phi1(x)]
    for _ in range(3):
        outputs.append(pytensor.grad(pt.sum(outputs[-1]), x))
    got = pytensor.function([x], outputs, mode="JAX")(xs)
    for order, values in enumerate(got):
        ref = [(-1) ** order * _exp_moment_py(order, v) for v in xs]
        np.testing.assert_allclose(values, ref, rtol=1e-12, atol=0)


def test_reverse_mode_through_the_jaxified_graph_is_finite():
    """``jax.grad`` of a PyTensor graph with ExpMoment, as PyMC's JAX samplers take it."""
    from pytensor.link.jax.dispatch import jax_funcify

    register_jax()
    x = pt.dvector("x")
    out = pt.sum(exp_moment(0, x) * pt.exp(-x) + exp_moment(2, 2.0 * x))
    fgraph = pytensor.graph.fg.FunctionGraph([x], [out], clone=True)
    fn = jax_funcify(fgraph)
    g = np.asarray(jax.grad(lambda v: fn(v)[0])(jnp.asarray([0.0, 1e-9, 0.5, 1.0, 4.0])))
    assert np.isfinite(g).all()


def test_import_without_jax():
    """bayes_nlme imports, and register_jax says False, when jax cannot be imported."""
    code = (
        "import sys; sys.modules['jax'] = None\n"
        "import bayes_nlme, bayes_nlme.fit\n"
        "from bayes_nlme.pk.exponentials import register_jax\n"
        "assert register_jax() is False\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "sampler",
    ["numpyro", pytest.param("blackjax", marks=pytest.mark.slow)],  # the same JAX graph; ~50 s of compilation
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
