"""K-fold cross-validation by subject (issue 15, item 12): the inner integral over a
left-out subject's random effects, and the command end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_nlme.cli import main
from bayes_nlme.data import load_dataset
from bayes_nlme.diagnostics.fitdata import Population
from bayes_nlme.diagnostics.kfold import subject_folds, subject_log_predictive
from bayes_nlme.errors import ArgumentError
from bayes_nlme.spec import parse_model

MODEL = {
    "name": "kfold",
    "structural": "one_compartment_oral",
    "flip_flop_guard": False,
    "parameters": {
        "ka": {"typical": {"lognormal": {"median": 1.5, "sigma": 0.5}}, "iiv": False},
        "CL": {"typical": {"lognormal": {"median": 3.0, "sigma": 0.5}}},
        "V": {"typical": {"lognormal": {"median": 30.0, "sigma": 0.5}}, "iiv": False},
    },
    "omega": {"structure": "diagonal", "prior": {"inverse_gamma": {"alpha": 2.0, "beta": 0.2}}},
    "residual": {"model": "proportional", "prop": {"inverse_gamma": {"alpha": 2.0, "beta": 0.05}}},
}
TIMES = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0])


def _conc(ka, cl, v, t, dose=300.0):
    k = cl / v
    return dose * ka / (v * (ka - k)) * (np.exp(-k * t) - np.exp(-ka * t))


def _data():
    rng = np.random.default_rng(3)
    rows = []
    for i in range(3):
        cl = 3.0 * np.exp(rng.normal(0, 0.3))
        y = _conc(1.5, cl, 30.0, TIMES) * (1 + 0.15 * rng.standard_normal(TIMES.size))
        rows.append({"ID": i + 1, "TIME": 0.0, "AMT": 300.0, "DV": np.nan})
        rows += [{"ID": i + 1, "TIME": t, "AMT": 0.0, "DV": v} for t, v in zip(TIMES, y)]
    return pd.DataFrame(rows)


def test_log_predictive_of_a_new_subject_matches_quadrature():
    """The importance-sampling estimate of log int p(y_i | eta) N(eta; 0, omega) d eta equals
    a dense trapezoid quadrature of the same integral (one eta, closed-form predictions; the
    integrand can peak in the prior's tail, where Gauss-Hermite nodes are too sparse)."""
    data = _data()
    spec = parse_model(MODEL)
    dataset = load_dataset(data)
    omega, sigma2, theta = 0.09, 0.0225, {"ka": 1.5, "CL": 2.8, "V": 31.0}
    pop = Population(
        theta={k: np.array([v, v]) for k, v in theta.items()},
        coefficients={},
        omega=np.full((2, 1, 1), omega),
        sigma2={"sigma2_prop": np.array([sigma2, sigma2])},
    )
    got = subject_log_predictive(spec, dataset, [0, 1, 2], pop, n_eta=2000, seed=4)
    eta = np.linspace(-3.0, 3.0, 60001)
    for i, (_, subject) in enumerate(data[data["AMT"] == 0].groupby("ID")):
        y = subject["DV"].to_numpy()
        f = _conc(theta["ka"], theta["CL"] * np.exp(eta[:, None]), theta["V"], TIMES)
        sd = np.sqrt(sigma2) * f
        loglik = np.sum(-0.5 * np.log(2 * np.pi * sd**2) - 0.5 * ((y - f) / sd) ** 2, axis=1)
        density = np.exp(loglik - eta**2 / (2 * omega)) / np.sqrt(2 * np.pi * omega)
        exact = np.log(np.trapezoid(density, eta))
        row = got.iloc[i]
        assert abs(row["elpd"] - exact) < max(4 * row["mcse"], 1e-3), (row.to_dict(), exact)
        assert row["mcse"] < 0.02 and row["ess"] > 500


def test_folds_are_a_seeded_partition():
    folds = subject_folds(12, 5, seed=2)
    assert sorted(np.bincount(folds)) == [2, 2, 2, 3, 3]
    assert np.array_equal(folds, subject_folds(12, 5, seed=2))
    with pytest.raises(ArgumentError, match="from 2 to the number of subjects"):
        subject_folds(12, 13)


@pytest.mark.slow  # four NUTS fits (the fit and three refits)
def test_kfold_command_writes_the_table_and_the_report_shows_it(tmp_path, capsys):
    data = tmp_path / "d.csv"
    pd.concat([_data().assign(ID=lambda d, k=k: d["ID"] + 3 * k) for k in range(2)]).to_csv(data, index=False)
    model = tmp_path / "m.toml"
    from bayes_nlme.spec import to_toml

    model.write_text(to_toml(parse_model(MODEL)))
    out = tmp_path / "fit"
    common = ["--draws", "100", "--tune", "100", "--chains", "2", "--quiet"]
    assert main(["fit", str(model), "--data", str(data), "--out", str(out), *common]) == 0
    code = main(["kfold", str(out), "--folds", "3", "--draws", "100", "--tune", "100", "--chains", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    table = pd.read_csv(out / "kfold.csv")
    assert table.loc[0, "criterion"] == "K-fold (subject, K = 3)" and np.isfinite(table.loc[0, "elpd"])
    per = pd.read_csv(out / "kfold_subjects.csv")
    assert len(per) == 6 and set(per["fold"]) == {0, 1, 2}
    assert main(["report", str(out)]) == 0
    assert "K-fold (subject, K = 3)" in (out / "report.html").read_text()
    assert main(["kfold", str(out), "--folds", "9"]) == 2
    assert "from 2 to the number of subjects" in capsys.readouterr().err
