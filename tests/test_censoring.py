"""Censored observations (BLQ, CONTRACT 5.2): one likelihood in every path."""

from __future__ import annotations

import tomllib

import numpy as np
import pandas as pd
import pytest

from bayes_nlme import estimate
from bayes_nlme.build.residual import observation_loglik
from bayes_nlme.errors import ArgumentError
from bayes_nlme.estimation.loss import observation_loss
from bayes_nlme.spec import parse_model

TRUTH = {"ka": 1.2, "CL": 3.0, "V": 30.0}
OMEGA = 0.09
SIGMA_PROP = 0.15

MODEL = """
name = "censored"
structural = "one_compartment_oral"
[parameters.ka]
typical = {{ lognormal = {{ median = 1.0, sigma = 1.0 }} }}
[parameters.CL]
typical = {{ lognormal = {{ median = 2.0, sigma = 1.0 }} }}
[parameters.V]
typical = {{ lognormal = {{ median = 20.0, sigma = 1.0 }} }}
[omega]
structure = "diagonal"
prior = {{ inverse_wishart = {{ df = 5, scale = [0.3, 0.3, 0.3] }} }}
[residual]
model = "proportional"
prop = {{ inverse_gamma = {{ alpha = 2.0, beta = 0.05 }} }}
blq = "{blq}"
"""


def simulate(n_subjects=60, seed=11, fraction=0.3):
    """One-compartment oral data; the lowest ``fraction`` of concentrations are BLQ,
    reported with DV = LLOQ."""
    rng = np.random.default_rng(seed)
    times = np.array([0.5, 1.0, 2.0, 4.0, 6.0, 9.0, 12.0, 18.0, 24.0, 36.0])
    rows = []
    for i in range(n_subjects):
        ka, cl, v = (TRUTH[p] * np.exp(rng.normal(0.0, np.sqrt(OMEGA))) for p in ("ka", "CL", "V"))
        k = cl / v
        conc = 300.0 * ka / (v * (ka - k)) * (np.exp(-k * times) - np.exp(-ka * times))
        dv = conc * (1.0 + SIGMA_PROP * rng.standard_normal(times.size))
        rows.append({"ID": i + 1, "TIME": 0.0, "AMT": 300.0, "DV": np.nan})
        rows.extend({"ID": i + 1, "TIME": t, "AMT": 0.0, "DV": float(y)} for t, y in zip(times, dv))
    frame = pd.DataFrame(rows)
    obs = frame["AMT"] == 0
    lloq = float(np.quantile(frame.loc[obs, "DV"], fraction))
    blq = obs & (frame["DV"] < lloq)
    frame["BLQ"] = blq.astype(int)
    frame.loc[blq, "DV"] = lloq
    return frame


def test_frequentist_loss_is_the_likelihood_of_the_core():
    """-2 x the core's log-likelihood = the frequentist loss + log(2 pi) on observed rows."""
    rng = np.random.default_rng(0)
    f = rng.uniform(0.5, 3.0, 50)
    y = f * (1 + 0.2 * rng.standard_normal(50))
    lower = np.where(rng.uniform(size=50) < 0.3, 1.0, -np.inf)
    censored = np.isfinite(lower)
    r = 0.04 * f**2
    loglik = observation_loglik("proportional", "M3", y, f, {"sigma2_prop": 0.04}, lower, np)
    loss = observation_loss(y, f, r, censored, np.where(censored, 1.0, 0.0))["l"]
    expected = np.where(censored, loss, loss + np.log(2.0 * np.pi))
    np.testing.assert_allclose(-2.0 * loglik, expected, rtol=1e-12)


def test_m4_conditions_on_positive_observations():
    f, y, lower = np.array([1.0, 1.0]), np.array([1.2, 0.5]), np.array([-np.inf, 0.5])
    s2 = {"sigma2_add": 0.25}
    m3 = observation_loglik("additive", "M3", y, f, s2, lower, np)
    m4 = observation_loglik("additive", "M4", y, f, s2, lower, np)
    from scipy import stats

    dist = stats.norm(1.0, 0.5)
    np.testing.assert_allclose(m3, [dist.logpdf(1.2), dist.logcdf(0.5)])
    p0 = dist.sf(0.0)
    np.testing.assert_allclose(m4, [dist.logpdf(1.2) - np.log(p0), np.log(dist.cdf(0.5) - dist.cdf(0.0)) - np.log(p0)])
    m1 = observation_loglik("additive", "M1", y, f, s2, lower, np)
    np.testing.assert_allclose(m1, [dist.logpdf(1.2), 0.0])


@pytest.fixture(scope="module")
def fits():
    data = simulate()
    out = {}
    for blq in ("M3", "M1"):
        spec = parse_model(tomllib.loads(MODEL.format(blq=blq)))
        out[blq] = estimate(spec, data, method="focei")
    return data, out


def test_focei_m3_recovers_truth_and_m1_is_biased(fits):
    data, out = fits
    m3, m1 = out["M3"], out["M1"]
    assert m3.converged
    info = m3.fit_info()
    assert info["blq_method"] == "M3" and info["n_blq"] == int(data["BLQ"].sum())
    assert m1.fit_info()["n_blq"] == 0
    assert info["n_obs"] == m1.fit_info()["n_obs"] == int((data["AMT"] == 0).sum())
    err3 = {p: abs(m3.theta[p] / TRUTH[p] - 1.0) for p in TRUTH}
    err1 = {p: abs(m1.theta[p] / TRUTH[p] - 1.0) for p in TRUTH}
    assert max(err3.values()) < 0.08, err3
    # dropping the low concentrations distorts the profiles: M1 is visibly biased
    assert max(err1.values()) > 2.0 * max(err3.values()) and max(err1.values()) > 0.1, (err1, err3)


def test_fo_and_foce_refuse_censored_rows():
    data = simulate(n_subjects=6)
    spec = parse_model(tomllib.loads(MODEL.format(blq="M3")))
    for method in ("fo", "foce"):
        with pytest.raises(ArgumentError, match="focei, laplace, saem or nuts"):
            estimate(spec, data, method=method)


@pytest.mark.slow
def test_nuts_m3_recovers_truth_and_m1_is_biased():
    import warnings

    from bayes_nlme import sample
    from bayes_nlme.fit import ConvergenceWarning

    data = simulate()
    medians = {}
    for blq in ("M3", "M1"):
        spec = parse_model(tomllib.loads(MODEL.format(blq=blq)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit = sample(spec, data, draws=400, tune=400, chains=2, seed=2, quiet=True)
        table = fit.summary().set_index("parameter")
        assert fit.info()["blq_method"] == blq
        if blq == "M3":
            assert fit.info()["n_blq"] == int(data["BLQ"].sum())
            for p, value in TRUTH.items():
                row = table.loc[f"theta_{p}"]
                assert row["q5"] < value < row["q95"], (p, row.to_dict())
        medians[blq] = {p: abs(table.loc[f"theta_{p}", "median"] / v - 1.0) for p, v in TRUTH.items()}
    assert max(medians["M1"].values()) > 2.0 * max(medians["M3"].values()), medians


M4_MODEL = MODEL.replace('model = "proportional"', 'model = "additive"').replace(
    "prop = {{ inverse_gamma", "add = {{ inverse_gamma"
)


def _one_compartment(ka, cl, v, times, dose=300.0):
    k = cl / v
    return dose * ka / (v * (ka - k)) * (np.exp(-k * times) - np.exp(-ka * times))


def simulate_additive(n_subjects=24, seed=5, sd=0.6, lloq=1.0):
    """Additive error (so y < 0 has positive probability, which M4 conditions away) and BLQ below ``lloq``."""
    rng = np.random.default_rng(seed)
    times = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0, 36.0])
    rows = []
    for i in range(n_subjects):
        ka, cl, v = (TRUTH[p] * np.exp(rng.normal(0.0, np.sqrt(OMEGA))) for p in ("ka", "CL", "V"))
        dv = _one_compartment(ka, cl, v, times) + sd * rng.standard_normal(times.size)
        rows.append({"ID": i + 1, "TIME": 0.0, "AMT": 300.0, "DV": np.nan, "BLQ": 0})
        rows.extend(
            {"ID": i + 1, "TIME": t, "AMT": 0.0, "DV": max(float(y), lloq), "BLQ": int(y < lloq)}
            for t, y in zip(times, dv)
        )
    return pd.DataFrame(rows), times


def test_frequentist_m4_loss_is_the_likelihood_of_the_core():
    """Under M4 too, -2 x the core's log-likelihood = the frequentist loss (+ log 2 pi on observed rows)."""
    rng = np.random.default_rng(1)
    f = rng.uniform(0.1, 3.0, 60)
    y = f + 0.5 * rng.standard_normal(60)
    lower = np.where(rng.uniform(size=60) < 0.3, 0.8, -np.inf)
    censored = np.isfinite(lower)
    loglik = observation_loglik("additive", "M4", y, f, {"sigma2_add": 0.25}, lower, np)
    loss = observation_loss(y, f, np.full(60, 0.25), censored, np.where(censored, 0.8, 0.0), positive=True)["l"]
    np.testing.assert_allclose(-2.0 * loglik, np.where(censored, loss, loss + np.log(2.0 * np.pi)), rtol=1e-12)


def _independent_laplace_ofv(data, times, value):
    """NONMEM's Laplace OFV of the M4 model at ``value``, by brute force: per subject, the mode of
    ``-2 log p(y, eta)`` by BFGS and its Hessian by central differences (no code of the package)."""
    from scipy import optimize, stats

    omega = np.array([value[f"omega_{p}_{p}"] for p in ("ka", "CL", "V")])
    sd = np.sqrt(value["sigma2_add"])
    total = 0.0
    for _, subject in data[data["AMT"] == 0].groupby("ID"):
        y, blq = subject["DV"].to_numpy(), subject["BLQ"].to_numpy() == 1

        def objective(eta, y=y, blq=blq):
            ka, cl, v = (value[f"theta_{p}"] * np.exp(e) for p, e in zip(("ka", "CL", "V"), eta))
            f = _one_compartment(ka, cl, v, times)
            dist = stats.norm(f, sd)
            positive = dist.logsf(0.0)
            obs = -2.0 * (dist.logpdf(y) - positive) - np.log(2.0 * np.pi)  # NONMEM drops log 2 pi here
            cens = -2.0 * (np.log(dist.cdf(y) - dist.cdf(0.0)) - positive)
            return float(np.sum(np.where(blq, cens, obs)) + np.sum(eta**2 / omega))

        mode = optimize.minimize(objective, np.zeros(3), method="BFGS", options={"gtol": 1e-9}).x
        h, step = np.zeros((3, 3)), 1e-4
        for a in range(3):
            for b in range(3):
                ea, eb = np.eye(3)[a] * step, np.eye(3)[b] * step
                h[a, b] = (
                    objective(mode + ea + eb)
                    - objective(mode + ea - eb)
                    - objective(mode - ea + eb)
                    + objective(mode - ea - eb)
                ) / (4 * step**2)
        total += objective(mode) + np.sum(np.log(omega)) + np.linalg.slogdet(0.5 * h)[1]
    return total


def test_laplace_and_focei_under_m4():
    """M4 in the frequentist engines: Laplace's OFV equals an independent brute-force Laplace
    approximation of the same M4 likelihood at its estimates, and FOCE-I recovers the truth."""
    data, times = simulate_additive()
    assert 0.15 < data.loc[data["AMT"] == 0, "BLQ"].mean() < 0.5
    spec = parse_model(tomllib.loads(M4_MODEL.format(blq="M4")))
    laplace = estimate(spec, data, method="laplace", covariance=None)
    assert laplace.converged and laplace.fit_info()["blq_method"] == "M4"
    np.testing.assert_allclose(laplace.ofv, _independent_laplace_ofv(data, times, laplace.value), atol=2e-3)
    focei = estimate(spec, data, method="focei", covariance=None)
    assert focei.converged
    err = {p: abs(focei.theta[p] / TRUTH[p] - 1.0) for p in TRUTH}
    assert max(err.values()) < 0.12, err
    m3 = estimate(parse_model(tomllib.loads(M4_MODEL.format(blq="M3"))), data, method="laplace", covariance=None)
    assert abs(m3.ofv - laplace.ofv) > 0.1  # the conditioning on y >= 0 changes the likelihood
    for method in ("fo", "foce"):
        with pytest.raises(ArgumentError, match="focei, laplace, saem or nuts"):
            estimate(spec, data, method=method)
