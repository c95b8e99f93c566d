"""Tests of the model core (bayes_nlme.core) beyond the regimen suites of test_pk.py:
three-compartment closed forms, parameters that change within a subject (time-varying
covariates under LOCF and NOCB, through ``bayes_nlme.predict.predict`` and directly with
several parameter segments per subject), Jacobians with several segments, and lag /
bioavailability derivatives at steady state with a lag longer than the interval.

References are the ODE oracles of tests/ode_oracle.py (independent of bayes_nlme) and
central finite differences of ``predict_numeric``.
"""

from __future__ import annotations

import tomllib

import numpy as np
import pandas as pd
import pytest
from ode_oracle import oracle_concentrations, oracle_records

from bayes_nlme.core import engine_design
from bayes_nlme.core.op import predict_numeric
from bayes_nlme.data import load_dataset
from bayes_nlme.pk.models import STRUCTURAL_MODELS
from bayes_nlme.predict import predict
from bayes_nlme.spec import parse_model

MODELS = list(STRUCTURAL_MODELS)
COLUMNS = ["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "RATE", "II", "ADDL", "SS"]

BASE = {
    "one_compartment_iv": dict(CL=2.0, V=10.0),
    "one_compartment_oral": dict(ka=1.2, CL=2.0, V=10.0),
    "two_compartment_iv": dict(CL=2.0, V1=10.0, Q=4.0, V2=30.0),
    "two_compartment_oral": dict(ka=1.2, CL=2.0, V1=10.0, Q=4.0, V2=30.0),
    "three_compartment_iv": dict(CL=2.0, V1=10.0, Q2=4.0, V2=30.0, Q3=1.0, V3=50.0),
    "three_compartment_oral": dict(ka=1.2, CL=2.0, V1=10.0, Q2=4.0, V2=30.0, Q3=1.0, V3=50.0),
}


def central(model):
    return 2.0 if STRUCTURAL_MODELS[model].oral else 1.0


def table(records, n_subjects=1):
    """Dataset table from records (dicts; file order kept), repeated for each subject
    (subject s gets ``1 + s`` times the amounts)."""
    rows = []
    for s in range(n_subjects):
        for rec in records:
            row = dict(DV=np.nan, AMT=0.0, EVID=0, MDV=0, CMT=np.nan, RATE=0.0, II=0.0, ADDL=0.0, SS=0.0)
            row.update(rec)
            row["ID"] = float(s + 1)
            row["AMT"] = row["AMT"] * (1 + s)
            if row["EVID"] == 0:
                row["DV"] = 1.0
            else:
                row["MDV"] = 1
            rows.append(row)
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[COLUMNS + extra].astype(float)


def segment_of_record(design, n_records):
    """Parameter segment (global) of every record: segments are contiguous runs."""
    return np.searchsorted(design.seg_row, np.arange(n_records), side="right") - 1


def finite_differences(design, matrix, step=1e-5):
    """Central differences of ``predict_numeric`` in the layout of its Jacobian:
    ``fd[j, s, q]``, segment ``s`` of the subject of prediction ``j``, column ``q``.
    Steps are relative (``step * value``), except for ``tlag`` (``step``, in time units:
    the lag acts on the time scale of the rate constants)."""
    fd = np.zeros((design.n_obs, design.max_seg, matrix.shape[1]))
    first = np.searchsorted(design.seg_subject, np.arange(design.n_subjects))
    local = np.arange(design.n_segments) - first[design.seg_subject]
    for s in range(design.max_seg):
        rows = np.flatnonzero(local == s)
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


def assert_jacobian(design, matrix, jac, rtol=1e-6):
    fd = finite_differences(design, matrix)
    scale = np.abs(jac).max(axis=(0, 1), keepdims=True)
    assert np.all(np.isfinite(jac))
    for q, name in enumerate(design.columns):
        np.testing.assert_allclose(jac[:, :, q], fd[:, :, q], rtol=rtol, atol=1e-8 * scale[0, 0, q], err_msg=name)
    # padding: segments a subject does not have get no derivative
    counts = np.bincount(design.seg_subject, minlength=design.n_subjects)
    for j in range(design.n_obs):
        assert np.all(jac[j, counts[design.obs_subject[j]] :, :] == 0.0)


# ----------------------------------------------------------------------------- (a) three compartments


def _macro(p):
    """Exponents and bolus coefficients of the three-compartment IV model (textbook
    closed form: roots of the characteristic cubic)."""
    k10, k12, k13 = p["CL"] / p["V1"], p["Q2"] / p["V1"], p["Q3"] / p["V1"]
    k21, k31 = p["Q2"] / p["V2"], p["Q3"] / p["V3"]
    a2 = k10 + k12 + k13 + k21 + k31
    a1 = k10 * k21 + k10 * k31 + k21 * k31 + k12 * k31 + k13 * k21
    a0 = k10 * k21 * k31
    lam = np.sort(np.roots([1.0, -a2, a1, -a0]).real)
    coef = np.array(
        [(k21 - lam[i]) * (k31 - lam[i]) / np.prod([lam[j] - lam[i] for j in range(3) if j != i]) for i in range(3)]
    )
    return lam, coef, (k21, k31)


def closed_form_three(model, p, dose, t):
    """Central concentration after one dose at time 0 (bolus into depot or central)."""
    lam, coef, (k21, k31) = _macro(p)
    if model == "three_compartment_iv":
        return dose / p["V1"] * (coef[None, :] * np.exp(-np.outer(t, lam))).sum(axis=1)
    ka = p["ka"]
    depot = (k21 - ka) * (k31 - ka) / np.prod(lam - ka)
    terms = (coef / (ka - lam))[None, :] * np.exp(-np.outer(t, lam))
    return dose * ka / p["V1"] * (terms.sum(axis=1) + depot * np.exp(-ka * t))


@pytest.mark.parametrize("model", ["three_compartment_iv", "three_compartment_oral"])
def test_three_compartment_closed_form(model):
    t = np.array([0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0, 48.0, 96.0, 200.0])
    df = table([dict(TIME=0.0, EVID=1, AMT=100.0)] + [dict(TIME=x) for x in t], n_subjects=2)
    params = {k: np.array([v, 1.5 * v]) for k, v in BASE[model].items()}
    design = engine_design(load_dataset(df), model)
    got, _ = predict_numeric(design, params)
    expected = np.concatenate(
        [closed_form_three(model, {k: v[s] for k, v in params.items()}, 100.0 * (1 + s), t) for s in range(2)]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    oracle = oracle_concentrations(df, model, params)
    np.testing.assert_allclose(oracle, expected, rtol=1e-8)


# ----------------------------------------------------------------------------- (b) predict, time-varying

# WT changes between doses and observations (EVID 2 records too), with records at equal
# times carrying different values; doses: oral with ADDL, an infusion into the central
# compartment, a steady-state dose.
TV_RECORDS = [
    dict(TIME=0.0, EVID=1, AMT=100.0, ADDL=2.0, II=12.0, WT=70.0),
    dict(TIME=1.0, WT=70.0),
    dict(TIME=2.0, EVID=2, WT=80.0),
    dict(TIME=4.0, WT=82.0),
    dict(TIME=6.0, WT=84.0),
    dict(TIME=6.0, EVID=1, AMT=50.0, RATE=25.0, CMT="central", WT=86.0),
    dict(TIME=6.0, WT=88.0),
    dict(TIME=7.0, WT=90.0),
    dict(TIME=12.0, WT=90.0),
    dict(TIME=12.0, EVID=2, WT=60.0),
    dict(TIME=18.0, WT=60.0),
    dict(TIME=24.0, WT=65.0),
    dict(TIME=30.0, EVID=2, WT=75.0),
    dict(TIME=36.0, EVID=1, AMT=80.0, SS=1.0, II=12.0, WT=72.0),
    dict(TIME=40.0, WT=72.0),
    dict(TIME=48.0, WT=68.0),
]


def tv_table(model, n_subjects=2):
    records = [dict(r, CMT=central(model)) if r.get("CMT") == "central" else r for r in TV_RECORDS]
    df = table(records, n_subjects)
    # the second subject keeps its weight except at one record
    second = df["ID"] == 2.0
    df.loc[second, "WT"] = np.where(df.loc[second, "TIME"] >= 24.0, 55.0, 50.0)
    return df


TV_MODEL = """
name = "time-varying-weight"
structural = "{structural}"
{time_varying}

[parameters.ka]
typical = {{ lognormal = {{ median = 1.0, sigma = 0.5 }} }}
[parameters.CL]
typical = {{ lognormal = {{ median = 3.0, sigma = 0.5 }} }}
[[parameters.CL.covariates]]
column = "WT"
effect = "power"
reference = 70
exponent = 0.75
[parameters.V1]
typical = {{ lognormal = {{ median = 20.0, sigma = 0.5 }} }}
[[parameters.V1.covariates]]
column = "WT"
effect = "linear"
reference = 70
beta = 0.01
[parameters.Q]
typical = {{ lognormal = {{ median = 4.0, sigma = 0.5 }} }}
[parameters.V2]
typical = {{ lognormal = {{ median = 30.0, sigma = 0.5 }} }}
[parameters.tlag]
fixed = 0.4
[parameters.F]
fixed = 0.8

[residual]
model = "additive"
"""
TV_THETA = {"ka": 1.1, "CL": 3.0, "V1": 20.0, "Q": 4.0, "V2": 30.0}


@pytest.mark.parametrize("rule", ["locf", "nocb"])
def test_predict_time_varying_covariate(rule):
    model = "two_compartment_oral"
    doc = TV_MODEL.format(structural=model, time_varying='time_varying = "nocb"' if rule == "nocb" else "")
    spec = parse_model(tomllib.loads(doc))
    assert spec.time_varying == rule
    df = tv_table(model)
    out = predict(spec, df, TV_THETA)
    wt = df["WT"].to_numpy()
    params = dict(TV_THETA, tlag=0.4, F=0.8)
    params["CL"] = 3.0 * (wt / 70.0) ** 0.75
    params["V1"] = 20.0 * (1 + 0.01 * (wt - 70.0))
    expected = oracle_records(df, model, params, points="all", time_varying=rule)
    np.testing.assert_allclose(out["PRED"].to_numpy(), expected, rtol=1e-8, atol=1e-12)
    # the rule matters here: the other one gives other predictions
    other = oracle_records(df, model, params, points="all", time_varying="nocb" if rule == "locf" else "locf")
    assert np.abs(other - expected).max() > 1e-3 * np.abs(expected).max()
    # and a constant weight is one segment whose predictions do not depend on the rule
    constant = oracle_records(df, model, dict(params, CL=params["CL"][0], V1=params["V1"][0]), points="all")
    flat = predict(spec, df.assign(WT=70.0), TV_THETA)["PRED"].to_numpy()
    np.testing.assert_allclose(flat, constant, rtol=1e-8, atol=1e-12)


# ----------------------------------------------------------------------------- (c) segments


def segment_params(design, model):
    """A parameter matrix that differs between segments (fixed values)."""
    base = dict(BASE[model], tlag=0.4, F=0.8)
    index = np.arange(design.n_segments)
    columns = []
    for q, name in enumerate(design.columns):
        wave = 1.0 + 0.15 * np.sin(1.3 * index + q)
        columns.append(base[name] * (wave if name != "F" else 1.0 - 0.1 * np.cos(index + q)))
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("rule", ["locf", "nocb"])
@pytest.mark.parametrize("model", MODELS)
def test_segments_against_oracle_and_jacobian(model, rule):
    """Every parameter (tlag and F included) changes between segments; values match the
    oracle with per-record parameters, Jacobians match finite differences."""
    df = tv_table(model)
    design = engine_design(
        load_dataset(df), model, declared=("tlag", "F"), covariates=("WT",), time_varying=rule, points="all"
    )
    assert design.max_seg > 5 and not design.constant_within_subject
    matrix = segment_params(design, model)
    f, jac = predict_numeric(design, matrix)
    seg = segment_of_record(design, len(df))
    per_record = {name: matrix[seg, q] for q, name in enumerate(design.columns)}
    expected = oracle_records(df, model, per_record, points="all", time_varying=rule)
    np.testing.assert_allclose(f, expected, rtol=1e-8, atol=1e-12)
    assert_jacobian(design, matrix, jac)


# ----------------------------------------------------------------------------- (d) lag and F at steady state

SS_LAG_RECORDS = [
    dict(TIME=0.0, EVID=1, AMT=100.0, SS=1.0, II=12.0, WT=70.0),  # lag 14 or 30 > II
    dict(TIME=1.0, WT=70.0),
    dict(TIME=3.0, WT=70.0),
    dict(TIME=10.0, WT=75.0),
    dict(TIME=15.0, WT=75.0),
    dict(TIME=20.0, WT=75.0),
    dict(TIME=31.0, WT=75.0),
    dict(TIME=40.0, WT=75.0),
    dict(TIME=48.0, EVID=1, AMT=100.0, RATE=10.0, SS=1.0, II=8.0, WT=80.0),  # lag + duration > II
    dict(TIME=50.0, WT=80.0),
    dict(TIME=53.0, WT=80.0),
    dict(TIME=57.0, WT=85.0),
    dict(TIME=61.0, WT=85.0),
    dict(TIME=70.0, WT=85.0),
    dict(TIME=72.0, EVID=1, AMT=60.0, SS=2.0, II=6.0, WT=90.0),  # on top, lag > II
    dict(TIME=73.0, WT=90.0),
    dict(TIME=75.0, WT=90.0),
    dict(TIME=80.5, WT=90.0),
    dict(TIME=91.0, WT=90.0),
]


@pytest.mark.parametrize("model", ["one_compartment_oral", "two_compartment_iv", "three_compartment_oral"])
def test_lag_and_f_at_steady_state(model):
    """Steady-state bolus, infusion and SS = 2 doses whose lag is longer than the
    interval (and, for the infusion, lag + duration too), in segments of their own."""
    df = table(SS_LAG_RECORDS, n_subjects=2)
    design = engine_design(load_dataset(df), model, declared=("tlag", "F"), covariates=("WT",))
    assert design.columns[-2:] == ("tlag", "F")
    matrix = segment_params(design, model)
    n = len(SS_LAG_RECORDS)
    # lag of each dose's segment, by subject: II 12, 8 and 6; none a multiple of II
    lags = {0: (14.0, 30.0), 8: (9.5, 17.5), 14: (14.0, 27.5)}
    for row, (first, second) in lags.items():
        matrix[design.seg_row == row, -2] = first
        matrix[design.seg_row == row + n, -2] = second
    matrix[:, -1] = np.where(design.seg_subject == 0, 0.8, 0.6)
    f, jac = predict_numeric(design, matrix)
    seg = segment_of_record(design, len(df))
    per_record = {name: matrix[seg, q] for q, name in enumerate(design.columns)}
    expected = oracle_records(df, model, per_record)
    np.testing.assert_allclose(f, expected, rtol=1e-8, atol=1e-12)
    assert_jacobian(design, matrix, jac)
    # the lags and F of the steady-state doses act, each through its own segment
    tlag, bio = design.columns.index("tlag"), design.columns.index("F")
    first = np.searchsorted(design.seg_subject, np.arange(design.n_subjects))
    for row in lags:
        for subject in range(2):
            s = np.flatnonzero(design.seg_row == row + subject * n)[0] - first[subject]
            assert np.abs(jac[:, s, tlag]).max() > 1e-3 * np.abs(f).max()
            assert np.abs(jac[:, s, bio]).max() > 1e-3 * np.abs(f).max()


@pytest.mark.parametrize("rate", [0.0, 25.0])
def test_lag_multiple_of_interval_at_steady_state(rate):
    """A steady-state dose whose lag is 0, II or 2 II: predictions are smooth in the lag
    (the regimen only shifts) and the Jacobian is their derivative (from the right at
    0)."""
    df = table([dict(TIME=0.0, EVID=1, AMT=100.0, RATE=rate, SS=1.0, II=6.0), dict(TIME=1.0), dict(TIME=5.0)])
    design = engine_design(load_dataset(df), "one_compartment_oral", declared=("tlag",))
    for lag in (0.0, 6.0, 12.0):
        matrix = np.array([[1.2, 2.0, 10.0, lag]])
        f, jac = predict_numeric(design, matrix)
        expected = oracle_records(df, "one_compartment_oral", dict(ka=1.2, CL=2.0, V=10.0, tlag=lag))
        np.testing.assert_allclose(f, expected, rtol=1e-8)
        h = np.array([[0.0, 0.0, 0.0, 1e-5]])
        up, down = predict_numeric(design, matrix + h)[0], predict_numeric(design, matrix - h)[0]
        fd = (up - down) / 2e-5 if lag > 0 else (-3 * f + 4 * up - predict_numeric(design, matrix + 2 * h)[0]) / 2e-5
        np.testing.assert_allclose(jac[:, 0, 3], fd, rtol=1e-6, err_msg=f"tlag = {lag}")


# ----------------------------------------------------------------------------- oracle self-check


def test_oracles_agree_with_constant_parameters():
    """The per-record oracle with constant parameters is the superposition oracle."""
    model = "two_compartment_oral"
    records = [
        dict(TIME=0.0, EVID=1, AMT=100.0, ADDL=3.0, II=6.0),
        dict(TIME=2.0),
        dict(TIME=6.0),
        dict(TIME=6.5, EVID=3),
        dict(TIME=7.0),
        dict(TIME=8.0, EVID=1, AMT=40.0, RATE=15.0, CMT=2.0, ADDL=1.0, II=4.0),
        dict(TIME=9.0),
        dict(TIME=13.0),
        dict(TIME=14.0, EVID=4, AMT=30.0, SS=2.0, II=5.0),
        dict(TIME=15.0),
        dict(TIME=20.0),
        dict(TIME=24.0, EVID=1, AMT=50.0, RATE=4.0, SS=1.0, II=12.0, ADDL=1.0),
        dict(TIME=24.0),
        dict(TIME=30.0),
        dict(TIME=45.0),
    ]
    df = table(records, n_subjects=2)
    params = {k: np.array([v, 0.7 * v]) for k, v in BASE[model].items()}
    params["tlag"], params["F"] = np.array([0.3, 7.0]), np.array([0.9, 0.7])
    expected = oracle_concentrations(df, model, params, points="all")
    per_record = {k: np.where(df["ID"] == 1.0, v[0], v[1]) for k, v in params.items()}
    np.testing.assert_allclose(oracle_records(df, model, per_record, points="all"), expected, rtol=1e-8, atol=1e-12)
    got, _ = predict_numeric(engine_design(load_dataset(df), model, declared=("tlag", "F"), points="all"), params)
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12)


def test_divided_differences_from_known_exponentials_equal_the_direct_ones():
    """The one-compartment oral transition's divided difference, computed from the two
    exponentials it already has (one expm1), equals the direct evaluation, near ka == k
    (series) and far from it, derivatives included."""
    from bayes_nlme.core.exp_integrals import _divided_known, _g, _q, _r

    def _divided(a, b, dt):  # the direct evaluation, from the larger exponential
        if a >= b:
            e, x = np.exp(-b * dt), (a - b) * dt
            return e * dt * _g(x), -e * dt * dt * _q(x), -e * dt * dt * _r(x)
        e, x = np.exp(-a * dt), (b - a) * dt
        return e * dt * _g(x), -e * dt * dt * _r(x), -e * dt * dt * _q(x)

    rng = np.random.default_rng(3)
    for _ in range(2000):
        a = float(np.exp(rng.normal(0.0, 1.5)))
        b = a * float(np.exp(rng.normal(0.0, 0.2 if rng.uniform() < 0.5 else 2.0)))
        dt = float(np.exp(rng.normal(0.0, 2.0)))
        direct = np.array(_divided(a, b, dt))
        known = np.array(_divided_known(a, b, dt, np.exp(-a * dt), np.exp(-b * dt)))
        np.testing.assert_allclose(known, direct, rtol=1e-12, atol=1e-300)


def test_eigen_decomposition_kinetics_equal_the_matrix_exponential():
    """Two- and three-compartment transitions (eigen-decomposition with Daleckii-Krein
    derivatives) equal the matrix exponential of Van Loan's block generator, over random
    parameters, intervals and input rates, near-coinciding rate constants included."""
    from bayes_nlme.core.kinetics import advance, expm, rate_matrix, workspace_size

    rng = np.random.default_rng(7)
    sizes = {2: (2, 4), 3: (3, 5), 4: (3, 6), 5: (4, 7)}
    for _trial in range(400):
        kind = int(rng.choice(list(sizes)))
        n, n_par = sizes[kind]
        p = np.exp(rng.normal(0.0, 1.2, n_par))
        dt = float(np.exp(rng.normal(0.0, 1.5)))
        a = rng.uniform(0.0, 10.0, n)
        r = np.where(rng.uniform(size=n) < 0.5, rng.uniform(0.0, 5.0, n), 0.0)
        a_new, phi, jp = np.zeros(n), np.zeros((n, n)), np.zeros((n, n_par))
        advance(kind, p, dt, a, r, a_new, phi, jp, n, n_par, np.full(workspace_size(n, n_par), np.nan))
        K, dK = np.zeros((n, n)), np.zeros((n_par, n, n))
        rate_matrix(kind, p, K, dK)
        m = 2 * n
        big = np.zeros((2 * m, 2 * m))
        big[:n, :n] = big[m : m + n, m : m + n] = K * dt
        big[:n, n:m] = big[m : m + n, m + n :] = np.eye(n) * dt
        for q in range(n_par):
            big[:n, m : m + n] = dK[q] * dt
            e = expm(big)
            scale = np.abs(e[:n, m : m + n]).max() * np.abs(a).max() + np.abs(e[:n, m + n :]).max() * np.abs(r).max()
            np.testing.assert_allclose(jp[:, q], e[:n, m : m + n] @ a + e[:n, m + n :] @ r, atol=1e-10 * scale)
        np.testing.assert_allclose(phi, e[:n, :n], atol=1e-12)
        np.testing.assert_allclose(a_new, e[:n, :n] @ a + e[:n, n:m] @ r, rtol=1e-10, atol=1e-12)
