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
# The maths is checked in PyTensor's fastest-compiling mode; test_backends_agree checks
# that the default (Numba) and C backends give the same values and gradients.
FAST = "FAST_COMPILE"
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
#
# Every case is a pair of subjects (the second gets twice the amounts and its own
# parameters). The cases of a suite are stacked into one dataset so that each model
# compiles one function per suite; each case is then checked on its own subjects.


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
        "multiple": ([dict(TIME=0.0, AMT=100.0), dict(TIME=6.0, AMT=50.0, RATE=20.0), dict(TIME=12.0, AMT=80.0)], OBS, (), {}),
        "addl": ([dict(TIME=0.0, AMT=100.0, ADDL=3.0, II=6.0), dict(TIME=12.0, AMT=60.0, RATE=30.0, ADDL=2, II=12.0)], OBS, (), {}),
        "ss_bolus": ([dict(TIME=0.0, AMT=100.0, SS=1.0, II=12.0)], OBS, (), {}),
        "ss_infusion": ([dict(TIME=0.0, AMT=100.0, RATE=25.0, SS=1.0, II=12.0)], OBS, (), {}),
        "ss_infusion_longer_than_ii": ([dict(TIME=0.0, AMT=100.0, RATE=100.0 / 30.0, SS=1.0, II=12.0, ADDL=2.0)], OBS, (), {}),
        "ss2_on_top": ([dict(TIME=0.0, AMT=100.0, SS=1.0, II=12.0, ADDL=1), dict(TIME=13.0, AMT=40.0, SS=2.0, II=8.0)], OBS, (), {}),
        "ss_constant_infusion": ([dict(TIME=0.0, AMT=0.0, RATE=10.0, SS=1.0), dict(TIME=12.0, AMT=50.0)], OBS, (), {}),
        "resets_evid3_evid4": (RESET_DOSES, OBS, RESET_EXTRA, {}),
    },
    "lag_f": {
        "lag_and_f": (LAG_DOSES, OBS + [0.75, 6.5, 7.0, 8.5, 31.0], (), {"tlag": [0.75, 1.3], "F": [0.6, 0.9]}),
        "ss_lag_shorter_than_ii": (SS_LAG_DOSES, OBS + [0.9, 25.0, 26.0, 40.0], (), {"tlag": [0.8, 0.4], "F": [0.7, 0.5]}),
        "ss_lag_longer_than_ii": (SS_LAG_DOSES, OBS + [0.9, 25.0, 26.0, 40.0], (), {"tlag": [14.0, 7.0], "F": [0.7, 0.5]}),
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
        df = frame(doses, obs=obs, extra=extra)
        df["ID"] += start
        frames.append(df)
        for key, value in dict(params_of(name), **extra_params).items():
            params.setdefault(key, []).extend(value)
        slices[name] = (start, start + 2)
        start += 2
    df = pd.concat(frames, ignore_index=True)
    df["ROW"] = np.arange(1, len(df) + 1)
    df["SUBJECT"] = (df["ID"] - 1).astype(int)
    assert all(len(v) == start for v in params.values()), "cases of a suite must give the same parameters"
    return df, {k: np.array(v, dtype=float) for k, v in params.items()}, slices


_RESULTS = {}


def suite_results(model, suite):
    """Concentrations (pk and ODE oracle) of every case of a suite, by case name."""
    key = (model, suite)
    if key not in _RESULTS:
        if suite == "coincide":  # each coinciding parameter set, without and with a lag
            cases = {
                f"{name}{tag}": (COINCIDE_DOSES, OBS, (), {"tlag": lag})
                for name, (m, _) in COINCIDE.items() if m == model
                for tag, lag in (("", [0.0, 0.0]), ("+lag", [0.5, 7.0]))
            }
            df, params, slices = _stack(cases, model, lambda name: COINCIDE[name.split("+")[0]][1])
            points = "observations"
        else:
            df, params, slices = _stack(SUITES[suite], model, lambda name: PARAMS[model])
            points = SUITE_POINTS[suite]
        design = build_event_design(df, model, points=points)
        got = predict_concentrations(design, params, mode=FAST)
        expected = oracle_concentrations(df, model, params, points=points)
        subject = design.point_subject
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
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    if case.startswith("resets"):
        assert np.any(got == 0.0)  # nothing is left right after the EVID 3 at t = 30


@pytest.mark.parametrize("case", [c + lag for c in COINCIDE for lag in ("", "+lag")])
def test_coinciding_rate_constants(case):
    model = COINCIDE[case.split("+")[0]][0]
    got, expected = suite_results(model, "coincide")[case]
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


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

GRAD_DOSES = [
    dict(TIME=0.0, AMT=100.0),
    dict(TIME=3.0, AMT=60.0, RATE=20.0),
    dict(TIME=8.0, AMT=50.0, ADDL=1.0, II=6.0),
    dict(TIME=24.0, AMT=80.0, RATE=30.0, SS=2.0, II=6.0),
    dict(TIME=24.0, AMT=30.0, SS=2.0, II=12.0),
    dict(TIME=30.0, AMT=0.0, RATE=5.0, SS=1.0),
]


def _gradient_params(model, lag_and_f=True):
    """Per-subject parameters: two generic subjects, then the coinciding cases."""
    sets = [PARAMS[model]] + [p for (m, p) in COINCIDE.values() if m == model]
    params = {k: np.concatenate([np.asarray(s[k], dtype=float) for s in sets]) for k in PARAMS[model]}
    n = len(params[next(iter(params))])
    if lag_and_f:
        params["tlag"] = np.linspace(0.3, 0.45, n)
        params["F"] = np.linspace(0.6, 0.8, n)
    return params


_GRADIENT_FUNCTIONS = {}
HESSIAN_DOSES = [dict(TIME=0.0, AMT=100.0), dict(TIME=3.0, AMT=60.0, RATE=20.0), dict(TIME=24.0, AMT=30.0, SS=2.0, II=12.0)]


def gradient_functions(model, doses=None, order=1):
    """Compiled functions of ``x``, which stacks the per-subject vectors of the sorted
    parameter names, for the objective ``sum(w * conc)``.

    Order 1: per-subject objectives (a vector) and the gradient. Order 2: the gradient
    and the Hessian-vector product. Subjects are independent, so the Hessian is block
    diagonal by subject and one product per parameter name gives every subject's column.
    """
    key = (model, order)
    if key not in _GRADIENT_FUNCTIONS:
        params = _gradient_params(model, lag_and_f=order == 1)
        n = len(params["CL"])
        df = frame(doses or GRAD_DOSES, obs=[0.5, 1.0, 2.0, 5.0, 9.0, 14.0, 20.0, 26.0, 40.0], n_subjects=n)
        design = build_event_design(df, model)
        names = sorted(params)
        x = pt.dvector("x")
        conc = concentrations(design, {name: x[i * n:(i + 1) * n] for i, name in enumerate(names)})
        weighted = conc * np.linspace(0.5, 1.5, design.n_points)
        grad = pytensor.grad(pt.sum(weighted), x)
        x0 = np.concatenate([params[name] for name in names])
        if order == 1:
            per_subject = pt.zeros(n)[design.point_subject].inc(weighted)
            functions = (pytensor.function([x], per_subject, mode=FAST), pytensor.function([x], grad, mode=FAST))
        else:
            v = pt.dvector("v")
            hvp = pytensor.grad(pt.sum(grad * v), x)
            functions = (pytensor.function([x], grad, mode=FAST), pytensor.function([x, v], hvp, mode=FAST))
        _GRADIENT_FUNCTIONS[key] = (names, n, x0, *functions)
    return _GRADIENT_FUNCTIONS[key]


def _direction(x0, n, i, step=1e-5):
    """Relative step on parameter ``i`` of every subject at once."""
    h = np.zeros_like(x0)
    h[i * n:(i + 1) * n] = step * x0[i * n:(i + 1) * n]
    return h


@pytest.mark.parametrize("model", MODELS)
def test_gradients_match_finite_differences(model):
    """Every parameter, every subject (incl. ka == k, ka == alpha, ka == beta exactly)."""
    names, n, x0, per_subject, gradient = gradient_functions(model)
    analytic = gradient(x0)
    assert np.all(np.isfinite(analytic))
    for i, name in enumerate(names):
        h = _direction(x0, n, i)
        fd = (per_subject(x0 + h) - per_subject(x0 - h)) / (2 * h[i * n:(i + 1) * n])
        np.testing.assert_allclose(analytic[i * n:(i + 1) * n], fd, rtol=1e-5, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("model", ORAL)
def test_second_derivatives_at_coincidence(model):
    """Hessian blocks finite, symmetric and equal to central differences of the gradient.

    Structural parameters only (a lag makes the second-order graph slow to compile).
    """
    names, n, x0, gradient, hvp = gradient_functions(model, HESSIAN_DOSES, order=2)
    k = len(names)
    columns = []
    for i, name in enumerate(names):
        e = np.zeros_like(x0)
        e[i * n:(i + 1) * n] = 1.0
        Hv = hvp(x0, e)
        assert np.all(np.isfinite(Hv)), name
        h = _direction(x0, n, i)
        fd = (gradient(x0 + h) - gradient(x0 - h)) / (2 * np.tile(h[i * n:(i + 1) * n], k))
        np.testing.assert_allclose(Hv, fd, rtol=1e-4, atol=1e-7, err_msg=name)
        columns.append(Hv.reshape(k, n))
    # block of subject s: H[a, b] = columns[b][a, s]; symmetric
    blocks = np.stack(columns, axis=1)  # (k, k, n)
    np.testing.assert_allclose(blocks, blocks.transpose(1, 0, 2), rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------- backends

BACKEND_DOSES = [
    dict(TIME=0.0, AMT=100.0),
    dict(TIME=3.0, AMT=60.0, RATE=20.0),
    dict(TIME=8.0, AMT=50.0, CMT=2.0),
]


def _backend_outputs(mode, grad=False):
    model = "one_compartment_oral"
    params = _gradient_params(model)
    n = len(params["F"])
    df = frame(BACKEND_DOSES, obs=[0.5, 2.0, 5.0, 9.0, 26.0], n_subjects=n)
    design = build_event_design(df, model)
    names = sorted(params)
    x = pt.dvector("x")
    conc = concentrations(design, {name: x[i * n:(i + 1) * n] for i, name in enumerate(names)})
    outputs = [conc, pytensor.grad(pt.sum(conc), x)] if grad else [conc]
    fn = pytensor.function([x], outputs, mode=mode)
    return fn(np.concatenate([params[name] for name in names]))


def test_backends_agree_default_numba():
    """The default backend (Numba) gives the values of the Python backend."""
    (got,), (ref,) = _backend_outputs(None), _backend_outputs(FAST)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", [None, FAST])
def test_exp_moment_kernel(mode):
    """ExpMoment (phi1) and its derivatives, in the default (Numba) and Python backends."""
    from scipy.integrate import quad

    from bayes_nlme.pk.exponentials import phi1

    xs = np.array([0.0, 1e-12, 1e-6, 1e-3, 0.3, 0.99999, 1.0, 1.5, 3.0, 10.0, 50.0, 700.0, -0.5, -1.5, -5.0])
    x = pt.dvector("x")
    outputs = [phi1(x)]
    for _ in range(3):
        outputs.append(pytensor.grad(pt.sum(outputs[-1]), x))
    got = pytensor.function([x], outputs, mode=mode)(xs)
    for order, values in enumerate(got):
        ref = [(-1) ** order * quad(lambda s: s**order * np.exp(-v * s), 0, 1, epsabs=0, epsrel=1e-13)[0] for v in xs]
        np.testing.assert_allclose(values, ref, rtol=1e-13, atol=0)


@pytest.mark.slow
def test_backends_agree_c():
    """The C backend (CVM) gives the values and gradients of the Python backend."""
    import warnings

    reference = _backend_outputs(FAST, grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PyTensor's BLAS notice for the C backend
        outputs = _backend_outputs("CVM", grad=True)
    for got, ref in zip(outputs, reference):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_backends_agree_numba_gradient():
    """The default backend (Numba) gives the gradients of the Python backend (slow when
    Numba's cache is cold)."""
    for got, ref in zip(_backend_outputs(None, grad=True), _backend_outputs(FAST, grad=True)):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)
