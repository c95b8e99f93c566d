"""The frequentist engines never claim a false optimum (issue 14): bad starts, the
convergence test, omega at its boundary, the flip-flop rule and unit-free covariance."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from bayes_nlme.cli import main
from bayes_nlme.data import load_dataset
from bayes_nlme.estimation import estimate
from bayes_nlme.estimation.outer import STEP_TOL, convergence_check
from bayes_nlme.spec import load_model

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
#: nlmixr2's FOCE-I OFV of the diagonal-omega Theophylline model.
OFV_FOCEI = 116.80


def _diagonal(**initial):
    spec = load_model(DATA / "theophylline_focei.toml")
    params = tuple(dataclasses.replace(p, initial=initial.get(p.name, p.initial)) for p in spec.parameters)
    return dataclasses.replace(spec, parameters=params)


def test_convergence_check_rejects_flat_saddle_and_far_points():
    g = np.array([1e-4, -1e-4])
    assert convergence_check(1.0, g, np.diag([2.0, 3.0]), 1e-3) == (True, "")
    ok, why = convergence_check(1.0, g, np.diag([2.0, -1e-7]), 1e-3)
    assert not ok and "not positive definite" in why
    ok, why = convergence_check(1.0, g, np.diag([2.0, 1e-5]), 1e-3)  # flat: tiny curvature, long step
    assert not ok and "Newton step" in why and f"{STEP_TOL:g}" in why
    ok, why = convergence_check(1.0, np.array([1e-2, 0.0]), np.eye(2), 1e-3)
    assert not ok and "gradient" in why
    ok, why = convergence_check(np.nan, g, np.eye(2), 1e-3)
    assert not ok


def test_plateau_start_is_not_reported_as_converged():
    """ka = 100, CL = 300, V = 0.3: every prediction is ~0, the gradient vanishes; a single
    start must say it did not converge (it used to report converged at OFV 592.6)."""
    fit = estimate(_diagonal(ka=100.0, CL=300.0, V=0.3), "theophylline", method="focei", covariance=None, starts=1)
    assert not fit.converged
    assert fit.ofv > 500
    assert "positive definite" in fit.info["convergence_reason"] or "Newton step" in fit.info["convergence_reason"]
    assert "--starts" in fit.info["advice"]


def test_minimiser_returns_the_best_point_visited_not_its_last_iterate(monkeypatch):
    """The OFV of a point can depend on the path (the inner step is warm-started): here every
    evaluation after the first (the start) is 1e4 worse, so BFGS's last iterate, near the
    optimum, is worse than the start. The minimiser must return the start, the best point it
    visited, and must not call it converged (its gradient is not small)."""
    from bayes_nlme.estimation import estimator, outer
    from bayes_nlme.estimation.parameters import start_values

    spec = _diagonal(ka=2.5, CL=4.0, V=25.0)
    problem = estimator.build_problem(spec, "theophylline")[0]
    start = start_values(spec, problem.y)
    psi0 = problem.pmap.pack(start["theta"], start["betas"], start["omega"], start["sigma2"], start["iov"])
    calls = {"n": 0}
    exact = outer.contributions

    def drifting(*args, **kwargs):
        calls["n"] += 1
        values, per_subject = exact(*args, **kwargs)
        return (values if calls["n"] == 1 else values + 1e4 / len(values)), per_subject

    monkeypatch.setattr(outer, "contributions", drifting)
    evaluator = outer.Evaluator(problem, "focei")
    result = outer.minimise(evaluator, psi0)
    assert calls["n"] > 20 and result.n_iterations > 0  # BFGS did move away from the start
    np.testing.assert_array_equal(result.psi, psi0)
    assert evaluator.best == pytest.approx(exact(problem, "focei", psi0, result.evaluation.eta)[0].sum(), rel=1e-6)
    assert not result.converged and "gradient" in result.message


@pytest.mark.parametrize("method", ["focei", "fo"])
def test_plateau_start_recovers_by_screened_starts(method):
    fit = estimate(_diagonal(ka=100.0, CL=300.0, V=0.3), "theophylline", method=method, covariance=None)
    assert fit.info["starts"][0]["kind"] == "initial" and not fit.info["starts"][0]["converged"]
    assert fit.converged
    if method == "focei":
        assert fit.ofv == pytest.approx(OFV_FOCEI, abs=0.1)
    else:
        reference = estimate(_diagonal(), "theophylline", method="fo", covariance=None)
        assert reference.converged and fit.ofv == pytest.approx(reference.ofv, abs=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["focei", "fo"])
def test_thousandfold_start_recovers_or_says_so(method):
    """CL and V 1000x too large (a mL-vs-L slip)."""
    fit = estimate(_diagonal(CL=2800.0, V=32000.0), "theophylline", method=method, covariance=None)
    visited = min(run["ofv"] for run in fit.info["starts"] if np.isfinite(run["ofv"]))
    assert fit.ofv <= visited + 1e-6 or not fit.converged
    if method == "focei":
        assert (fit.converged and fit.ofv == pytest.approx(OFV_FOCEI, abs=0.1)) or not fit.converged
    assert fit.converged


def test_flip_flop_start_is_refitted_from_its_mirror():
    """From the flip-flop mirror (ka below CL/V) FOCE-I finds a flip-flop optimum with a lower
    OFV (110.3, IIV of ka collapsed); the rule of the Bayesian path keeps ka above k."""
    spec = _diagonal(ka=0.08, CL=2.75, V=1.8)
    fit = estimate(spec, "theophylline", method="focei", covariance=None, starts=1)
    theta = fit.theta
    assert theta["ka"] > theta["CL"] / theta["V"]
    assert fit.converged and fit.ofv == pytest.approx(OFV_FOCEI, abs=0.1)
    assert [run["kind"] for run in fit.info["starts"]] == ["initial", "flip-flop mirror"]
    assert fit.info["flip_flop"]["violated"] is False
    off = estimate(
        dataclasses.replace(spec, flip_flop_guard=False), "theophylline", method="focei", covariance=None, starts=1
    )
    assert off.theta["ka"] < off.theta["CL"] / off.theta["V"]


def test_full_omega_at_its_boundary_is_not_a_converged_optimum():
    """The README model (full omega): the FOCE-I likelihood increases toward a singular omega
    (CL-V correlation -> 1), so there is no interior optimum and no Wald SE."""
    from bayes_nlme.estimation import CovarianceWarning

    with pytest.warns(CovarianceWarning):
        fit = estimate(load_model(ROOT / "models" / "theophylline.toml"), "theophylline", method="focei", starts=1)
    assert not fit.converged
    assert "omega tends to a singular matrix" in fit.info["covariance_message"]
    assert np.all(np.isnan(fit.estimates["se"]))
    assert "omega tends to a singular matrix" in fit.info["convergence_reason"]
    assert "omega" in fit.info["advice"]
    assert fit.ofv == pytest.approx(105.18, abs=0.05)


def _scaled(factor: float):
    table = load_dataset("theophylline").table.drop(columns=["ROW", "SUBJECT"])
    table["AMT"] *= factor
    table["DV"] *= factor
    return table


@pytest.mark.parametrize(
    "covariance", ["sandwich", pytest.param("r", marks=pytest.mark.slow), pytest.param("s", marks=pytest.mark.slow)]
)
def test_standard_errors_do_not_depend_on_units(covariance):
    spec = _diagonal()
    base = estimate(spec, _scaled(1.0), method="focei", covariance=covariance)
    big = estimate(spec, _scaled(1e6), method="focei", covariance=covariance)
    assert base.converged and big.converged
    se = base.estimates.set_index("parameter")["se"]
    se_big = big.estimates.set_index("parameter")["se"].copy()
    se_big["sigma2_add"] /= 1e12
    assert np.all(np.isfinite(se)) and np.all(se > 0)
    np.testing.assert_allclose(se_big.to_numpy(), se.to_numpy(), rtol=0.02)


def test_cli_says_not_converged_on_stderr_json_report_and_compare(tmp_path, capsys):
    text = (DATA / "theophylline_focei.toml").read_text()
    text = text.replace("initial = 1.5", "initial = 100.0").replace("initial = 2.8", "initial = 300.0")
    text = text.replace("initial = 32.0", "initial = 0.3")
    model = tmp_path / "bad.toml"
    model.write_text(text)
    out = tmp_path / "fit"
    code = main(
        [
            "fit",
            str(model),
            "--data",
            "theophylline",
            "--out",
            str(out),
            "--method",
            "focei",
            "--starts",
            "1",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0
    assert "did NOT converge" in err and "--starts" in err
    info = json.loads((out / "fit.json").read_text())
    assert info["converged"] is False and info["convergence_reason"] and info["advice"]
    from bayes_nlme.compare import compare_fits
    from bayes_nlme.diagnostics import as_fit_data
    from bayes_nlme.report.html import Page
    from bayes_nlme.report.sections import Context, estimation

    page = Page("fit")
    estimation(page, Context(as_fit_data(out)))
    html = "".join(page.sections[0][2])
    assert "Not converged" in html and "No standard errors" in html and "--starts" in html
    notes = compare_fits(out).attrs["notes"]
    assert "not converged" in notes["focei"] and "no standard errors" in notes["focei"]
    assert main(["compare", str(out)]) == 0
    assert "focei: not converged" in capsys.readouterr().out


def test_readme_diagonal_model_converges_with_finite_standard_errors(tmp_path, capsys):
    """The README's converging FOCE-I example (diagonal omega) from the command line."""
    import pandas as pd

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "focei_diag"
    model = root / "models" / "theophylline_diagonal.toml"
    assert f"bayes-nlme fit models/{model.name}" in (root / "README.md").read_text()
    code = main(["fit", str(model), "--data", "theophylline", "--out", str(out), "--method", "focei", "--quiet"])
    assert code == 0, capsys.readouterr().err
    info = json.loads((out / "fit.json").read_text())
    assert info["converged"] is True and abs(info["ofv"] - 116.8) < 0.1
    se = pd.read_csv(out / "summary.csv")["se"]
    assert np.all(np.isfinite(se)) and np.all(se > 0)
