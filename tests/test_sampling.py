"""Tests of NUTS sampling, forward prior draws and fit results (bayes_nlme.fit).

The default suite fits one simulated data set (40 subjects, short chains) and checks
parameter recovery, the result object, the fit directory and the compile cache. The
full-length Theophylline acceptance check is marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes_nlme.errors import ArgumentError
from bayes_nlme.fit import BayesFit, ConvergenceWarning, compile_model, sample, sample_prior
from bayes_nlme.fit.convergence import assess
from bayes_nlme.fit.flipflop import flip_flop_check
from bayes_nlme.fit.sampling import _progress
from bayes_nlme.spec import load_model, parse_model

MODEL = "models/theophylline.toml"
TRUTH = {"ka": 1.5, "CL": 2.8, "V": 32.0}
OMEGA_SD = np.array([0.3, 0.25, 0.2])
SIGMA = 0.4
SUMMARY_ROWS = [
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
]


def simulate(n_subjects=40, seed=2024):
    """One-compartment oral data from known parameters (etas centred on zero)."""
    rng = np.random.default_rng(seed)
    times = np.array([0.25, 0.5, 1.0, 2.0, 3.5, 5.0, 7.0, 9.0, 12.0, 24.0])
    eta = rng.normal(0.0, OMEGA_SD, size=(n_subjects, 3))
    eta -= eta.mean(axis=0)
    rows = []
    for i in range(n_subjects):
        ka, cl, v = (TRUTH[p] * np.exp(eta[i, j]) for j, p in enumerate(("ka", "CL", "V")))
        k = cl / v
        dose = 320.0
        conc = dose * ka / (v * (ka - k)) * (np.exp(-k * times) - np.exp(-ka * times))
        dv = conc + rng.normal(0.0, SIGMA, size=times.size)
        rows.append({"ID": i + 1, "TIME": 0.0, "AMT": dose, "DV": np.nan})
        rows.extend({"ID": i + 1, "TIME": t, "AMT": 0.0, "DV": round(float(y), 4)} for t, y in zip(times, dv))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def recovery():
    """A short fit of simulated data; ConvergenceWarnings about ESS/R-hat are expected."""
    data = simulate()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        fit = sample(MODEL, data, draws=300, tune=300, chains=2, seed=7, quiet=True)
    return fit, caught


def test_recovery_covers_truth(recovery):
    fit, caught = recovery
    assert all(issubclass(w.category, ConvergenceWarning) for w in caught)
    assert not any("divergent" in str(w.message) for w in caught)
    assert fit.convergence.divergences == 0
    table = fit.summary().set_index("parameter")
    truth = {f"theta_{p}": v for p, v in TRUTH.items()}
    truth.update({f"omega_{p}_{p}": s**2 for p, s in zip(("ka", "CL", "V"), OMEGA_SD)})
    truth["sigma2_add"] = SIGMA**2
    for name, value in truth.items():
        assert table.loc[name, "q5"] < value < table.loc[name, "q95"], (name, value, table.loc[name].to_dict())


def test_summary_table(recovery):
    fit, _ = recovery
    table = fit.summary()
    assert list(table.columns) == [
        "parameter",
        "mean",
        "sd",
        "median",
        "q5",
        "q95",
        "ess_bulk",
        "ess_tail",
        "r_hat",
        "mcse_mean",
    ]
    assert list(table["parameter"]) == SUMMARY_ROWS
    assert (table["q5"] <= table["median"]).all() and (table["median"] <= table["q95"]).all()
    assert (table["ess_bulk"] > 0).all() and (table["r_hat"] > 0.9).all()


def test_tree_groups(recovery):
    fit, _ = recovery
    tree = fit.tree
    for group in (
        "posterior",
        "sample_stats",
        "log_likelihood",
        "posterior_predictive",
        "observed_data",
        "constant_data",
    ):
        assert group in tree.children, group
    n_obs = fit.dataset.n_observations
    loglik = tree["log_likelihood"]["y"]
    assert loglik.dims == ("chain", "draw", "observation") and loglik.shape == (2, 300, n_obs)
    per_subject = tree["log_likelihood"]["y_subject"]
    assert per_subject.dims == ("chain", "draw", "subject")
    np.testing.assert_allclose(per_subject.sum("subject"), loglik.sum("observation"))
    assert tree["posterior_predictive"]["y"].shape == (2, 300, n_obs)
    np.testing.assert_allclose(tree["observed_data"]["y"], fit.dataset.observations["DV"])
    constant = tree["constant_data"]
    assert {"time", "subject_index", "dose_amount", "prior__theta_CL__median"} <= set(constant.data_vars)
    post = tree["posterior"]
    assert post["individual"].dims == ("chain", "draw", "subject", "structural_parameter")
    # flip-flop guard: every draw keeps ka above CL/V, population and individuals
    ind = post["individual"]
    assert (
        ind.sel(structural_parameter="ka") > ind.sel(structural_parameter="CL") / ind.sel(structural_parameter="V")
    ).all()
    assert fit.seconds_build > 0 and fit.seconds_sample > 0
    assert fit.method == "nuts" and fit.details["flip_flop_guard"] is True


def test_save_and_load_round_trip(recovery, tmp_path):
    fit, _ = recovery
    out = fit.save(tmp_path / "fit")
    info = json.loads((out / "fit.json").read_text())
    for key in (
        "method",
        "n_subjects",
        "n_obs",
        "seconds",
        "draws",
        "tune",
        "chains",
        "divergences",
        "max_r_hat",
        "min_ess_bulk",
        "seconds_build",
        "seconds_sample",
        "convergence",
    ):
        assert key in info, key
    assert info["method"] == "nuts" and info["n_subjects"] == 40 and info["n_obs"] == 400
    assert info["draws"] == 300 and info["chains"] == 2 and info["divergences"] == 0
    assert set(info["convergence"]) >= {"ok", "messages", "min_bfmi", "treedepth_fraction"}
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["parameter"]) == SUMMARY_ROWS
    loaded = BayesFit.load(out)
    assert loaded.method == "nuts"
    # the embedded spec is the spec as run: [sampling] holds the settings actually used
    from dataclasses import replace

    as_run = replace(fit.spec.sampling, draws=300, tune=300, chains=2, seed=7)
    assert loaded.spec == replace(fit.spec, sampling=as_run)
    pd.testing.assert_frame_equal(loaded.summary(), fit.summary())
    assert loaded.convergence.divergences == 0
    assert loaded.dataset.n_subjects == 40


def test_compile_cache_reuses_model_for_prior_variants():
    data = simulate(n_subjects=40)
    spec = load_model(MODEL)
    first = compile_model(spec, data, backend="pyfunc")
    variant = parse_model(
        {
            **_spec_dict(spec),
            "parameters": {
                "ka": {"typical": {"lognormal": {"median": 1.5, "sigma": 2.0}}},
                "CL": {"typical": {"lognormal": {"median": 3.0, "sigma": 2.0}}},
                "V": {"typical": {"lognormal": {"median": 30.0, "sigma": 2.0}}},
            },
        }
    )
    second = compile_model(variant, data, backend="pyfunc")
    assert second.built.model is first.built.model
    assert second.seconds == 0.0 and not second.fresh
    assert second.built.spec == variant
    assert float(second.compiled._shared_data["prior__theta_CL__sigma"]) == 2.0


def test_sample_prior(tmp_path):
    fit = sample_prior(MODEL, "theophylline", draws=200, seed=3)
    assert fit.method == "prior"
    table = fit.summary()
    assert list(table.columns) == ["parameter", "mean", "sd", "median", "q5", "q95"]
    assert list(table["parameter"]) == SUMMARY_ROWS
    prior = fit.tree["prior"]
    assert prior.sizes["draw"] == 200
    assert {"prior", "prior_predictive", "log_likelihood", "observed_data", "constant_data"} <= set(fit.tree.children)
    ind = prior["individual"]
    ka, cl, v = (ind.sel(structural_parameter=p) for p in ("ka", "CL", "V"))
    assert (ka > cl / v).all()  # restricted prior (flip-flop guard)
    assert (prior["theta_ka"] > prior["theta_CL"] / prior["theta_V"]).all()
    assert 0.0 < fit.details["prior_acceptance"] <= 1.0
    out = fit.save(tmp_path / "prior")
    info = json.loads((out / "fit.json").read_text())
    assert info["method"] == "prior" and info["draws"] == 200
    assert BayesFit.load(out).method == "prior"


def test_bad_arguments():
    with pytest.raises(ArgumentError, match="valid: 'nutpie'|valid: nutpie"):
        sample(MODEL, "theophylline", sampler="stan")
    with pytest.raises(ArgumentError, match="draws"):
        sample(MODEL, "theophylline", draws=0)
    with pytest.raises(ArgumentError, match="target_accept"):
        sample(MODEL, "theophylline", target_accept=1.5)


@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])
def test_jax_samplers_need_the_extra(monkeypatch, sampler):
    """Without jax (simulated by hiding it from ``find_spec``) the error names the extra."""
    import importlib.util

    find_spec = importlib.util.find_spec
    hidden = {"jax", sampler}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in hidden else find_spec(name, *a))
    with pytest.raises(ArgumentError, match=rf"{sampler}.*needs jax and {sampler}.*pip install 'bayes_nlme\[jax\]'"):
        sample(MODEL, "theophylline", sampler=sampler)


def test_auto_compile_backend():
    from bayes_nlme.data import load_dataset
    from bayes_nlme.fit.sampling import _backend

    theo = load_dataset("theophylline")  # 132 observations
    assert _backend("auto", theo, 1000, 1000, 4) == "native"
    assert _backend("auto", theo, 300, 300, 2) == "pyfunc"
    assert _backend("pyfunc", theo, 1000, 1000, 4) == "pyfunc"
    with pytest.raises(ArgumentError, match="compile_backend"):
        _backend("llvm", theo, 10, 10, 1)


def test_centred_parameterisation_follows_the_data():
    from bayes_nlme.data import load_dataset
    from bayes_nlme.fit.sampling import _centred

    spec = load_model(MODEL)
    rich = load_dataset("theophylline")  # 11 samples per subject, 3 IIV parameters
    assert _centred("auto", rich, spec) is True
    data = simulate(n_subjects=12)
    sparse = data[(data["AMT"] > 0) | data["TIME"].isin([1.0, 9.0])]
    assert _centred("auto", load_dataset(sparse), spec) is False
    assert _centred(False, rich, spec) is False
    with pytest.raises(ArgumentError, match="centered"):
        _centred("yes", rich, spec)


@pytest.mark.parametrize("omega", ["bundled", "lkj", "diagonal"])
def test_native_shapes_without_compiling(omega):
    """The traced-variable shapes from dims equal nutpie's compiled shape function."""
    from nutpie.compile_pymc import _compute_shapes

    from bayes_nlme.build.model import build
    from bayes_nlme.fit.native import _shapes

    spec = load_model(MODEL)
    if omega != "bundled":
        doc = _spec_dict(spec)
        doc["omega"] = (
            {"structure": "full", "prior": {"lkj": {"eta": 2.0, "sd": {"half_normal": {"sigma": 0.5}}}}}
            if omega == "lkj"
            else {"structure": "diagonal", "prior": {"inverse_gamma": {"alpha": 1.0, "beta": 0.2}}}
        )
        spec = parse_model(doc)
    for centered in (True, False):
        model = build(spec, "theophylline", centered=centered).model
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)
            expected = {k: tuple(int(d) for d in v) for k, v in _compute_shapes(model).items()}
        assert _shapes(model) in (expected, None)
        if omega == "bundled":
            assert _shapes(model) == expected


_NATIVE_FIT = """
import json, logging, warnings
from bayes_nlme.fit import ConvergenceWarning, sample
logging.getLogger("bayes_nlme").addHandler(logging.StreamHandler())
logging.getLogger("bayes_nlme").setLevel(logging.DEBUG)
warnings.simplefilter("ignore", ConvergenceWarning)
fit = sample("models/theophylline.toml", "theophylline", draws=60, tune=60, chains=2, seed=5, quiet=True,
             compile_backend="native")
post = fit.tree["posterior"]
print(json.dumps({**fit.details["compilation"], "cl": post["theta_CL"].values.ravel().tolist(),
                  "ipred": float(post["ipred"].isel(chain=0, draw=-1).sum())}))
"""


@pytest.mark.slow  # a compilation in a second process
def test_native_route_is_cached_across_processes(tmp_path):
    """The second process loads the compiled callbacks and gets the same draws."""
    env = {**os.environ, "BAYES_NLME_CACHE_DIR": str(tmp_path / "cache"), "CI": "true"}
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", _NATIVE_FIT],
            env=env,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "compile helper" not in done.stderr  # the helper compiled the expand callback
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert [r["backend"] for r in runs] == ["native", "native"]
    assert runs[1]["fresh"] is False
    assert runs[0]["cl"] == runs[1]["cl"] and runs[0]["ipred"] == runs[1]["ipred"]
    assert list((tmp_path / "cache").glob("*.pkl"))
    # the helper process that compiled the expand callback left nothing behind
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".pkl"]


def test_compile_helper_failure_is_reported_as_none(tmp_path):
    """A helper that fails gives no result (the parent then compiles) and leaves no files."""
    from bayes_nlme.fit.native_worker import Helper

    paths = [tmp_path / name for name in ("k.recipe", "k.expand", "k.log")]
    for path in paths:
        path.write_bytes(b"x")
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    assert Helper(process, paths[1], paths[0], paths[2]).result() is None
    assert not any(path.exists() for path in paths)
    for path in paths:
        path.write_bytes(b"x")
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    Helper(process, paths[1], paths[0], paths[2]).cancel()
    assert process.returncode is not None
    assert not any(path.exists() for path in paths)


def test_progress_bar_default(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert _progress(None, quiet=False) is True
    assert _progress(None, quiet=True) is False
    monkeypatch.setenv("CI", "true")
    assert _progress(None, quiet=False) is False
    assert _progress(True, quiet=True) is True


# --------------------------------------------------------------------------- diagnostics


def _draws(means, sd=1.0, n=500, seed=0):
    rng = np.random.default_rng(seed)
    values = np.stack([rng.normal(m, sd, size=n) for m in means])
    return xr.Dataset({"theta_CL": (("chain", "draw"), values)})


def _stats(chains=2, n=500, divergent=0, seed=0):
    rng = np.random.default_rng(seed)
    diverging = np.zeros((chains, n), dtype=bool)
    diverging[0, :divergent] = True
    energy = rng.normal(size=(chains, n)).cumsum(axis=1) * 0.01 + rng.normal(size=(chains, n))
    return xr.Dataset(
        {
            "diverging": (("chain", "draw"), diverging),
            "energy": (("chain", "draw"), energy),
            "maxdepth_reached": (("chain", "draw"), np.zeros((chains, n), dtype=bool)),
        }
    )


def test_convergence_verdict_ok_and_problems():
    good = assess(_draws([0.0, 0.0]), _stats())
    assert good.ok and good.messages == () and good.divergences == 0
    bad = assess(_draws([0.0, 3.0]), _stats(divergent=3))
    assert not bad.ok
    text = " ".join(bad.messages)
    assert "3 divergent transitions" in text and "target_accept" in text and "centred" in text
    assert "R-hat" in text
    json.dumps(bad.to_dict())
    with pytest.warns(ConvergenceWarning) as record:
        bad.warn()
    assert len(record) == len(bad.messages)
    assert any("divergent" in str(w.message) for w in record)


def test_flip_flop_check_detects_split_chains():
    spec = load_model(MODEL)
    rng = np.random.default_rng(1)
    n = 300

    def posterior(ka_medians):
        ka = np.stack([m * np.exp(rng.normal(0, 0.05, n)) for m in ka_medians])
        cl = 2.8 * np.exp(rng.normal(0, 0.05, (len(ka_medians), n)))
        v = 32.0 * np.exp(rng.normal(0, 0.05, (len(ka_medians), n)))
        return xr.Dataset({k: (("chain", "draw"), x) for k, x in (("theta_ka", ka), ("theta_CL", cl), ("theta_V", v))})

    assert flip_flop_check(spec, posterior([1.5, 1.5])) is None
    message = flip_flop_check(spec, posterior([1.5, 0.06]))
    assert message is not None and "flip-flop" in message and "ka" in message


# --------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_theophylline_acceptance():
    """4 chains x 1000 draws: no divergences, R-hat <= 1.01, bulk ESS >= 400, published values."""
    fit = sample(MODEL, "theophylline", quiet=True)
    verdict = fit.convergence
    assert verdict.divergences == 0
    table = fit.summary().set_index("parameter")
    assert table["r_hat"].max() <= 1.01
    assert table["ess_bulk"].min() >= 400
    for name, value in {"theta_ka": 1.59, "theta_CL": 2.75, "theta_V": 31.8}.items():
        assert abs(table.loc[name, "median"] / value - 1) < 0.10, name


@pytest.mark.slow
def test_compile_backends_give_the_same_draws():
    kwargs = {"draws": 100, "tune": 100, "chains": 2, "seed": 9, "quiet": True}
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", ConvergenceWarning)
        a = sample(MODEL, "theophylline", compile_backend="pyfunc", **kwargs)
        b = sample(MODEL, "theophylline", compile_backend="cfunc", **kwargs)
        c = sample(MODEL, "theophylline", compile_backend="native", **kwargs)
    np.testing.assert_array_equal(a.tree["posterior"]["theta_CL"], b.tree["posterior"]["theta_CL"])
    np.testing.assert_array_equal(a.tree["posterior"]["theta_CL"], c.tree["posterior"]["theta_CL"])


@pytest.mark.slow
def test_pymc_sampler_runs():
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", ConvergenceWarning)
        # one core: PyMC's chain processes are forked, which JAX (imported by other
        # tests in the same session) warns against
        fit = sample(MODEL, "theophylline", draws=100, tune=100, chains=2, seed=2, sampler="pymc", quiet=True, cores=1)
    assert fit.sampler == "pymc"
    assert list(fit.summary()["parameter"]) == SUMMARY_ROWS


def _spec_dict(spec):
    from bayes_nlme.spec import model_to_dict

    return model_to_dict(spec)
