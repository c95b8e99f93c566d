"""Models defined by differential equations (CONTRACT 5.4): the spec, the generated
engine against closed forms and scipy, gradients, native Numba, bad input, and fits.

References: the closed-form one-compartment model of the core (itself checked against
``tests/ode_oracle.py``), and ``scipy.integrate.solve_ivp`` (LSODA, rtol 1e-11) for
Michaelis-Menten elimination. Each distinct ODE model compiles once per machine (about
two minutes cold, then loaded from the cache).
"""

from __future__ import annotations

import json
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp

from bayes_nlme.cli import main
from bayes_nlme.core import engine_design
from bayes_nlme.core.op import predict_numeric
from bayes_nlme.data import load_dataset
from bayes_nlme.errors import SpecError
from bayes_nlme.pk.models import model_of
from bayes_nlme.spec import load_model, parse_model, to_toml

ROOT = Path(__file__).resolve().parents[1]
MM_MODEL = ROOT / "models" / "oral_mm.toml"
COLUMNS = ["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "RATE", "II", "ADDL", "SS"]

ONE_CMT = '''
name = "one-compartment-ode"
structural = "ode"
[ode]
compartments = ["depot", "central"]
equations = """
d/dt(depot) = -ka * depot
d/dt(central) = ka * depot - CL / V * central
"""
bioavailability = { depot = "F" }
lag = { depot = "tlag" }
[outputs]
conc = { expression = "central / V" }
[parameters.ka]
typical = { lognormal = { median = 1.0, sigma = 0.5 } }
[parameters.CL]
typical = { lognormal = { median = 1.0, sigma = 0.5 } }
[parameters.V]
typical = { lognormal = { median = 1.0, sigma = 0.5 } }
[parameters.tlag]
typical = { lognormal = { median = 1.0, sigma = 0.5 } }
[parameters.F]
typical = { lognormal = { median = 1.0, sigma = 0.5 } }
[residual]
model = "additive"
add = { inverse_gamma = { alpha = 2.0, beta = 0.5 } }
'''

MM_TRUE = {"ka": 1.0, "V": 30.0, "Vmax": 10.0, "Km": 2.0}


def table(records, n_subjects=1):
    """Dataset from records (dicts, file order kept), repeated per subject (subject s
    gets ``1 + s`` times the amounts)."""
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
    return load_dataset(pd.DataFrame(rows)[COLUMNS].astype(float))


def matrix(design, values):
    return np.array([[values[c] for c in design.columns]] * design.n_segments)


def fd_jacobian(design, m, step=1e-6):
    """Central differences of the predictions (one subject per segment here)."""
    out = np.zeros((design.n_obs, design.n_segments, m.shape[1]))
    for s in range(design.n_segments):
        for q in range(m.shape[1]):
            h = np.zeros_like(m)
            h[s, q] = step * m[s, q]
            up, _ = predict_numeric(design, m + h)
            down, _ = predict_numeric(design, m - h)
            out[:, s, q] = (up - down) / (2 * h[s, q])
    return out


# ----------------------------------------------------------------------------- spec


def test_ode_spec_round_trip_and_parsed_system():
    spec = load_model(MM_MODEL)
    assert parse_model(tomllib.loads(to_toml(spec))) == spec
    system = spec.ode_system
    assert system.states == ("depot", "central")
    assert system.parameters == ("ka", "V", "Vmax", "Km")
    assert model_of(spec).compartments == {1: "depot", 2: "central"}


def test_power_binds_like_a_power():
    """``^`` is a power with the precedence of ``**`` (rxode2/R), not Python's xor."""
    from bayes_nlme.spec.expression import parse_expression

    assert parse_expression("k * a * (c / d)^g - k * a", "x") == parse_expression("k * a * (c / d)**g - k * a", "x")
    tree = parse_expression("-x^2", "x")
    assert tree == ("neg", ("pow", ("sym", "x"), ("num", 2.0)))


def _with(text, old, new):
    assert old in text
    return parse_model(tomllib.loads(text.replace(old, new)))


@pytest.mark.parametrize(
    "old, new, key, needle",
    [
        ("- CL / V * central", "- CLx / V * central", "ode.equations", "unknown name 'CLx'"),
        ("d/dt(depot) = -ka * depot\n", "", "ode.equations", "no d/dt line for compartment(s) depot"),
        ("d/dt(depot) = -ka * depot\n", "d/dt(depot) = -ka * depot\nd/dt(depot) = 0\n", "ode.equations", "twice"),
        ("d/dt(depot)", "d/dt(gut)", "ode.equations", "'gut' is not a compartment"),
        ('"central / V"', "\"__import__('os').system('echo hi')\"", "outputs.conc.expression", "unknown function"),
        ('"central / V"', '"central.real / V"', "outputs.conc.expression", "not allowed"),
        ("conc = {", "central = {", "outputs.central", "already a parameter, compartment"),
        ('{ depot = "F" }', '{ depot = "G" }', "ode.bioavailability.depot", "unknown parameter 'G'"),
        ('{ depot = "F" }', '{ gut = "F" }', "bioavailability.gut", "unknown compartment 'gut'"),
        ('lag = { depot = "tlag" }', "", "parameters.tlag", "used nowhere"),
    ],
)
def test_ode_spec_errors_name_the_key(old, new, key, needle):
    with pytest.raises(SpecError) as info:
        _with(ONE_CMT, old, new)
    assert info.value.key.startswith(key) or key in info.value.key, info.value.key
    assert needle in str(info.value)


def test_unknown_name_lists_the_declared_parameters():
    with pytest.raises(SpecError) as info:
        _with(ONE_CMT, "- CL / V * central", "- CLx / V * central")
    message = str(info.value)
    for name in ("CL", "F", "V", "ka", "tlag"):
        assert repr(name) in message or name in message


def test_ode_bad_input_exits_2_with_one_message(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(ONE_CMT.replace("- CL / V * central", "- CLx / V * central"))
    data = tmp_path / "d.csv"
    pd.DataFrame({"ID": [1, 1], "TIME": [0, 1], "DV": [".", 1.0], "AMT": [10, 0], "EVID": [1, 0]}).to_csv(
        data, index=False
    )
    assert main(["check", str(bad), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "CLx" in err and "Traceback" not in err and err.count("\n") <= 3


def test_ode_dose_into_missing_compartment_exits_2(tmp_path, capsys):
    data = tmp_path / "d.csv"
    pd.DataFrame(
        {"ID": [1, 1], "TIME": [0, 1], "DV": [".", 1.0], "AMT": [10, 0], "EVID": [1, 0], "CMT": [3, 2]}
    ).to_csv(data, index=False)
    assert main(["check", str(MM_MODEL), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "row 1" in err and "1 = depot, 2 = central" in err


# ----------------------------------------------------------------------------- engine

REGIMEN = [
    dict(TIME=0, AMT=100, EVID=1, CMT=1, II=12, ADDL=2),
    dict(TIME=0.25),
    dict(TIME=1),
    dict(TIME=3),
    dict(TIME=13),
    dict(TIME=30, AMT=50, EVID=1, CMT=2, RATE=20),
    dict(TIME=31),
    dict(TIME=34),
    dict(TIME=48, AMT=80, EVID=4, CMT=1, SS=1, II=8),
    dict(TIME=49),
    dict(TIME=55),
    dict(TIME=60, AMT=40, EVID=1, CMT=1, RATE=10, SS=1, II=12),
    dict(TIME=61),
    dict(TIME=70),
    dict(TIME=80, EVID=3),
    dict(TIME=80, AMT=30, EVID=1, CMT=2),
    dict(TIME=82),
]


def test_ode_one_compartment_equals_closed_form():
    """Bolus, ADDL, infusion, SS (bolus and infusion), lag, F and reset: predictions
    and Jacobians of the ODE equal the closed form to 1e-6 relative."""
    data = table(REGIMEN, 2)
    spec = parse_model(tomllib.loads(ONE_CMT))
    ode = engine_design(data, model_of(spec))
    closed = engine_design(data, "one_compartment_oral", declared=("tlag", "F"))
    values = dict(ka=1.2, CL=2.0, V=10.0, tlag=0.5, F=0.8)
    f_ode, j_ode = predict_numeric(ode, matrix(ode, values))
    f_cf, j_cf = predict_numeric(closed, matrix(closed, values))
    assert (f_cf > 0).sum() >= len(f_cf) - 2  # the first sample is inside the lag
    np.testing.assert_allclose(f_ode, f_cf, rtol=1e-6)
    order = [ode.columns.index(c) for c in closed.columns]
    scale = np.abs(j_cf).max(axis=(0, 1))
    np.testing.assert_allclose(j_ode[:, :, order], j_cf, rtol=1e-6, atol=1e-7 * scale.max())


def _mm_reference(p, doses, times, infusion=None):
    """Central concentration of the oral MM model by solve_ivp (rtol 1e-11).

    doses: (time, amount, compartment index); infusion: (start, end, rate, index)."""

    def rhs(t, y, rate):
        c = y[1] / p["V"]
        out = np.array([-p["ka"] * y[0], p["ka"] * y[0] - p["Vmax"] * c / (p["Km"] + c)])
        out += rate
        return out

    breaks = sorted({d[0] for d in doses} | ({infusion[0], infusion[1]} if infusion else set()) | {max(times)})
    y, t0, out = np.zeros(2), 0.0, {}
    for tb in breaks:
        rate = np.zeros(2)
        if infusion and infusion[0] <= t0 < infusion[1]:
            rate[infusion[3]] = infusion[2]
        if tb > t0:
            inside = [t for t in times if t0 < t <= tb]
            sol = solve_ivp(rhs, (t0, tb), y, args=(rate,), method="LSODA", rtol=1e-11, atol=1e-13, dense_output=True)
            for t in inside:
                out[t] = sol.sol(t)[1] / p["V"]
            y, t0 = sol.y[:, -1].copy(), tb
        for d in doses:
            if d[0] == tb:
                y[d[2]] += d[1]
    return np.array([out[t] for t in times])


MM_RECORDS = [
    dict(TIME=0, AMT=100, EVID=1, CMT=1, II=12, ADDL=2),
    *[dict(TIME=t) for t in (0.5, 1, 2, 4, 8, 12.5, 20)],
    dict(TIME=30, AMT=60, EVID=1, CMT=2, RATE=30),
    *[dict(TIME=t) for t in (30.5, 31, 33, 40, 50)],
]
MM_TIMES = [0.5, 1, 2, 4, 8, 12.5, 20, 30.5, 31, 33, 40, 50]


@pytest.mark.parametrize("solver", ["auto", "stiff"])
def test_michaelis_menten_matches_solve_ivp(solver):
    spec = load_model(MM_MODEL)
    spec = replace(spec, ode=replace(spec.ode, solver=solver))
    design = engine_design(table(MM_RECORDS), model_of(spec))
    assert design.cfg[0] == {"auto": 100, "stiff": 102}[solver]
    f, _ = predict_numeric(design, matrix(design, MM_TRUE))
    ref = _mm_reference(MM_TRUE, [(0, 100, 0), (12, 100, 0), (24, 100, 0)], MM_TIMES, infusion=(30, 32, 30, 1))
    np.testing.assert_allclose(f, ref, rtol=1e-6)


def test_michaelis_menten_gradients_match_finite_differences():
    records = [dict(TIME=0, AMT=100, EVID=1, CMT=1, II=12, ADDL=1), *[dict(TIME=t) for t in (1, 4, 13, 20)]]
    design = engine_design(table(records, 2), model_of(load_model(MM_MODEL)))
    m = matrix(design, MM_TRUE) * np.array([[1.0], [1.1]])
    _, jac = predict_numeric(design, m)
    fd = fd_jacobian(design, m)
    full = np.zeros_like(fd)
    for j in range(design.n_obs):
        full[j, design.obs_subject[j]] = jac[j, 0]
    np.testing.assert_allclose(full, fd, rtol=1e-5, atol=1e-8 * np.abs(fd).max())


def test_ode_engine_compiled_in_nopython_mode():
    """Every compiled overload of the generated engine (with the model's right-hand
    side, Jacobians and integrators compiled into it) is nopython code: no object-mode
    fallback."""
    design = engine_design(table(MM_RECORDS), model_of(load_model(MM_MODEL)))
    predict_numeric(design, matrix(design, MM_TRUE))
    module = sys.modules[design.engine_key]
    overloads = list(module.simulate.overloads.values())
    assert overloads
    assert all(not cres.objectmode for cres in overloads)


@pytest.mark.slow
def test_ode_engine_runs_native_in_numba():
    """The generated engine is nopython Numba code: it is callable from another njit
    function, which is impossible for object-mode code or a Python callback."""
    import numba

    design = engine_design(table(MM_RECORDS), model_of(load_model(MM_MODEL)))
    simulate = design.engine
    inputs = design.engine_inputs
    cfg = np.asarray(design.cfg)
    n_obs, max_seg, capacity = design.n_obs, design.max_seg, design.capacity

    @numba.njit
    def outer(params, recf, reci, recl, subj):
        f, _ = simulate(params, recf, reci, recl, subj, cfg, n_obs, max_seg, capacity)
        return f.sum()

    m = matrix(design, MM_TRUE)
    expected, _ = predict_numeric(design, m)
    assert outer(m, inputs["recf"], inputs["reci"], inputs["recl"], inputs["subj"]) == pytest.approx(expected.sum())


@pytest.mark.slow
def test_ode_op_runs_in_pytensor_numba_backend():
    """PyTensor's Numba backend (what nutpie compiles the log density with) runs the
    Op of an ODE model, with its gradient."""
    import pytensor
    import pytensor.tensor as pt

    from bayes_nlme.core.op import structural_predictions

    design = engine_design(table(MM_RECORDS), model_of(load_model(MM_MODEL)))
    m = matrix(design, MM_TRUE)
    expected, _ = predict_numeric(design, m)
    x = pt.dmatrix("x")
    f = structural_predictions(design, x)
    fn = pytensor.function([x], [f, pytensor.grad(f.sum(), x)], mode="NUMBA")
    value, grad = fn(m)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


# ----------------------------------------------------------------------------- front ends


def test_predict_cli_on_ode_model(tmp_path, capsys):
    data = tmp_path / "d.csv"
    rows = [dict(ID=1, TIME=0, DV=".", AMT=100, EVID=1, CMT=1, II=12, ADDL=2)]
    rows += [dict(ID=1, TIME=t, DV=1.0, AMT=0, EVID=0, CMT=2, II=0, ADDL=0) for t in MM_TIMES[:7]]
    pd.DataFrame(rows).to_csv(data, index=False)
    params = tmp_path / "p.json"
    params.write_text(json.dumps(MM_TRUE))
    out = tmp_path / "pred.csv"
    assert main(["predict", str(MM_MODEL), "--data", str(data), "--params", str(params), "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    ref = _mm_reference(MM_TRUE, [(0, 100, 0), (12, 100, 0), (24, 100, 0)], MM_TIMES[:7])
    np.testing.assert_allclose(frame.PRED[frame.EVID == 0], ref, rtol=1e-6)


def test_bundled_oral_mm_checks(capsys):
    assert main(["check", str(MM_MODEL), "--data", "oral_mm"]) == 0
    out = capsys.readouterr().out
    assert "subjects     40" in out and "observations 440" in out


@pytest.mark.slow
def test_focei_recovers_michaelis_menten_truth(tmp_path, capsys):
    out = tmp_path / "fit"
    assert main(["fit", str(MM_MODEL), "--data", "oral_mm", "--method", "focei", "--out", str(out), "--quiet"]) == 0
    summary = pd.read_csv(out / "summary.csv").set_index("parameter")
    fit = json.loads((out / "fit.json").read_text())
    assert fit["converged"]
    for name, value in (("theta_ka", 1.0), ("theta_V", 30.0), ("theta_Vmax", 10.0), ("theta_Km", 2.0)):
        row = summary.loc[name]
        assert np.isfinite(row["se"]) and row["se"] > 0, name
        assert abs(row["estimate"] - value) <= 2.5 * row["se"], (name, row["estimate"], row["se"])


@pytest.mark.slow
def test_nuts_recovers_michaelis_menten_truth(tmp_path, capsys):
    out = tmp_path / "fit"
    args = ["fit", str(MM_MODEL), "--data", "oral_mm", "--out", str(out), "--quiet"]
    # Km and Vmax are strongly correlated (40 subjects): with the diagonal mass matrix
    # R-hat on theta_Km was 1.06 at 4 x (300 + 300) and 1.025 at 4 x (800 + 800)
    settings = ["--draws", "500", "--tune", "500", "--chains", "4", "--seed", "1", "--adaptation", "low_rank"]
    assert main(args + settings) == 0
    summary = pd.read_csv(out / "summary.csv").set_index("parameter")
    assert summary["r_hat"].max() < 1.02
    # the truth within 2.5 posterior sds of the mean (a 90% interval per parameter misses
    # one of four by chance in a third of datasets: here theta_V's q95 is 29.97)
    for name, value in (("theta_ka", 1.0), ("theta_V", 30.0), ("theta_Vmax", 10.0), ("theta_Km", 2.0)):
        assert abs(summary.loc[name, "mean"] - value) <= 2.5 * summary.loc[name, "sd"], name
    info = json.loads((out / "fit.json").read_text())
    assert info["non_finite_log_density"] == 0  # solver failures during sampling, counted


IDR_MODEL = ROOT / "models" / "indirect_response.toml"
IDR_TRUE = {"ka": 1.0, "CL": 4.0, "V": 30.0, "R0": 100.0, "kout": 0.1, "Imax": 0.9, "IC50": 1.0}


def _idr_reference(p, doses, times, reset_at=None):
    """Response of the indirect-response model by solve_ivp; doses (time, amount) into
    the depot; a reset returns every state to its initial value (response R0)."""

    def rhs(t, y):
        c = y[1] / p["V"]
        return [
            -p["ka"] * y[0],
            p["ka"] * y[0] - p["CL"] / p["V"] * y[1],
            p["R0"] * p["kout"] * (1 - p["Imax"] * c / (p["IC50"] + c)) - p["kout"] * y[2],
        ]

    breaks = sorted({d[0] for d in doses} | ({reset_at} if reset_at is not None else set()) | {max(times)})
    y, t0, out = np.array([0.0, 0.0, p["R0"]]), 0.0, {}
    for tb in breaks:
        if tb > t0:
            sol = solve_ivp(rhs, (t0, tb), y, method="LSODA", rtol=1e-11, atol=1e-13, dense_output=True)
            for t in times:
                if t0 < t <= tb:
                    out[t] = sol.sol(t)[2]
            y, t0 = sol.y[:, -1].copy(), tb
        if tb == reset_at:
            y = np.array([0.0, 0.0, p["R0"]])
        for d in doses:
            if d[0] == tb:
                y[0] += d[1]
    return np.array([out[t] for t in times])


@pytest.mark.slow  # a third ODE model to compile cold (~40 s)
def test_indirect_response_initial_state_reset_and_gradients():
    """A parameter-dependent initial state (baseline R0), restored by a reset (EVID 3):
    predictions equal solve_ivp to 1e-6 and the Jacobian (R0 included) equals finite
    differences."""
    times = [1, 4, 12, 30, 50, 61, 70]
    records = [
        dict(TIME=0, AMT=100, EVID=1, CMT=1, II=24, ADDL=1),
        *[dict(TIME=t) for t in times[:5]],
        dict(TIME=60, EVID=3),
        dict(TIME=60, AMT=50, EVID=1, CMT=1),
        *[dict(TIME=t) for t in times[5:]],
    ]
    design = engine_design(table(records), model_of(load_model(IDR_MODEL)))
    m = matrix(design, IDR_TRUE)
    f, jac = predict_numeric(design, m)
    ref_a = _idr_reference(IDR_TRUE, [(0, 100), (24, 100)], times[:5])
    ref_b = _idr_reference(IDR_TRUE, [(60, 50)], times[5:], reset_at=60)
    np.testing.assert_allclose(f, np.concatenate([ref_a, ref_b]), rtol=1e-6)
    assert f.min() < 60  # the drug acts
    fd = fd_jacobian(design, m)
    np.testing.assert_allclose(jac[:, 0], fd[:, 0], rtol=1e-5, atol=1e-7 * np.abs(fd).max())
    assert np.abs(jac[:, 0, design.columns.index("R0")]).min() > 0.1


FRIBERG_MODEL = ROOT / "models" / "friberg.toml"
FRIBERG_TRUE = {"CL": 5.0, "V": 20.0, "circ0": 5.0, "MTT": 100.0, "gamma": 0.2, "slope": 0.1}


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["auto", "stiff"])
def test_friberg_matches_solve_ivp(solver):
    """Friberg myelosuppression (transit chain, feedback (circ0/circ)^gamma) after
    weekly infusions: predictions equal solve_ivp to 1e-6 relative."""
    p = FRIBERG_TRUE
    times = [24.0, 72.0, 168.0, 200.0, 300.0, 400.0, 500.0, 600.0]
    records = [dict(TIME=0, AMT=300, EVID=1, CMT=1, RATE=300, II=168, ADDL=2), *[dict(TIME=t) for t in times]]
    spec = load_model(FRIBERG_MODEL)
    spec = replace(spec, ode=replace(spec.ode, solver=solver))
    design = engine_design(table(records), model_of(spec))
    f, jac = predict_numeric(design, matrix(design, p))

    def rhs(t, y):
        rate = 300.0 if any(s <= t < s + 1.0 for s in (0.0, 168.0, 336.0)) else 0.0
        ktr = 4 / p["MTT"]
        drug = p["slope"] * y[0] / p["V"]
        prol = ktr * y[1] * (1 - drug) * (p["circ0"] / y[5]) ** p["gamma"] - ktr * y[1]
        return [rate - p["CL"] / p["V"] * y[0], prol, *(ktr * (y[i - 1] - y[i]) for i in range(2, 6))]

    y0 = [0.0] + [p["circ0"]] * 5
    bounds = [0.0, 1.0, 168.0, 169.0, 336.0, 337.0, 600.0]
    ref, y = {}, np.array(y0)
    for a, b in zip(bounds[:-1], bounds[1:]):
        sol = solve_ivp(rhs, (a, b), y, method="LSODA", rtol=1e-11, atol=1e-13, dense_output=True)
        for t in times:
            if a < t <= b:
                ref[t] = sol.sol(t)[5]
        y = sol.y[:, -1]
    np.testing.assert_allclose(f, [ref[t] for t in times], rtol=1e-6)
    assert f.min() < 0.85 * p["circ0"]  # the nadir
    assert np.all(np.isfinite(jac))


@pytest.mark.parametrize("model", ["three_compartment_iv", "three_compartment_oral"])
def test_three_compartment_predict_cli_matches_textbook_closed_form(tmp_path, capsys, model):
    """ADVAN11/12 through the command line equal the macro-constant closed form."""
    from test_core import closed_form_three

    values = dict(CL=2.0, V1=10.0, Q2=4.0, V2=30.0, Q3=1.0, V3=50.0)
    if model.endswith("oral"):
        values["ka"] = 1.2
    tables = "\n".join(f"[parameters.{k}]\ntypical = {{ lognormal = {{ median = 1.0, sigma = 1.0 }} }}" for k in values)
    path = tmp_path / "m.toml"
    path.write_text(
        f'name = "3cmt"\nstructural = "{model}"\n{tables}\n[residual]\nmodel = "additive"\n'
        "add = { inverse_gamma = { alpha = 2.0, beta = 0.5 } }\n"
    )
    times = [0.5, 1.0, 2.0, 6.0, 12.0, 24.0, 48.0]
    rows = [dict(ID=1, TIME=0.0, DV=".", AMT=100.0, EVID=1, CMT=1)]
    rows += [dict(ID=1, TIME=t, DV=1.0, AMT=0.0, EVID=0, CMT=2 if model.endswith("oral") else 1) for t in times]
    data = tmp_path / "d.csv"
    pd.DataFrame(rows).to_csv(data, index=False)
    params = tmp_path / "p.json"
    params.write_text(json.dumps(values))
    out = tmp_path / "pred.csv"
    assert main(["predict", str(path), "--data", str(data), "--params", str(params), "--out", str(out)]) == 0
    pred = pd.read_csv(out).PRED.to_numpy()[1:]
    np.testing.assert_allclose(pred, closed_form_three(model, values, 100.0, np.array(times)), rtol=1e-8)


STIFF_MODEL = '''
name = "fast-effect-site"
structural = "ode"
[ode]
compartments = ["depot", "central", "effect"]
equations = """
C = central / V
d/dt(depot) = -ka * depot
d/dt(central) = ka * depot - CL * C
d/dt(effect) = keo * (C - effect)
"""
solver = "auto"
[outputs]
ce = { expression = "effect" }
[parameters.ka]
typical = { lognormal = { median = 1.0, sigma = 0.5 } }
[parameters.CL]
typical = { lognormal = { median = 4.0, sigma = 0.5 } }
[parameters.V]
typical = { lognormal = { median = 30.0, sigma = 0.5 } }
[parameters.keo]
typical = { lognormal = { median = 1.0, sigma = 0.5 } }
[residual]
model = "additive"
add = { inverse_gamma = { alpha = 2.0, beta = 0.5 } }
'''
STIFF_TRUE = {"ka": 1.0, "CL": 4.0, "V": 30.0, "keo": 2e4}


@pytest.mark.slow  # one more ODE model to compile cold (~60 s)
def test_auto_detects_stiffness_early_and_stays_accurate():
    """A fast effect site (keo = 20000/h against hours of kinetics) is stiff: with
    ``solver = "auto"`` Dormand-Prince's stiffness test hands over to the stiff method
    after a few dozen steps (not the 3,000-step fallback), and the predictions equal
    solve_ivp (Radau, rtol 1e-11) to 1e-6; the Jacobian equals finite differences."""
    spec = parse_model(tomllib.loads(STIFF_MODEL))
    times = [0.5, 1, 2, 4, 8, 12, 24]
    records = [dict(TIME=0, AMT=100, EVID=1, CMT=1), *[dict(TIME=t) for t in times]]
    design = engine_design(table(records), model_of(spec))
    m = matrix(design, STIFF_TRUE)
    f, jac = predict_numeric(design, m)
    p = dict(STIFF_TRUE)

    def rhs(t, y):
        c = y[1] / p["V"]
        return [-p["ka"] * y[0], p["ka"] * y[0] - p["CL"] * c, p["keo"] * (c - y[2])]

    def effect(values):
        p.update(values)
        return solve_ivp(rhs, (0, 24), [100.0, 0, 0], method="Radau", rtol=1e-12, atol=1e-14, t_eval=times).y[2]

    sol = solve_ivp(rhs, (0, 24), [100.0, 0, 0], method="Radau", rtol=1e-11, atol=1e-13, t_eval=times)
    np.testing.assert_allclose(f, sol.y[2], rtol=1e-6)
    for q, name in enumerate(design.columns):  # central differences of the reference
        h = 1e-4 * STIFF_TRUE[name]
        ref = (effect({name: STIFF_TRUE[name] + h}) - effect({name: STIFF_TRUE[name] - h})) / (2 * h)
        p.update(STIFF_TRUE)
        np.testing.assert_allclose(jac[:, 0, q], ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max(), err_msg=name)
    # the detector itself, on the integrator: from the state at 1 h, over 1 h
    module = sys.modules[design.engine_key]
    work, mem, _, _ = module._workspace()
    y = np.zeros(module.M)
    y[:3] = np.interp(1.0, sol.t, sol.y[0]), np.interp(1.0, sol.t, sol.y[1]), np.interp(1.0, sol.t, sol.y[2])
    y[3 : 3 + 9 : 4] = 1.0
    steps = module._dopri(m[0], y, np.zeros(3), 1.0, module.NONSTIFF_STEPS, True, work, mem)
    assert steps == -2 and mem[module.T_REACHED] < 0.05
    nonstiff = module._dopri(m[0], y, np.zeros(3), 1.0, 10**6, False, work, mem)
    assert nonstiff > 1000  # what the explicit method alone would need


def test_prune_cache_keeps_the_most_recent_modules(tmp_path):
    import os

    from bayes_nlme.core.odegen import prune_cache

    (tmp_path / "__pycache__").mkdir()
    for k in range(6):
        name = f"bayes_nlme_ode_{k:020d}"
        (tmp_path / f"{name}.py").write_text("#")
        (tmp_path / "__pycache__" / f"{name}._f-10.py312.nbi").write_text("#")
        os.utime(tmp_path / f"{name}.py", (1000 + k, 1000 + k))
    (tmp_path / "other.py").write_text("#")
    removed = prune_cache(tmp_path, keep=3, protect="bayes_nlme_ode_00000000000000000000")
    assert sorted(removed) == [f"bayes_nlme_ode_{k:020d}" for k in (1, 2)]
    left = sorted(p.name for p in tmp_path.glob("*.py"))
    assert left == ["bayes_nlme_ode_00000000000000000000.py"] + [f"bayes_nlme_ode_{k:020d}.py" for k in (3, 4, 5)] + [
        "other.py"
    ]
    assert len(list((tmp_path / "__pycache__").iterdir())) == 4


@pytest.mark.slow  # compiles its own ODE model (~40 s cold)
def test_solver_failure_is_minus_infinity_not_an_error():
    """Where the integration fails (here the explicit method alone on a very stiff
    Michaelis-Menten elimination: more than its step limit), the predictions are NaN
    and the model's log density is -inf with a finite gradient, so that NUTS rejects the
    point instead of stopping; elsewhere the log density is unchanged."""
    from bayes_nlme.build.model import build

    spec = load_model(MM_MODEL)
    spec = replace(spec, ode=replace(spec.ode, solver="nonstiff"))
    data = table([dict(TIME=0, AMT=100, EVID=1, CMT=1), *[dict(TIME=t) for t in (1, 4, 12)]])
    design = engine_design(data, model_of(spec))
    f, _ = predict_numeric(design, matrix(design, dict(MM_TRUE, Vmax=1e6, Km=1e-6)))
    assert np.isnan(f).all()
    model = build(spec, data).model
    good = model.initial_point()
    bad = dict(good, theta_Vmax_log__=np.log(1e6), theta_Km_log__=np.log(1e-6))
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    assert np.isfinite(logp(good))
    assert logp(bad) == -np.inf
    assert np.all(np.isfinite(dlogp(bad)))
