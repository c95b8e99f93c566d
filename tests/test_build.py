"""Tests of the Bayesian model builder (bayes_nlme.build), without MCMC.

Densities are checked against scipy.stats: directly through the model's log density
(compiled with PyTensor's Python linker, so no Numba compilation is needed), and, for
the Bartlett inverse-Wishart, by forward sampling (Kolmogorov-Smirnov tests).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytest
from pytensor.compile.mode import Mode
from scipy import stats

from bayes_nlme.build import build, build_model, prior_data
from bayes_nlme.build.flipflop import numeric_violations, terminal_rate
from bayes_nlme.build.omega import omega_factor
from bayes_nlme.build.residual import pointwise_loglik, predictive_draws
from bayes_nlme.errors import DataError, SpecError
from bayes_nlme.spec import parse_model

# PyTensor's Python linker: no C or Numba compilation in these tests.
PY = Mode(linker="py", optimizer="fast_compile")
DRAW = Mode(linker="py", optimizer="fast_run")
FAST = {"mode": PY}

BASE = {
    "name": "test-1cmt",
    "structural": "one_compartment_oral",
    "parameters": {
        "ka": {"typical": {"lognormal": {"median": 1.5, "sigma": 0.5}}},
        "CL": {"typical": {"lognormal": {"median": 3.0, "sigma": 0.5}}},
        "V": {"typical": {"lognormal": {"median": 30.0, "sigma": 0.5}}},
    },
    "omega": {"structure": "full", "prior": {"inverse_wishart": {"df": 5, "scale": [0.4, 0.4, 0.4]}}},
    "residual": {"model": "additive", "add": {"inverse_gamma": {"alpha": 2.0, "beta": 0.5}}},
}


@pytest.fixture(autouse=True)
def _no_c_compilation():
    """Evaluate graphs in Python: no C (or BLAS) compilation, no Numba."""
    with pytensor.config.change_flags(cxx=""):
        yield


def make_spec(**changes):
    """The BASE model with top-level tables replaced (``None`` removes a key)."""
    doc = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return parse_model(doc)


def no_guard(**changes):
    return make_spec(flip_flop_guard=False, **changes)


def point_logp(model, variables, point, jacobian=False):
    """Log density of some model terms at a point (Python linker)."""
    fn = model.compile_logp(vars=variables, jacobian=jacobian, sum=True, **FAST)
    return float(fn(point))


def compile_fn(model, outs):
    """A point function of every value variable (Python linker)."""
    single = not isinstance(outs, (list, tuple))
    graphs = model.replace_rvs_by_values([outs] if single else list(outs))
    fn = model.compile_fn(graphs, inputs=model.value_vars, mode=PY, on_unused_input="ignore")
    return (lambda point: fn(point)[0]) if single else fn


def evaluate(model, outs, point):
    return compile_fn(model, outs)(point)


# --------------------------------------------------------------------------- structure


def test_coords_dims_and_variables():
    built = build(make_spec(), "theophylline")
    model = built.model
    assert list(model.coords["subject"]) == list(range(1, 13))
    assert len(model.coords["observation"]) == 132
    assert list(model.coords["parameter"]) == ["ka", "CL", "V"]
    assert list(model.coords["structural_parameter"]) == ["ka", "CL", "V"]
    assert model.named_vars_to_dims["individual"] == ("subject", "structural_parameter")
    assert model.named_vars_to_dims["eta"] == ("subject", "parameter")
    assert model.named_vars_to_dims["omega"] == ("parameter", "parameter2")
    assert model.named_vars_to_dims["y"] == ("observation",)
    names = {v.name for v in model.free_RVs}
    assert {"theta_CL", "theta_V", "theta_ka_raw", "eta_z", "sigma2_add"} <= names
    assert "theta_ka" in model.named_vars  # deterministic under the flip-flop guard
    # observation coordinate = 1-based data rows of the observation records
    assert model.coords["observation"][0] == 2


STRUCTURES = {
    "one_compartment_iv": {"CL": 3.0, "V": 30.0},
    "one_compartment_oral": {"ka": 1.5, "CL": 3.0, "V": 30.0},
    "two_compartment_iv": {"CL": 3.0, "V1": 20.0, "Q": 2.0, "V2": 40.0},
    "two_compartment_oral": {"ka": 1.5, "CL": 3.0, "V1": 20.0, "Q": 2.0, "V2": 40.0, "tlag": 0.2},
}


@pytest.mark.parametrize("structural", sorted(STRUCTURES))
def test_every_structural_model_builds(structural):
    medians = STRUCTURES[structural]
    parameters = {p: {"typical": {"lognormal": {"median": m, "sigma": 0.5}}} for p, m in medians.items()}
    if "tlag" in parameters:
        parameters["tlag"]["iiv"] = False
    n_iiv = sum(1 for p in parameters if p != "tlag")
    spec = make_spec(
        structural=structural,
        parameters=parameters,
        omega={"structure": "full", "prior": {"inverse_wishart": {"df": n_iiv + 2, "scale": [0.3] * n_iiv}}},
    )
    data = "theophylline"
    if structural.endswith("_iv"):  # the bundled observations are on CMT 2, the oral models' central one
        from bayes_nlme.data import bundled_path

        data = pd.read_csv(bundled_path("theophylline")).drop(columns="CMT")
    built = build(spec, data)
    model = built.model
    assert built.guard == structural.endswith("oral")
    point = model.initial_point()
    assert np.isfinite(model.compile_logp(**FAST)(point))
    if built.guard:
        individual = evaluate(model, model["individual"], point)
        values = {p: individual[:, i] for i, p in enumerate(spec.parameter_names)}
        assert (values["ka"] > terminal_rate(values, np)).all()


def test_build_model_returns_pymc_model():
    model = build_model(no_guard(), "theophylline")
    assert isinstance(model, pm.Model)
    assert not model.potentials


def test_individual_parameters_with_covariates():
    params = copy.deepcopy(BASE["parameters"])
    params["CL"]["covariates"] = [
        {"column": "WT", "effect": "power", "reference": 70, "exponent": {"normal": {"mean": 0.75, "sd": 0.1}}}
    ]
    params["V"]["covariates"] = [{"column": "WT", "effect": "power", "reference": 70, "exponent": 1.0}]
    spec = no_guard(parameters=params)
    built = build(spec, "theophylline")
    model = built.model
    assert "beta_CL_WT" in model.named_vars
    assert "beta_V_WT" not in model.named_vars  # fixed exponent: a constant
    point = model.initial_point()
    point["beta_CL_WT"] = 0.6
    point["eta_z"] = np.zeros_like(point["eta_z"])
    individual, theta_cl, theta_v = evaluate(model, [model["individual"], model["theta_CL"], model["theta_V"]], point)
    wt = built.dataset.subject_covariates(["WT"])["WT"].to_numpy()
    np.testing.assert_allclose(individual[:, 1], theta_cl * (wt / 70) ** 0.6)
    np.testing.assert_allclose(individual[:, 2], theta_v * (wt / 70) ** 1.0)
    # the coefficient's density is its normal prior
    assert point_logp(model, [model["beta_CL_WT"]], point) == pytest.approx(stats.norm(0.75, 0.1).logpdf(0.6))


# --------------------------------------------------------------------------- densities


def test_lognormal_and_inverse_gamma_priors_match_scipy():
    spec = no_guard()
    model = build_model(spec, "theophylline")
    point = model.initial_point()
    for name, value in (("theta_CL", 2.2), ("theta_V", 41.0), ("theta_ka", 0.9)):
        point[f"{name}_log__"] = np.log(value)
        prior = spec.parameter(name.split("_")[1]).typical
        assert point_logp(model, [model[name]], point) == pytest.approx(prior.scipy().logpdf(value), rel=1e-10)
    point["sigma2_add_log__"] = np.log(0.37)
    expected = stats.invgamma(a=2.0, scale=0.5).logpdf(0.37)
    assert point_logp(model, [model["sigma2_add"]], point) == pytest.approx(expected, rel=1e-10)


def test_diagonal_omega_inverse_gamma_density():
    spec = no_guard(omega={"structure": "diagonal", "prior": {"inverse_gamma": {"alpha": 3.0, "beta": 0.2}}})
    model = build_model(spec, "theophylline")
    point = model.initial_point()
    point["omega_CL_CL_log__"] = np.log(0.13)
    expected = stats.invgamma(a=3.0, scale=0.2).logpdf(0.13)
    assert point_logp(model, [model["omega_CL_CL"]], point) == pytest.approx(expected, rel=1e-10)
    omega = evaluate(model, model["omega"], point)
    assert omega[1, 1] == pytest.approx(0.13)
    assert omega[0, 1] == 0.0


def test_one_by_one_inverse_wishart_block_is_inverse_gamma():
    spec = no_guard(
        omega={"structure": [["ka"], ["CL", "V"]], "prior": {"inverse_wishart": {"df": 6, "scale": [0.3, 0.4, 0.5]}}}
    )
    model = build_model(spec, "theophylline")
    point = model.initial_point()
    point["omega_ka_ka_log__"] = np.log(0.08)
    point["omega_block1_normal"] = np.array([0.5])
    expected = stats.invgamma(a=3.0, scale=0.15).logpdf(0.08)
    assert point_logp(model, [model["omega_ka_ka"]], point) == pytest.approx(expected, rel=1e-10)
    omega = evaluate(model, model["omega"], point)
    assert omega[0, 1] == 0.0 and omega[0, 2] == 0.0  # block diagonal
    assert omega[1, 2] != 0.0


def test_residual_loglik_matches_model_density():
    """The numpy pointwise log-likelihood equals the model's density of y, per error model."""
    data = pd.read_csv(_theophylline_csv())
    data.loc[(data["TIME"] == 0) & (data["AMT"].fillna(0) == 0), "MDV"] = 1  # pre-dose rows off
    residual = {
        "additive": {"model": "additive", "add": {"inverse_gamma": {"alpha": 2.0, "beta": 0.5}}},
        "proportional": {"model": "proportional", "prop": {"inverse_gamma": {"alpha": 2.0, "beta": 0.02}}},
        "combined": {
            "model": "combined",
            "add": {"inverse_gamma": {"alpha": 2.0, "beta": 0.5}},
            "prop": {"inverse_gamma": {"alpha": 2.0, "beta": 0.02}},
        },
        "exponential": {"model": "exponential", "exp": {"inverse_gamma": {"alpha": 2.0, "beta": 0.02}}},
    }
    for name, table in residual.items():
        spec = no_guard(residual=table)
        built = build(spec, data)
        model = built.model
        point = model.initial_point()
        ipred, *s2 = evaluate(model, [model["ipred"], *[model[v] for v in spec.residual.variances]], point)
        sigma2 = dict(zip(spec.residual.variances, s2))
        expected = model.compile_logp(vars=[model["y"]], sum=False, **FAST)(point)[0]
        got = pointwise_loglik(spec, ipred, sigma2, built.dv)
        np.testing.assert_allclose(got, expected, rtol=1e-10, err_msg=name)
        draws = predictive_draws(
            spec, np.tile(ipred, (4000, 1)), {k: np.full(4000, v) for k, v in sigma2.items()}, np.random.default_rng(0)
        )
        # predictive means follow the error model (exponential: median = ipred)
        centre = np.median(draws, axis=0) if name == "exponential" else draws.mean(axis=0)
        np.testing.assert_allclose(centre[ipred > 1], ipred[ipred > 1], rtol=0.1)


def test_blq_observations_are_censored():
    data = pd.read_csv(_theophylline_csv())
    late = data.index[(data["TIME"] > 24) & (data["AMT"].fillna(0) == 0)][:3]
    data["BLQ"] = 0
    data.loc[late, "BLQ"] = 1
    spec = no_guard()
    built = build(spec, data)
    assert built.lower is not None and np.isfinite(built.lower).sum() == 3
    model = built.model
    point = model.initial_point()
    ipred, s2 = evaluate(model, [model["ipred"], model["sigma2_add"]], point)
    expected = model.compile_logp(vars=[model["y"]], sum=False, **FAST)(point)[0]
    got = pointwise_loglik(spec, ipred, {"sigma2_add": s2}, built.dv, built.lower)
    np.testing.assert_allclose(got, expected, rtol=1e-6)  # PyMC's normal log-CDF is an approximation
    censored = np.isfinite(built.lower)
    np.testing.assert_allclose(
        got[censored], stats.norm(ipred[censored], np.sqrt(s2)).logcdf(built.dv[censored]), rtol=1e-10
    )


def test_centred_eta_density_is_multivariate_normal():
    scale = [[0.4, 0.1, 0.0], [0.1, 0.3, 0.05], [0.0, 0.05, 0.2]]
    spec = no_guard(omega={"structure": "full", "prior": {"inverse_wishart": {"df": 6, "scale": scale}}})
    model = build(spec, "theophylline", centered=True).model
    point = model.initial_point()
    rng = np.random.default_rng(3)
    point["log_individual"] = np.log([1.5, 2.8, 32.0]) + rng.normal(0, 0.3, size=point["log_individual"].shape)
    point["omega_block0_chi2_log__"] = np.log([5.0, 3.0, 2.5])
    point["omega_block0_normal"] = np.array([0.3, -0.2, 0.5])
    omega, eta, prior = evaluate(model, [model["omega"], model["eta"], model["eta_prior"]], point)
    expected = stats.multivariate_normal(np.zeros(3), omega).logpdf(eta).sum()
    assert float(prior) == pytest.approx(expected, rel=1e-9)


def test_centred_guard_keeps_every_subject_out_of_flip_flop():
    """Centred on the log individual parameters: ka_i > CL_i/V_i whatever the free values."""
    spec = make_spec(omega={"structure": "full", "prior": {"inverse_wishart": {"df": 4, "scale": [0.4, 0.4, 0.4]}}})
    model = build(spec, "theophylline", centered=True).model
    point = model.initial_point()
    rng = np.random.default_rng(5)
    free = np.log([1.5, 2.8, 32.0]) + rng.normal(0, 0.3, size=point["log_individual"].shape)
    free[::2, 0] = np.log(0.01)  # far inside the flip-flop region before the guard
    point["log_individual"] = free
    individual, eta, theta = evaluate(model, [model["individual"], model["eta"], model["theta_ka"]], point)
    ka, cl, v = individual.T
    assert np.all(ka > cl / v)
    np.testing.assert_allclose(individual[1::2, 1:], np.exp(free[1::2, 1:]), rtol=1e-12)
    bound = free[:, 1] - free[:, 2]  # log(CL_i / V_i)
    np.testing.assert_allclose(np.log(ka), bound + np.logaddexp(0.0, free[:, 0] - bound), rtol=1e-9)
    np.testing.assert_allclose(eta[:, 0], np.log(ka) - np.log(theta), rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- flip-flop guard


def _theta_ka_density_check(model, spec, point, ws):
    """Density of theta_ka implied by the model terms, up to a constant, at log-raw values ws."""
    terms = [model["theta_ka_raw"], model["flip_flop_theta"]]
    logp = model.compile_logp(vars=terms, jacobian=True, **FAST)
    theta_fn = compile_fn(model, model["theta_ka"])
    out = []
    for w in ws:
        point["theta_ka_raw_log__"] = w
        h = 1e-6
        point["theta_ka_raw_log__"] = w + h
        up = float(theta_fn(point))
        point["theta_ka_raw_log__"] = w - h
        down = float(theta_fn(point))
        point["theta_ka_raw_log__"] = w
        theta = float(theta_fn(point))
        log_jacobian = np.log((up - down) / (2 * h))
        out.append((theta, float(logp(point)) - log_jacobian))
    return out


def test_flip_flop_guard_population_density():
    """theta_ka has the stated log-normal density on theta_ka > CL/V, and stays there."""
    spec = make_spec()
    model = build_model(spec, "theophylline")
    point = model.initial_point()
    point["theta_CL_log__"], point["theta_V_log__"] = np.log(3.0), np.log(20.0)  # k = 0.15
    values = _theta_ka_density_check(model, spec, point, np.log([0.05, 0.16, 0.3, 1.0, 2.5]))
    prior = spec.parameter("ka").typical.scipy()
    thetas = np.array([t for t, _ in values])
    assert (thetas > 0.15).all()
    implied = np.array([d for _, d in values])
    stated = prior.logpdf(thetas)
    np.testing.assert_allclose(implied - implied[0], stated - stated[0], rtol=1e-5, atol=1e-6)


def test_flip_flop_guard_individual_bound():
    """Every subject keeps ka_i > CL_i/V_i, and the eta density is the normal one there."""
    spec = make_spec(omega={"structure": "diagonal", "prior": {"inverse_gamma": {"alpha": 2.0, "beta": 0.3}}})
    model = build_model(spec, "theophylline")
    point = model.initial_point()
    rng = np.random.default_rng(1)
    point["eta_z"] = rng.normal(size=point["eta_z"].shape) * 2
    point["eta_z"][:, 0] = -6.0  # would put ka far below CL/V without the guard
    individual = evaluate(model, model["individual"], point)
    ka, cl, v = individual.T
    assert (ka > cl / v).all()
    # implied density of the constrained z: normal up to a constant
    logp = model.compile_logp(vars=[model["eta_z"], model["flip_flop_eta"]], jacobian=True, **FAST)
    eta_fn = compile_fn(model, model["eta"])
    sd = np.sqrt(evaluate(model, model["omega"], point)[0, 0])
    implied, zs = [], []
    for raw in (-3.0, -1.0, 0.0, 1.5):
        point["eta_z"][0, 0] = raw
        h = 1e-6
        point["eta_z"][0, 0] = raw + h
        up = eta_fn(point)[0, 0] / sd
        point["eta_z"][0, 0] = raw - h
        down = eta_fn(point)[0, 0] / sd
        point["eta_z"][0, 0] = raw
        z = eta_fn(point)[0, 0] / sd
        implied.append(float(logp(point)) - np.log((up - down) / (2 * h)))
        zs.append(z)
    stated = stats.norm.logpdf(zs)
    np.testing.assert_allclose(np.array(implied) - implied[0], stated - stated[0], rtol=1e-5, atol=1e-6)


def test_terminal_rate_two_compartments():
    params = {"CL": np.array(2.0), "V1": np.array(10.0), "Q": np.array(3.0), "V2": np.array(30.0)}
    k10, k12, k21 = 0.2, 0.3, 0.1
    rates = np.roots([1.0, k10 + k12 + k21, k10 * k21])
    assert terminal_rate(params, np) == pytest.approx(-rates.max())
    assert terminal_rate({"CL": 2.0, "V": 10.0}, np) == pytest.approx(0.2)


def test_numeric_violations():
    spec = make_spec()
    theta = {"ka": np.array([1.0, 0.05]), "CL": np.array([3.0, 3.0]), "V": np.array([30.0, 30.0])}
    individual = {"ka": np.array([[1.0, 1.0], [1.0, 0.05]]), "CL": np.full((2, 2), 3.0), "V": np.full((2, 2), 30.0)}
    np.testing.assert_array_equal(numeric_violations(spec, individual, theta), [False, True])


# --------------------------------------------------------------------------- forward sampling


def _draw(model, var, n, seed):
    return pm.draw(var, draws=n, random_seed=seed, mode=DRAW)


def _check_inverse_wishart(omega_draws, df, scale, first_index=None):
    """KS tests of omega draws against scipy.stats.invwishart(df, scale)."""
    p = len(scale)
    reference = stats.invwishart(df=df, scale=scale).rvs(size=omega_draws.shape[0], random_state=7)
    for i in range(p):
        marginal = stats.invgamma(a=(df - p + 1) / 2, scale=scale[i][i] / 2)
        assert stats.kstest(omega_draws[:, i, i], marginal.cdf).pvalue > 1e-3, (i, i)
        for j in range(i + 1, p):
            result = stats.ks_2samp(omega_draws[:, i, j], reference[:, i, j])
            assert result.pvalue > 1e-3, (i, j)
    mean = scale / (df - p - 1)
    np.testing.assert_allclose(np.median(omega_draws, axis=0), np.median(reference, axis=0), atol=0.15 * mean.max())


@pytest.mark.parametrize("first", [None, "CL"])
def test_bartlett_inverse_wishart_matches_scipy(first):
    scale = np.array([[0.4, 0.12, -0.05], [0.12, 0.3, 0.08], [-0.05, 0.08, 0.25]])
    df = 7.0
    spec = no_guard(omega={"structure": "full", "prior": {"inverse_wishart": {"df": df, "scale": scale.tolist()}}})
    with pm.Model(coords={"parameter": ["ka", "CL", "V"]}):
        factor = omega_factor(spec, first=first)
        omega = pm.Deterministic("omega", factor.omega)
        draws = _draw(None, omega, 1500, seed=11)
    _check_inverse_wishart(draws, df, scale)
    assert np.allclose(draws, np.swapaxes(draws, 1, 2))


def test_forward_prior_draws_of_the_model_match_scipy():
    """The model's own prior draws: log-normal typical values, inverse-gamma sigma2, IW omega."""
    scale = [[0.4, 0.1, 0.0], [0.1, 0.3, 0.05], [0.0, 0.05, 0.2]]
    spec = no_guard(omega={"structure": "full", "prior": {"inverse_wishart": {"df": 6, "scale": scale}}})
    model = build_model(spec, "theophylline")
    names = ["theta_CL", "theta_ka", "sigma2_add", "omega"]
    draws = pm.draw([model[n] for n in names], draws=1500, random_seed=5, mode=DRAW)
    values = dict(zip(names, draws))
    for name in ("theta_CL", "theta_ka"):
        prior = spec.parameter(name.split("_")[1]).typical.scipy()
        assert stats.kstest(values[name], prior.cdf).pvalue > 1e-3
    assert stats.kstest(values["sigma2_add"], stats.invgamma(a=2.0, scale=0.5).cdf).pvalue > 1e-3
    _check_inverse_wishart(values["omega"], 6.0, np.array(scale))


def test_lkj_omega_builds_and_draws():
    spec = no_guard(omega={"structure": "full", "prior": {"lkj": {"eta": 2.0, "sd": {"half_normal": {"sigma": 0.5}}}}})
    model = build_model(spec, "theophylline")
    omega = pm.draw(model["omega"], draws=1000, random_seed=3, mode=DRAW)
    sds = np.sqrt(np.diagonal(omega, axis1=1, axis2=2))
    for i in range(3):
        assert stats.kstest(sds[:, i], stats.halfnorm(scale=0.5).cdf).pvalue > 1e-3
    assert np.all(np.linalg.eigvalsh(omega) > 0)
    # LKJ(eta) in dimension K: each correlation r has (r + 1) / 2 ~ Beta(eta - 1 + K/2, same)
    corr = omega / (sds[:, :, None] * sds[:, None, :])
    marginal = stats.beta(2.0 - 1.0 + 1.5, 2.0 - 1.0 + 1.5, loc=-1.0, scale=2.0)
    for i, j in ((1, 0), (2, 0), (2, 1)):
        assert stats.kstest(corr[:, i, j], marginal.cdf).pvalue > 1e-3
    point = model.initial_point()
    assert np.isfinite(model.compile_logp(**FAST)(point))


# --------------------------------------------------------------------------- errors and data


def test_missing_priors_name_the_key():
    with pytest.raises(SpecError, match="omega.prior"):
        build_model(make_spec(omega={"structure": "full"}), "theophylline")
    with pytest.raises(SpecError, match="residual.add"):
        build_model(
            make_spec(residual={"model": "combined", "prop": {"inverse_gamma": {"alpha": 2, "beta": 1}}}),
            "theophylline",
        )
    with pytest.raises(SpecError, match="omega.prior"):
        build_model(
            make_spec(omega={"structure": "full", "prior": {"inverse_gamma": {"alpha": 2, "beta": 1}}}), "theophylline"
        )


def test_exponential_error_with_nonpositive_dv_names_rows():
    spec = no_guard(residual={"model": "exponential", "exp": {"inverse_gamma": {"alpha": 2.0, "beta": 0.05}}})
    with pytest.raises(DataError) as info:
        build_model(spec, "theophylline")
    message = str(info.value)
    assert "DV <= 0" in message and "row 14" in message.replace("rows", "row")
    assert "prediction 0" in message  # time-0 samples of an oral dose


def test_prior_data_same_keys_for_scaled_priors():
    spec = make_spec()
    scaled = parse_model(
        {
            **copy.deepcopy(BASE),
            "omega": {"structure": "full", "prior": {"inverse_wishart": {"df": 9, "scale": [0.2] * 3}}},
        }
    )
    a, b = prior_data(spec), prior_data(scaled)
    assert a.keys() == b.keys()
    assert not np.allclose(a["prior__omega_block0__df"], b["prior__omega_block0__df"])


def _theophylline_csv():
    from bayes_nlme.data import bundled_path

    return bundled_path("theophylline")


def test_compiled_model_key_is_the_graph():
    """The compile cache key is a digest of the built graph: prior values do not change it, and
    every model change does, including ones no hand-kept list named (censoring method, LOCF/NOCB)."""
    from bayes_nlme.fit.structure import structure_key

    data = pd.read_csv(_theophylline_csv())
    data["BLQ"] = ((data["TIME"] > 24) & (data["AMT"].fillna(0) == 0)).astype(int)
    data["WT"] = 70.0 + data["TIME"] / 10.0  # changes within subjects
    covariates = {"covariates": [{"column": "WT", "effect": "power", "reference": 70.0, "exponent": 0.75}]}
    cl = {**BASE["parameters"]["CL"], **covariates}

    def key(residual=None, **changes):
        doc = copy.deepcopy(BASE)
        doc["parameters"]["CL"] = cl
        doc["residual"].update(residual or {})
        doc.update(changes)
        return structure_key(build(parse_model(doc), data))

    base = key()
    assert key(residual={"add": {"inverse_gamma": {"alpha": 3.0, "beta": 0.1}}}) == base  # prior values only
    changed = {
        "blq": key(residual={"blq": "M4"}),
        "nocb": key(time_varying="nocb"),
        "guard": key(flip_flop_guard=False),
        "prior family": key(residual={"add": {"half_normal": {"sigma": 0.5}}}),
    }
    assert all(value != base for value in changed.values()), changed
    assert len(set(changed.values())) == len(changed)
