"""The library of bundled models (``models/``) and their simulated datasets (issue 12).

Every model file parses; each library model passes ``bayes-nlme check`` with its bundled
dataset; ``predict`` of the indirect-response models I-IV and of the Friberg model equals
an independent ``scipy.integrate.solve_ivp`` integration (``bayes_nlme.data.simulated_pd``,
rtol 1e-10) over a multiple-dose regimen; a short FOCE-I fit of each new dataset
recovers its truth.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_nlme.cli import main
from bayes_nlme.data import load_dataset
from bayes_nlme.data.simulated_pd import FRIBERG_TRUTH, IDR_TRUTH, friberg_solution, indirect_response_solution
from bayes_nlme.spec import load_model, parse_model, to_toml

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"

#: Library model -> its bundled dataset (the types II-IV share the type I design).
LIBRARY = {
    "oral_mm.toml": "oral_mm",
    "pk_emax.toml": "pk_emax",
    "indirect_response.toml": "indirect_response",
    "indirect_response_2.toml": "indirect_response",
    "indirect_response_3.toml": "indirect_response",
    "indirect_response_4.toml": "indirect_response",
    "friberg.toml": "friberg",
    "warfarin_turnover.toml": "warfarin_turnover",
    "theophylline.toml": "theophylline",
    "pheno.toml": "pheno",
}


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.toml")), ids=lambda p: p.name)
def test_every_bundled_model_file_parses(path):
    spec = load_model(path)
    assert spec.name and spec.parameter_names
    assert parse_model(tomllib.loads(to_toml(spec))) == spec


@pytest.mark.parametrize(("model", "dataset"), sorted(LIBRARY.items()))
def test_library_model_checks_with_its_bundled_dataset(model, dataset, capsys):
    code = main(["check", str(MODELS / model), "--data", dataset])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    n_obs = load_dataset(dataset).n_observations
    assert f"observations {n_obs}" in captured.out


@pytest.mark.parametrize("name", ["indirect_response", "friberg"])
def test_new_datasets_are_described_and_show_the_drug_effect(name):
    from bayes_nlme.data import describe

    info = describe(name)
    assert "simulated_pd" in info["reference"] and Path(info["path"]).is_file()
    obs = load_dataset(name).observations
    baseline = IDR_TRUTH["R0"] if name == "indirect_response" else FRIBERG_TRUTH["circ0"]
    by_time = obs.groupby("TIME")["DV"].median()
    assert by_time.min() < 0.85 * baseline < by_time.max()  # an effect, and a return toward baseline


@pytest.mark.parametrize("name", ["indirect_response", "friberg"])
def test_new_datasets_are_what_their_simulation_gives(name):
    """The shipped CSVs are reproducible from the documented call (provenance)."""
    from bayes_nlme.data import bundled_path
    from bayes_nlme.data.simulated_pd import simulate_friberg_study, simulate_indirect_response_study

    fresh = simulate_indirect_response_study() if name == "indirect_response" else simulate_friberg_study()
    shipped = pd.read_csv(bundled_path(name), na_values=".")
    assert list(shipped.columns) == list(fresh.columns)
    np.testing.assert_allclose(shipped.to_numpy(float), fresh.to_numpy(float), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- predict vs solve_ivp

IDR_DOSES = [(0.0, 100.0), (24.0, 100.0), (48.0, 100.0)]
IDR_TIMES = np.array([1.0, 4.0, 12.0, 24.0, 26.0, 36.0, 50.0, 60.0, 72.0, 96.0, 144.0])


def _idr_frame() -> pd.DataFrame:
    rows = [(1, 0.0, np.nan, 100.0, 1, 1, 1, 24.0, 2)]
    rows += [(1, t, 1.0, 0.0, 0, 0, 3, 0.0, 0) for t in IDR_TIMES]
    return pd.DataFrame(rows, columns=["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "II", "ADDL"])


@pytest.mark.slow  # compiles one ODE model each (about a minute cold)
@pytest.mark.parametrize("kind", [1, 2, 3, 4])
def test_indirect_response_predict_matches_solve_ivp(kind):
    from bayes_nlme.predict import predict

    spec = load_model(MODELS / ("indirect_response.toml" if kind == 1 else f"indirect_response_{kind}.toml"))
    p = {"R0": 100.0, "kout": 0.1, "IC50": 1.2, "EC50": 1.2}
    params = {name: p[name] for name in spec.parameter_names if name in p}
    out = predict(spec, _idr_frame(), params)
    pred = out.loc[out["EVID"] == 0, "PRED"].to_numpy(float)
    truth = {"ka": 1.0, "CL": 4.0, "V": 30.0, "Imax": 0.9, "Emax": 2.0, **p}
    expected = indirect_response_solution(truth, IDR_DOSES, IDR_TIMES, kind=kind)
    np.testing.assert_allclose(pred, expected, rtol=1e-6)
    change = expected / p["R0"] - 1.0
    assert (change.max() > 0.2) if kind in (2, 3) else (change.min() < -0.2)  # the drug acts as its type says


@pytest.mark.slow  # compiles the Friberg model (about a minute cold)
def test_friberg_predict_matches_solve_ivp_over_three_cycles():
    from bayes_nlme.predict import predict

    spec = load_model(MODELS / "friberg.toml")
    times = np.array([0.0, 100.0, 240.0, 400.0, 504.0, 700.0, 800.0, 1008.0, 1250.0, 1512.0])
    rows = [(1, 0.0, 1.0, 0.0, 0.0, 0, 0, 6, 0.0, 0), (1, 0.0, np.nan, 800.0, 800.0, 1, 1, 1, 504.0, 2)]
    rows += [(1, t, 1.0, 0.0, 0.0, 0, 0, 6, 0.0, 0) for t in times[1:]]
    frame = pd.DataFrame(rows, columns=["ID", "TIME", "DV", "AMT", "RATE", "EVID", "MDV", "CMT", "II", "ADDL"])
    p = {"circ0": 6.0, "MTT": 90.0, "gamma": 0.25, "slope": 0.12}
    out = predict(spec, frame, p)
    pred = out.loc[out["EVID"] == 0, "PRED"].to_numpy(float)
    expected = friberg_solution({"CL": 5.0, "V": 20.0, **p}, [(k * 504.0, 800.0, 1.0) for k in range(3)], times)
    np.testing.assert_allclose(pred, expected, rtol=1e-6)
    assert expected.min() < 0.7 * p["circ0"]  # the nadirs


# --------------------------------------------------------------------------- FOCE-I recovery


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "dataset", "truth"),
    [
        ("indirect_response.toml", "indirect_response", {k: IDR_TRUTH[k] for k in ("R0", "kout", "IC50")}),
        ("friberg.toml", "friberg", {k: FRIBERG_TRUTH[k] for k in ("circ0", "MTT", "gamma", "slope")}),
    ],
)
def test_focei_recovers_the_truth_of_a_new_dataset(model, dataset, truth, tmp_path, capsys):
    out = tmp_path / "fit"
    assert main(["fit", str(MODELS / model), "--data", dataset, "--method", "focei", "--out", str(out), "--quiet"]) == 0
    fit = json.loads((out / "fit.json").read_text())
    assert fit["converged"]
    summary = pd.read_csv(out / "summary.csv").set_index("parameter")
    for name, value in truth.items():
        row = summary.loc[f"theta_{name}"]
        assert np.isfinite(row["se"]) and row["se"] > 0, name
        assert abs(row["estimate"] - value) <= max(3.0 * row["se"], 0.1 * value), (name, row["estimate"], row["se"])
