"""Tests of the analytic PK library (bayes_nlme.pk) and the event design.

Concentrations are compared with an independent ODE integration (tests/ode_oracle.py)
for every structural model and dose kind; gradients with central finite differences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest

from bayes_nlme.data.events import build_event_design
from bayes_nlme.errors import DataError, SpecError
from bayes_nlme.pk import STRUCTURAL_MODELS, concentrations, predict_concentrations, structural_model
from bayes_nlme.spec.structural_names import OPTIONAL_PARAMETERS, STRUCTURAL_PARAMETERS

from ode_oracle import oracle_concentrations

MODELS = list(STRUCTURAL_MODELS)
ORAL = [m for m in MODELS if STRUCTURAL_MODELS[m].oral]

PARAMS = {
    "one_compartment_iv": {"CL": [2.0, 3.0], "V": [10.0, 20.0]},
    "one_compartment_oral": {"ka": [1.2, 0.7], "CL": [2.0, 3.0], "V": [10.0, 20.0]},
    "two_compartment_iv": {"CL": [2.0, 3.0], "V1": [10.0, 15.0], "Q": [4.0, 2.0], "V2": [30.0, 20.0]},
    "two_compartment_oral": {
        "ka": [1.2, 0.7], "CL": [2.0, 3.0], "V1": [10.0, 15.0], "Q": [4.0, 2.0], "V2": [30.0, 20.0]
    },
}
# Parameters with coinciding rate constants: k = CL/V = 0.5; alpha = 2, beta = 0.5
# exactly (k10 = k21 = 1, k12 = 0.5: disc = 1.5).
COINCIDE = {
    "ka=k": ("one_compartment_oral", {"ka": [0.5, 0.5], "CL": [5.0, 5.0], "V": [10.0, 10.0]}),
    "ka=alpha": ("two_compartment_oral", {"ka": [2.0, 2.0], "CL": [10.0, 10.0], "V1": [10.0, 10.0], "Q": [5.0, 5.0], "V2": [5.0, 5.0]}),
    "ka=beta": ("two_compartment_oral", {"ka": [0.5, 0.5], "CL": [10.0, 10.0], "V1": [10.0, 10.0], "Q": [5.0, 5.0], "V2": [5.0, 5.0]}),
}
OBS = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 13.0, 18.0, 24.0, 30.0, 48.0]


def frame(doses, obs=OBS, n_subjects=2, extra=()):
    """Dataset table: dose records (dicts) and observations, for each subject.

    ``extra`` records (dicts with their own EVID) are merged by time; records at equal
    times keep the order doses, extra, observations.
    """
    rows = []
    for s in range(n_subjects):
        recs = [dict(TIME=float(t), EVID=0, MDV=0, DV=1.0, AMT=0.0, _o=2) for t in obs]
        for d in doses:
            rec = dict(EVID=1, MDV=1, DV=np.nan, _o=0)
            rec.update(d)
            rec["AMT"] = rec.get("AMT", 0.0) * (1 + s)
            recs.append(rec)
        recs += [dict(MDV=1, DV=np.nan, AMT=0.0, _o=1, **e) for e in extra]
        recs.sort(key=lambda r: (r["TIME"], r["_o"]))
        for r in recs:
            r["ID"] = s + 1
        rows += recs
    df = pd.DataFrame(rows).drop(columns="_o")
    for col, default in dict(CMT=np.nan, RATE=0.0, II=0.0, ADDL=0.0, SS=0.0).items():
        df[col] = df[col].astype(float).fillna(default) if col in df else default
    df["ID"] = df["ID"].astype(float)
    df["EVID"] = df["EVID"].astype(float)
    df["ROW"] = np.arange(1, len(df) + 1)
    df["SUBJECT"] = (df["ID"] - 1).astype(int)
    return df[["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "RATE", "II", "ADDL", "SS", "ROW", "SUBJECT"]]


def check(df, model, params, points="observations"):
    design = build_event_design(df, model, points=points)
    got = predict_concentrations(design, params)
    expected = oracle_concentrations(df, model, params, points=points)
    assert got.shape == expected.shape
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    return got


def central(model):
    return 2.0 if STRUCTURAL_MODELS[model].oral else 1.0


# ----------------------------------------------------------------------------- registry


def test_registry_matches_spec_names():
    assert set(STRUCTURAL_MODELS) == set(STRUCTURAL_PARAMETERS)
    for name, model in STRUCTURAL_MODELS.items():
        assert model.parameters == STRUCTURAL_PARAMETERS[name]
        assert model.all_parameters == model.parameters + tuple(OPTIONAL_PARAMETERS)
    assert [STRUCTURAL_MODELS[m].advan for m in MODELS] == [1, 2, 3, 4]
    assert STRUCTURAL_MODELS["two_compartment_oral"].compartments == {1: "depot", 2: "central", 3: "peripheral"}


def test_unknown_structural_model():
    with pytest.raises(SpecError) as info:
        structural_model("three_compartment")
    assert info.value.key == "structural"
    assert "one_compartment_oral" in info.value.valid


# ----------------------------------------------------------------------------- ODE oracle

CASES = {
    "bolus": [dict(TIME=0.0, AMT=100.0)],
    "central_bolus": "central",
    "infusion": [dict(TIME=0.0, AMT=100.0, RATE=50.0)],
    "multiple": [dict(TIME=0.0, AMT=100.0), dict(TIME=6.0, AMT=50.0, RATE=20.0), dict(TIME=12.0, AMT=80.0)],
    "addl": [dict(TIME=0.0, AMT=100.0, ADDL=3.0, II=6.0), dict(TIME=12.0, AMT=60.0, RATE=30.0, ADDL=2, II=12.0)],
    "ss_bolus": [dict(TIME=0.0, AMT=100.0, SS=1.0, II=12.0)],
    "ss_infusion": [dict(TIME=0.0, AMT=100.0, RATE=25.0, SS=1.0, II=12.0)],
    "ss_infusion_long": [dict(TIME=0.0, AMT=100.0, RATE=100.0 / 30.0, SS=1.0, II=12.0, ADDL=2.0)],
    "ss_then_dose": [dict(TIME=0.0, AMT=100.0, SS=1.0, II=12.0, ADDL=1), dict(TIME=13.0, AMT=40.0, SS=2.0, II=8.0)],
    "ss_constant": [dict(TIME=0.0, AMT=0.0, RATE=10.0, SS=1.0), dict(TIME=12.0, AMT=50.0)],
}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("case", list(CASES))
def test_against_ode(model, case):
    doses = CASES[case]
    if doses == "central":
        doses = [dict(TIME=0.0, AMT=100.0, CMT=central(model)), dict(TIME=4.0, AMT=50.0, RATE=10.0, CMT=central(model))]
    check(frame(doses), model, PARAMS[model])


@pytest.mark.parametrize("model", MODELS)
def test_lag_and_bioavailability(model):
    doses = [
        dict(TIME=0.0, AMT=100.0),
        dict(TIME=6.0, AMT=60.0, RATE=30.0),
        dict(TIME=12.0, AMT=80.0, ADDL=2.0, II=4.0),
        dict(TIME=30.0, AMT=40.0, CMT=central(model)),
    ]
    params = dict(PARAMS[model], tlag=[0.75, 1.3], F=[0.6, 0.9])
    check(frame(doses, obs=OBS + [0.75, 6.5, 7.0, 8.5, 31.0]), model, params)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("lag", [0.8, 14.0])
def test_steady_state_with_lag_and_f(model, lag):
    doses = [dict(TIME=0.0, AMT=100.0, SS=1.0, II=12.0), dict(TIME=24.0, AMT=100.0, RATE=10.0, SS=1.0, II=8.0)]
    params = dict(PARAMS[model], tlag=[lag, lag / 2], F=[0.7, 0.5])
    check(frame(doses, obs=OBS + [0.5, 0.9, 25.0, 26.0, 40.0]), model, params)


@pytest.mark.parametrize("model", MODELS)
def test_resets(model):
    doses = [
        dict(TIME=0.0, AMT=100.0, ADDL=5.0, II=4.0),
        dict(TIME=13.0, EVID=4, AMT=50.0),
        dict(TIME=24.0, AMT=70.0, ADDL=3.0, II=6.0),
    ]
    extra = [dict(TIME=6.0, EVID=3), dict(TIME=30.0, EVID=3)]
    df = frame(doses, extra=extra)
    check(df, model, PARAMS[model])
    got = check(df, model, PARAMS[model], points="all")
    table_time = df["TIME"].to_numpy()
    # right after the EVID 3 at t = 30 nothing is left
    assert np.all(got[(table_time == 30.0)] == 0.0)


@pytest.mark.parametrize("case", list(COINCIDE))
def test_coinciding_rate_constants(case):
    model, params = COINCIDE[case]
    doses = [
        dict(TIME=0.0, AMT=100.0),
        dict(TIME=5.0, AMT=60.0, RATE=30.0),
        dict(TIME=12.0, AMT=100.0, SS=2.0, II=12.0),
        dict(TIME=30.0, AMT=80.0, RATE=10.0, SS=1.0, II=6.0),
    ]
    check(frame(doses), model, params)
    check(frame(doses), model, dict(params, tlag=[0.5, 7.0]))


def test_closed_form_one_compartment():
    t = np.array(OBS[1:])
    df = frame([dict(TIME=0.0, AMT=100.0)], obs=t, n_subjects=1)
    design = build_event_design(df, "one_compartment_oral")
    ka, k, v = 1.2, 0.2, 10.0
    got = predict_concentrations(design, {"ka": [ka], "CL": [k * v], "V": [v]})
    np.testing.assert_allclose(got, 100 * ka / (v * (ka - k)) * (np.exp(-k * t) - np.exp(-ka * t)), rtol=1e-13)
    got = predict_concentrations(design, {"ka": [k], "CL": [k * v], "V": [v]})
    np.testing.assert_allclose(got, 100 / v * k * t * np.exp(-k * t), rtol=1e-13)


# ----------------------------------------------------------------------------- event design


def test_design_pairs_and_groups():
    df = frame([dict(TIME=0.0, AMT=100.0, ADDL=2.0, II=12.0), dict(TIME=6.0, AMT=10.0, RATE=5.0, CMT=2.0)],
               obs=[1.0, 12.0, 30.0], n_subjects=1)
    design = build_event_design(df, "one_compartment_oral")
    assert design.n_points == 3 and design.n_subjects == 1
    np.testing.assert_array_equal(design.point_row, np.flatnonzero(df["EVID"].to_numpy() == 0))
    kinds = {(g.kind, g.route): g for g in design.groups}
    assert set(kinds) == {("bolus", "depot"), ("infusion", "central")}
    bolus = kinds[("bolus", "depot")]
    # t=1 sees dose 0; t=12 sees 0 and 12 (tie counts); t=30 sees 0, 12, 24
    assert sorted(zip(bolus.point.tolist(), bolus.elapsed.tolist())) == [
        (0, 1.0), (1, 0.0), (1, 12.0), (2, 6.0), (2, 18.0), (2, 30.0)
    ]
    assert len(kinds[("infusion", "central")]) == 2


def test_design_points_all_and_dataframe_without_optional_columns():
    df = pd.DataFrame({"ID": [1, 1, 2, 2], "TIME": [0.0, 1.0, 0.0, 2.0], "DV": [np.nan, 1, np.nan, 2],
                       "AMT": [10.0, 0, 20.0, 0], "EVID": [1, 0, 1, 0], "MDV": [1, 0, 1, 0]})
    design = build_event_design(df, "one_compartment_iv", points="all")
    assert design.n_points == 4 and design.n_subjects == 2
    values = predict_concentrations(design, {"CL": 1.0, "V": 10.0})
    np.testing.assert_allclose(values, [1.0, np.exp(-0.1), 2.0, 2 * np.exp(-0.2)], rtol=1e-14)


def test_design_errors():
    df = frame([dict(TIME=0.0, AMT=100.0, CMT=2.0), dict(TIME=1.0, AMT=10.0, RATE=-1.0)], n_subjects=1)
    with pytest.raises(DataError) as info:
        build_event_design(df, "two_compartment_iv")
    checks = set(info.value.violations["check"])
    assert checks == {"dose_cmt", "rate"}
    assert "peripheral" in str(info.value)
    with pytest.raises(DataError):
        build_event_design(frame([dict(TIME=0.0, AMT=100.0, CMT=3.0)]), "one_compartment_oral")


# ----------------------------------------------------------------------------- gradients


def _gradient_setup(model, params, doses, flat=False):
    """Objective sum(w * conc) as a function of per-subject vectors (or of one flat vector)."""
    df = frame(doses, obs=[0.5, 1.0, 2.0, 5.0, 9.0, 14.0, 20.0, 26.0, 40.0])
    design = build_event_design(df, model)
    names = sorted(params)
    if flat:
        x = pt.dvector("x")
        inputs = [x]
        values = {n: x[2 * i:2 * i + 2] for i, n in enumerate(names)}
    else:
        inputs = [pt.dvector(n) for n in names]
        values = dict(zip(names, inputs))
    conc = concentrations(design, values)
    weights = np.linspace(0.5, 1.5, design.n_points)
    objective = pt.sum(conc * weights)
    return names, inputs, objective


GRAD_DOSES = [
    dict(TIME=0.0, AMT=100.0),
    dict(TIME=3.0, AMT=60.0, RATE=20.0),
    dict(TIME=8.0, AMT=50.0, ADDL=1.0, II=6.0),
    dict(TIME=24.0, AMT=80.0, RATE=30.0, SS=2.0, II=6.0),
    dict(TIME=24.0, AMT=30.0, SS=2.0, II=12.0),
]


@pytest.mark.parametrize(
    "model,params",
    [(m, PARAMS[m]) for m in MODELS] + [COINCIDE[c] for c in COINCIDE],
    ids=MODELS + list(COINCIDE),
)
def test_gradients_match_finite_differences(model, params):
    params = dict(params, tlag=[0.4, 0.3], F=[0.8, 0.6])
    names, inputs, objective = _gradient_setup(model, params, GRAD_DOSES)
    value = pytensor.function(inputs, objective)
    grads = pytensor.function(inputs, pytensor.grad(objective, inputs))
    x = [np.asarray(params[n], dtype=float) for n in names]
    analytic = grads(*x)
    for i, name in enumerate(names):
        assert np.all(np.isfinite(analytic[i])), name
        for s in range(2):
            h = 1e-5 * x[i][s]
            up = [v.copy() for v in x]
            down = [v.copy() for v in x]
            up[i][s] += h
            down[i][s] -= h
            fd = (value(*up) - value(*down)) / (2 * h)
            np.testing.assert_allclose(analytic[i][s], fd, rtol=1e-5, atol=1e-9, err_msg=f"{name}[{s}]")


@pytest.mark.parametrize("case", list(COINCIDE))
def test_second_derivatives_finite_at_coincidence(case):
    model, params = COINCIDE[case]
    params = dict(params, tlag=[0.4, 0.3])
    names, (flat,), obj = _gradient_setup(model, params, GRAD_DOSES, flat=True)
    hessian = pytensor.function([flat], pytensor.gradient.hessian(obj, flat))
    gradient = pytensor.function([flat], pytensor.grad(obj, flat))
    x0 = np.concatenate([np.asarray(params[n], dtype=float) for n in names])
    H = hessian(x0)
    assert np.all(np.isfinite(H))
    np.testing.assert_allclose(H, H.T, rtol=1e-8, atol=1e-10)
    # Hessian columns against central differences of the gradient
    for j in range(len(x0)):
        h = 1e-5 * x0[j]
        e = np.zeros_like(x0)
        e[j] = h
        fd = (gradient(x0 + e) - gradient(x0 - e)) / (2 * h)
        np.testing.assert_allclose(H[:, j], fd, rtol=1e-4, atol=1e-7)
