"""Frequentist path: FO, FOCE, FOCE-I and Laplace against published references."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest

from bayes_nlme.errors import ArgumentError
from bayes_nlme.estimation import CovarianceWarning, EstimationResult, compare_fits, estimate, objective
from bayes_nlme.estimation.covariance import covariance_step
from bayes_nlme.estimation.outer import Evaluator, minimise
from bayes_nlme.estimation.problem import Problem
from bayes_nlme.spec import load_model, parse_model

DATA = Path(__file__).parent / "data"


class FunctionKernel:
    """A prediction kernel for a custom PyTensor prediction ``predictor(params)`` (one
    parameter row per subject), with the interface of ``EngineKernel``: used to test the
    objective maths on models that are not compartmental."""

    def __init__(self, predictor, subject, names, constants, log_transform):
        import pytensor

        from bayes_nlme.estimation.kernel import EngineKernel

        self.m = len(names)
        u = pt.matrix("U")
        params = {name: pt.exp(u[:, k])[subject] for k, name in enumerate(names)}
        params.update({k: pt.as_tensor_variable(np.asarray(v, float)[subject]) for k, v in constants.items()})
        f = pt.as_tensor_variable(predictor(params))
        if log_transform:
            f = pt.log(f)
        jac = pt.jacobian(f, u, vectorize=True)  # (n_obs, n_subjects, M): the own subject's row
        self._fn = pytensor.function([u], [f, jac], mode="FAST_COMPILE")
        self._subject = np.asarray(subject)
        self.shift = EngineKernel.shift
        self.first_difference = lambda u, a: EngineKernel.first_difference(self, u, a)
        self.second_difference = lambda u, a, b: EngineKernel.second_difference(self, u, a, b)
        self.n_calls = 0
        self.seconds_compile = 0.0

    def jacobian(self, u):
        f, jac = self._fn(np.asarray(u, dtype=float))
        own = jac[np.arange(len(f)), self._subject, :]
        return np.asarray(f), own[:, None, :]

    def value(self, u):
        return self.jacobian(u)[0]

    def warm_up(self, u):
        return 0.0


def custom_problem(spec, y, subject, n, predictor):
    """A Problem whose predictions are ``predictor`` (see FunctionKernel)."""
    return Problem(
        spec, y, subject, n, lambda names, constants, log: FunctionKernel(predictor, subject, names, constants, log)
    )


WANG_MODEL = """
name = "wang2007"
structural = "one_compartment_iv"
[parameters.CL]
typical = {{ lognormal = {{ median = 0.5, sigma = 1.0 }} }}
[parameters.V]
fixed = 1.0
[residual]
model = "{error}"
"""

ORAL_MODEL = """
name = "simulated-oral"
structural = "one_compartment_oral"
[parameters.ka]
typical = {{ lognormal = {{ median = 1.5, sigma = 1.0 }} }}
[parameters.CL]
typical = {{ lognormal = {{ median = 2.5, sigma = 1.0 }} }}
[parameters.V]
typical = {{ lognormal = {{ median = 30.0, sigma = 1.0 }} }}
[residual]
model = "{error}"
"""


def wang_data() -> pd.DataFrame:
    """Wang (2007): a bolus of 10 at time 0, then the two observations of each subject."""
    raw = pd.read_csv(DATA / "wang2007.csv")
    rows = []
    for ident, group in raw.groupby("ID", sort=True):
        rows.append({"ID": ident, "TIME": 0.0, "AMT": 10.0, "DV": np.nan, "EVID": 1, "MDV": 1})
        for t, y in zip(group["Time"], group["Y"]):
            rows.append({"ID": ident, "TIME": float(t), "AMT": 0.0, "DV": float(y), "EVID": 0, "MDV": 0})
    return pd.DataFrame(rows)


def simulate_oral(n, seed, omega, *, sigma_add=0.0, sigma_prop=0.0, theta=(1.5, 2.5, 30.0)):
    """One-compartment oral data (dose 100), analytic solution, diagonal omega.

    The design (times, doses) depends on ``n`` only, so fits of different draws share
    one compiled prediction kernel.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        ka, cl, v = np.asarray(theta) * np.exp(rng.normal(0.0, np.sqrt(omega)))
        k = cl / v
        rows.append({"ID": i + 1, "TIME": 0.0, "AMT": 100.0, "DV": np.nan, "EVID": 1, "MDV": 1})
        for t in (0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0):
            c = 100.0 * ka / (v * (ka - k)) * (np.exp(-k * t) - np.exp(-ka * t))
            y = c + np.sqrt(sigma_add + sigma_prop * c * c) * rng.normal()
            rows.append({"ID": i + 1, "TIME": t, "AMT": 0.0, "DV": y, "EVID": 0, "MDV": 0})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- Wang (2007)
WANG = {
    ("proportional", "focei"): 39.458,
    ("proportional", "foce"): 39.207,
    ("proportional", "fo"): 39.213,
    ("additive", "focei"): -2.059,
    ("additive", "foce"): -2.059,
    ("additive", "fo"): 0.026,
}


@pytest.mark.parametrize(("error", "method"), list(WANG))
def test_wang2007_objective(error, method):
    spec = parse_model(tomllib.loads(WANG_MODEL.format(error=error)))
    sigma = {"proportional": {"sigma2_prop": 0.1}, "additive": {"sigma2_add": 0.1}}[error]
    ofv = objective(spec, wang_data(), method=method, theta={"CL": 0.5}, omega=0.04, sigma2=sigma)
    assert ofv == pytest.approx(WANG[(error, method)], abs=1e-3)


def test_objective_arguments():
    spec = parse_model(tomllib.loads(WANG_MODEL.format(error="additive")))
    with pytest.raises(ArgumentError, match="'focei'"):
        objective(spec, wang_data(), method="saem", theta={"CL": 0.5}, omega=0.04, sigma2=0.1)
    with pytest.raises(ArgumentError, match="missing CL"):
        objective(spec, wang_data(), method="fo", theta={}, omega=0.04, sigma2=0.1)
    with pytest.raises(ArgumentError, match="'sandwich'"):
        estimate(spec, wang_data(), method="fo", covariance="hessian")


# ---------------------------------------------------------------- exact gradients
def _wang_problem(error: str) -> Problem:
    """Wang's data with V estimated and a full 2x2 omega (a custom predictor)."""
    raw = pd.read_csv(DATA / "wang2007.csv")
    t = raw["Time"].to_numpy(float)
    spec = parse_model(
        tomllib.loads(f"""
name = "wang-full"
structural = "one_compartment_iv"
[parameters.CL]
typical = {{ lognormal = {{ median = 0.5, sigma = 1.0 }} }}
[parameters.V]
typical = {{ lognormal = {{ median = 1.0, sigma = 1.0 }} }}
[omega]
structure = "full"
[residual]
model = "{error}"
""")
    )
    return custom_problem(
        spec, raw["Y"].to_numpy(float), raw["ID"].to_numpy() - 1, 10, lambda p: 10.0 * pt.exp(-(p["CL"] / p["V"]) * t)
    )


@pytest.mark.parametrize("method", ["fo", "foce", "focei", "laplace"])
def test_gradient_matches_finite_differences(method):
    problem = _wang_problem("combined")
    psi = problem.pmap.pack(
        {"CL": 0.5, "V": 1.0}, {}, [[0.04, 0.01], [0.01, 0.05]], {"sigma2_add": 0.1, "sigma2_prop": 0.1}
    )
    psi = psi + 0.1 * np.random.default_rng(1).normal(size=psi.size)
    evaluator = Evaluator(problem, method)

    def ofv(x):
        return evaluator.evaluate(x, np.zeros((10, 2))).ofv

    grad = evaluator.evaluate(psi, np.zeros((10, 2))).gradient
    h = 1e-5
    fd = np.array([(ofv(psi + h * e) - ofv(psi - h * e)) / (2 * h) for e in np.eye(psi.size)])
    np.testing.assert_allclose(grad, fd, atol=2e-5 * max(1.0, np.abs(fd).max()))


def test_laplace_equals_focei_for_a_model_linear_in_eta():
    """f = log(CL) - V t is linear in eta_CL: the Laplace and FOCE-I objectives coincide."""
    rng = np.random.default_rng(3)
    n, times = 15, np.array([0.5, 1.0, 2.0, 4.0])
    subject = np.repeat(np.arange(n), len(times))
    t = np.tile(times, n)
    y = np.log(2.0) + rng.normal(0, 0.3, n)[subject] - 0.2 * t + rng.normal(0, 0.1, len(t))
    spec = parse_model(
        tomllib.loads("""
name = "linear"
structural = "one_compartment_iv"
[parameters.CL]
typical = { lognormal = { median = 1.0, sigma = 1.0 } }
[parameters.V]
typical = { lognormal = { median = 0.1, sigma = 1.0 } }
iiv = false
[residual]
model = "additive"
""")
    )
    problem = custom_problem(spec, y, subject, n, lambda p: pt.log(p["CL"]) - p["V"] * t)
    psi0 = problem.pmap.pack({"CL": 1.0, "V": 0.1}, {}, [[0.2]], {"sigma2_add": 0.05})
    fits = {}
    for method in ("laplace", "focei"):
        ev = Evaluator(problem, method)
        assert ev.evaluate(psi0).ofv == pytest.approx(Evaluator(problem, "focei").evaluate(psi0).ofv, abs=1e-8)
        fits[method] = minimise(ev, psi0)
        assert fits[method].converged
    assert fits["laplace"].evaluation.ofv == pytest.approx(fits["focei"].evaluation.ofv, abs=1e-6)
    np.testing.assert_allclose(fits["laplace"].psi, fits["focei"].psi, atol=1e-5)


# ---------------------------------------------------------------- simulated data
def test_foce_equals_focei_for_additive_error():
    spec = parse_model(tomllib.loads(ORAL_MODEL.format(error="additive")))
    data = simulate_oral(40, 11, np.array([0.1, 0.1, 0.1]), sigma_add=0.1)
    foce = estimate(spec, data, method="foce", covariance=None)
    focei = estimate(spec, data, method="focei", covariance=None)
    assert foce.converged and focei.converged
    assert foce.ofv == pytest.approx(focei.ofv, abs=1e-6)
    np.testing.assert_allclose(foce.estimates["estimate"], focei.estimates["estimate"], rtol=1e-4)


def test_fo_is_biased_with_large_iiv():
    """With 50% CV of IIV, FO's estimates are much further from the truth than FOCE-I's."""
    spec = parse_model(tomllib.loads(ORAL_MODEL.format(error="proportional")))
    omega = np.array([0.5, 0.5, 0.5])
    data = simulate_oral(40, 1, omega, sigma_prop=0.01)
    truth = np.array([1.5, 2.5, 30.0, *omega, 0.01])
    error = {}
    for method in ("fo", "focei"):
        fit = estimate(spec, data, method=method, covariance=None)
        assert fit.converged
        error[method] = np.mean(np.abs(np.log(fit.estimates["estimate"].to_numpy() / truth)))
    assert error["focei"] < 0.3
    assert error["fo"] > 2.0 * error["focei"]


# ---------------------------------------------------------------- Theophylline
@pytest.fixture(scope="module")
def theophylline_fit():
    spec = load_model(DATA / "theophylline_focei.toml")
    return estimate(spec, "theophylline", method="focei")


def test_theophylline_focei_matches_nlmixr2(theophylline_fit):
    fit = theophylline_fit
    assert fit.converged
    assert fit.n_obs == 132 and fit.n_subjects == 12
    assert fit.ofv == pytest.approx(116.80, abs=0.5)
    assert fit.minus2ll == pytest.approx(359.40, abs=0.5)
    value = fit.value
    for name, ref in {"theta_ka": 1.593, "theta_CL": 2.752, "theta_V": 31.8}.items():
        assert value[name] == pytest.approx(ref, rel=0.02)
    for name, ref in {"omega_ka_ka": 0.405, "omega_CL_CL": 0.0692, "omega_V_V": 0.0191, "sigma2_add": 0.483}.items():
        assert value[name] == pytest.approx(ref, rel=0.10)
    k = 7
    assert fit.aic == pytest.approx(fit.minus2ll + 2 * k)
    assert fit.bic == pytest.approx(fit.minus2ll + k * np.log(12))
    est = fit.estimates
    assert list(est.columns[:4]) == ["parameter", "estimate", "se", "rse_pct"]
    assert np.all(np.isfinite(est["se"])) and np.all(est["se"] > 0)
    assert set(fit.eta_shrinkage_sd) == {"ka", "CL", "V"}
    assert {"PRED", "IPRED", "IWRES", "CWRES"} <= set(fit.predictions.columns)
    assert len(fit.predictions) == 132 and np.all(np.isfinite(fit.predictions["CWRES"]))
    assert list(fit.ebe.columns) == ["ID", "ETA_ka", "ETA_CL", "ETA_V", "ka", "CL", "V"]


def test_theophylline_laplace_close_to_focei(theophylline_fit):
    spec = load_model(DATA / "theophylline_focei.toml")
    laplace = estimate(spec, "theophylline", method="laplace", covariance=None)
    assert laplace.converged
    assert abs(laplace.ofv - theophylline_fit.ofv) < 2.0
    assert np.all(np.isnan(laplace.estimates["se"]))


def test_save_and_load_round_trip(theophylline_fit, tmp_path):
    out = theophylline_fit.save(tmp_path / "fit")
    assert {"summary.csv", "fit.json", "fit.nc", "ebe.csv"} <= {p.name for p in out.iterdir()}
    info = json.loads((out / "fit.json").read_text())
    for key in (
        "method",
        "n_subjects",
        "n_obs",
        "seconds",
        "ofv",
        "minus2ll",
        "aic",
        "bic",
        "converged",
        "eta_shrinkage_sd",
        "seconds_compile",
        "seconds_fit",
        "n_iterations",
        "covariance",
        "correlation",
    ):
        assert key in info
    assert info["method"] == "focei" and info["n_obs"] == 132
    summary = pd.read_csv(out / "summary.csv")
    assert {"parameter", "estimate", "se", "rse_pct"} <= set(summary.columns)
    back = EstimationResult.load(out)
    assert back.ofv == pytest.approx(theophylline_fit.ofv)
    pd.testing.assert_frame_equal(back.estimates, theophylline_fit.estimates, check_dtype=False)
    pd.testing.assert_frame_equal(back.ebe, theophylline_fit.ebe, check_dtype=False)
    np.testing.assert_allclose(back.predictions["CWRES"], theophylline_fit.predictions["CWRES"])
    assert back.eta_shrinkage_sd == pytest.approx(theophylline_fit.eta_shrinkage_sd)
    table = compare_fits(out)
    assert "focei estimate" in table.columns
    assert list(table["parameter"]) == list(summary["parameter"])


def test_cwres_matches_a_per_subject_computation():
    """CWRES = C^-1/2 e per subject (symmetric root), whatever the record order."""
    from scipy.linalg import sqrtm

    from bayes_nlme.estimation.diagnostics import cwres

    problem = _wang_problem("additive")
    rng = np.random.default_rng(5)
    order = rng.permutation(problem.n_obs)  # subjects interleaved
    problem.subject = problem.subject[order]
    problem.n_per_subject = np.bincount(problem.subject)
    e, g, r = rng.normal(size=problem.n_obs), rng.normal(size=(problem.n_obs, 2)), rng.uniform(0.5, 2, problem.n_obs)
    omega = np.array([[0.3, 0.1], [0.1, 0.2]])
    got = cwres(problem, e, g, r, omega)
    for s in range(problem.n_subjects):
        rows = np.flatnonzero(problem.subject == s)
        cov = g[rows] @ omega @ g[rows].T + np.diag(r[rows])
        np.testing.assert_allclose(got[rows], np.linalg.solve(np.real(sqrtm(cov)), e[rows]), rtol=1e-8)


# ---------------------------------------------------------------- covariance step
def test_covariance_step_singular_warns():
    per_subject = np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0]])  # rank 1 < 3
    with pytest.warns(CovarianceWarning, match="S matrix"):
        result = covariance_step(np.eye(3), per_subject, np.eye(3), "s")
    assert not result.ok and np.all(np.isnan(result.se))


def test_estimate_with_singular_covariance_returns_estimates():
    """Identical subjects give identical per-subject gradients: S has rank 1."""
    data = wang_data()
    first = data[data["ID"] == 1]["DV"].to_numpy()
    data["DV"] = np.tile(first, data["ID"].nunique())
    spec = parse_model(tomllib.loads(WANG_MODEL.format(error="additive")))
    with pytest.warns(CovarianceWarning, match="S matrix"):
        fit = estimate(spec, data, method="focei", covariance="s")
    assert np.all(np.isfinite(fit.estimates["estimate"]))
    assert np.all(np.isnan(fit.estimates["se"]))
