"""Seed robustness of the Bayesian path on the simulated 120-subject oral study (issue 17).

Fits ``models/oral1_lkj.toml`` (one-compartment oral, full omega with an LKJ(2) prior,
proportional error) to :func:`bayes_nlme.data.simulated.simulate_oral_study` (120
subjects x 15 samples, one 100 mg dose; ``--doses 3`` gives the multiple-dose version
with 4,680 observations) with several seeds, each ``--chains`` x (``--tune`` +
``--draws``) with the default settings, and prints per seed the max R-hat, the
divergences, the share of draws at the maximum tree depth, the wall time, the mean
number of leapfrog steps per draw (a load-independent measure of cost) and how the
chains were started. Then it checks the target: every seed at R-hat <= 1.01 without
divergences, and the posterior means of every seed within 0.1 posterior sd of the
pooled means (population parameters: typical values, omega, residual variance).

Run (about 90 s per seed on a quiet 2-core machine, plus one compilation)::

    .venv/bin/python benchmarks/seeds.py                 # 10 seeds
    .venv/bin/python benchmarks/seeds.py --seeds 1 2     # a subset
    .venv/bin/python benchmarks/seeds.py --init jitter   # the pre-issue-17 start
    .venv/bin/python benchmarks/seeds.py --model oral2 --seeds 1   # the two-compartment study
    .venv/bin/python benchmarks/seeds.py --model oral2 --seeds 1 --centered CL,V1,ka --target-accept 0.9

Measured (session 7, quiet 2-core machine, LKJ as sd and correlation Cholesky): seeds 1-10
all R-hat <= 1.007, no divergences, 30.3-30.6 leapfrog steps per draw, seeds within 0.036
posterior sd of the pooled means; median 112.5 s per fit (sampling 102-115 s).
Session 8, after the engine's borrowed arrays (the same quiet machine): seeds 1-10 all
R-hat <= 1.006, no divergences, no draw at the maximum depth, 30.2-30.5 leapfrog steps
per draw, seeds within 0.037 posterior sd of the pooled means; **median 38.7 s per fit**
(seed 1 84.7 s with the cold compilation of the log density), 434 s for all ten.

Each seed's line is printed as soon as its fit ends, and ``--json`` writes every
figure to a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bayes_nlme.data.simulated import simulate_oral_study  # noqa: E402
from bayes_nlme.fit import ConvergenceWarning, sample  # noqa: E402
from bayes_nlme.spec import load_model  # noqa: E402

MODELS = {
    "oral1": (
        ROOT / "models" / "oral1_lkj.toml",
        "one_compartment_oral",
        ("theta_CL", "theta_V", "theta_ka", "omega_CL_CL", "omega_V_V", "omega_ka_ka", "sigma2_prop"),
    ),
    "oral2": (
        ROOT / "models" / "oral2_lkj.toml",
        "two_compartment_oral",
        ("theta_CL", "theta_V1", "theta_Q", "theta_V2", "theta_ka", "omega_CL_CL", "omega_V1_V1", "omega_Q_Q")
        + ("omega_V2_V2", "omega_ka_ka", "sigma2_prop"),
    ),
}


def _centred_option(text: str):
    """``auto``, ``true``, ``false`` or a comma-separated list of centred parameters."""
    if text is None:
        return None
    if text in ("auto", "true", "false"):
        return {"auto": "auto", "true": True, "false": False}[text]
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _fit(data, seed: int, args) -> dict:
    rows = MODELS[args.model][2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = sample(
            str(MODELS[args.model][0]),
            data,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            seed=seed,
            quiet=True,
            init=args.init,
            adaptation=args.adaptation,
            centered=_centred_option(args.centered),
            target_accept=args.target_accept,
        )
    v = fit.convergence
    table = fit.summary().set_index("parameter")
    stats = fit.tree["sample_stats"]
    steps = float(stats["n_steps"].mean()) if "n_steps" in stats else float("nan")
    return {
        "seed": seed,
        "max_r_hat": v.max_r_hat,
        "divergences": v.divergences,
        "treedepth_fraction": v.treedepth_fraction,
        "seconds": fit.seconds,
        "seconds_sample": fit.seconds_sample,
        "init": fit.details.get("init", {}).get("method"),
        "init_seconds": fit.details.get("init", {}).get("seconds"),
        "centered": fit.details.get("centered"),
        "leapfrog_per_draw": steps,
        "stuck_chains": list(v.stuck_chains),
        "ok": bool(v.max_r_hat <= 1.01 and v.divergences == 0),
        "messages": list(v.messages),
        "mean": {r: float(table.loc[r, "mean"]) for r in rows if r in table.index},
        "sd": {r: float(table.loc[r, "sd"]) for r in rows if r in table.index},
    }


def _agreement(runs: list[dict], rows) -> tuple[float, str]:
    """Largest ``|mean_seed - pooled mean| / pooled sd`` over seeds and parameters."""
    worst, where = 0.0, ""
    for r in rows:
        means = np.array([run["mean"][r] for run in runs if r in run["mean"]])
        sds = np.array([run["sd"][r] for run in runs if r in run["sd"]])
        if means.size < 2:
            continue
        dev = np.abs(means - means.mean()) / np.mean(sds)
        if dev.max() > worst:
            worst, where = float(dev.max()), f"{r} (seed {runs[int(dev.argmax())]['seed']})"
    return worst, where


def main(argv=None) -> int:
    """Run the benchmark; exit 0 when the target is met, 1 otherwise."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    p.add_argument("--model", choices=tuple(MODELS), default="oral1", help="oral2: the two-compartment study")
    p.add_argument("--subjects", type=int, default=120)
    p.add_argument("--doses", type=int, default=1, help="1: single dose (1,800 obs); 3: 4,680 obs")
    # each default: the model file's [sampling] table
    p.add_argument("--draws", type=int, default=None)
    p.add_argument("--tune", type=int, default=None)
    p.add_argument("--chains", type=int, default=None)
    p.add_argument("--init", default=None)
    p.add_argument("--adaptation", default=None)
    p.add_argument("--centered", default=None, help="auto, true, false or e.g. CL,V1,ka")
    p.add_argument("--target-accept", type=float, default=None)
    p.add_argument("--json", type=Path, help="write every figure to this file")
    args = p.parse_args(argv)
    settings = load_model(str(MODELS[args.model][0])).sampling
    for name in ("draws", "tune", "chains", "init", "adaptation"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(settings, name))
    if args.centered is None:
        c = settings.centered
        args.centered = ",".join(c) if isinstance(c, tuple) else str(c).lower()
    data = simulate_oral_study(args.subjects, doses=args.doses, structural=MODELS[args.model][1])
    n_obs = int((data["EVID"] == 0).sum())
    print(
        f"{args.subjects} subjects, {n_obs} observations; {args.chains} x ({args.tune} + {args.draws}), "
        f"init {args.init}, adaptation {args.adaptation}, centred {args.centered}"
    )
    print(f"{'seed':>4} {'max R-hat':>9} {'div':>5} {'max depth':>9} {'wall s':>7} {'steps':>6} {'init':>6}  ok")
    runs = []
    started = time.perf_counter()
    for seed in args.seeds:
        run = _fit(data, seed, args)
        runs.append(run)
        print(
            f"{seed:>4} {run['max_r_hat']:>9.3f} {run['divergences']:>5d} {run['treedepth_fraction']:>9.1%} "
            f"{run['seconds']:>7.1f} {run['leapfrog_per_draw']:>6.1f} {run['init']:>6}  "
            f"{'yes' if run['ok'] else 'NO'}  centred: {run['centered']}",
            flush=True,
        )
    worst, where = _agreement(runs, MODELS[args.model][2])
    n_ok = sum(r["ok"] for r in runs)
    median = float(np.median([r["seconds"] for r in runs]))
    print(
        f"converged (R-hat <= 1.01, no divergences): {n_ok} of {len(runs)}; median wall {median:.1f} s "
        f"(first fit includes compilation); total {time.perf_counter() - started:.0f} s"
    )
    print(f"largest deviation of a seed's posterior mean from the pooled mean: {worst:.3f} posterior sd ({where})")
    met = n_ok == len(runs) and worst <= 0.1
    print("target met" if met else "target NOT met")
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)}, "runs": runs}, indent=1))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
