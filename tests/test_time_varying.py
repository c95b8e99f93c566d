"""Time-varying covariates (CONTRACT 5.1) in the Bayesian and frequentist paths.

Data are simulated with the model core (checked against a numerical ODE solution in
test_core.py) with body weight changing within subjects between doses; both paths must
recover the allometric exponent on clearance, and a model that takes weight at its
baseline (the old behaviour) must not.
"""

from __future__ import annotations

import tomllib
import warnings

import numpy as np
import pandas as pd
import pytest

from bayes_nlme import estimate, load_dataset, sample
from bayes_nlme.core import engine_design
from bayes_nlme.core.op import predict_numeric
from bayes_nlme.fit import ConvergenceWarning
from bayes_nlme.spec import parse_model

TRUTH = {"CL": 3.0, "V": 30.0, "exponent": 0.75}
MODEL = """
name = "weight-varying"
structural = "one_compartment_iv"
time_varying = "{rule}"
[parameters.CL]
typical = {{ lognormal = {{ median = 2.0, sigma = 1.0 }} }}
[[parameters.CL.covariates]]
column = "{column}"
effect = "power"
reference = 70
exponent = {{ normal = {{ mean = 0.0, sd = 2.0 }} }}
[parameters.V]
typical = {{ lognormal = {{ median = 20.0, sigma = 1.0 }} }}
[omega]
structure = "diagonal"
prior = {{ inverse_wishart = {{ df = 4, scale = [0.2, 0.2] }} }}
[residual]
model = "proportional"
prop = {{ inverse_gamma = {{ alpha = 2.0, beta = 0.02 }} }}
"""


def simulate(n_subjects=30, seed=5):
    """IV boluses at 0, 24 and 48 h; weight steps up by 40% at 24 h and down to 70% of
    baseline at 48 h (records carry the new weight from then on: LOCF)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_subjects):
        wt0 = rng.uniform(50.0, 90.0)
        for day, factor in enumerate((1.0, 1.4, 0.7)):
            t0 = 24.0 * day
            rows.append({"ID": i + 1, "TIME": t0, "AMT": 500.0, "DV": np.nan, "WT": wt0 * factor})
            rows += [
                {"ID": i + 1, "TIME": t0 + t, "AMT": 0.0, "DV": 0.0, "WT": wt0 * factor}
                for t in (0.5, 2.0, 6.0, 12.0, 23.0)
            ]
    frame = pd.DataFrame(rows)
    dataset = load_dataset(frame)
    design = engine_design(dataset, "one_compartment_iv", declared=("CL", "V"), covariates=("WT",))
    eta = rng.normal(0.0, 0.3, size=(n_subjects, 2))[design.seg_subject]
    wt = frame["WT"].to_numpy()[design.seg_row]
    cl = TRUTH["CL"] * (wt / 70.0) ** TRUTH["exponent"] * np.exp(eta[:, 0])
    v = TRUTH["V"] * np.exp(eta[:, 1])
    f, _ = predict_numeric(design, {"CL": cl, "V": v})
    obs = frame["AMT"] == 0
    frame.loc[obs, "DV"] = f * (1.0 + 0.1 * rng.standard_normal(f.size))
    frame["WT0"] = frame.groupby("ID")["WT"].transform("first")
    return frame


@pytest.fixture(scope="module")
def data():
    return simulate()


def spec(column="WT", rule="locf"):
    return parse_model(tomllib.loads(MODEL.format(column=column, rule=rule)))


def test_focei_recovers_the_exponent_and_baseline_weight_does_not(data):
    fit = estimate(spec(), data, method="focei")
    table = fit.estimates.set_index("parameter")
    exponent = table.loc["beta_CL_WT"]
    assert fit.converged
    assert abs(exponent["estimate"] - TRUTH["exponent"]) < 2.0 * exponent["se"] + 0.02, exponent.to_dict()
    assert abs(exponent["estimate"] - TRUTH["exponent"]) < 0.15
    baseline = estimate(spec("WT0"), data, method="focei")
    # weight at baseline cannot explain the within-subject changes of clearance
    assert baseline.ofv > fit.ofv + 50.0
    assert abs(baseline.estimates.set_index("parameter").loc["beta_CL_WT0", "estimate"] - TRUTH["exponent"]) > 0.1


@pytest.mark.slow
def test_nuts_recovers_the_exponent(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = sample(spec(), data, draws=300, tune=300, chains=2, seed=3, quiet=True)
    row = fit.summary().set_index("parameter").loc["beta_CL_WT"]
    assert row["q5"] < TRUTH["exponent"] < row["q95"], row.to_dict()
    assert row["r_hat"] < 1.05, row.to_dict()
    focei = estimate(spec(), data, method="focei").estimates.set_index("parameter").loc["beta_CL_WT"]
    assert row["q95"] - row["q5"] < 6.0 * focei["se"], (row.to_dict(), focei.to_dict())
