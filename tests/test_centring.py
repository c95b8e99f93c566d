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
    [
        (("CL",), False),
        pytest.param(("ka", "V"), False, marks=pytest.mark.slow),
        pytest.param(("CL", "V"), False, marks=pytest.mark.slow),
        (("ka", "V"), True),
        pytest.param(("ka",), True, marks=pytest.mark.slow),
    ],
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


class _Shrinkage:
    def __init__(self, **values):
        self.eta_shrinkage_sd = values


def test_auto_centres_per_parameter(theo):
    """Rich data: every parameter is centred, except one whose EBEs shrink (its
    variance has mass near zero), which is non-centred on its own."""
    from bayes_nlme.fit.sampling import MAX_SHRINKAGE_CENTRED, _centred

    spec, table = theo
    data = load_dataset(table)
    low, high = MAX_SHRINKAGE_CENTRED / 2, MAX_SHRINKAGE_CENTRED * 2
    assert _centred("auto", data, spec) is True
    assert _centred("auto", data, spec, _Shrinkage(ka=low, CL=low, V=low)) is True
    assert _centred("auto", data, spec, _Shrinkage(ka=high, CL=low, V=low)) == ("CL", "V")
    assert _centred("auto", data, spec, _Shrinkage(ka=high, CL=high, V=high)) is False
    sparse = load_dataset(table.loc[table.groupby("ID").cumcount() < 3])  # the dose and 2 samples
    assert _centred("auto", sparse, spec) is False


@pytest.mark.slow  # a NUTS fit (fresh compile of the mixed graph)
def test_nuts_with_mixed_centring_matches_the_centred_posterior():
    import warnings

    from bayes_nlme.fit import ConvergenceWarning, sample

    spec, data = load_model("models/theophylline.toml"), load_dataset("theophylline")
    settings = {"draws": 1000, "tune": 500, "chains": 2, "seed": 3, "quiet": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # short runs: R-hat is asserted below
        mixed = sample(spec, data, centered=("CL", "V"), **settings)
        full = sample(spec, data, centered=True, **settings)
    assert mixed.details["centered"] == ["CL", "V"] and full.details["centered"] is True
    assert mixed.convergence.divergences == 0 and mixed.convergence.max_r_hat < 1.05
    a, b = mixed.summary().set_index("parameter"), full.summary().set_index("parameter")
    for name in ("theta_ka", "theta_CL", "theta_V", "sigma2_add"):
        assert abs(a.loc[name, "mean"] - b.loc[name, "mean"]) < 0.3 * b.loc[name, "sd"], name
