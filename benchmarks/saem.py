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

from bayes_nlme.estimation import estimate  # noqa: E402
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


if __name__ == "__main__":
    main()
