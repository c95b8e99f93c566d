"""Several observed outputs per subject (CONTRACT 5.4): spec, data, core, likelihood,
estimation, simulation and report, on a direct Emax model (built-in PK + [outputs]) and
a PK/PD turnover ODE model."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_nlme.data import load_dataset
from bayes_nlme.data.simulated import (
    EMAX_TRUTH,
    TURNOVER_TRUTH,
    simulate_pk_emax_study,
    turnover_solution,
)
from bayes_nlme.spec import load_model, parse_model, to_toml

ROOT = Path(__file__).resolve().parents[1]
EMAX_MODEL = ROOT / "models" / "pk_emax.toml"
TURNOVER_MODEL = ROOT / "models" / "warfarin_turnover.toml"


def _doc(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _write(tmp_path: Path, doc: dict, name: str = "model.toml") -> Path:
    path = tmp_path / name
    path.write_text(_dump(doc), encoding="utf-8")
    return path


def _dump(doc: dict) -> str:
    """A plain TOML writer for the test documents (which may be invalid models)."""
    from bayes_nlme.spec.toml_write import _toml_key, _toml_value

    lines = []
    for key, value in doc.items():
        if not isinstance(value, dict):
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")

    def emit(prefix, table):
        scalars = {k: v for k, v in table.items() if not (isinstance(v, dict) and _is_table(v))}
        lines.append(f"\n[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
        for k, v in table.items():
            if isinstance(v, dict) and _is_table(v):
                emit(f"{prefix}.{_toml_key(k)}", v)

    for key, value in doc.items():
        if isinstance(value, dict):
            emit(_toml_key(key), value)
    return "\n".join(lines) + "\n"


def _is_table(value: dict) -> bool:
    # sub-tables of the test documents: parameter tables, residual.<output>, outputs.<name>
    return any(isinstance(v, dict) for v in value.values()) or "model" in value or "expression" in value


def _cli(args, capsys) -> tuple[int, str]:
    from bayes_nlme.cli import main

    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def emax_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("emax") / "emax.csv"
    simulate_pk_emax_study(12, seed=5).to_csv(path, index=False, na_rep=".")
    return path


# --------------------------------------------------------------------------- spec


def test_bundled_models_round_trip_through_the_toml_writer():
    for path in (EMAX_MODEL, TURNOVER_MODEL):
        spec = load_model(path)
        assert parse_model(tomllib.loads(to_toml(spec))) == spec
        assert len(spec.outputs) == 2
    emax = load_model(EMAX_MODEL)
    assert emax.residual.variances == ("sigma2_conc_prop", "sigma2_effect_add")
    assert emax.output_names == ("conc", "effect")


@pytest.mark.parametrize(
    ("edit", "key", "needle"),
    [
        (lambda d: d["residual"].pop("effect"), "residual.effect", "missing the [residual.effect] table"),
        (lambda d: d["residual"].update(other={"model": "additive"}), "residual.other", "is not an output"),
        (lambda d: d.update(residual={"model": "additive"}), "residual", "one [residual.<output>] table"),
        (lambda d: d["outputs"]["effect"].pop("id"), "outputs.effect.id", "each needs an id"),
        (lambda d: d["outputs"]["effect"].update(id=1), "outputs.effect.id", "ids must differ"),
        (lambda d: d["outputs"].update(CL={"expression": "C", "id": 3}), "outputs.CL", "already a parameter"),
        (lambda d: d["outputs"]["effect"].update(expression="E0 + Q * C"), "outputs.effect.expression", "'Q'"),
        (
            lambda d: d["residual"]["effect"].update(prop={"inverse_gamma": {"alpha": 2, "beta": 1}}),
            "residual.effect.prop",
            "no variance",
        ),
    ],
)
def test_bad_outputs_and_residual_tables_exit_2_naming_the_key(tmp_path, capsys, emax_data, edit, key, needle):
    doc = _doc(EMAX_MODEL)
    edit(doc)
    model = _write(tmp_path, doc)
    code, err = _cli(["check", model, "--data", emax_data], capsys)
    assert code == 2
    assert key in err and needle in err
    assert "Traceback" not in err


def test_single_output_model_keeps_a_single_residual_table(tmp_path, capsys, emax_data):
    doc = _doc(EMAX_MODEL)
    doc["outputs"].pop("conc")
    doc["outputs"]["effect"].pop("id")
    code, err = _cli(["check", _write(tmp_path, doc), "--data", emax_data], capsys)
    assert code == 2 and "keeps a single [residual] table" in err


def test_observation_whose_dvid_matches_no_output_exits_2_with_rows(tmp_path, capsys):
    frame = simulate_pk_emax_study(3, seed=1)
    frame.loc[[2, 5], "DVID"] = 7
    data = tmp_path / "bad.csv"
    frame.to_csv(data, index=False, na_rep=".")
    code, err = _cli(["check", EMAX_MODEL, "--data", data], capsys)
    assert code == 2
    assert "matches no output" in err and "1 (conc), 2 (effect)" in err
    assert "3" in err and "6" in err  # 1-based data rows 3 and 6 (file lines 4 and 7)


def test_without_dvid_the_cmt_of_an_observation_is_its_output(tmp_path):
    from bayes_nlme.core import engine_design
    from bayes_nlme.pk.models import model_of

    frame = simulate_pk_emax_study(2, seed=1)
    obs = frame["EVID"] == 0
    frame.loc[obs, "CMT"] = frame.loc[obs, "DVID"]
    frame = frame.drop(columns="DVID")
    spec = load_model(EMAX_MODEL)
    design = engine_design(load_dataset(frame), model_of(spec), declared=spec.parameter_names)
    assert list(design.obs_output[:4]) == [0, 1, 0, 1]


# --------------------------------------------------------------------------- predictions


def _emax_reference(p: dict, times: np.ndarray, dose: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    k = p["CL"] / p["V"]
    conc = dose * p["ka"] / (p["V"] * (p["ka"] - k)) * (np.exp(-k * times) - np.exp(-p["ka"] * times))
    return conc, p["E0"] + p["Emax"] * conc / (p["EC50"] + conc)


def test_predict_writes_each_rows_own_output_for_a_builtin_model():
    from bayes_nlme.predict import predict

    spec = load_model(EMAX_MODEL)
    frame = simulate_pk_emax_study(2, seed=3)
    params = {name: EMAX_TRUTH[name] for name in spec.parameter_names}
    out = predict(spec, frame, params)
    obs = out[out["EVID"] == 0]
    conc, effect = _emax_reference(params, obs["TIME"].to_numpy(float))
    expected = np.where(obs["DVID"].to_numpy(float) == 1, conc, effect)
    np.testing.assert_allclose(obs["PRED"].to_numpy(float), expected, rtol=1e-10)


def test_builtin_output_jacobian_matches_finite_differences():
    from bayes_nlme.core import engine_design
    from bayes_nlme.core.op import predict_numeric
    from bayes_nlme.pk.models import model_of

    spec = load_model(EMAX_MODEL)
    design = engine_design(
        load_dataset(simulate_pk_emax_study(2, seed=3)), model_of(spec), declared=spec.parameter_names
    )
    base = np.array([[EMAX_TRUTH[c] for c in design.columns]] * design.n_segments)
    f, jac = predict_numeric(design, base)
    for j in range(len(design.columns)):
        h = 1e-6 * base[0, j]
        up, down = base.copy(), base.copy()
        up[:, j] += h
        down[:, j] -= h
        fd = (predict_numeric(design, up)[0] - predict_numeric(design, down)[0]) / (2 * h)
        np.testing.assert_allclose(jac[:, 0, j], fd, rtol=1e-6, atol=1e-8)


@pytest.mark.slow
def test_predict_of_the_turnover_ode_model_matches_solve_ivp():
    """Compiles the ODE engine of the two-output model (about a minute cold)."""
    from bayes_nlme.predict import predict

    spec = load_model(TURNOVER_MODEL)
    times = np.array([1.0, 3.0, 6.0, 12.0, 24.0, 48.0, 96.0])
    rows = [(1, 0.0, np.nan, 100.0, 1, 1, 1, np.nan)]
    for t in times:
        rows += [(1, t, 1.0, 0.0, 0, 0, 2, 1), (1, t, 1.0, 0.0, 0, 0, 3, 2)]
    frame = pd.DataFrame(rows, columns=["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "DVID"])
    params = {name: TURNOVER_TRUTH[name] for name in spec.parameter_names}
    out = predict(spec, frame, params)
    obs = out[out["EVID"] == 0]
    conc, effect = turnover_solution(params, 100.0, times)
    np.testing.assert_allclose(obs["PRED"].to_numpy(float)[0::2], conc, rtol=1e-6)
    np.testing.assert_allclose(obs["PRED"].to_numpy(float)[1::2], effect, rtol=1e-6)


# --------------------------------------------------------------------------- likelihood


def test_each_row_uses_its_outputs_residual_model_in_the_one_likelihood():
    from bayes_nlme.build.residual import observation_loglik, outputs_loglik

    spec = load_model(EMAX_MODEL)
    output = np.array([0, 1, 0, 1, 1])
    f = np.array([2.0, 30.0, 0.5, 12.0, 40.0])
    y = np.array([2.1, 28.0, 0.45, 13.0, 41.0])
    sigma2 = {"sigma2_conc_prop": 0.01, "sigma2_effect_add": 4.0}
    ll = outputs_loglik(spec, y, f, sigma2, None, output, np)
    conc = observation_loglik("proportional", "M3", y, f, {"sigma2_prop": 0.01}, None, np)
    effect = observation_loglik("additive", "M3", y, f, {"sigma2_add": 4.0}, None, np)
    np.testing.assert_allclose(ll, np.where(output == 0, conc, effect))


def test_frequentist_loss_is_minus_twice_the_one_likelihood_per_output(emax_data):
    from bayes_nlme.build.residual import outputs_loglik
    from bayes_nlme.estimation.estimator import build_problem

    spec = load_model(EMAX_MODEL)
    problem = build_problem(spec, load_dataset(emax_data))[0]
    psi = problem.pmap.pack(
        {p: EMAX_TRUTH[p] for p in spec.parameter_names},
        {},
        0.09 * np.eye(len(spec.iiv_names)),
        {"sigma2_conc_prop": 0.01, "sigma2_effect_add": 4.0},
    )
    u, _ = problem.log_parameters(psi, np.zeros((problem.n_subjects, problem.d)))
    f = problem.kernel.value(u)
    loss = problem.loss(f, problem.residual(psi, f, True))["l"]
    ll = outputs_loglik(
        spec, problem.y, f, {"sigma2_conc_prop": 0.01, "sigma2_effect_add": 4.0}, None, problem.output, np
    )
    np.testing.assert_allclose(loss, -2.0 * ll - np.log(2.0 * np.pi), rtol=1e-10)


def test_simulation_draws_each_output_with_its_own_error_model():
    from bayes_nlme.build.residual import predictive_draws

    spec = load_model(EMAX_MODEL)
    output = np.array([0, 0, 1, 1])
    f = np.array([1.0, 10.0, 20.0, 60.0])
    draws = predictive_draws(
        spec,
        np.tile(f, (40000, 1)),
        {"sigma2_conc_prop": np.full(40000, 0.04), "sigma2_effect_add": np.full(40000, 9.0)},
        np.random.default_rng(1),
        None,
        output,
    )
    sd = draws.std(axis=0)
    np.testing.assert_allclose(sd, [0.2, 2.0, 3.0, 3.0], rtol=0.03)


# --------------------------------------------------------------------------- fits


@pytest.fixture(scope="module")
def emax_focei(tmp_path_factory):
    from bayes_nlme.cli import main

    out = tmp_path_factory.mktemp("emax_fit") / "focei"
    data = tmp_path_factory.mktemp("emax_fit_data") / "emax.csv"
    simulate_pk_emax_study(30).to_csv(data, index=False, na_rep=".")
    assert main(["fit", str(EMAX_MODEL), "--data", str(data), "--method", "focei", "--out", str(out), "--quiet"]) == 0
    return out


def test_focei_on_two_outputs_converges_near_the_truth(emax_focei):
    info = json.loads((emax_focei / "fit.json").read_text())
    assert info["converged"] and info["covariance_ok"] and info["n_obs"] == 480
    summary = pd.read_csv(emax_focei / "summary.csv").set_index("parameter")
    for name in ("ka", "CL", "V", "E0", "Emax", "EC50"):
        est = summary.loc[f"theta_{name}"]
        assert abs(est["estimate"] / EMAX_TRUTH[name] - 1.0) < 0.15, name
        assert est["ci_low"] < EMAX_TRUTH[name] < est["ci_high"], name
    assert abs(summary.loc["sigma2_conc_prop", "estimate"] / EMAX_TRUTH["prop_sd"] ** 2 - 1) < 0.3
    assert abs(summary.loc["sigma2_effect_add", "estimate"] / EMAX_TRUTH["add_sd"] ** 2 - 1) < 0.3


def test_per_output_panels_are_titled_with_the_output_name(emax_focei):
    import matplotlib.pyplot as plt

    from bayes_nlme import plots
    from bayes_nlme.diagnostics import as_fit_data, simulate_replicates

    fd = as_fit_data(emax_focei)
    assert set(fd.obs["OUTPUT"]) == {"conc", "effect"}
    sims = simulate_replicates(fd, 20, seed=1)
    effect = fd.output == 1
    # each output's replicates scatter around its own predictions with its own error
    assert np.median(np.abs(sims[:, effect] - fd.pred[effect])) > 1.0
    assert np.median(np.abs(sims[:, ~effect] - fd.pred[~effect]) / fd.pred[~effect]) < 0.5
    for name in ("conc", "effect"):
        fig = plots.plot_vpc(fd, sims, output=name)
        assert f" - {name}" in fig.axes[0].get_title()
        plt.close(fig)
        fig = plots.plot_dv_vs_pred(fd, output=name)
        assert f" - {name}" in fig._suptitle.get_text()
        plt.close(fig)


@pytest.mark.slow
def test_report_has_one_panel_per_output(emax_focei, capsys):
    from bayes_nlme.cli import main

    assert main(["report", str(emax_focei)]) == 0
    html = (emax_focei / "report.html").read_text()
    for name in ("conc", "effect"):
        assert f"Visual predictive check ({name})" in html
        assert f"Observations ({name}) against population predictions" in html
        assert f"NPDE tests ({name})" in html


@pytest.mark.slow
def test_nuts_short_run_on_two_outputs(tmp_path, capsys):
    from bayes_nlme.cli import main

    data = tmp_path / "emax.csv"
    simulate_pk_emax_study(30).to_csv(data, index=False, na_rep=".")
    out = tmp_path / "nuts"
    code = main(
        ["fit", str(EMAX_MODEL), "--data", str(data), "--method", "nuts", "--out", str(out), "--quiet"]
        + ["--draws", "200", "--tune", "300", "--chains", "2"]
    )
    assert code in (0, 1), capsys.readouterr().err  # 1: a short run's convergence verdict may fail
    summary = pd.read_csv(out / "summary.csv").set_index("parameter")
    for name in ("CL", "V", "E0", "Emax"):
        row = summary.loc[f"theta_{name}"]
        assert row["mean"] - 4 * row["sd"] < EMAX_TRUTH[name] < row["mean"] + 4 * row["sd"], name
    assert {"sigma2_conc_prop", "sigma2_effect_add"} <= set(summary.index)


def test_blq_method_is_taken_per_output():
    from bayes_nlme.estimation.estimator import build_problem

    doc = _doc(EMAX_MODEL)
    doc["residual"]["effect"]["blq"] = "M1"
    spec = parse_model(doc)
    frame = simulate_pk_emax_study(6, seed=2)
    frame["BLQ"] = 0
    late = (frame["TIME"] == 24.0) & (frame["EVID"] == 0)
    frame.loc[late, "BLQ"] = 1  # both outputs censored at 24 h
    problem, _, table, dropped = build_problem(spec, load_dataset(frame))
    assert dropped == 6  # the effect rows (M1) are left out
    assert problem.n_censored == 6  # the concentration rows (M3) stay, censored
    assert set(problem.output[problem.censored]) == {0}


@pytest.mark.slow
def test_turnover_ode_jacobian_and_focei_recovery():
    """Two outputs of an ODE model: exact sensitivities and FOCE-I near the truth."""
    from bayes_nlme.core import engine_design
    from bayes_nlme.core.op import predict_numeric
    from bayes_nlme.data.simulated import simulate_turnover_study
    from bayes_nlme.estimation import estimate
    from bayes_nlme.pk.models import model_of

    spec = load_model(TURNOVER_MODEL)
    frame = simulate_turnover_study(30)
    design = engine_design(load_dataset(frame.iloc[:19]), model_of(spec), declared=spec.parameter_names)
    base = np.array([[TURNOVER_TRUTH[c] for c in design.columns]])
    f, jac = predict_numeric(design, base)
    for j in range(len(design.columns)):
        h = 1e-6 * base[0, j]
        up, down = base.copy(), base.copy()
        up[0, j] += h
        down[0, j] -= h
        fd = (predict_numeric(design, up)[0] - predict_numeric(design, down)[0]) / (2 * h)
        assert np.max(np.abs(jac[:, 0, j] - fd)) < 1e-5 * np.max(np.abs(fd)), design.columns[j]
    result = estimate(spec, frame, method="focei")
    summary = result.summary().set_index("parameter")
    assert result.converged
    for name in ("ka", "CL", "V", "E0", "kout", "IC50"):
        assert abs(summary.loc[f"theta_{name}", "estimate"] / TURNOVER_TRUTH[name] - 1.0) < 0.2, name
