"""Benchmark of inter-occasion variability: the same fit with and without IOV.

Run with ``python benchmarks/iov.py`` (``--quick``: FOCE-I only; ``--subjects N``).

Data: :func:`bayes_nlme.data.simulated.simulate_iov_study` (40 subjects, 3 occasions,
8 samples per occasion, ``omega_iov_CL = 0.04``, ``omega_CL = 0.09``). Models: the
one-compartment oral model of ``tests/test_iov.py`` with ``iov`` on CL, and the same
model without it. Prints, for FOCE-I and NUTS (4 chains x (1000 + 1000), init from
FOCE-I), the time of the fit after compilation (FOCE-I: the median CPU time of 3 warm
fits, load-independent, with the median wall time as "total"; NUTS: the sampling wall
time, ``seconds_sample``, with the whole fit as "total"), and the ratio with / without
IOV, and for NUTS the leapfrog steps per draw (the ratio splits into steps and cost per
step). The issue's bound is a ratio of at most 2.

Measured (2-core machine shared with other jobs, 2026-12-07): NUTS with IOV 15.0 leapfrog
steps per draw, as without IOV, sampling ratio 1.24 (centred etas; the kappas' free
variable is the log occasion parameter). Before the occasion-level centring (free
``kappa_c``) it was 30.3 steps against 15.0, ratio 2.34. FOCE-I: 1.14 s CPU against 0.61 s,
ratio 1.86 (2.04 before the chain rule to the population parameters became one batched
matrix product). FOCE-I's cost grows with the random effects per subject: the kappa
slots add central differences of the engine's Jacobian (3 etas + 3 slots, where the
etas of parameters with IOV are sums of their slots) and each engine call carries
sensitivities for more parameter segments.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bayes_nlme.data.simulated import simulate_iov_study  # noqa: E402
from bayes_nlme.estimation import estimate  # noqa: E402
from bayes_nlme.spec import parse_model  # noqa: E402

MODEL = {
    "name": "iov-cl",
    "structural": "one_compartment_oral",
    "parameters": {
        "CL": {
            "typical": {"lognormal": {"median": 4.0, "sigma": 1.0}},
            "iov": {"inverse_gamma": {"alpha": 2.0, "beta": 0.05}},
        },
        "V": {"typical": {"lognormal": {"median": 70.0, "sigma": 1.0}}},
        "ka": {"typical": {"lognormal": {"median": 1.0, "sigma": 1.0}}},
    },
    "omega": {"prior": {"inverse_gamma": {"alpha": 2.0, "beta": 0.1}}},
    "residual": {"model": "proportional", "prop": {"half_normal": {"sigma": 0.5}}},
}


def _without_iov(spec):
    return dataclasses.replace(spec, parameters=tuple(dataclasses.replace(p, iov=None) for p in spec.parameters))


def _focei(spec, frame) -> tuple[float, float, float]:
    """Median of 3 warm fits: CPU time of the fit (this process, all threads), wall time, OFV."""
    estimate(spec, frame, method="focei", covariance=None)  # warm (kernel compiled)
    cpu, wall = [], []
    for _ in range(3):
        t0, w0 = time.process_time(), time.perf_counter()
        result = estimate(spec, frame, method="focei")
        cpu.append(time.process_time() - t0)
        wall.append(time.perf_counter() - w0)
    return float(np.median(cpu)), float(np.median(wall)), result.ofv


def _nuts(spec, frame, seed: int) -> tuple[float, float, float]:
    from bayes_nlme.fit import sample

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sample(spec, frame, draws=1000, tune=1000, chains=4, seed=seed, quiet=True)
    info = fit.info()
    table = fit.summary().set_index("parameter")
    steps = float(fit.tree["sample_stats"]["n_steps"].mean())
    print(
        f"  {'with' if spec.iov_names else 'without'} IOV: {steps:.1f} leapfrog steps per draw, "
        f"{info['seconds_sample'] / (steps * 4 * 1000) * 1e6:.1f} us of sampling wall time per leapfrog step "
        "of all chains, "
        f"centred: {fit.details.get('centered')}"
    )
    for name in ("omega_CL_CL", "omega_iov_CL"):
        if name in table.index:
            row = table.loc[name]
            print(f"  {name}: median {row['median']:.4f}, 90% interval [{row['q5']:.4f}, {row['q95']:.4f}]")
    return float(info["seconds_sample"]), float(info["seconds"]), float(table["r_hat"].max())


def main(argv=None) -> None:
    """Print the timings with and without IOV and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="FOCE-I only")
    parser.add_argument("--subjects", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    frame = simulate_iov_study(args.subjects, occasions=3)
    iov = parse_model(MODEL)
    plain = _without_iov(iov)
    print(f"{args.subjects} subjects, 3 occasions, {int((frame['EVID'] == 0).sum())} observations")
    rows = [("focei", _focei)] + ([] if args.quick else [("nuts", lambda s, f: _nuts(s, f, args.seed))])
    for method, run in rows:
        with_iov = run(iov, frame)
        without = run(plain, frame)
        label = "OFV" if method == "focei" else "max R-hat"
        # FOCE-I: CPU seconds of the fit (median of 3; total = wall); NUTS: sampling wall (total = whole fit)
        print(
            f"{method:6s} with IOV    {with_iov[0]:8.2f} s (total {with_iov[1]:7.2f} s, {label} {with_iov[2]:.4g})\n"
            f"{method:6s} without IOV {without[0]:8.2f} s (total {without[1]:7.2f} s, {label} {without[2]:.4g})\n"
            f"{method:6s} ratio with / without IOV: {with_iov[0] / without[0]:.2f} "
            f"(totals {with_iov[1] / without[1]:.2f}; bound 2)"
        )


if __name__ == "__main__":
    main()
