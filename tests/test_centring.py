"""Per-parameter centring of the etas (issue 17): the mixed parameterisation has the
density of the centred one, and ``centered="auto"`` chooses per parameter."""

from __future__ import annotations

import numpy as np
import pytest
from pytensor.compile.mode import Mode

from bayes_nlme.build import build
from bayes_nlme.build.etas import centring
from bayes_nlme.data import load_dataset
from bayes_nlme.spec import load_model


@pytest.fixture(scope="module")
def theo():
    table = load_dataset("theophylline").table
    return load_model("models/theophylline.toml"), table.loc[table["ID"].isin([1, 2, 3, 4])]


PY = Mode(linker="py", optimizer="fast_compile")  # no C or Numba compilation


def _evaluate(built, point):
    model = built.model
    logp = model.compile_logp(mode=PY)(point)
    graphs = model.replace_rvs_by_values([model["eta"], model["omega"]])
    fn = model.compile_fn(graphs, inputs=model.value_vars, mode=PY, on_unused_input="ignore")
    eta, omega = fn(point)
    return logp, np.asarray(eta), np.asarray(omega)


@pytest.mark.parametrize(
    "centred, guard",
    [(("CL",), False), (("ka", "V"), False), (("CL", "V"), False), (("ka", "V"), True), (("ka",), True)],
)
def test_mixed_parameterisation_has_the_density_of_the_centred_one(theo, centred, guard):
    """At the same etas, the mixed log density equals the centred one plus the log
    Jacobian of ``eta_N = L_NN z_N`` (``n log|det L_NN|``), with ``L`` the Cholesky
    factor of Omega in the order (non-centred, centred)."""
    spec, data = theo
    full = build(spec, data, centered=True, guard=guard)
    mixed = build(spec, data, centered=centred, guard=guard)
    assert mixed.centered == centred
    rng = np.random.default_rng(7)
    point = {k: v + rng.normal(0.0, 0.3, np.shape(v)) for k, v in full.model.initial_point().items()}
    logp_full, eta, omega = _evaluate(full, point)
    names = list(spec.iiv_names)
    c_idx = [j for j, n in enumerate(names) if n in centred]
    n_idx = [j for j, n in enumerate(names) if n not in centred]
    order = n_idx + c_idx
    chol = np.linalg.cholesky(omega[np.ix_(order, order)])
    m = len(n_idx)
    z_n = np.linalg.solve(chol[:m, :m], eta[:, n_idx].T).T
    mixed_point = {k: v for k, v in point.items() if k != "log_individual"}
    mixed_point["eta_z"] = z_n
    mixed_point["log_individual"] = point["log_individual"][:, c_idx]
    logp_mixed, eta_mixed, _ = _evaluate(mixed, mixed_point)
    np.testing.assert_allclose(eta_mixed, eta, rtol=1e-10, atol=1e-12)
    n = eta.shape[0]
    expected = logp_full + n * np.sum(np.log(np.diag(chol[:m, :m])))
    assert logp_mixed == pytest.approx(expected, rel=1e-10, abs=1e-8)


def test_mixed_with_a_guarded_non_centred_absorption_rate_is_finite(theo):
    """ka non-centred under the flip-flop guard, CL and V centred: finite density and gradient."""
    spec, data = theo
    model = build(spec, data, centered=("CL", "V"), guard=True).model
    point = model.initial_point()
    assert np.isfinite(model.compile_logp(mode=PY)(point))
    assert np.all(np.isfinite(model.compile_dlogp(mode=Mode(linker="py", optimizer=None))(point)))


def test_centring_names():
    spec = load_model("models/theophylline.toml")
    assert centring(spec, ("V", "ka")) == ("ka", "V")
    assert centring(spec, ["ka", "CL", "V"]) is True
    assert centring(spec, ()) is False
    with pytest.raises(ValueError, match="Q have no IIV"):
        centring(spec, ("Q",))
