"""The command line: exit codes, messages and outputs (CONTRACT section 3)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_nlme.cli import main

ROOT = Path(__file__).resolve().parents[1]
THEO_MODEL = ROOT / "models" / "theophylline.toml"


def run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_bundled_theophylline(capsys):
    code, out, err = run(["check", THEO_MODEL, "--data", "theophylline"], capsys)
    assert code == 0, err
    assert "subjects     12" in out
    assert "observations 132" in out
    assert "doses        12" in out


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "bayes_nlme", "check", str(THEO_MODEL), "--data", "theophylline"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "observations 132" in proc.stdout


def test_predict_writes_every_column_plus_pred(tmp_path, capsys):
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"ka": 1.5, "CL": 2.8, "V": 32.0}))
    out = tmp_path / "pred.csv"
    code, _, err = run(["predict", THEO_MODEL, "--data", "theophylline", "--params", params, "--out", out], capsys)
    assert code == 0, err
    frame = pd.read_csv(out, na_values=".")
    assert list(frame.columns[:-1]) == ["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "WT", "DOSE"]
    assert frame.columns[-1] == "PRED"
    assert len(frame) == 144
    # one-compartment oral solution with F = 1 at subject 1, t = 1 h
    row = frame[(frame.ID == 1) & (frame.EVID == 0)].iloc[3]
    dose = frame[(frame.ID == 1) & (frame.EVID == 1)].AMT.iloc[0]
    ka, k, v = 1.5, 2.8 / 32.0, 32.0
    t = row.TIME
    expected = dose * ka / (v * (ka - k)) * (np.exp(-k * t) - np.exp(-ka * t))
    assert row.PRED == pytest.approx(expected, rel=1e-9)
    # the dose row at time 0 predicts 0
    assert frame[(frame.ID == 1) & (frame.EVID == 1)].PRED.iloc[0] == 0.0


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"ka": 1.5, "CL": 2.8}, "missing 'V'"),
        ({"ka": 1.5, "CL": 2.8, "V": 30, "Vd": 3}, "unknown 'Vd'"),
        ({"ka": 1.5, "CL": -2.8, "V": 30}, "> 0"),
    ],
)
def test_predict_bad_params_exit_2(tmp_path, capsys, params, needle):
    path = tmp_path / "params.json"
    path.write_text(json.dumps(params))
    out = tmp_path / "pred.csv"
    code, _, err = run(["predict", THEO_MODEL, "--data", "theophylline", "--params", path, "--out", out], capsys)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err
    assert not out.exists()


def test_bad_dataset_exit_2_names_column_and_rows(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("ID,TIME,DV,AMT\n1,0,.,100\n1,-1,5,.\n1,2,abc,.\n")
    code, out, err = run(["check", THEO_MODEL, "--data", bad], capsys)
    assert code == 2
    assert "TIME" in err and "DV" in err
    assert "row 2" in err and "row 3" in err
    assert err.count("\n") >= 2  # every problem, at once


@pytest.mark.parametrize("content", [None, ""])
def test_missing_or_empty_dataset_exit_2(tmp_path, capsys, content):
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_text(content)
    code, _, err = run(["check", THEO_MODEL, "--data", path], capsys)
    assert code == 2
    assert "data.csv" in err


def test_bad_model_file_names_key_and_choices(tmp_path, capsys):
    model = tmp_path / "m.toml"
    model.write_text(THEO_MODEL.read_text().replace('"one_compartment_oral"', '"one_compartment_orl"'))
    code, _, err = run(["check", model, "--data", "theophylline"], capsys)
    assert code == 2
    assert "structural" in err and "one_compartment_oral" in err


def test_bad_arguments_exit_2(tmp_path, capsys):
    code, _, err = run(
        ["fit", THEO_MODEL, "--data", "theophylline", "--out", tmp_path / "x", "--method", "mcmc"], capsys
    )
    assert code == 2
    assert "nuts" in err and "focei" in err
    assert not (tmp_path / "x").exists()


def test_fit_bad_input_leaves_no_output(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("ID,TIME,DV,AMT\n1,0,.,100\n1,1,x,.\n")
    out = tmp_path / "fit"
    code, _, err = run(["fit", THEO_MODEL, "--data", bad, "--out", out], capsys)
    assert code == 2
    assert not out.exists()
