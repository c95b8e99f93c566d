"""Benchmark of a prior sensitivity study: local process pool vs sequential.

Run with ``python benchmarks/sensitivity_pool.py`` (``--draws``, ``--tune``, ``--chains``,
``--workers``; ``--quick`` for 100 + 100 draws).

A 6-variant study of the bundled Theophylline model: ``base``, every prior's spread
scaled by 0.5, 2 and 4, an LKJ omega prior and half-normal residual-variance priors
(three graph structures). Each study runs in a fresh Python process, after a first
process has put the three compiled structures in PyTensor's on-disk cache, so both
runs start alike: ``sequential`` fits the variants one after the other in one process
(``workers=1``), ``pool`` in ``--workers`` processes in parallel (default: all
cores; the calling process and ``workers - 1`` spawned ones).
Printed side by side: the wall time of ``run_sensitivity`` (and of the whole process,
Python start-up and imports included), the fresh compilations, and the ratio
sequential / pool (> 1: the pool is faster).

A fit runs its chains in parallel threads, so the sequential study already keeps
``chains`` cores busy, and each pool worker pays for its start-up and for loading the
compiled structures from the disk cache (seconds each). The pool wins when the
machine has more cores than a fit's chains use (``run_sensitivity``'s default pool
size is ``cpu_count // chains``); on a 2-core machine with 4 chains it cannot.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = ROOT / "models" / "theophylline.toml"
SCALES = (0.5, 2.0, 4.0)


def _child(args) -> None:
    """One study (or the cache warm-up) in this process; prints a JSON line."""
    from bayes_nlme.fit.sampling import compile_model
    from bayes_nlme.sensitivity import prior_variants, run_sensitivity
    from bayes_nlme.sensitivity.runner import BACKEND, _centred, structure_groups
    from bayes_nlme.spec import load_model

    warnings.simplefilter("ignore")
    spec = load_model(MODEL)
    started = time.perf_counter()
    if args.child == "warm":
        named = prior_variants(spec, SCALES)
        specs = dict(named)
        from bayes_nlme.data import load_dataset

        centered = _centred(spec, load_dataset("theophylline"))  # the study's parameterisation: its graphs
        for group in structure_groups(named):
            compile_model(specs[group[0]], "theophylline", centered=centered, backend=BACKEND)
        print(json.dumps({"seconds": time.perf_counter() - started}))
        return
    workers = 1 if args.child == "sequential" else args.workers
    with tempfile.TemporaryDirectory() as tmp:
        study = run_sensitivity(
            spec,
            "theophylline",
            out=Path(tmp) / "sens",
            scales=SCALES,
            workers=workers,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            seed=1,
            quiet=True,
        )
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "variants": len(set(study.variants["variant"])),
                "structures": len(study.compilations),
                "compilations": study.n_compilations,
            }
        )
    )


def _run(mode: str, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--draws",
        str(args.draws),
        "--tune",
        str(args.tune),
        "--chains",
        str(args.chains),
        "--workers",
        str(args.workers),
    ]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    total = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{mode} run failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process"] = total
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain (default 1000, as the model)")
    parser.add_argument("--tune", type=int, default=1000, help="tuning iterations (default 1000)")
    parser.add_argument("--chains", type=int, default=4, help="chains per variant (default 4)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="pool size (default: cores)")
    parser.add_argument("--quick", action="store_true", help="100 draws and 100 tuning iterations")
    parser.add_argument("--child", choices=("warm", "sequential", "pool"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.draws = args.tune = 100
    if args.child:
        _child(args)
        return

    print(
        f"Prior sensitivity study, Theophylline (12 subjects, 132 observations): 6 variants "
        f"(base, scale 0.5/2/4, lkj, residual_halfnormal), {args.chains} x ({args.tune} + {args.draws}) "
        f"draws each; {os.cpu_count()} cores"
    )
    warm = _run("warm", args)
    print(f"  disk cache warm-up (3 structures)   {warm['seconds']:7.1f} s")
    seq = _run("sequential", args)
    pool = _run("pool", args)
    print(f"{'':32} {'sequential':>12} {'pool':>12}")
    print(f"{'workers':32} {1:>12d} {args.workers:>12d}")
    print(f"{'run_sensitivity wall time (s)':32} {seq['seconds']:12.1f} {pool['seconds']:12.1f}")
    print(f"{'whole process (s)':32} {seq['process']:12.1f} {pool['process']:12.1f}")
    print(f"{'fresh compilations':32} {str(seq['compilations']):>12} {str(pool['compilations']):>12}")
    print(
        f"ratio sequential / pool: {seq['seconds'] / pool['seconds']:.2f} "
        f"(whole process {seq['process'] / pool['process']:.2f})"
    )


if __name__ == "__main__":
    main()
