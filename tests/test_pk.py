"""Tests of the structural models through the model core (bayes_nlme.core).

Concentrations of the event engine (``engine_design`` + ``predict_numeric``) are
compared with an independent ODE integration (tests/ode_oracle.py) for every structural
model and dose kind; its Jacobians with central finite differences; the PyTensor
operation (``structural_predictions``) with the numeric engine.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from ode_oracle import oracle_concentrations

from bayes_nlme.core import engine_design
from bayes_nlme.core.op import predict_numeric, structural_predictions
from bayes_nlme.data import load_dataset
from bayes_nlme.errors import DataError, SpecError
from bayes_nlme.pk.models import STRUCTURAL_MODELS, structural_model
from bayes_nlme.spec.structural_names import OPTIONAL_PARAMETERS, STRUCTURAL_PARAMETERS

MODELS = list(STRUCTURAL_MODELS)
ORAL = [m for m in MODELS if STRUCTURAL_MODELS[m].oral]

_THREE = {"Q2": [4.0, 2.0], "V2": [30.0, 20.0], "Q3": [1.0, 0.5], "V3": [50.0, 80.0]}
PARAMS = {
    "one_compartment_iv": {"CL": [2.0, 3.0], "V": [10.0, 20.0]},
    "one_compartment_oral": {"ka": [1.2, 0.7], "CL": [2.0, 3.0], "V": [10.0, 20.0]},
    "two_compartment_iv": {"CL": [2.0, 3.0], "V1": [10.0, 15.0], "Q": [4.0, 2.0], "V2": [30.0, 20.0]},
    "two_compartment_oral": {
        "ka": [1.2, 0.7],
        "CL": [2.0, 3.0],
        "V1": [10.0, 15.0],
        "Q": [4.0, 2.0],
        "V2": [30.0, 20.0],
    },
    "three_compartment_iv": {"CL": [2.0, 3.0], "V1": [10.0, 15.0], **_THREE},
    "three_compartment_oral": {"ka": [1.2, 0.7], "CL": [2.0, 3.0], "V1": [10.0, 15.0], **_THREE},
}


def _pair(**values):
    return {k: [float(v), float(v)] for k, v in values.items()}


# Parameters with coinciding rate constants. One compartment: k = CL/V = 0.5. Two
# compartments: alpha = 2, beta = 0.5 exactly (k10 = k21 = 1, k12 = 0.5). Three
# compartments: exponents 2, 0.5 and 0.1 (k10 = 0.5, k12 = 0.5625, k13 = 0.3375,
# k21 = 1, k31 = 0.2).
_TWO_C = dict(CL=10.0, V1=10.0, Q=5.0, V2=5.0)
_THREE_C = dict(CL=5.0, V1=10.0, Q2=5.625, V2=5.625, Q3=3.375, V3=16.875)
COINCIDE = {
    "ka=k": ("one_compartment_oral", _pair(ka=0.5, CL=5.0, V=10.0)),
    "ka=alpha": ("two_compartment_oral", _pair(ka=2.0, **_TWO_C)),
    "ka=beta": ("two_compartment_oral", _pair(ka=0.5, **_TWO_C)),
    "ka=alpha3": ("three_compartment_oral", _pair(ka=2.0, **_THREE_C)),
    "ka=beta3": ("three_compartment_oral", _pair(ka=0.5, **_THREE_C)),
    "ka=gamma3": ("three_compartment_oral", _pair(ka=0.1, **_THREE_C)),
}
OBS = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 13.0, 18.0, 24.0, 30.0, 48.0]
COLUMNS = ["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "RATE", "II", "ADDL", "SS"]


def frame(doses, obs=OBS, n_subjects=2, extra=()):
    """Dataset table: dose records (dicts) and observations, for each subject.

    ``extra`` records (dicts with their own EVID) are merged by time; records at equal
    times keep the order doses, extra, observations. Subject s gets ``1 + s`` times the
    amounts.
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
    return df[COLUMNS]


def central(model):
    return 2.0 if STRUCTURAL_MODELS[model].oral else 1.0


def predict(df, model, params, points="observations"):
    """Engine predictions and Jacobians for per-subject parameters (one segment each)."""
    design = engine_design(load_dataset(df), model, declared=tuple(params), points=points)
    assert design.constant_within_subject
    f, jac = predict_numeric(design, params)
    return design, f, jac


# ----------------------------------------------------------------------------- registry


def test_registry_matches_spec_names():
    assert set(STRUCTURAL_MODELS) == set(STRUCTURAL_PARAMETERS)
    for name, model in STRUCTURAL_MODELS.items():
        assert model.parameters == STRUCTURAL_PARAMETERS[name]
        assert model.all_parameters == model.parameters + tuple(OPTIONAL_PARAMETERS)
    assert [STRUCTURAL_MODELS[m].advan for m in MODELS] == [1, 2, 3, 4, 11, 12]
    assert STRUCTURAL_MODELS["two_compartment_oral"].compartments == {1: "depot", 2: "central", 3: "peripheral"}
    assert STRUCTURAL_MODELS["three_compartment_iv"].compartments == {1: "central", 2: "peripheral", 3: "peripheral"}
    assert STRUCTURAL_MODELS["three_compartment_oral"].compartments == {
        1: "depot",
        2: "central",
        3: "peripheral",
        4: "peripheral",
    }
    assert [STRUCTURAL_MODELS[m].n_compartments for m in MODELS] == [1, 1, 2, 2, 3, 3]
    assert [STRUCTURAL_MODELS[m].volume for m in MODELS] == ["V", "V", "V1", "V1", "V1", "V1"]
    assert [STRUCTURAL_MODELS[m].default_dose_compartment for m in MODELS] == [1, 1, 1, 1, 1, 1]


def test_unknown_structural_model():
    with pytest.raises(SpecError) as info:
        structural_model("three_compartment")
    assert info.value.key == "structural"
    assert "one_compartment_oral" in info.value.valid
    assert "three_compartment_oral" in info.value.valid


# ----------------------------------------------------------------------------- ODE oracle
#
# Every case is a pair of subjects (the second gets twice the amounts and its own
# parameters). The cases of a suite are stacked into one dataset (one design, one
# engine call per model and suite); each case is then checked on its own subjects.


def _central_doses(model):
    c = central(model)
    return [dict(TIME=0.0, AMT=100.0, CMT=c), dict(TIME=4.0, AMT=50.0, RATE=10.0, CMT=c)]


RESET_DOSES = [
    dict(TIME=0.0, AMT=100.0, ADDL=5.0, II=4.0),
    dict(TIME=13.0, EVID=4, AMT=50.0),
    dict(TIME=24.0, AMT=70.0, ADDL=3.0, II=6.0),
]
RESET_EXTRA = [dict(TIME=6.0, EVID=3), dict(TIME=30.0, EVID=3)]
LAG_DOSES = [
    dict(TIME=0.0, AMT=100.0),
    dict(TIME=6.0, AMT=60.0, RATE=30.0),
    dict(TIME=12.0, AMT=80.0, ADDL=2.0, II=4.0),
    dict(TIME=30.0, AMT=40.0, CMT="central"),
]
SS_LAG_DOSES = [dict(TIME=0.0, AMT=100.0, SS=1.0, II=12.0), dict(TIME=24.0, AMT=100.0, RATE=10.0, SS=1.0, II=8.0)]
COINCIDE_DOSES = [
    dict(TIME=0.0, AMT=100.0),
    dict(TIME=5.0, AMT=60.0, RATE=30.0),
    dict(TIME=12.0, AMT=100.0, SS=2.0, II=12.0),
    dict(TIME=30.0, AMT=80.0, RATE=10.0, SS=1.0, II=6.0),
]

# suite -> case -> (doses, observation times, extra records, extra parameters)
SUITES = {
    "plain": {
        "bolus": ([dict(TIME=0.0, AMT=100.0)], OBS, (), {}),
        "central_dose": ("central", OBS, (), {}),
        "infusion": ([dict(TIME=0.0, AMT=100.0, RATE=50.0)], OBS, (), {}),
        "multiple": (
            [dict(TIME=0.0, AMT=100.0), dict(TIME=6.0, AMT=50.0, RATE=20.0), dict(TIME=12.0, AMT=80.0)],
            OBS,
            (),
            {},
        ),
        "addl": (
            [dict(TIME=0.0, AMT=100.0, ADDL=3.0, II=6.0), dict(TIME=12.0, AMT=60.0, RATE=30.0, ADDL=2, II=12.0)],
            OBS,
            (),
            {},
        ),
        "ss_bolus": ([dict(TIME=0.0, AMT=100.0, SS=1.0, II=12.0)], OBS, (), {}),
        "ss_infusion": ([dict(TIME=0.0, AMT=100.0, RATE=25.0, SS=1.0, II=12.0)], OBS, (), {}),
        "ss_infusion_longer_than_ii": (
            [dict(TIME=0.0, AMT=100.0, RATE=100.0 / 30.0, SS=1.0, II=12.0, ADDL=2.0)],
            OBS,
            (),
            {},
        ),
        "ss2_on_top": (
            [dict(TIME=0.0, AMT=100.0, SS=1.0, II=12.0, ADDL=1), dict(TIME=13.0, AMT=40.0, SS=2.0, II=8.0)],
            OBS,
            (),
            {},
        ),
        "ss_constant_infusion": ([dict(TIME=0.0, AMT=0.0, RATE=10.0, SS=1.0), dict(TIME=12.0, AMT=50.0)], OBS, (), {}),
        "resets_evid3_evid4": (RESET_DOSES, OBS, RESET_EXTRA, {}),
    },
    "lag_f": {
        "lag_and_f": (LAG_DOSES, OBS + [0.75, 6.5, 7.0, 8.5, 31.0], (), {"tlag": [0.75, 1.3], "F": [0.6, 0.9]}),
        "ss_lag_shorter_than_ii": (
            SS_LAG_DOSES,
            OBS + [0.9, 25.0, 26.0, 40.0],
            (),
            {"tlag": [0.8, 0.4], "F": [0.7, 0.5]},
        ),
        "ss_lag_longer_than_ii": (
            SS_LAG_DOSES,
            OBS + [0.9, 25.0, 26.0, 40.0],
            (),
            {"tlag": [14.0, 7.0], "F": [0.7, 0.5]},
        ),
        "resets_with_lag": (RESET_DOSES, OBS, RESET_EXTRA, {"tlag": [0.5, 1.0], "F": [0.8, 1.0]}),
    },
}
SUITE_POINTS = {"plain": "all", "lag_f": "observations"}


def _stack(cases, model, params_of):
    """One table (and per-subject parameters) for several cases; subject slices per case."""
    frames, params, slices, start = [], {}, {}, 0
    for name, (doses, obs, extra, extra_params) in cases.items():
        if doses == "central":
            doses = _central_doses(model)
        doses = [dict(d, CMT=central(model)) if d.get("CMT") == "central" else d for d in doses]
        df = frame(doses, obs=sorted(obs), extra=extra)
        df["ID"] += start
        frames.append(df)
        for key, value in dict(params_of(name), **extra_params).items():
            params.setdefault(key, []).extend(value)
        slices[name] = (start, start + 2)
        start += 2
    df = pd.concat(frames, ignore_index=True)
    assert all(len(v) == start for v in params.values()), "cases of a suite must give the same parameters"
    return df, {k: np.array(v, dtype=float) for k, v in params.items()}, slices


_RESULTS = {}


def suite_results(model, suite):
    """Concentrations (engine and ODE oracle) of every case of a suite, by case name."""
    key = (model, suite)
    if key not in _RESULTS:
        if suite == "coincide":  # each coinciding parameter set, without and with a lag
            cases = {
                f"{name}{tag}": (COINCIDE_DOSES, OBS, (), {"tlag": lag})
                for name, (m, _) in COINCIDE.items()
                if m == model
                for tag, lag in (("", [0.0, 0.0]), ("+lag", [0.5, 7.0]))
            }
            df, params, slices = _stack(cases, model, lambda name: COINCIDE[name.split("+")[0]][1])
            points = "observations"
        else:
            df, params, slices = _stack(SUITES[suite], model, lambda name: PARAMS[model])
            points = SUITE_POINTS[suite]
        design, got, _ = predict(df, model, params, points=points)
        expected = oracle_concentrations(df, model, params, points=points)
        subject = design.obs_subject
        _RESULTS[key] = {
            name: (got[(subject >= a) & (subject < b)], expected[(subject >= a) & (subject < b)])
            for name, (a, b) in slices.items()
        }
    return _RESULTS[key]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("suite,case", [(s, c) for s in SUITES for c in SUITES[s]])
def test_against_ode(model, suite, case):
    got, expected = suite_results(model, suite)[case]
    assert got.shape == expected.shape and len(got) > 0
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)
    if case.startswith("resets"):
        assert np.any(got == 0.0)  # nothing is left right after the EVID 3 at t = 30


@pytest.mark.parametrize("case", [c + lag for c in COINCIDE for lag in ("", "+lag")])
def test_coinciding_rate_constants(case):
    model = COINCIDE[case.split("+")[0]][0]
    got, expected = suite_results(model, "coincide")[case]
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)


def test_closed_form_one_compartment():
    t = np.array(OBS[1:])
    df = frame([dict(TIME=0.0, AMT=100.0)], obs=t, n_subjects=1)
    ka, k, v = 1.2, 0.2, 10.0
    _, got, _ = predict(df, "one_compartment_oral", {"ka": [ka], "CL": [k * v], "V": [v]})
    np.testing.assert_allclose(got, 100 * ka / (v * (ka - k)) * (np.exp(-k * t) - np.exp(-ka * t)), rtol=1e-12)
    _, got, _ = predict(df, "one_compartment_oral", {"ka": [k], "CL": [k * v], "V": [v]})
    np.testing.assert_allclose(got, 100 / v * k * t * np.exp(-k * t), rtol=1e-12)


# ----------------------------------------------------------------------------- design


def test_design_layout():
    df = frame(
        [dict(TIME=0.0, AMT=100.0, ADDL=2.0, II=12.0), dict(TIME=6.0, AMT=10.0, RATE=5.0, CMT=2.0)],
        obs=[1.0, 12.0, 30.0],
        n_subjects=2,
    )
    df["WT"] = [70.0, 70.0, 70.0, 80.0, 80.0] + [60.0] * 5
    dataset = load_dataset(df)
    design = engine_design(dataset, "one_compartment_oral", declared=("F", "CL", "tlag"))
    assert design.columns == ("ka", "CL", "V", "tlag", "F")
    assert design.n_obs == 6 and design.n_subjects == 2
    np.testing.assert_array_equal(design.obs_row, np.flatnonzero(df["EVID"].to_numpy() == 0))
    np.testing.assert_array_equal(design.obs_subject, [0, 0, 0, 1, 1, 1])
    assert design.constant_within_subject and design.n_segments == 2 and design.max_seg == 1
    np.testing.assert_array_equal(design.seg_row, [0, 5])

    design = engine_design(dataset, "one_compartment_oral", covariates=("WT",), points="all")
    assert design.columns == ("ka", "CL", "V")
    assert design.n_obs == len(df)
    np.testing.assert_array_equal(design.obs_row, np.arange(len(df)))
    assert not design.constant_within_subject
    np.testing.assert_array_equal(design.seg_subject, [0, 0, 1])
    np.testing.assert_array_equal(design.seg_row, [0, 3, 5])
    assert design.max_seg == 2


def test_design_points_all_and_dataframe_without_optional_columns():
    df = pd.DataFrame(
        {
            "ID": [1, 1, 2, 2],
            "TIME": [0.0, 1.0, 0.0, 2.0],
            "DV": [np.nan, 1, np.nan, 2],
            "AMT": [10.0, 0, 20.0, 0],
            "EVID": [1, 0, 1, 0],
            "MDV": [1, 0, 1, 0],
        }
    )
    design = engine_design(load_dataset(df), "one_compartment_iv", points="all")
    assert design.n_obs == 4 and design.n_subjects == 2
    values, jac = predict_numeric(design, {"CL": 1.0, "V": 10.0})
    np.testing.assert_allclose(values, [1.0, np.exp(-0.1), 2.0, 2 * np.exp(-0.2)], rtol=1e-14)
    # d/dCL = -t/V C, d/dV = (t CL/V^2 - 1/V) V C
    np.testing.assert_allclose(jac[:, 0, 0], [0.0, -0.1 * np.exp(-0.1), 0.0, -0.4 * np.exp(-0.2)], rtol=1e-13)
    np.testing.assert_allclose(jac[:, 0, 1], [-0.1, -0.09 * np.exp(-0.1), -0.2, -0.16 * np.exp(-0.2)], rtol=1e-13)


def test_design_errors():
    df = frame([dict(TIME=0.0, AMT=100.0, CMT=2.0), dict(TIME=1.0, AMT=10.0, RATE=5.0)], n_subjects=1)
    dataset = load_dataset(df)
    # a negative rate never passes load_dataset: put it into the table behind its back
    table = dataset.table.copy()
    table.loc[table["TIME"].eq(1.0) & table["EVID"].eq(1), "RATE"] = -1.0
    with pytest.raises(DataError) as info:
        engine_design(dataclasses.replace(dataset, table=table), "two_compartment_iv")
    checks = set(info.value.violations["check"])
    assert checks == {"dose_cmt", "rate"}
    assert "peripheral" in str(info.value)
    with pytest.raises(DataError) as info:
        engine_design(load_dataset(frame([dict(TIME=0.0, AMT=100.0, CMT=3.0)])), "one_compartment_oral")
    assert set(info.value.violations["check"]) == {"dose_cmt"}
    for cmt in (2.0, 3.0):
        with pytest.raises(DataError, match="peripheral"):
            engine_design(load_dataset(frame([dict(TIME=0.0, AMT=100.0, CMT=cmt)])), "three_compartment_iv")
    with pytest.raises(DataError, match="peripheral"):
        engine_design(load_dataset(frame([dict(TIME=0.0, AMT=100.0, CMT=4.0)])), "three_compartment_oral")
    with pytest.raises(DataError):
        engine_design(load_dataset(frame([dict(TIME=0.0, AMT=100.0, CMT=5.0)])), "three_compartment_oral")


# ----------------------------------------------------------------------------- gradients

GRAD_DOSES = [
    dict(TIME=0.0, AMT=100.0),
    dict(TIME=3.0, AMT=60.0, RATE=20.0),
    dict(TIME=8.0, AMT=50.0, ADDL=1.0, II=6.0),
    dict(TIME=24.0, AMT=80.0, RATE=30.0, SS=2.0, II=6.0),
    dict(TIME=24.0, AMT=30.0, SS=2.0, II=12.0),
    dict(TIME=30.0, AMT=0.0, RATE=5.0, SS=1.0),
]
GRAD_OBS = [0.5, 1.0, 2.0, 5.0, 9.0, 14.0, 20.0, 26.0, 40.0]


def _gradient_params(model):
    """Per-subject parameters: two generic subjects, then the coinciding cases."""
    sets = [PARAMS[model]] + [p for (m, p) in COINCIDE.values() if m == model]
    params = {k: np.concatenate([np.asarray(s[k], dtype=float) for s in sets]) for k in PARAMS[model]}
    n = len(params[next(iter(params))])
    params["tlag"] = np.linspace(0.3, 0.45, n)
    params["F"] = np.linspace(0.6, 0.8, n)
    return params


def finite_differences(design, matrix, step=1e-5):
    """Central differences of ``predict_numeric`` in the layout of its Jacobian:
    ``fd[j, s, q]``, segment ``s`` of the subject of prediction ``j``, column ``q``.
    Steps are relative (``step * value``), except for ``tlag`` (``step``, in time units:
    the lag acts on the time scale of the rate constants)."""
    fd = np.zeros((design.n_obs, design.max_seg, matrix.shape[1]))
    first = np.searchsorted(design.seg_subject, np.arange(design.n_subjects))
    local = np.arange(design.n_segments) - first[design.seg_subject]
    for s in range(design.max_seg):
        rows = np.flatnonzero(local == s)  # segment s of every subject at once
        for q in range(matrix.shape[1]):
            h = np.zeros_like(matrix)
            h[rows, q] = step * (1.0 if design.columns[q] == "tlag" else matrix[rows, q])
            up, _ = predict_numeric(design, matrix + h)
            down, _ = predict_numeric(design, matrix - h)
            width = np.zeros(design.n_subjects)
            width[design.seg_subject[rows]] = 2 * h[rows, q]
            has = width[design.obs_subject] > 0
            fd[has, s, q] = (up - down)[has] / width[design.obs_subject][has]
    return fd


@pytest.mark.parametrize("model", MODELS)
def test_gradients_match_finite_differences(model):
    """Every parameter, every subject (incl. the coinciding rate constants exactly)."""
    params = _gradient_params(model)
    n = len(params["F"])
    df = frame(GRAD_DOSES, obs=GRAD_OBS, n_subjects=n)
    design, f, jac = predict(df, model, params)
    matrix = np.stack([params[c] for c in design.columns], axis=1)
    assert np.all(np.isfinite(f)) and np.all(np.isfinite(jac))
    assert jac.shape == (design.n_obs, 1, len(design.columns))
    fd = finite_differences(design, matrix)
    scale = np.abs(jac).max(axis=0, keepdims=True)
    for q, name in enumerate(design.columns):
        np.testing.assert_allclose(jac[:, :, q], fd[:, :, q], rtol=1e-6, atol=1e-8 * scale[0, 0, q], err_msg=name)


# ----------------------------------------------------------------------------- PyTensor op

OP_DOSES = [
    dict(TIME=0.0, AMT=100.0),
    dict(TIME=3.0, AMT=60.0, RATE=20.0),
    dict(TIME=8.0, AMT=50.0, CMT=2.0),
]


def test_op_default_numba_mode():
    """``structural_predictions`` compiled in the default (Numba) mode: the values of
    ``predict_numeric``, and ``pytensor.grad`` equal to finite differences."""
    model = "one_compartment_oral"
    params = _gradient_params(model)
    df = frame(OP_DOSES, obs=[0.5, 2.0, 5.0, 9.0, 26.0], n_subjects=len(params["F"]))
    design = engine_design(load_dataset(df), model, declared=tuple(params))
    matrix = np.stack([params[c] for c in design.columns], axis=1)
    x = pt.dmatrix("x")
    conc = structural_predictions(design, x)
    weights = np.linspace(0.5, 1.5, design.n_obs)
    objective = pt.sum(conc * weights)
    fn = pytensor.function([x], [conc, objective, pytensor.grad(objective, x)])
    got, value, grad = fn(matrix)
    ref, _ = predict_numeric(design, matrix)
    np.testing.assert_allclose(got, ref, rtol=1e-14, atol=0)
    np.testing.assert_allclose(value, np.sum(ref * weights), rtol=1e-14)
    fd = np.zeros_like(matrix)
    for idx in np.ndindex(*matrix.shape):
        h = np.zeros_like(matrix)
        h[idx] = 1e-6 * matrix[idx]
        fd[idx] = (fn(matrix + h)[1] - fn(matrix - h)[1]) / (2 * h[idx])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
    # the dict form gives the same graph
    named = structural_predictions(design, {c: x[:, i] for i, c in enumerate(design.columns)})
    np.testing.assert_allclose(pytensor.function([x], named)(matrix), ref, rtol=1e-14, atol=0)
