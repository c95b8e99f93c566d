"""Benchmark of SAEM on Theophylline (issue 14: target <= 5 s warm; nlmixr2 reports 3.6 s).

Run with ``python benchmarks/saem.py [--repeats N]``.

Fits ``tests/data/theophylline_focei.toml`` (one compartment, additive error, diagonal
omega) to the bundled Theophylline data by SAEM with the default settings (200 + 300
iterations, 3 chains per subject), after one warm-up fit (Numba's cache
loaded, the problem's kernel compiled). For each repeat it prints the seconds of the
SAEM iterations alone (``saem``) and of the whole fit (``fit``: SAEM, the conditional
modes, the linearised covariance step and the importance-sampling OFV with 3000
samples per subject), and the estimates against nlmixr2's published SAEM fit. The
machine's load average is printed too: on a shared machine the wall times scale with it;
the process's CPU time of the whole fit (``CPU``) is what a quiet machine would take.

Then it prints the CPU time of one call of the model core on the chains' problem (36
subjects) with the Jacobian (``predict_numeric``, what the FOCE-I steps use) and values
only (``predict_values``, what SAEM's Metropolis steps and importance sampling use), and
the number of such calls in one fit: the rest of the time is SAEM's own NumPy work.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bayes_nlme.core import op  # noqa: E402
from bayes_nlme.core.op import predict_numeric, predict_values  # noqa: E402
from bayes_nlme.estimation import estimate  # noqa: E402
from bayes_nlme.estimation.estimator import build_problem  # noqa: E402
from bayes_nlme.estimation.parameters import start_values  # noqa: E402
from bayes_nlme.estimation.saem import replicate  # noqa: E402
from bayes_nlme.spec import load_model  # noqa: E402

MODEL = ROOT / "tests" / "data" / "theophylline_focei.toml"
NLMIXR2 = {"theta_ka": 1.57, "theta_CL": 2.77, "theta_V": 31.5}


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    spec = load_model(MODEL)
    estimate(spec, "theophylline", method="saem", seed=0, saem={"n_burn": 5, "n_em": 5, "is_samples": 50})
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for seed in range(1, args.repeats + 1):
        started, cpu = time.perf_counter(), time.process_time()
        fit = estimate(spec, "theophylline", method="saem", seed=seed)
        total = time.perf_counter() - started - fit.seconds_compile
        cpu = time.process_time() - cpu
        value = fit.value
        cv = {n: 100 * np.sqrt(np.exp(value[f"omega_{n}_{n}"]) - 1) for n in ("ka", "CL", "V")}
        print(
            f"seed {seed}: saem {fit.info['saem']['seconds']:.2f} s (CPU {fit.info['saem']['cpu_seconds']:.2f} s), "
            f"fit {total:.2f} s (CPU {cpu:.2f} s) | "
            + " ".join(f"{k[6:]} {value[k]:.4g} ({100 * (value[k] / ref - 1):+.1f}%)" for k, ref in NLMIXR2.items())
            + " | CV% "
            + " ".join(f"{n} {v:.1f}" for n, v in cv.items())
            + f" | add SD {np.sqrt(value['sigma2_add']):.3f} | IS OFV {fit.ofv:.2f} +- {fit.info['ofv_mcse']:.2f}"
        )

    engine_cost(spec)


def engine_cost(spec, calls: int = 2000) -> None:
    """CPU time per call of the model core, with and without the Jacobian."""
    problem, dataset = build_problem(spec, "theophylline")[:2]
    chained = build_problem(spec, replicate(dataset, 3))[0]
    start = start_values(spec, problem.y)
    psi = problem.pmap.pack(start["theta"], start["betas"], start["omega"], start["sigma2"], start["iov"])
    kernel = chained.kernel
    params = kernel._params(chained.log_parameters(psi, None)[0])
    for name, call in (("with Jacobian", predict_numeric), ("values only", predict_values)):
        call(kernel.design, params)
        cpu = time.process_time()
        for _ in range(calls):
            call(kernel.design, params)
        per_call = (time.process_time() - cpu) / calls
        print(f"model core, {chained.n_subjects} subjects, {name}: {1e3 * per_call:.3f} ms CPU per call")
    counts = {"values only": 0, "with Jacobian": 0}

    def counted(function, name):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return function(*args, **kwargs)

        return wrapper

    op.predict_values = counted(predict_values, "values only")
    op.predict_numeric = counted(predict_numeric, "with Jacobian")
    try:
        started, cpu = time.perf_counter(), time.process_time()
        estimate(spec, "theophylline", method="saem", seed=1)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - started
    finally:
        op.predict_values, op.predict_numeric = predict_values, predict_numeric
    print(f"calls of the model core in one fit ({wall:.2f} s, CPU {cpu:.2f} s): {counts}")


if __name__ == "__main__":
    main()
