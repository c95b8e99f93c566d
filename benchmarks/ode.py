"""Models defined by differential equations: cost against closed forms, and fits.

Prints

1. the cost of one evaluation of the structural predictions with their exact
   Jacobian (what the log density and its gradient need from the model), per subject,
   for the linear one-compartment oral model written as an ODE against its closed form
   (120 subjects, 15 observations, one dose); target <= 5x;
2. with ``--nuts``: an end-to-end NUTS fit of the bundled oral Michaelis-Menten model
   on a simulated study of 120 subjects and 1,800 observations (scipy simulation,
   independent of the package), with the wall time, the largest R-hat and the truth
   against the 90% intervals; target <= 15 minutes on 2 cores, R-hat <= 1.01.

The comparison with Stan on the Michaelis-Menten model is ``benchmarks/ode_stan.py``.
Not yet available (issue 12): a Friberg NUTS fit here (the model and its dataset
``friberg`` are bundled) and its comparison with Stan.

Measured (2-core machine shared with other jobs, load 6-8; each run interleaves closed
form and ODE, three rounds, and the before/after runs alternate, three times each):
before (main at bb6d31f, rtol 1e-9) closed form 3.8-4.0 us, ODE 158-186 us per subject,
ratio 41-47x; after (branch odeengine, default rtol 1e-7) closed form 3.9-4.1 us, ODE
27.4-28.0 us, ratio 6.7-7.2x (target 5x not met). Accuracy at the new default: the
bundled models' predictions match solve_ivp to 1e-6 (tests/test_ode.py); on this
benchmark's model the ODE predictions and Jacobian equal the closed form to 4e-9 and
1.3e-8 relative. Session 8 (quiet machine, after the closed-form engine became 2x faster
through borrowed arrays): closed form 2.3 us, ODE 26.6 us per subject, ratio 11.7x
(11.5-12.0): the ODE's cost is the integration itself (Dormand-Prince stages of the state
with its sensitivities), which the engine change did not touch.

NUTS fit measured (session 7, quiet 2-core machine, ``--nuts --no-cost --adaptation
low_rank``, 4 x (1000 + 1000)): 25.2 min end to end (target 15: NOT met), R-hat 1.005,
no divergences, min bulk ESS 3343, every truth inside its 90% interval. (With ``diag``
adaptation the 40-subject bundled study mixed Km and Vmax slowly: R-hat 1.025 at 4 x
(800 + 800).)

Run: ``python benchmarks/ode.py [--nuts] [--subjects N] [--adaptation low_rank] [--no-cost]``.
"""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

from bayes_nlme.core import engine_design
from bayes_nlme.core.op import predict_numeric
from bayes_nlme.data import load_dataset
from bayes_nlme.pk.models import model_of
from bayes_nlme.spec import load_model, parse_model

ROOT = Path(__file__).resolve().parents[1]
TIMES = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0, 24.0, 36.0)
ONE_CMT_ODE = '''
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
typical = { lognormal = { median = 4.0, sigma = 0.5 } }
[parameters.V]
typical = { lognormal = { median = 70.0, sigma = 0.5 } }
[parameters.tlag]
typical = { lognormal = { median = 1.0, sigma = 0.5 } }
[parameters.F]
typical = { lognormal = { median = 1.0, sigma = 0.5 } }
[residual]
model = "additive"
add = { inverse_gamma = { alpha = 2.0, beta = 0.5 } }
'''


def design_table(n_subjects: int, times=TIMES, doses: int = 1, ii: float = 12.0) -> pd.DataFrame:
    rows = []
    for i in range(n_subjects):
        rows.append(
            {
                "ID": i + 1,
                "TIME": 0.0,
                "AMT": 100.0,
                "II": ii if doses > 1 else 0.0,
                "ADDL": doses - 1,
                "DV": np.nan,
                "CMT": 1,
            }
        )
        rows += [{"ID": i + 1, "TIME": t, "AMT": 0.0, "II": 0.0, "ADDL": 0, "DV": 1.0, "CMT": 2} for t in times]
    return pd.DataFrame(rows)


def seconds_per_call(design, params: dict, repeats: int = 5, calls: int = 5) -> float:
    """Median CPU seconds of one engine evaluation (predictions and Jacobian)."""
    matrix = np.tile([params[c] for c in design.columns], (design.n_segments, 1))
    predict_numeric(design, matrix)
    out = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            predict_numeric(design, matrix)
        out.append((time.process_time() - start) / calls)
    return float(np.median(out))


def cost_ratio(n_subjects: int = 120, rounds_n: int = 5) -> None:
    data = load_dataset(design_table(n_subjects))
    params = {"ka": 1.0, "CL": 4.0, "V": 70.0, "tlag": 0.25, "F": 0.9}
    closed = engine_design(data, "one_compartment_oral", declared=("tlag", "F"))
    ode = engine_design(data, model_of(parse_model(tomllib.loads(ONE_CMT_ODE))))
    rounds = []  # interleaved, so that both see the same machine load
    for _ in range(rounds_n):
        t_closed = seconds_per_call(closed, params)
        t_ode = seconds_per_call(ode, params)
        rounds.append((t_closed, t_ode, t_ode / t_closed))
    t_closed, t_ode, ratio = np.median(np.array(rounds), axis=0)
    print("1. predictions + exact Jacobian, one-compartment oral, per subject")
    print(
        f"   closed form {1e6 * t_closed / n_subjects:9.1f} us   ODE {1e6 * t_ode / n_subjects:9.1f} us   "
        f"ratio {ratio:6.1f}x (median of {rounds_n} interleaved rounds; ratios "
        f"{' '.join(f'{r:.1f}' for *_, r in rounds)}; target <= 5x)"
    )


def mm_study(n_subjects: int, seed: int = 1) -> tuple[pd.DataFrame, dict]:
    """Oral MM study: 100 mg every 12 h (3 doses), 15 samples per subject (scipy)."""
    truth = {"ka": 1.0, "V": 30.0, "Vmax": 10.0, "Km": 2.0, "omega": 0.09, "prop": 0.1}
    times = np.array([0.5, 1, 2, 3, 4, 6, 8, 11.5, 13, 16, 23.5, 25, 28, 32, 36])
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_subjects):
        p = {k: truth[k] * np.exp(rng.normal(0, np.sqrt(truth["omega"]))) for k in ("ka", "V", "Vmax")}
        p["Km"] = truth["Km"]

        def rhs(t, y, p=p):
            c = y[1] / p["V"]
            return [-p["ka"] * y[0], p["ka"] * y[0] - p["Vmax"] * c / (p["Km"] + c)]

        y, conc = np.zeros(2), []
        for start, end in ((0, 12), (12, 24), (24, 36)):
            y[0] += 100.0
            inside = times[(times > start) & (times <= end)]
            sol = solve_ivp(rhs, (start, end), y, t_eval=inside, rtol=1e-10, atol=1e-12, method="LSODA")
            conc += list(sol.y[1] / p["V"])
            y = solve_ivp(rhs, (start, end), y, rtol=1e-10, atol=1e-12, method="LSODA").y[:, -1]
        rows.append({"ID": i + 1, "TIME": 0.0, "DV": np.nan, "AMT": 100.0, "EVID": 1, "CMT": 1, "II": 12, "ADDL": 2})
        for t, c in zip(times, conc):
            dv = c * (1 + truth["prop"] * rng.normal())
            rows.append({"ID": i + 1, "TIME": t, "DV": dv, "AMT": 0.0, "EVID": 0, "CMT": 2, "II": 0, "ADDL": 0})
    return pd.DataFrame(rows), truth


def nuts_fit(n_subjects: int, adaptation: str = "diag") -> None:
    from bayes_nlme.fit import sample

    frame, truth = mm_study(n_subjects)
    spec = load_model(ROOT / "models" / "oral_mm.toml")
    start = time.perf_counter()
    fit = sample(spec, load_dataset(frame), draws=1000, tune=1000, chains=4, seed=1, adaptation=adaptation)
    seconds = time.perf_counter() - start
    summary = fit.summary()
    n_obs = int((frame.EVID == 0).sum())
    print(f"2. NUTS, oral Michaelis-Menten, {n_subjects} subjects, {n_obs} observations, adaptation {adaptation}")
    print(f"   wall {seconds / 60:.1f} min (target <= 15), max R-hat {summary['r_hat'].max():.4f} (target <= 1.01)")
    for name, value in (
        ("theta_ka", truth["ka"]),
        ("theta_V", truth["V"]),
        ("theta_Vmax", truth["Vmax"]),
        ("theta_Km", truth["Km"]),
        ("sigma2_prop", truth["prop"] ** 2),
    ):
        row = summary.loc[summary["parameter"] == name].iloc[0]
        inside = row["q5"] <= value <= row["q95"]
        print(
            f"   {name:<12} truth {value:8.4f}  median {row['median']:8.4f}  90% [{row['q5']:.4f}, "
            f"{row['q95']:.4f}] {'inside' if inside else 'OUTSIDE'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nuts", action="store_true", help="also run the 120-subject NUTS fit (long)")
    parser.add_argument("--subjects", type=int, default=120)
    parser.add_argument("--adaptation", default="diag", help="nutpie's mass matrix adaptation for --nuts")
    parser.add_argument("--no-cost", action="store_true", help="skip the cost ratio (1.)")
    args = parser.parse_args()
    if not args.no_cost:
        cost_ratio(args.subjects)
    if args.nuts:
        nuts_fit(args.subjects, args.adaptation)
    print("3. Friberg NUTS fit: not here yet (models/friberg.toml with the bundled dataset `friberg`)")
    print("4. comparison with Stan: benchmarks/ode_stan.py (Michaelis-Menten)")


if __name__ == "__main__":
    main()
