"""The time ``t`` in ODE equations (CONTRACT 5.4: ``t`` is the dataset's ``TIME``).

A PK model with auto-induction (clearance rising with time, ``CL0 (1 + IND (1 -
exp(-kenz t)))``) drives an indirect response on a baseline that progresses linearly
with time (``R0 (1 + dp t)``, also the initial state, so a reset restarts the response
at the baseline of its own time). Reference: ``scipy.integrate.solve_ivp`` (LSODA, rtol
1e-11) written independently; Jacobians against central differences.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp

from bayes_nlme.cli import main
from bayes_nlme.core import engine_design
from bayes_nlme.core.op import predict_numeric
from bayes_nlme.data import load_dataset
from bayes_nlme.pk.models import model_of
from bayes_nlme.spec import parse_model

TIME_MODEL = '''
name = "autoinduction-progression"
structural = "ode"
[ode]
compartments = ["depot", "central", "response"]
equations = """
CL = CL0 * (1 + IND * (1 - exp(-kenz * t)))
C = central / V
base = R0 * (1 + dp * t)
d/dt(depot) = -ka * depot
d/dt(central) = ka * depot - CL / V * central
d/dt(response) = kout * base * (1 - Imax * C / (IC50 + C)) - kout * response
"""
initial = { response = "R0 * (1 + dp * t)" }
[outputs]
conc = { expression = "central / V", id = 1 }
effect = { expression = "response", id = 2 }
[parameters.ka]
fixed = 1.0
[parameters.CL0]
typical = { lognormal = { median = 2.0, sigma = 0.5 } }
[parameters.IND]
typical = { lognormal = { median = 1.0, sigma = 0.5 } }
[parameters.kenz]
typical = { lognormal = { median = 0.05, sigma = 0.5 } }
[parameters.V]
typical = { lognormal = { median = 20.0, sigma = 0.5 } }
[parameters.R0]
typical = { lognormal = { median = 100.0, sigma = 0.5 } }
[parameters.kout]
typical = { lognormal = { median = 0.2, sigma = 0.5 } }
[parameters.dp]
typical = { lognormal = { median = 0.005, sigma = 0.5 } }
[parameters.Imax]
fixed = 0.8
[parameters.IC50]
typical = { lognormal = { median = 2.0, sigma = 0.5 } }
[residual.conc]
model = "proportional"
prop = { inverse_gamma = { alpha = 2.0, beta = 0.02 } }
[residual.effect]
model = "additive"
add = { inverse_gamma = { alpha = 2.0, beta = 10.0 } }
'''

TRUE = {
    "ka": 1.0,
    "CL0": 2.0,
    "IND": 1.5,
    "kenz": 0.05,
    "V": 20.0,
    "R0": 100.0,
    "kout": 0.2,
    "dp": 0.005,
    "Imax": 0.8,
    "IC50": 2.0,
}
COLUMNS = ["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "DVID", "II", "ADDL", "SS"]
TIMES_A = [4.0, 8.0, 12.0, 30.0, 50.0]
TIMES_B = [61.0, 70.0, 90.0]


def _records(ss=0.0):
    rows = [dict(TIME=3.0, AMT=100.0, EVID=1, CMT=1, II=24.0, ADDL=1, SS=ss)]
    rows += [dict(TIME=t, DVID=d) for t in TIMES_A for d in (1, 2)]
    rows += [dict(TIME=60.0, EVID=3), dict(TIME=60.0, AMT=50.0, EVID=1, CMT=1)]
    rows += [dict(TIME=t, DVID=d) for t in TIMES_B for d in (1, 2)]
    out = []
    for rec in rows:
        row = dict(ID=1.0, DV=np.nan, AMT=0.0, EVID=0, MDV=0, CMT=np.nan, DVID=np.nan, II=0.0, ADDL=0.0, SS=0.0)
        row.update(rec)
        if row["EVID"] == 0:
            row["DV"] = 1.0
        else:
            row["MDV"] = 1
        out.append(row)
    return pd.DataFrame(out)[COLUMNS].astype(float)


def _reference(p):
    """Concentration and response at TIMES_A (doses at 3 and 27 h, the first record at
    3 h) and TIMES_B (reset and a 50 mg dose at 60 h), by solve_ivp."""

    def rhs(t, y):
        cl = p["CL0"] * (1 + p["IND"] * (1 - np.exp(-p["kenz"] * t)))
        c = y[1] / p["V"]
        base = p["R0"] * (1 + p["dp"] * t)
        return [
            -p["ka"] * y[0],
            p["ka"] * y[0] - cl / p["V"] * y[1],
            p["kout"] * base * (1 - p["Imax"] * c / (p["IC50"] + c)) - p["kout"] * y[2],
        ]

    def run(y, pieces, times):
        out = {}
        for (a, b), dose in pieces:
            y = y.copy()
            y[0] += dose
            sol = solve_ivp(rhs, (a, b), y, method="LSODA", rtol=1e-11, atol=1e-13, dense_output=True)
            for t in times:
                if a < t <= b:
                    out[t] = sol.sol(t)
            y = sol.y[:, -1]
        return [v for t in times for v in (out[t][1] / p["V"], out[t][2])]

    first = run(
        np.array([0.0, 0.0, p["R0"] * (1 + p["dp"] * 3.0)]), [((3.0, 27.0), 100.0), ((27.0, 50.0), 100.0)], TIMES_A
    )
    second = run(np.array([0.0, 0.0, p["R0"] * (1 + p["dp"] * 60.0)]), [((60.0, 90.0), 50.0)], TIMES_B)
    return np.array(first + second)


def _design(solver, rtol=None):
    spec = parse_model(tomllib.loads(TIME_MODEL))
    spec = replace(spec, ode=replace(spec.ode, solver=solver, rtol=rtol or spec.ode.rtol))
    return engine_design(load_dataset(_records()), model_of(spec))


# the stiff method (order 2) reaches 2.4e-6 here at the default rtol 1e-7 (6.2e-7 with
# the time terms switched off), 3.2e-7 at rtol 1e-9
@pytest.mark.parametrize(("solver", "rtol"), [("auto", None), ("stiff", 1e-9)])
def test_time_in_equations_and_initial_state_matches_solve_ivp(solver, rtol):
    design = _design(solver, rtol)
    m = np.array([[TRUE[c] for c in design.columns]] * design.n_segments)
    f, jac = predict_numeric(design, m)
    np.testing.assert_allclose(f, _reference(TRUE), rtol=1e-6)
    # the time terms matter: without them the predictions differ by far more than 1e-6
    frozen = _reference({**TRUE, "IND": 1e-12, "dp": 1e-12})
    assert np.max(np.abs(f / frozen - 1)) > 0.05
    assert np.all(np.isfinite(jac))


def test_time_model_jacobian_matches_finite_differences():
    design = _design("auto")
    m = np.array([[TRUE[c] for c in design.columns]] * design.n_segments)
    _, jac = predict_numeric(design, m)
    for q, name in enumerate(design.columns):
        if name in ("ka", "Imax"):
            continue
        h = np.zeros_like(m)
        h[:, q] = 1e-6 * m[:, q]
        up, _ = predict_numeric(design, m + h)
        down, _ = predict_numeric(design, m - h)
        fd = (up - down) / (2 * h[0, q])
        np.testing.assert_allclose(jac[:, 0, q], fd, rtol=2e-5, atol=1e-7 * np.abs(fd).max(), err_msg=name)


def test_steady_state_with_time_in_equations_exits_2(tmp_path, capsys):
    model = tmp_path / "model.toml"
    model.write_text(TIME_MODEL)
    data = tmp_path / "data.csv"
    _records(ss=1.0).to_csv(data, index=False, na_rep=".")
    assert main(["check", str(model), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "SS" in err and "'t'" in err and "row" in err
    assert "Traceback" not in err
