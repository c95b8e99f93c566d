"""Prior sensitivity: power-scaling verdicts, prior variants, outputs and the CLI."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_nlme.cli import main
from bayes_nlme.data import load_dataset
from bayes_nlme.errors import ArgumentError, SpecError
from bayes_nlme.sensitivity import PSENSE_COLUMNS, VERDICTS, power_scaling, prior_variants, verdict, verdict_kind
from bayes_nlme.sensitivity.output import write_outputs
from bayes_nlme.sensitivity.psense import log_prior_dataset
from bayes_nlme.sensitivity.verdicts import draws_to_settle
from bayes_nlme.spec import load_model
from bayes_nlme.spec.priors import LKJ, HalfNormal, LogNormal

ROOT = Path(__file__).resolve().parents[1]
THEO_MODEL = ROOT / "models" / "theophylline.toml"
FAST = {"draws": 100, "tune": 100, "chains": 2, "seed": 1}
N_BOOT = 20  # bootstrap replicates in the default suite (the package default is 100)

# Small fits do not converge well; their ConvergenceWarnings are expected here.
quiet_fit = pytest.mark.filterwarnings("ignore::bayes_nlme.fit.ConvergenceWarning")

DIAGONAL_MODEL = """
name = "theo-diagonal"
structural = "one_compartment_oral"
[parameters.ka]
typical = { lognormal = { median = 1.5, sigma = 1.0 } }
[parameters.CL]
typical = { lognormal = { median = 3.0, sigma = 1.0 } }
[parameters.V]
typical = { lognormal = { median = 30.0, sigma = 1.0 } }
[omega]
structure = "diagonal"
prior = { inverse_gamma = { alpha = 2.0, beta = 0.2 } }
[residual]
model = "additive"
add = { half_normal = { sigma = 1.0 } }
"""


def _with_cl_prior(spec, prior):
    params = tuple(replace(p, typical=prior) if p.name == "CL" else p for p in spec.parameters)
    return replace(spec, parameters=params)


@pytest.fixture(scope="module")
def theo():
    return load_model(THEO_MODEL)


@pytest.fixture(scope="module")
def base_fit(theo):
    from bayes_nlme.fit import sample

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sample(theo, "theophylline", quiet=True, **FAST)


@pytest.fixture(scope="module")
def tight_fit(theo):
    from bayes_nlme.fit import sample

    spec = _with_cl_prior(theo, LogNormal(median=8.0, sigma=0.08))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sample(spec, "theophylline", quiet=True, **FAST)


# --- verdict rule ---------------------------------------------------------------------

ABSORBED = {"etabar_p": 1e-6, "implied_quantile": 1e-30}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"prior": 0.01, "likelihood": 0.30}, "ok"),
        ({"prior": 0.01, "likelihood": 0.01}, "ok"),
        # both sensitive, posterior inside the prior: informative, not a conflict
        ({"prior": 0.20, "likelihood": 0.20, "prior_quantile": 0.3}, "informative prior"),
        ({"prior": 0.20, "likelihood": 0.20, "prior_quantile": 0.3, "variance": True}, "prior-informed variance"),
        ({"prior": 0.20, "likelihood": 0.01, "prior_quantile": 0.3, "variance": True}, "prior-informed variance"),
        ({"prior": 0.20, "likelihood": 0.01, "prior_quantile": 0.3}, "strong prior / weak likelihood"),
        # the posterior in the prior's tail (outside the central 99%)
        ({"prior": 0.20, "likelihood": 0.20, "prior_quantile": 0.001}, "prior-data conflict"),
        ({"prior": 0.20, "likelihood": 0.20, "prior_quantile": 0.999, "variance": True}, "prior-data conflict"),
        ({"prior": 0.20, "likelihood": 0.20, "prior_quantile": 0.006}, "informative prior"),
        # absorbed by IIV: shifted etas, and the typical value they imply in the prior's tail
        ({"prior": 0.20, "likelihood": 0.01, "prior_quantile": 0.2, "eta": ABSORBED}, "prior-data conflict"),
        (
            {
                "prior": 0.20,
                "likelihood": 0.01,
                "prior_quantile": 0.2,
                "eta": {"etabar_p": 0.2, "implied_quantile": 1e-30},
            },
            "strong prior / weak likelihood",
        ),
        (
            {
                "prior": 0.20,
                "likelihood": 0.30,
                "prior_quantile": 0.2,
                "eta": {"etabar_p": 1e-4, "implied_quantile": 0.3},
            },
            "informative prior",
        ),
        # ... but only when the prior matters
        ({"prior": 0.01, "likelihood": 0.30, "prior_quantile": 1e-9, "eta": ABSORBED}, "ok"),
        # a sensitivity within its error of the threshold settles nothing
        ({"prior": 0.06, "prior_se": 0.01, "likelihood": 0.3}, "inconclusive: run longer"),
        ({"prior": 0.04, "prior_se": 0.01, "likelihood": 0.3}, "inconclusive: run longer"),
        ({"prior": 0.06, "prior_se": 0.004, "likelihood": 0.3, "prior_quantile": 0.5}, "informative prior"),
        ({"prior": 0.04, "prior_se": 0.004, "likelihood": 0.3}, "ok"),
        (
            {"prior": 0.20, "prior_se": 0.01, "likelihood": 0.06, "likelihood_se": 0.01, "prior_quantile": 0.5},
            "inconclusive: run longer",
        ),
        ({"prior": 0.06, "prior_se": 0.01, "likelihood": 0.3, "prior_quantile": 1e-9}, "inconclusive: run longer"),
    ],
)
def test_verdict_rule(kwargs, expected):
    kwargs = dict(kwargs)
    assert verdict(kwargs.pop("prior"), kwargs.pop("likelihood"), **kwargs) == expected


def test_verdict_kind_and_draws_to_settle():
    assert verdict_kind("prior-data conflict (absorbed by IIV: mean eta_CL = -0.97)") == "prior-data conflict"
    assert verdict_kind("inconclusive: run longer (about 2000 draws per chain)") == "inconclusive: run longer"
    assert verdict_kind("ok") == "ok"
    # 0.06 +- 0.01 at 500 draws: 2 errors must shrink to 0.01, so 4x the draws
    assert draws_to_settle(0.06, 0.01, 500) == 2000
    assert draws_to_settle(0.0505, 0.01, 500) is None  # on the threshold: no number of draws settles it


def test_bootstrap_error_matches_the_spread_of_independent_runs():
    # Normal prior N(0, 0.4^2), posterior N(0.5, 0.3^2): the prior sensitivity of x varies from run
    # to run; the block-bootstrap error of one run should match that spread.
    from bayes_nlme.sensitivity.mcse import sensitivity_with_error

    rng = np.random.default_rng(7)

    def run():
        x = rng.normal(0.5, 0.3, size=(2, 400))
        return {"x": x}, {"p": -0.5 * (x / 0.4) ** 2}

    values = []
    for _ in range(40):
        draws, comps = run()
        values.append(sensitivity_with_error(draws, comps, {"x": "p"}, n_boot=0)[0]["x"])
    draws, comps = run()
    est, se = sensitivity_with_error(draws, comps, {"x": "p"}, n_boot=200, seed=3)
    spread = float(np.std(values, ddof=1))
    assert est["x"] > 0.1 and spread > 0
    assert 0.5 * spread < se["x"] < 2.0 * spread, (se, spread)


# --- variants ---------------------------------------------------------------------------


def test_prior_variants_names_and_scaling(theo):
    named = dict(prior_variants(theo, scales=(0.5, 2.0)))
    assert list(named) == ["base", "scale_0.5", "scale_2", "lkj", "residual_halfnormal"]
    assert named["base"] is theo
    assert named["scale_0.5"].parameter("CL").typical.sigma == pytest.approx(0.5)
    assert named["scale_2"].parameter("ka").typical.sigma == pytest.approx(2.0)
    lkj = named["lkj"].omega.prior
    assert isinstance(lkj, LKJ) and lkj.eta == 2.0 and isinstance(lkj.sd, HalfNormal)
    assert isinstance(named["residual_halfnormal"].residual.add, HalfNormal)


def test_diagonal_model_has_no_lkj_variant(tmp_path):
    path = tmp_path / "diag.toml"
    path.write_text(DIAGONAL_MODEL)
    names = [n for n, _ in prior_variants(load_model(path), scales=(2.0,))]
    assert names == ["base", "scale_2"]


def test_variant_file_of_another_structure_is_a_spec_error(theo, tmp_path):
    path = tmp_path / "other.toml"
    path.write_text(
        THEO_MODEL.read_text()
        .replace('model = "additive"', 'model = "proportional"')
        .replace("add = { inverse_gamma", "prop = { inverse_gamma")
    )
    with pytest.raises(SpecError, match="residual.model"):
        prior_variants(theo, scales=(), variants=[path])
    same = tmp_path / "wide_cl.toml"
    same.write_text(THEO_MODEL.read_text().replace("median = 3.0, sigma = 1.0", "median = 3.0, sigma = 2.0"))
    names = [n for n, _ in prior_variants(theo, scales=(), variants=[same])]
    assert names[-1] == "wide_cl"


def test_bad_scales_and_missing_variant_file(theo, tmp_path):
    with pytest.raises(ArgumentError, match="scales"):
        prior_variants(theo, scales=(0.0,))
    with pytest.raises(ArgumentError, match="does not exist"):
        prior_variants(theo, scales=(), variants=[tmp_path / "nope.toml"])


# --- power-scaling ----------------------------------------------------------------------


def test_log_prior_matches_scipy(theo, base_fit):
    post = base_fit.tree["posterior"].to_dataset()
    lp = log_prior_dataset(theo, post)
    assert set(lp.data_vars) == {"theta_ka", "theta_CL", "theta_V", "omega", "sigma2_add"}
    cl = post["theta_CL"].values[0, 0]
    expected = theo.parameter("CL").typical.scipy().logpdf(cl)
    assert lp["theta_CL"].values[0, 0] == pytest.approx(expected)
    assert np.all(np.isfinite(lp.to_array().values))


def test_sensitivities_equal_arviz_psense(base_fit):
    from arviz_stats import psense

    from bayes_nlme.sensitivity.psense import sensitivity_tree

    table = power_scaling(base_fit, n_boot=0).set_index("parameter")
    tree = sensitivity_tree(base_fit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PSIS's Pareto-k warnings at 100 draws
        lik = psense(tree, group="likelihood", group_var_names=["y"])
        cl = psense(tree, group="prior", group_var_names=["theta_CL"])
        omega = psense(tree, group="prior", group_var_names=["omega"])
    for name in table.index:
        assert table.loc[name, "likelihood"] == pytest.approx(float(lik[name]), rel=1e-9)
    assert table.loc["theta_CL", "prior"] == pytest.approx(float(cl["theta_CL"]), rel=1e-9)
    assert table.loc["omega_CL_CL", "prior"] == pytest.approx(float(omega["omega_CL_CL"]), rel=1e-9)
    assert table["prior_se"].isna().all()  # no bootstrap, no error


def test_power_scaling_table(base_fit):
    table = power_scaling(base_fit, n_boot=N_BOOT)
    assert list(table.columns) == PSENSE_COLUMNS
    assert list(table["parameter"]) == list(base_fit.summary()["parameter"])
    assert table["verdict"].map(verdict_kind).isin(VERDICTS).all()
    assert (table[["prior", "likelihood"]] >= 0).all().all()
    assert (table[["prior_se", "likelihood_se"]] > 0).all().all()
    assert table["prior_quantile"].between(0, 1).all()
    # ETABAR on the typical values with IIV only
    has_eta = table["parameter"].isin(["theta_ka", "theta_CL", "theta_V"])
    assert table.loc[has_eta, ["etabar", "etabar_se", "etabar_p"]].notna().all().all()
    assert table.loc[~has_eta, "etabar"].isna().all()
    assert table["explanation"].str.len().gt(40).all()
    # The bundled, weakly informative prior on CL: the data determine CL.
    row = table.set_index("parameter").loc["theta_CL"]
    assert row["verdict"] == "ok", row.to_dict()
    assert not table["verdict"].str.startswith("prior-data conflict").any(), table[["parameter", "verdict"]]
    # Deterministic for a given seed.
    again = power_scaling(base_fit, n_boot=N_BOOT)
    pd.testing.assert_frame_equal(table, again)


def test_prior_quantiles_and_etabar_checks(theo):
    import xarray as xr
    from scipy import stats

    from bayes_nlme.sensitivity.checks import etabar, prior_quantiles

    rng = np.random.default_rng(0)
    dims = ("chain", "draw")
    n = (2, 200)
    canonical = xr.Dataset(
        {
            "theta_CL": (dims, np.full(n, 3.0 * np.exp(1.645))),  # the prior's 95th percentile
            "omega_CL_CL": (dims, np.full(n, 0.1)),
            "omega_ka_CL": (dims, np.full(n, 0.0)),
            "sigma2_add": (dims, rng.uniform(0.2, 0.4, n)),
        }
    )
    q = prior_quantiles(theo, canonical)
    assert q["theta_CL"] == pytest.approx(0.95, abs=1e-3)
    # inverse-Wishart(4, diag 0.4): omega_CL_CL is marginally inverse-gamma(1, 0.2)
    assert q["omega_CL_CL"] == pytest.approx(stats.invgamma(a=1.0, scale=0.2).cdf(0.1), abs=0.01)
    assert q["omega_ka_CL"] == pytest.approx(0.5, abs=0.02)  # a covariance is symmetric about 0 a priori
    median = float(canonical["sigma2_add"].median())
    assert q["sigma2_add"] == pytest.approx(stats.invgamma(a=2.0, scale=0.5).cdf(median))
    # LKJ(2) with half-normal(1) standard deviations: a variance is the square of a half-normal
    lkj = dict(prior_variants(theo, scales=()))["lkj"]
    q = prior_quantiles(lkj, canonical)
    assert q["omega_CL_CL"] == pytest.approx(stats.halfnorm(scale=1.0).cdf(np.sqrt(0.1)), abs=0.01)
    assert q["omega_ka_CL"] == pytest.approx(0.5, abs=0.02)

    # 12 subjects whose etas on CL are all about -1 (a typical value held at 8 by its prior)
    subjects = np.arange(1, 13)
    shift = np.array([0.0, -1.0, 0.0])  # ka, CL, V
    eta = rng.normal(0.0, 0.1, size=(2, 200, 12, 3)) + shift
    posterior = xr.Dataset(
        {
            "eta": (("chain", "draw", "subject", "parameter"), eta),
            **{f"theta_{p}": (dims, np.full(n, v)) for p, v in {"ka": 1.5, "CL": 8.0, "V": 30.0}.items()},
        },
        coords={"subject": subjects, "parameter": ["ka", "CL", "V"]},
    )
    table = etabar(theo, posterior)
    assert list(table.index) == ["theta_ka", "theta_CL", "theta_V"]
    assert table.loc["theta_CL", "etabar"] == pytest.approx(-1.0, abs=0.05)
    assert table.loc["theta_CL", "etabar_p"] < 1e-6
    assert table.loc["theta_CL", "implied"] == pytest.approx(8.0 * np.exp(-1.0), rel=0.05)
    assert abs(table.loc["theta_V", "etabar"]) < 0.01
    assert table.loc["theta_V", "implied"] == pytest.approx(30.0, rel=0.01)
    assert table.loc["theta_CL", "implied_quantile"] == pytest.approx(
        theo.parameter("CL").typical.scipy().cdf(table.loc["theta_CL", "implied"])
    )


def test_conflicting_prior_absorbed_by_iiv_is_a_prior_data_conflict(tight_fit):
    # CL ~ 2.8 L/h in the data; a prior at 8 L/h with log-sd 0.08 contradicts it. The etas
    # absorb the conflict (omega_CL grows, every eta_CL is about -1), which power-scaling
    # alone misses; the ETABAR check names it.
    table = power_scaling(tight_fit, n_boot=N_BOOT).set_index("parameter")
    row = table.loc["theta_CL"]
    assert row["verdict"].startswith("prior-data conflict (absorbed by IIV: mean eta_CL = -"), row.to_dict()
    assert row["etabar"] < -0.5 and row["etabar_p"] < 0.001
    assert "eta_CL" in row["explanation"] and "check the prior" in row["explanation"]


# --- outputs and the CLI ---------------------------------------------------------------

CONFLICT_ROW = {
    "parameter": "theta_CL",
    "prior": 0.2,
    "prior_se": 0.013,
    "likelihood": 0.04,
    "likelihood_se": 0.02,
    "prior_quantile": 0.146,
    "etabar": -0.97,
    "etabar_se": 0.08,
    "etabar_p": 1.2e-7,
    "verdict": "prior-data conflict (absorbed by IIV: mean eta_CL = -0.97)",
    "explanation": "The prior holds theta_CL at 7.35 while the subjects' eta_CL are shifted one way.",
}


def test_write_outputs(tmp_path):
    psense = pd.DataFrame([CONFLICT_ROW])
    variants = pd.DataFrame(
        {
            "variant": ["base", "scale_2"],
            "parameter": ["theta_CL"] * 2,
            "mean": [2.7, 2.8],
            "sd": [0.2, 0.3],
            "q5": [2.4, 2.3],
            "q95": [3.0, 3.3],
        }
    )
    out = write_outputs(tmp_path / "sens", "m", psense, variants)
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert "0.200 ± 0.013" in html and "-0.97 (p = 1.2e-07)" in html
    assert "absorbed by IIV: mean eta_CL = -0.97" in html and "the subjects&#x27; eta_CL are shifted one way" in html
    assert (out / "forest.png").stat().st_size > 0
    written = pd.read_csv(out / "psense.csv")
    assert list(written.columns) == PSENSE_COLUMNS
    assert written.loc[0, "etabar_p"] == pytest.approx(1.2e-7)


@quiet_fit
def test_cli_sensitivity_writes_tables(tmp_path, capsys):
    model = tmp_path / "diag.toml"
    model.write_text(DIAGONAL_MODEL)
    out = tmp_path / "sens"
    code = main(
        [
            "sensitivity",
            str(model),
            "--data",
            "theophylline",
            "--out",
            str(out),
            "--scales",
            "2",
            "--workers",
            "1",
            "--draws",
            "100",
            "--tune",
            "100",
            "--chains",
            "2",
            "--seed",
            "1",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    psense = pd.read_csv(out / "psense.csv")
    assert list(psense.columns) == PSENSE_COLUMNS
    assert psense["verdict"].map(verdict_kind).isin(VERDICTS).all()
    assert (psense[["prior_se", "likelihood_se"]] > 0).all().all()
    variants = pd.read_csv(out / "variants.csv")
    assert list(variants.columns) == ["variant", "parameter", "mean", "sd", "q5", "q95"]
    assert variants["variant"].iloc[0] == "base"
    assert list(dict.fromkeys(variants["variant"])) == ["base", "scale_2"]
    assert (out / "report.html").is_file()


@pytest.mark.parametrize(
    "extra",
    [
        ["--scales", "0,2"],
        ["--scales", "abc"],
        ["--workers", "0"],
        ["--variants", "does-not-exist.toml"],
    ],
)
def test_cli_sensitivity_bad_arguments_exit_2(tmp_path, capsys, extra):
    out = tmp_path / "sens"
    try:
        code = main(["sensitivity", str(THEO_MODEL), "--data", "theophylline", "--out", str(out), *extra])
    except SystemExit as exc:  # argparse rejects a bad value with exit status 2
        code = exc.code
    assert code == 2
    assert not out.exists()


def test_scheduler_without_dask_exit_2(tmp_path, capsys, monkeypatch):
    import sys

    for module in ("dask", "dask.distributed", "distributed"):  # as if Dask were not installed
        monkeypatch.setitem(sys.modules, module, None)
    out = tmp_path / "sens"
    code = main(
        [
            "sensitivity",
            str(THEO_MODEL),
            "--data",
            "theophylline",
            "--out",
            str(out),
            "--scheduler",
            "tcp://127.0.0.1:8786",
        ]
    )
    assert code == 2
    assert "pip install 'bayes_nlme[dask]'" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
@quiet_fit
def test_process_pool_runs_every_variant(tmp_path):
    from bayes_nlme.sensitivity import run_sensitivity

    out = run_sensitivity(
        THEO_MODEL, "theophylline", out=tmp_path / "sens", scales=(0.5,), workers=2, quiet=True, **FAST
    )
    variants = pd.read_csv(out / "variants.csv")
    assert list(dict.fromkeys(variants["variant"])) == ["base", "scale_0.5", "lkj", "residual_halfnormal"]


# --- compile once, and Dask ----------------------------------------------------------------


def _new_structure_model(tmp_path) -> Path:
    """The diagonal model with ka fixed at a value unique to this run.

    A fixed value is a constant of the compiled graph, so the structure is new to
    PyTensor's on-disk cache: the study must compile it exactly once.
    """
    ka = float(1.5 + np.random.default_rng().integers(1, 10**9) * 1e-12)
    text = DIAGONAL_MODEL.replace(
        "[parameters.ka]\ntypical = { lognormal = { median = 1.5, sigma = 1.0 } }", f"[parameters.ka]\nfixed = {ka!r}"
    )
    assert f"fixed = {ka!r}" in text
    path = tmp_path / "fresh.toml"
    path.write_text(text)
    return path


TINY = {"draws": 50, "tune": 50, "chains": 2, "seed": 1}


def test_structure_groups(theo):
    from bayes_nlme.sensitivity.runner import structure_groups

    groups = structure_groups(prior_variants(theo, scales=(0.5, 2.0)), load_dataset("theophylline"))
    assert groups == [["base", "scale_0.5", "scale_2"], ["lkj"], ["residual_halfnormal"]]


@pytest.mark.slow  # five NUTS fits in workers; test_sampling covers the compile cache by default
@quiet_fit
def test_study_of_five_variants_compiles_once(tmp_path):
    from bayes_nlme.sensitivity import SensitivityStudy, run_sensitivity

    model = _new_structure_model(tmp_path)
    study = run_sensitivity(
        model, "theophylline", out=tmp_path / "sens", scales=(0.25, 0.5, 2, 4), workers=2, quiet=True, **TINY
    )
    assert isinstance(study, SensitivityStudy)
    names = ["base", "scale_0.25", "scale_0.5", "scale_2", "scale_4"]
    assert list(dict.fromkeys(study.variants["variant"])) == names
    comp = study.compilations
    assert list(comp["structure"]) == ["base"] and comp.loc[0, "variants"] == " ".join(names)
    # compiled once in this process; the five fits (in two worker processes) load it from the cache
    assert comp.loc[0, "compilations"] == 1, comp
    assert comp.loc[0, "cached"] == 5, comp
    assert study.n_compilations == 1
    written = pd.read_csv(study / "compilations.csv")
    assert list(written.columns) == ["structure", "variants", "compilations", "cached", "seconds"]
    assert written["compilations"].sum() == 1
    assert "1 fresh compilation(s)" in (study / "report.html").read_text()
    assert Path(study) == tmp_path / "sens"


@pytest.mark.slow  # a local Dask cluster and two NUTS fits
def test_dask_scheduler(tmp_path, capsys):
    distributed = pytest.importorskip("dask.distributed")
    from bayes_nlme.fit import ConvergenceWarning
    from bayes_nlme.sensitivity import run_sensitivity

    model = _new_structure_model(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            study = run_sensitivity(
                model,
                "theophylline",
                out=tmp_path / "sens",
                scales=(2,),
                scheduler=cluster.scheduler_address,
                quiet=True,
                **TINY,
            )
            code = main(
                [
                    "sensitivity",
                    str(model),
                    "--data",
                    "theophylline",
                    "--out",
                    str(tmp_path / "cli"),
                    "--scales",
                    "0.5",
                    "--scheduler",
                    cluster.scheduler_address,
                    "--draws",
                    "50",
                    "--tune",
                    "50",
                    "--chains",
                    "2",
                    "--seed",
                    "1",
                    "--quiet",
                ]
            )
    assert code == 0, capsys.readouterr().err
    assert list(dict.fromkeys(study.variants["variant"])) == ["base", "scale_2"]
    assert study.n_compilations == 1  # this process compiled; the Dask workers loaded it from the disk cache
    cli = pd.read_csv(tmp_path / "cli" / "variants.csv")
    assert list(dict.fromkeys(cli["variant"])) == ["base", "scale_0.5"]
    assert pd.read_csv(tmp_path / "cli" / "compilations.csv")["compilations"].sum() == 0  # all from the cache


# --- the study in the fit's report ----------------------------------------------------------


def _synthetic_study(path):
    ok = {
        "parameter": "theta_V",
        "prior": 0.01,
        "prior_se": 0.001,
        "likelihood": 0.1,
        "likelihood_se": 0.02,
        "prior_quantile": 0.5,
        "etabar": 0.01,
        "etabar_se": 0.04,
        "etabar_p": 0.8,
        "verdict": "ok",
        "explanation": "The data, not the prior, determine theta_V.",
    }
    omega = {
        "parameter": "omega_V_V",
        "prior": 0.2,
        "prior_se": 0.02,
        "likelihood": 0.1,
        "likelihood_se": 0.03,
        "prior_quantile": 0.1,
        "verdict": "prior-informed variance",
        "explanation": "Both inform omega_V_V.",
    }
    psense = pd.DataFrame([CONFLICT_ROW, ok, omega])
    variants = pd.DataFrame(
        {
            "variant": ["base", "scale_2"] * 2,
            "parameter": ["theta_CL"] * 2 + ["theta_V"] * 2,
            "mean": [2.7, 2.8, 31.0, 32.0],
            "sd": [0.2, 0.3, 1.0, 1.5],
            "q5": [2.4, 2.3, 29.0, 29.5],
            "q95": [3.0, 3.3, 33.0, 34.5],
        }
    )
    return write_outputs(path, "m", psense, variants)


def test_prior_sensitivity_section(tmp_path):
    from bayes_nlme.report import sections
    from bayes_nlme.report.html import Page

    page = Page("t")
    assert sections.prior_sensitivity(page, tmp_path / "none") is False
    assert page.sections == []
    study = _synthetic_study(tmp_path / "sensitivity")
    assert sections.prior_sensitivity(page, study) is True
    html = page.render()
    assert '<section id="sensitivity"><h2>Prior sensitivity</h2>' in html
    assert "Prior-data conflict: theta_CL. Prior-sensitive or inconclusive: omega_V_V." in html
    assert "0.200 ± 0.013" in html and "absorbed by IIV: mean eta_CL = -0.97" in html
    assert "Both inform omega_V_V." in html
    assert html.count('src="data:image/png;base64,') == 1  # the forest plot, embedded
    assert "://" not in html and 'href="sensitivity' not in html  # still self-contained


@quiet_fit
def test_fit_report_shows_the_study_in_the_fit_directory(base_fit, tmp_path, capsys):
    fit_dir = Path(base_fit.save(tmp_path / "fit"))
    _synthetic_study(fit_dir / "sensitivity")
    assert main(["report", str(fit_dir)]) == 0
    html = (fit_dir / "report.html").read_text()
    assert '<section id="sensitivity">' in html and "prior-data conflict" in html
    assert '<a href="#sensitivity">Prior sensitivity</a>' in html


def test_section_reads_a_study_written_before_the_errors(tmp_path):
    # psense.csv of earlier versions: parameter, prior, likelihood, verdict only
    from bayes_nlme.report import sections
    from bayes_nlme.report.html import Page

    study = _synthetic_study(tmp_path / "sensitivity")
    pd.DataFrame({"parameter": ["theta_CL"], "prior": [0.01], "likelihood": [0.2], "verdict": ["ok"]}).to_csv(
        study / "psense.csv", index=False
    )
    page = Page("t")
    assert sections.prior_sensitivity(page, study) is True
    html = page.render()
    assert "Every population parameter reads ok" in html and "The data, not the prior, determine" in html


# --- acceptance (issue 16): verdicts at realistic run lengths ------------------------------------

ACCEPT = {"draws": 500, "tune": 500, "chains": 2}


def _fit_quietly(spec, data="theophylline", **settings):
    from bayes_nlme.fit import sample

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sample(spec, data, quiet=True, **settings)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_conflicting_cl_prior_is_a_conflict_at_500x2(theo, seed):
    fit = _fit_quietly(_with_cl_prior(theo, LogNormal(median=8.0, sigma=0.08)), seed=seed, **ACCEPT)
    row = power_scaling(fit).set_index("parameter").loc["theta_CL"]
    assert verdict_kind(row["verdict"]) == "prior-data conflict", row.to_dict()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_weak_cl_prior_is_ok_at_500x2(theo, seed):
    fit = _fit_quietly(_with_cl_prior(theo, LogNormal(median=3.0, sigma=1.0)), seed=seed, **ACCEPT)
    row = power_scaling(fit).set_index("parameter").loc["theta_CL"]
    assert row["verdict"] == "ok", row.to_dict()


@pytest.mark.slow
def test_bundled_model_has_no_conflict_at_4x1000(theo):
    table = power_scaling(_fit_quietly(theo, draws=1000, tune=1000, chains=4, seed=1))
    kinds = table["verdict"].map(verdict_kind)
    assert not (kinds == "prior-data conflict").any(), table[["parameter", "verdict"]]
    # the between-subject variances are informed by their prior, which is not a conflict
    omegas = table["parameter"].str.startswith("omega_")
    assert kinds[omegas].isin(["prior-informed variance", "inconclusive: run longer", "ok"]).all()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_diagonal_inverse_gamma_omegas_are_no_conflict_at_500x2(tmp_path, seed):
    path = tmp_path / "diag.toml"
    path.write_text(DIAGONAL_MODEL)
    table = power_scaling(_fit_quietly(load_model(path), seed=seed, **ACCEPT))
    assert not table["verdict"].str.startswith("prior-data conflict").any(), table[["parameter", "verdict"]]
