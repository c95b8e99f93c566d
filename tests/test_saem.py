"""SAEM and the importance-sampling OFV (CONTRACT 5.6, issue 14)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_nlme.cli import main
from bayes_nlme.errors import ArgumentError, SpecError
from bayes_nlme.estimation import estimate
from bayes_nlme.estimation.loss import observation_loss, observation_loss_value
from bayes_nlme.estimation.saem import saem_settings
from bayes_nlme.spec import load_model, parse_model

DATA = Path(__file__).parent / "data"
THEO = DATA / "theophylline_focei.toml"
#: nlmixr2's SAEM fit of theo_sd (one compartment, additive error, diagonal omega).
NLMIXR2 = {"ka": 1.57, "CL": 2.77, "V": 31.5, "cv": {"ka": 71.5, "CL": 27.6, "V": 13.4}, "add_sd": 0.693}
SHORT = {"n_burn": 60, "n_em": 60, "chains": 2, "is_samples": 600}


def _cv(omega: float) -> float:
    return 100.0 * np.sqrt(np.exp(omega) - 1.0)


def test_loss_value_is_the_loss():
    rng = np.random.default_rng(1)
    f = rng.uniform(0.5, 3.0, 40)
    y = f + 0.3 * rng.standard_normal(40)
    r = 0.1 + 0.02 * f**2
    censored = rng.uniform(size=40) < 0.3
    limit = np.where(censored, 1.0, 0.0)
    for cens, lim in ((None, None), (censored, limit)):
        np.testing.assert_allclose(
            observation_loss_value(y, f, r, cens, lim), observation_loss(y, f, r, cens, lim)["l"], rtol=1e-13
        )


@pytest.mark.parametrize("model, data", [(THEO, "theophylline"), ("models/oral_mm.toml", "oral_mm")])
def test_value_only_engine_gives_the_same_predictions(model, data):
    """SAEM's Metropolis steps and importance sampling use the engine's value-only walk
    (no sensitivities): its predictions are those of the full engine, bit for bit, for a
    built-in model and for a generated ODE model."""
    from bayes_nlme.core.op import predict_numeric, predict_values
    from bayes_nlme.estimation.estimator import build_problem
    from bayes_nlme.estimation.parameters import start_values

    spec = load_model(Path(__file__).parents[1] / model)
    problem = build_problem(spec, data)[0]
    start = start_values(spec, problem.y)
    psi = problem.pmap.pack(start["theta"], start["betas"], start["omega"], start["sigma2"], start["iov"])
    u0 = problem.log_parameters(psi, None)[0]
    kernel = problem.kernel
    rng = np.random.default_rng(0)
    for _ in range(3):
        u = u0 + 0.3 * rng.standard_normal(u0.shape)
        np.testing.assert_array_equal(kernel.predict(u), kernel.value(u))
        params = kernel._params(u)
        np.testing.assert_array_equal(predict_values(kernel.design, params), predict_numeric(kernel.design, params)[0])


def test_settings_table_and_errors():
    assert saem_settings().n_burn == 200 and saem_settings().n_em == 300
    assert saem_settings({"n_burn": 10}, n_em=5).n_em == 5
    with pytest.raises(SpecError, match="saem.n_em"):
        saem_settings({"n_em": 0})
    with pytest.raises(SpecError, match="unknown key"):
        saem_settings({"iterations": 3})
    doc = tomllib.loads(THEO.read_text() + "\n[saem]\nn_burn = 30\n")
    assert parse_model(doc).saem == {"n_burn": 30}
    doc["saem"]["burn"] = 3
    with pytest.raises(SpecError, match="saem"):
        parse_model(doc)


def test_short_saem_is_reproducible_and_close():
    spec = load_model(THEO)
    a = estimate(spec, "theophylline", method="saem", seed=3, saem=SHORT, covariance=None)
    b = estimate(spec, "theophylline", method="saem", seed=3, saem=SHORT, covariance=None)
    pd.testing.assert_frame_equal(a.estimates, b.estimates)
    assert a.ofv == b.ofv
    info = a.fit_info()
    assert info["ofv_method"] == "importance_sampling" and info["ofv_mcse"] > 0
    assert info["saem"]["chains"] == 2
    for name in ("ka", "CL", "V"):
        assert a.theta[name] == pytest.approx(NLMIXR2[name], rel=0.10)
    assert len(a.tables["saem_trajectory.csv"]) == 120


@pytest.mark.slow
def test_saem_theophylline_matches_nlmixr2_and_is_ofv_matches_focei():
    spec = load_model(THEO)
    fit = estimate(spec, "theophylline", method="saem", seed=1)
    value = fit.value
    assert fit.converged
    for name in ("ka", "CL", "V"):
        assert value[f"theta_{name}"] == pytest.approx(NLMIXR2[name], rel=0.05)
        assert _cv(value[f"omega_{name}_{name}"]) == pytest.approx(NLMIXR2["cv"][name], rel=0.25)
    assert np.sqrt(value["sigma2_add"]) == pytest.approx(NLMIXR2["add_sd"], rel=0.25)
    focei = estimate(spec, "theophylline", method="focei", covariance=None)
    assert abs(fit.ofv - focei.ofv) < 3.0
    assert 0 < fit.info["ofv_mcse"] < 0.5
    assert np.all(np.isfinite(fit.estimates["se"]))
    assert "linearised" in fit.info["covariance_basis"]


def test_importance_sampling_ofv_after_focei():
    spec = load_model(THEO)
    fit = estimate(
        spec, "theophylline", method="focei", covariance=None, ofv="importance_sampling", saem={"is_samples": 1000}
    )
    info = fit.fit_info()
    assert info["ofv_method"] == "importance_sampling"
    assert abs(fit.ofv - info["ofv_focei"]) < 3.0 and info["ofv_mcse"] < 0.5
    assert fit.aic == pytest.approx(fit.minus2ll + 2 * fit.n_parameters)
    plain = estimate(spec, "theophylline", method="fo", covariance=None)
    assert plain.fit_info()["ofv_method"] == "fo" and plain.fit_info()["ofv_mcse"] == 0.0
    with pytest.raises(ArgumentError, match="ofv"):
        estimate(spec, "theophylline", method="fo", ofv="exact")


def test_saem_censored_rows_enter_the_m_step():
    """M3 with 30% BLQ rows: SAEM's typical values and residual variance agree with
    FOCE-I's M3 fit (censored rows in the E-step and in the numeric residual M-step)."""
    from test_censoring import MODEL, TRUTH, simulate

    data = simulate(n_subjects=24)
    spec = parse_model(tomllib.loads(MODEL.format(blq="M3")))
    saem = estimate(spec, data, method="saem", seed=2, covariance=None, saem=SHORT)
    focei = estimate(spec, data, method="focei", covariance=None)
    assert saem.fit_info()["n_blq"] == int(data["BLQ"].sum())
    for name in ("ka", "CL", "V"):
        assert saem.theta[name] == pytest.approx(focei.theta[name], rel=0.10)
        assert saem.theta[name] == pytest.approx(TRUTH[name], rel=0.25)
    assert saem.value["sigma2_prop"] == pytest.approx(focei.value["sigma2_prop"], rel=0.3)


def test_cli_saem_writes_trajectory_and_mcse(tmp_path, capsys):
    out = tmp_path / "saem"
    args = ["fit", str(THEO), "--data", "theophylline", "--out", str(out), "--method", "saem", "--seed", "4"]
    args += [
        "--saem-burn",
        "20",
        "--saem-em",
        "20",
        "--saem-chains",
        "2",
        "--is-samples",
        "300",
        "--covariance",
        "none",
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "importance sampling (Monte-Carlo SE" in err
    info = json.loads((out / "fit.json").read_text())
    assert info["method"] == "saem" and info["ofv_method"] == "importance_sampling" and info["ofv_mcse"] > 0
    trajectory = pd.read_csv(out / "saem_trajectory.csv")
    assert len(trajectory) == 40 and set(trajectory["phase"]) == {"exploration", "smoothing"}
    from bayes_nlme.diagnostics import as_fit_data
    from bayes_nlme.report.html import Page
    from bayes_nlme.report.sections import Context, estimation

    page = Page("fit")
    estimation(page, Context(as_fit_data(out)))
    html = "".join(page.sections[0][2])
    assert "SAEM trajectories" in html and "importance_sampling" in html


def test_cli_refuses_flags_of_other_methods(tmp_path, capsys):
    base = ["fit", str(THEO), "--data", "theophylline", "--out", str(tmp_path / "x")]
    assert main([*base, "--method", "focei", "--saem-burn", "5"]) == 2
    assert "--saem-burn apply to --method saem only" in capsys.readouterr().err
    assert main([*base, "--method", "nuts", "--starts", "3"]) == 2
    assert not (tmp_path / "x").exists()


def test_saem_parameter_without_iiv_and_fixed_parameter():
    """ka without IIV (numeric M-step) and V fixed: SAEM agrees with FOCE-I."""
    text = THEO.read_text().replace("initial = 1.5\n", "initial = 1.5\niiv = false\n", 1)
    text = text.replace("initial = [0.3, 0.1, 0.05]", "initial = [0.1]")
    text = text.replace(
        "typical = { lognormal = { median = 30.0, sigma = 1.0 } }\ninitial = 32.0", "fixed = 31.8\niiv = false"
    )
    spec = parse_model(tomllib.loads(text))
    assert spec.iiv_names == ("CL",)
    saem = estimate(spec, "theophylline", method="saem", seed=5, covariance=None, saem=SHORT)
    focei = estimate(spec, "theophylline", method="focei", covariance=None)
    assert set(saem.theta) == {"ka", "CL"}
    for name in ("ka", "CL"):
        assert saem.theta[name] == pytest.approx(focei.theta[name], rel=0.05)
    assert saem.value["omega_CL_CL"] == pytest.approx(focei.value["omega_CL_CL"], rel=0.3)
