"""Benchmark of the Bayesian path: bayes_nlme (nutpie) against Stan (pystan) on Theophylline.

Run with ``make bench`` (installs the ``bench`` extra, i.e. ``pystan``, then runs every
benchmark) or directly with ``.venv/bin/python benchmarks/nuts_vs_stan.py`` (this
script alone; ``--help`` lists the options). The full run (cold and warm, both tools)
takes about 5-10 minutes on two cores.

Model (identical in both tools)
-------------------------------
The bundled ``models/theophylline.toml`` and dataset ``theophylline`` (12 subjects,
one oral dose each at time 0, 132 observations, the 12 observations at time 0
included: their prediction is 0). One compartment with first-order absorption,
``C(t) = Dose ka / (V (ka - k)) (exp(-k t) - exp(-ka t))``, ``k = CL/V``, ``F = 1``;
``P_i = theta_P exp(eta_P,i)`` with ``eta_i ~ MVN(0, Omega)`` for ``P`` in
``(ka, CL, V)``; priors ``theta_ka ~ LogNormal(log 1.5, 1)``, ``theta_CL ~
LogNormal(log 3, 1)``, ``theta_V ~ LogNormal(log 30, 1)``, ``Omega ~
InverseWishart(df = 4, Psi = diag(0.4, 0.4, 0.4))`` (the ``scipy.stats.invwishart`` /
Stan ``inv_wishart`` parametrisation), ``sigma2_add ~ InverseGamma(2, 0.5)`` and
``DV ~ Normal(C, sqrt(sigma2_add))``.

bayes_nlme adds its flip-flop guard (on by default for oral models): the joint prior
is restricted, without renormalisation, to ``theta_ka > theta_CL/theta_V`` and
``ka_i > CL_i/V_i`` for every subject. The default Stan program (``--stan-variant
centered``, the fastest for Stan in our trials) states the same restriction with
Stan's parameter-dependent lower bounds (``real<lower=log_theta_CL - log_theta_V>
log_theta_ka`` and the vectorised analogue for the subjects), so both tools sample the
same (unnormalised) density; the posterior mass outside the region is negligible on
these data anyway (``--print-stan`` prints the program). ``--stan-variant
centered-free`` drops the restriction and ``--stan-variant noncentered`` is the
non-centred (``log_phi = mu + L z``) version without it; in our trials (2 cores, 4 x
(1000 + 1000)) both were far worse for Stan: from Stan's default initial values some
chains settle in the flip-flop mode (``ka`` and ``k`` swapped, which fits the data
exactly as well), and the minimum bulk ESS fell to 7-8 (``theta_ka``), against ~2700
in 13.5 s for the default. The Stan programs are written for speed: the individual log-parameters are
parameters, centred, ``multi_normal_cholesky`` with ``cholesky_decompose(Omega)``,
``cov_matrix[3] Omega ~ inv_wishart``, and a vectorised likelihood. bayes_nlme uses
its defaults: here (11 samples per subject) the log individual parameters are sampled
centred, as in the Stan program; omega has the Bartlett-decomposition inverse-Wishart;
nutpie runs with ``target_accept = 0.8`` (Stan's default ``adapt_delta``) and the
``native`` compilation route (C callbacks cached per model graph).
The printed posterior medians of both tools must agree within Monte-Carlo error; the
bayes_nlme worker also checks that its individual predictions equal the closed form
above (the ``ipred check`` line).

Protocol
--------
Both tools run 4 chains of 1000 draws after 1000 tuning steps (``--chains``,
``--draws``, ``--tune``), seed 1. Every measured run is a fresh Python process
(``benchmarks/nuts_vs_stan.py --worker TOOL``) that prints its figures as one JSON line:

* **cold**: fresh, empty temporary cache directories: for Stan httpstan's model cache
  (``appdirs.user_cache_dir``, moved by ``XDG_CACHE_HOME``), for bayes_nlme PyTensor's
  compiledir (``PYTENSOR_FLAGS=base_compiledir=...``, which also holds PyTensor's
  Numba cache), ``NUMBA_CACHE_DIR`` and ``BAYES_NLME_CACHE_DIR``;
* **warm**: a second run in a new process, with the same (now filled) directories.

Figures per run: ``build s`` (Stan: ``stan.build``, i.e. stanc and the C++
compilation, or the cache look-up; bayes_nlme: ``fit.seconds_build``, building the
PyMC model and compiling it), ``sample s`` (Stan: ``posterior.sample``; bayes_nlme:
``fit.seconds_sample``), their sum, ``process s`` (end to end: from the launch of the
worker process, interpreter start-up and imports included, to the finished fit object:
Stan's ``Fit``, bayes_nlme's ``BayesFit`` with its log-likelihood and predictive draws),
the minimum bulk ESS (``arviz_stats.ess(method="bulk")``, the same code
for both tools) over the population parameters ``theta_ka, theta_CL, theta_V``, the
six unique elements of ``Omega`` and ``sigma2_add``, and ``ESS/s`` = that minimum per
sampling second.

Targets (printed with PASS/FAIL): bayes_nlme's warm sampling ESS/s >= 2x Stan's; its
cold ``process s`` <= 1/2 of Stan's cold ``process s``; its warm ``process s`` <=
Stan's warm ``process s``.

Timings on a shared machine are noisy; run the script on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_LAUNCH = time.time()

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = ROOT / "models" / "theophylline.toml"
DATASET = "theophylline"
TOOLS = ("stan", "bayes_nlme")
PARAMETERS = ("ka", "CL", "V")
SEED = 1

#: Population parameters of the comparison, canonical bayes_nlme names.
POPULATION = (
    "theta_ka",
    "theta_CL",
    "theta_V",
    "omega_ka_ka",
    "omega_ka_CL",
    "omega_ka_V",
    "omega_CL_CL",
    "omega_CL_V",
    "omega_V_V",
    "sigma2_add",
)

_STAN_DATA_BLOCK = """
data {
  int<lower=1> N;                          // observations
  int<lower=1> J;                          // subjects
  array[N] int<lower=1, upper=J> subject;
  vector<lower=0>[N] time;                 // time after the dose (h)
  vector<lower=0>[J] dose;                 // mg
  vector[N] dv;                            // mg/L
  vector[3] prior_log_median;              // ka, CL, V
  vector<lower=0>[3] prior_log_sd;
  real<lower=2> omega_df;
  cov_matrix[3] omega_scale;
  real<lower=0> sigma2_alpha;
  real<lower=0> sigma2_beta;
}
"""

_STAN_LIKELIHOOD = """
  {
    vector[J] ka = exp(log_ka);
    vector[J] k = exp(log_CL - log_V);
    vector[J] a = dose .* ka ./ (exp(log_V) .* (ka - k));
    vector[N] conc = a[subject] .* (exp(-k[subject] .* time) - exp(-ka[subject] .* time));
    dv ~ normal(conc, sqrt(sigma2_add));
  }
"""

_STAN_GENERATED = """
generated quantities {
  real theta_ka = exp(log_theta_ka);
  real theta_CL = exp(log_theta_CL);
  real theta_V = exp(log_theta_V);
}
"""

#: The generated quantities for programs with ``vector[3] log_theta`` (ka, CL, V).
_STAN_GENERATED_VECTOR = (
    _STAN_GENERATED.replace("exp(log_theta_ka)", "exp(log_theta[1])")
    .replace("exp(log_theta_CL)", "exp(log_theta[2])")
    .replace("exp(log_theta_V)", "exp(log_theta[3])")
)

#: Centred, with the flip-flop restriction of bayes_nlme (ka > CL/V), as bounds.
STAN_CENTERED = (
    _STAN_DATA_BLOCK
    + """
parameters {
  real log_theta_CL;
  real log_theta_V;
  real<lower=log_theta_CL - log_theta_V> log_theta_ka;
  cov_matrix[3] Omega;
  vector[J] log_CL;
  vector[J] log_V;
  vector<lower=log_CL - log_V>[J] log_ka;
  real<lower=0> sigma2_add;
}
model {
  vector[3] mu = [log_theta_ka, log_theta_CL, log_theta_V]';
  array[J] vector[3] log_phi;
  for (j in 1:J) log_phi[j] = [log_ka[j], log_CL[j], log_V[j]]';
  target += normal_lpdf(mu | prior_log_median, prior_log_sd);
  Omega ~ inv_wishart(omega_df, omega_scale);
  log_phi ~ multi_normal_cholesky(mu, cholesky_decompose(Omega));
  sigma2_add ~ inv_gamma(sigma2_alpha, sigma2_beta);
"""
    + _STAN_LIKELIHOOD
    + "}\n"
    + _STAN_GENERATED
)

#: Centred, without the flip-flop restriction.
STAN_CENTERED_FREE = (
    _STAN_DATA_BLOCK
    + """
parameters {
  vector[3] log_theta;                     // ka, CL, V
  cov_matrix[3] Omega;
  array[J] vector[3] log_phi;
  real<lower=0> sigma2_add;
}
model {
  vector[J] log_ka = to_vector(log_phi[:, 1]);
  vector[J] log_CL = to_vector(log_phi[:, 2]);
  vector[J] log_V = to_vector(log_phi[:, 3]);
  log_theta ~ normal(prior_log_median, prior_log_sd);
  Omega ~ inv_wishart(omega_df, omega_scale);
  log_phi ~ multi_normal_cholesky(log_theta, cholesky_decompose(Omega));
  sigma2_add ~ inv_gamma(sigma2_alpha, sigma2_beta);
"""
    + _STAN_LIKELIHOOD
    + "}\n"
    + _STAN_GENERATED_VECTOR
)

#: Non-centred, without the flip-flop restriction.
STAN_NONCENTERED = (
    _STAN_DATA_BLOCK
    + """
parameters {
  vector[3] log_theta;                     // ka, CL, V
  cov_matrix[3] Omega;
  matrix[3, J] z;
  real<lower=0> sigma2_add;
}
model {
  matrix[3, J] log_phi = rep_matrix(log_theta, J) + cholesky_decompose(Omega) * z;
  vector[J] log_ka = log_phi[1]';
  vector[J] log_CL = log_phi[2]';
  vector[J] log_V = log_phi[3]';
  log_theta ~ normal(prior_log_median, prior_log_sd);
  Omega ~ inv_wishart(omega_df, omega_scale);
  to_vector(z) ~ std_normal();
  sigma2_add ~ inv_gamma(sigma2_alpha, sigma2_beta);
"""
    + _STAN_LIKELIHOOD
    + "}\n"
    + _STAN_GENERATED_VECTOR
)

STAN_VARIANTS = {"centered": STAN_CENTERED, "centered-free": STAN_CENTERED_FREE, "noncentered": STAN_NONCENTERED}


# --------------------------------------------------------------------------- data


def stan_data() -> dict:
    """The Stan data: the bundled dataset and the priors of ``models/theophylline.toml``."""
    import numpy as np

    from bayes_nlme.data import load_dataset
    from bayes_nlme.spec import load_model

    spec = load_model(MODEL)
    table = load_dataset(DATASET).table
    doses = table[table["EVID"] == 1]
    obs = table[(table["EVID"] == 0) & (table["MDV"] == 0)]
    subjects = sorted(table["SUBJECT"].unique())
    if len(doses) != len(subjects) or doses["SUBJECT"].duplicated().any():
        raise RuntimeError("expected one dose per subject")
    dose_time = doses.set_index("SUBJECT")["TIME"]
    dose_amt = doses.set_index("SUBJECT")["AMT"]
    if (obs.get("BLQ", 0) > 0).any():
        raise RuntimeError("BLQ observations are not handled by the Stan program")
    medians, sds = [], []
    for name in PARAMETERS:
        prior = spec.parameter(name).typical
        medians.append(float(np.log(prior.median)))
        sds.append(float(prior.sigma))
    omega = spec.omega.prior
    add = spec.residual.add
    return {
        "N": int(len(obs)),
        "J": len(subjects),
        "subject": [subjects.index(s) + 1 for s in obs["SUBJECT"]],
        "time": (obs["TIME"].to_numpy(float) - dose_time.loc[obs["SUBJECT"]].to_numpy(float)).tolist(),
        "dose": [float(dose_amt.loc[s]) for s in subjects],
        "dv": obs["DV"].to_numpy(float).tolist(),
        "prior_log_median": medians,
        "prior_log_sd": sds,
        "omega_df": float(omega.df),
        "omega_scale": np.asarray(omega.scale_matrix, dtype=float).tolist(),
        "sigma2_alpha": float(add.alpha),
        "sigma2_beta": float(add.beta),
    }


def _summaries(ds) -> dict:
    """Bulk ESS and median of every population parameter (same code for both tools)."""
    import arviz_stats as azs
    import numpy as np

    ess = azs.ess(ds, method="bulk")
    return {
        "ess_bulk": {name: float(ess[name].values) for name in POPULATION},
        "median": {name: float(np.median(ds[name].values)) for name in POPULATION},
    }


# --------------------------------------------------------------------------- workers


def worker_stan(args) -> dict:
    """Build and sample the Stan program; the figures of one run."""
    import numpy as np
    import stan
    import xarray as xr

    program = STAN_VARIANTS[args.stan_variant]
    data = stan_data()
    t0 = time.perf_counter()
    posterior = stan.build(program, data=data, random_seed=SEED)
    t1 = time.perf_counter()
    fit = posterior.sample(num_chains=args.chains, num_samples=args.draws, num_warmup=args.tune)
    t2 = time.perf_counter()
    end = time.time()
    offset = len(fit.sample_and_sampler_param_names)
    names = list(fit.constrained_param_names)

    def draws(name):  # (chain, draw)
        return np.asarray(fit._draws[offset + names.index(name)]).T

    index = {p: i + 1 for i, p in enumerate(PARAMETERS)}
    out = {f"theta_{p}": draws(f"theta_{p}") for p in PARAMETERS}
    for i, p in enumerate(PARAMETERS):
        for q in PARAMETERS[i:]:
            out[f"omega_{p}_{q}"] = draws(f"Omega.{index[p]}.{index[q]}")
    out["sigma2_add"] = draws("sigma2_add")
    ds = xr.Dataset({k: (("chain", "draw"), v) for k, v in out.items()})
    divergent = np.asarray(fit._draws[fit.sample_and_sampler_param_names.index("divergent__")])
    return {
        "build_s": t1 - t0,
        "sample_s": t2 - t1,
        "process_s": end - args.launched,
        "divergences": int(divergent.sum()),
        "detail": f"variant {args.stan_variant}",
        **_summaries(ds),
    }


def _ipred_check(fit) -> float:
    """Largest relative difference between bayes_nlme's ipred and the closed form."""
    import numpy as np

    post = fit.tree["posterior"].to_dataset()
    if "individual" not in post or "ipred" not in post:
        return float("nan")
    data = stan_data()
    ind = post["individual"].isel(chain=0, draw=0)
    dim = [d for d in ind.dims if d != "subject"][0]
    ka, cl, v = (np.asarray(ind.sel({dim: p}).values, dtype=float) for p in PARAMETERS)
    k = cl / v
    j = np.asarray(data["subject"]) - 1
    t = np.asarray(data["time"])
    dose = np.asarray(data["dose"])
    conc = (dose * ka / (v * (ka - k)))[j] * (np.exp(-k[j] * t) - np.exp(-ka[j] * t))
    ipred = np.asarray(post["ipred"].isel(chain=0, draw=0).values, dtype=float)
    return float(np.max(np.abs(conc - ipred)) / np.max(np.abs(conc)))


def worker_bayes_nlme(args) -> dict:
    """Fit with bayes_nlme; the figures of one run."""
    import numpy as np

    from bayes_nlme.fit import sample
    from bayes_nlme.fit.summary import canonical_draws

    fit = sample(str(MODEL), DATASET, draws=args.draws, tune=args.tune, chains=args.chains, seed=SEED, quiet=True)
    end = time.time()  # the fit object complete (log-likelihood, predictive draws), as Stan's Fit
    ds = canonical_draws(fit.spec, fit.tree["posterior"].to_dataset())
    stats = fit.tree["sample_stats"].to_dataset()
    diverging = int(np.asarray(stats["diverging"].values).sum()) if "diverging" in stats else -1
    return {
        "build_s": fit.seconds_build,
        "sample_s": fit.seconds_sample,
        "process_s": end - args.launched,
        "divergences": diverging,
        "detail": f"{fit.sampler}/{fit.details['compile_backend']}, ipred check {_ipred_check(fit):.1e}",
        **_summaries(ds),
    }


# --------------------------------------------------------------------------- driver


def _environment(tool: str, caches: Path | None) -> dict:
    env = dict(os.environ)
    if caches is None:
        return env
    root = caches / tool
    if tool == "stan":
        env["XDG_CACHE_HOME"] = str(root / "xdg")
    else:
        flags = env.get("PYTENSOR_FLAGS", "")
        env["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, f"base_compiledir={root / 'pytensor'}") if f)
        env["NUMBA_CACHE_DIR"] = str(root / "numba")
        env["BAYES_NLME_CACHE_DIR"] = str(root / "bayes_nlme")
        env["XDG_CACHE_HOME"] = str(root / "xdg")
    return env


def run_worker(tool: str, mode: str, args, caches: Path | None) -> dict:
    """Run one measured fit in a new process and return its figures."""
    launched = time.time()
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        tool,
        "--launched",
        repr(launched),
        "--draws",
        str(args.draws),
        "--tune",
        str(args.tune),
        "--chains",
        str(args.chains),
        "--stan-variant",
        args.stan_variant,
    ]
    proc = subprocess.run(cmd, env=_environment(tool, caches), capture_output=True, text=True, cwd=ROOT)
    wall = time.time() - launched
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        print(f"  {tool} {mode}: FAILED (exit {proc.returncode})\n{tail}", flush=True)
        return {"tool": tool, "mode": mode, "error": tail, "returncode": proc.returncode}
    result = json.loads(lines[-1])
    result.update(tool=tool, mode=mode, wall_s=wall)
    print(
        f"  {tool:10s} {mode:4s}: build {result['build_s']:6.1f} s, sample {result['sample_s']:6.1f} s, "
        f"process {result['process_s']:6.1f} s (wall {wall:.1f} s)",
        flush=True,
    )
    return result


def _min_ess(result: dict) -> tuple[float, str]:
    name = min(result["ess_bulk"], key=result["ess_bulk"].get)
    return result["ess_bulk"][name], name


def report(results: list[dict], args) -> dict:
    """Print the table, the target ratios and the medians; return the ratios."""
    print(
        f"\nTheophylline, {args.chains} chains x {args.draws} draws after {args.tune} tuning steps "
        f"(Stan variant: {args.stan_variant})"
    )
    header = (
        f"{'run':18s} {'build s':>8} {'sample s':>9} {'build+sample':>13} {'process s':>10} "
        f"{'min bulk ESS':>13} {'(parameter)':14s} {'ESS/s':>8} {'div':>4}"
    )
    print(header)
    print("-" * len(header))
    by = {}
    for r in results:
        label = f"{'Stan' if r['tool'] == 'stan' else 'bayes_nlme'} {r['mode']}"
        if "error" in r:
            print(f"{label:18s} FAILED")
            continue
        ess, name = _min_ess(r)
        r["min_ess_bulk"], r["min_ess_parameter"] = ess, name
        r["ess_per_s"] = ess / r["sample_s"]
        by[(r["tool"], r["mode"])] = r
        print(
            f"{label:18s} {r['build_s']:8.1f} {r['sample_s']:9.1f} {r['build_s'] + r['sample_s']:13.1f} "
            f"{r['process_s']:10.1f} {ess:13.0f} {name:14s} {r['ess_per_s']:8.1f} {r['divergences']:4d}"
        )
    for r in results:
        if "error" not in r:
            print(f"  {r['tool']} {r['mode']}: {r['detail']}")

    ratios = {}
    print("\nTargets")

    def target(key, label, num, den, goal, higher):
        if num is None or den is None:
            print(f"  {label:58s} n/a")
            return
        ratio = num / den
        ok = ratio >= goal if higher else ratio <= goal
        ratios[key] = {"ratio": ratio, "goal": goal, "pass": ok}
        print(f"  {label:58s} {ratio:6.2f}  ({'>=' if higher else '<='} {goal:g})  {'PASS' if ok else 'FAIL'}")

    def get(tool, mode, key):
        r = by.get((tool, mode))
        return None if r is None else r[key]

    ess_mode = "warm" if ("bayes_nlme", "warm") in by and ("stan", "warm") in by else "cold"
    target(
        "ess_per_s",
        f"sampling ESS/s, bayes_nlme / Stan ({ess_mode})",
        get("bayes_nlme", ess_mode, "ess_per_s"),
        get("stan", ess_mode, "ess_per_s"),
        2.0,
        True,
    )
    if ess_mode == "warm":
        target(
            "ess_per_s_cold",
            "(for reference) cold sampling ESS/s, bayes_nlme / Stan",
            get("bayes_nlme", "cold", "ess_per_s"),
            get("stan", "cold", "ess_per_s"),
            2.0,
            True,
        )
    target(
        "cold_process",
        "cold end-to-end (process s), bayes_nlme / Stan",
        get("bayes_nlme", "cold", "process_s"),
        get("stan", "cold", "process_s"),
        0.5,
        False,
    )
    target(
        "warm_process",
        "warm end-to-end (process s), bayes_nlme / Stan",
        get("bayes_nlme", "warm", "process_s"),
        get("stan", "warm", "process_s"),
        1.0,
        False,
    )
    target(
        "cold_build_sample",
        "(for reference) cold build+sample, bayes_nlme / Stan",
        _sum(by.get(("bayes_nlme", "cold"))),
        _sum(by.get(("stan", "cold"))),
        0.5,
        False,
    )
    target(
        "warm_build_sample",
        "(for reference) warm build+sample, bayes_nlme / Stan",
        _sum(by.get(("bayes_nlme", "warm"))),
        _sum(by.get(("stan", "warm"))),
        1.0,
        False,
    )

    runs = [r for r in results if "error" not in r]
    if runs:
        print("\nPosterior medians (bulk ESS in brackets)")
        labels = [f"{'Stan' if r['tool'] == 'stan' else 'bayes_nlme'} {r['mode']}" for r in runs]
        print(f"{'parameter':14s}" + "".join(f"{lab:>22s}" for lab in labels))
        for name in POPULATION:
            cells = "".join(f"{r['median'][name]:12.4g} ({r['ess_bulk'][name]:6.0f})  " for r in runs)
            print(f"{name:14s}{cells}")
    return ratios


def _sum(r):
    return None if r is None else r["build_s"] + r["sample_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain (default 1000)")
    parser.add_argument("--tune", type=int, default=1000, help="tuning steps per chain (default 1000)")
    parser.add_argument("--chains", type=int, default=4, help="chains (default 4)")
    parser.add_argument("--only", choices=TOOLS, help="run one tool only")
    parser.add_argument(
        "--skip-cold", action="store_true", help="no cold runs: one warm run per tool against the usual (user) caches"
    )
    parser.add_argument(
        "--stan-variant",
        choices=sorted(STAN_VARIANTS),
        default="centered",
        help="the Stan program (default centered; see the module docstring)",
    )
    parser.add_argument("--print-stan", action="store_true", help="print the Stan program and exit")
    parser.add_argument("--keep-caches", action="store_true", help="keep the temporary cache directories")
    parser.add_argument("--json", type=Path, help="save the results to this JSON file")
    parser.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, default=_LAUNCH, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.print_stan:
        print(STAN_VARIANTS[args.stan_variant])
        return
    if args.worker:
        result = worker_stan(args) if args.worker == "stan" else worker_bayes_nlme(args)
        print(json.dumps(result), flush=True)
        return

    tools = (args.only,) if args.only else TOOLS
    if "stan" in tools:
        import importlib.util

        if importlib.util.find_spec("stan") is None:
            sys.exit("pystan is not installed: `pip install -e '.[bench]'` (or `make bench`)")
    results = []
    caches = None
    try:
        if args.skip_cold:
            print("warm runs against the usual caches", flush=True)
            for tool in tools:
                results.append(run_worker(tool, "warm", args, None))
        else:
            caches = Path(tempfile.mkdtemp(prefix="nuts_vs_stan_"))
            print(f"fresh caches under {caches}", flush=True)
            for mode in ("cold", "warm"):
                for tool in tools:
                    results.append(run_worker(tool, mode, args, caches))
    finally:
        if caches is not None and not args.keep_caches:
            shutil.rmtree(caches, ignore_errors=True)
    ratios = report(results, args)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "settings": {
                        "draws": args.draws,
                        "tune": args.tune,
                        "chains": args.chains,
                        "stan_variant": args.stan_variant,
                    },
                    "runs": results,
                    "targets": ratios,
                },
                indent=2,
            )
        )
        print(f"\nsaved {args.json}")


if __name__ == "__main__":
    main()
