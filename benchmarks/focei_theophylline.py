"""Benchmark of the frequentist path: FOCE-I on Theophylline, then scaling with subjects.

Run with ``python benchmarks/focei_theophylline.py`` (``--quick`` skips 1000 subjects).

Prints, for the bundled Theophylline data (12 subjects, 132 observations), the seconds
spent building and compiling the problem (``compile``) and the wall time of FOCE-I
from the start values to convergence, covariance step and diagnostics included
(``fit``; nlmixr2 publishes 0.2-1.5 s, the target here is < 2 s). Then it fits FOCE-I
to simulated one-compartment oral data (8 observations per subject) with 100, 300
and 1000 subjects and prints the seconds per outer iteration and per objective
evaluation (EBEs solved, OFV and exact gradient).
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bayes_nlme.estimation import estimate  # noqa: E402
from bayes_nlme.spec import load_model, parse_model  # noqa: E402

MODEL = ROOT / "tests" / "data" / "theophylline_focei.toml"

SIM_MODEL = """
name = "simulated-oral"
structural = "one_compartment_oral"
[parameters.ka]
typical = { lognormal = { median = 1.5, sigma = 1.0 } }
[parameters.CL]
typical = { lognormal = { median = 2.5, sigma = 1.0 } }
[parameters.V]
typical = { lognormal = { median = 30.0, sigma = 1.0 } }
[residual]
model = "combined"
"""


def simulate(n: int, seed: int = 1) -> pd.DataFrame:
    """One-compartment oral data: dose 100, IIV 30% CV, combined error."""
    rng = np.random.default_rng(seed)
    times = np.array([0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0])
    ka, cl, v = (np.array([1.5, 2.5, 30.0]) * np.exp(rng.normal(0.0, 0.3, (n, 3)))).T
    k = cl / v
    c = 100.0 * (ka / (v * (ka - k)))[:, None] * (np.exp(-k[:, None] * times) - np.exp(-ka[:, None] * times))
    y = c + np.sqrt(0.01 + 0.02 * c**2) * rng.normal(size=c.shape)
    ids = np.arange(1, n + 1)
    dose = pd.DataFrame({"ID": ids, "TIME": 0.0, "AMT": 100.0, "DV": np.nan, "EVID": 1, "MDV": 1})
    obs = pd.DataFrame(
        {"ID": np.repeat(ids, len(times)), "TIME": np.tile(times, n), "AMT": 0.0, "DV": y.ravel(), "EVID": 0, "MDV": 0}
    )
    return (
        pd.concat([dose, obs])
        .sort_values(["ID", "TIME", "EVID"], ascending=[True, True, False], kind="stable")
        .reset_index(drop=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 1000-subject run")
    args = parser.parse_args()

    spec = load_model(MODEL)
    fit = estimate(spec, "theophylline", method="focei")
    print("Theophylline FOCE-I (12 subjects, 132 observations)")
    print(f"  compile (first fit)   {fit.seconds_compile:7.2f} s")
    print(
        f"  fit to convergence    {fit.seconds_fit:7.2f} s  (OFV {fit.ofv:.3f}, {fit.n_iterations} iterations, "
        f"{fit.info['n_evaluations']} evaluations, converged={fit.converged})"
    )
    again = estimate(spec, "theophylline", method="focei")
    print(f"  second fit            {again.seconds_fit:7.2f} s  (compile {again.seconds_compile:.2f} s, kernel reused)")
    print(fit.summary().to_string(index=False, float_format=lambda x: f"{x:.4g}"))

    sim_spec = parse_model(tomllib.loads(SIM_MODEL))
    print("\nScaling, FOCE-I, simulated 1-cmt oral, 8 observations per subject")
    print(
        f"{'subjects':>9} {'obs':>6} {'compile s':>10} {'fit s':>8} {'iter':>5} {'evals':>6} "
        f"{'s/iter':>8} {'s/eval':>8} {'OFV':>12}"
    )
    for n in (100, 300) if args.quick else (100, 300, 1000):
        data = simulate(n)
        started = time.perf_counter()
        res = estimate(sim_spec, data, method="focei")
        total = time.perf_counter() - started
        n_eval = res.info["n_evaluations"]
        fit_s = res.seconds_fit
        print(
            f"{n:9d} {res.n_obs:6d} {res.seconds_compile:10.2f} {fit_s:8.2f} {res.n_iterations:5d} "
            f"{n_eval:6d} {fit_s / max(res.n_iterations, 1):8.3f} {fit_s / n_eval:8.4f} "
            f"{res.ofv:12.3f}   (total {total:.1f} s, converged={res.converged})"
        )


if __name__ == "__main__":
    main()
