"""Prior sensitivity: power-scaling verdicts, prior variants, outputs and the CLI."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_nlme.cli import main
from bayes_nlme.errors import ArgumentError, SpecError
from bayes_nlme.sensitivity import VERDICTS, power_scaling, prior_variants, verdict
from bayes_nlme.sensitivity.output import write_outputs
from bayes_nlme.sensitivity.psense import log_prior_dataset
from bayes_nlme.spec import load_model
from bayes_nlme.spec.priors import LKJ, HalfNormal, LogNormal

ROOT = Path(__file__).resolve().parents[1]
THEO_MODEL = ROOT / "models" / "theophylline.toml"
FAST = {"draws": 100, "tune": 100, "chains": 2, "seed": 1}

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

    spec = _with_cl_prior(theo, LogNormal(median=10.0, sigma=0.05))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sample(spec, "theophylline", quiet=True, **FAST)


# --- verdict rule ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("prior", "likelihood", "expected"),
    [
        (0.01, 0.01, "ok"),
        (0.01, 0.30, "ok"),
        (0.20, 0.01, "strong prior / weak likelihood"),
        (0.20, 0.20, "prior-data conflict"),
        (0.05, 0.05, "prior-data conflict"),  # psense_summary uses >= for a conflict
        (0.05, 0.01, "ok"),  # ... and a strict > for a strong prior
    ],
)
def test_verdict_follows_psense_summary(prior, likelihood, expected):
    assert verdict(prior, likelihood) == expected


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
    path.write_text(THEO_MODEL.read_text().replace('model = "additive"', 'model = "proportional"')
                    .replace("add = { inverse_gamma", "prop = { inverse_gamma"))
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


def test_power_scaling_table(base_fit):
    table = power_scaling(base_fit)
    assert list(table.columns) == ["parameter", "prior", "likelihood", "verdict", "explanation"]
    assert list(table["parameter"]) == list(base_fit.summary()["parameter"])
    assert table["verdict"].isin(VERDICTS).all()
    assert (table[["prior", "likelihood"]] >= 0).all().all()


def test_tight_contradicting_prior_is_a_prior_data_conflict(tight_fit):
    # CL ~ 2.75 L/h in the data; a prior at 10 L/h with sigma 0.05 contradicts it.
    row = power_scaling(tight_fit).set_index("parameter").loc["theta_CL"]
    assert row["verdict"] == "prior-data conflict", row


def test_weak_prior_is_ok(theo):
    # A weak prior (log-scale sd 3, centred near the data) leaves the posterior of CL to
    # the likelihood.
    from bayes_nlme.fit import sample

    spec = _with_cl_prior(theo, LogNormal(median=3.0, sigma=3.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sample(spec, "theophylline", quiet=True, **FAST)
    row = power_scaling(fit).set_index("parameter").loc["theta_CL"]
    assert row["verdict"] == "ok", row
    assert row["prior"] < 0.05


# --- outputs and the CLI ---------------------------------------------------------------

def test_write_outputs(tmp_path):
    psense = pd.DataFrame({"parameter": ["theta_CL"], "prior": [0.2], "likelihood": [0.1],
                           "verdict": ["prior-data conflict"]})
    variants = pd.DataFrame({"variant": ["base", "scale_2"], "parameter": ["theta_CL"] * 2,
                             "mean": [2.7, 2.8], "sd": [0.2, 0.3], "q5": [2.4, 2.3], "q95": [3.0, 3.3]})
    out = write_outputs(tmp_path / "sens", "m", psense, variants)
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "prior and data pull" in html
    assert (out / "forest.png").stat().st_size > 0


@quiet_fit
def test_cli_sensitivity_writes_tables(tmp_path, capsys):
    model = tmp_path / "diag.toml"
    model.write_text(DIAGONAL_MODEL)
    out = tmp_path / "sens"
    code = main(["sensitivity", str(model), "--data", "theophylline", "--out", str(out), "--scales", "2",
                 "--workers", "1", "--draws", "100", "--tune", "100", "--chains", "2", "--seed", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    psense = pd.read_csv(out / "psense.csv")
    assert list(psense.columns) == ["parameter", "prior", "likelihood", "verdict"]
    assert psense["verdict"].isin(VERDICTS).all()
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
    code = main(["sensitivity", str(THEO_MODEL), "--data", "theophylline", "--out", str(out),
                 "--scheduler", "tcp://127.0.0.1:8786"])
    assert code == 2
    assert "pip install 'bayes_nlme[dask]'" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
@quiet_fit
def test_process_pool_runs_every_variant(tmp_path):
    from bayes_nlme.sensitivity import run_sensitivity

    out = run_sensitivity(THEO_MODEL, "theophylline", out=tmp_path / "sens", scales=(0.5,), workers=2,
                          quiet=True, **FAST)
    variants = pd.read_csv(out / "variants.csv")
    assert list(dict.fromkeys(variants["variant"])) == ["base", "scale_0.5", "lkj", "residual_halfnormal"]


# --- compile once, and Dask ----------------------------------------------------------------

def _new_structure_model(tmp_path) -> Path:
    """The diagonal model with ka fixed at a value unique to this run.

    A fixed value is a constant of the compiled graph, so the structure is new to
    PyTensor's on-disk cache: the study must compile it exactly once.
    """
    ka = float(1.5 + np.random.default_rng().integers(1, 10**9) * 1e-12)
    text = DIAGONAL_MODEL.replace("[parameters.ka]\ntypical = { lognormal = { median = 1.5, sigma = 1.0 } }",
                                  f"[parameters.ka]\nfixed = {ka!r}")
    assert f"fixed = {ka!r}" in text
    path = tmp_path / "fresh.toml"
    path.write_text(text)
    return path


TINY = {"draws": 50, "tune": 50, "chains": 2, "seed": 1}


def test_structure_groups(theo):
    from bayes_nlme.sensitivity.runner import structure_groups

    groups = structure_groups(prior_variants(theo, scales=(0.5, 2.0)))
    assert groups == [["base", "scale_0.5", "scale_2"], ["lkj"], ["residual_halfnormal"]]


@quiet_fit
def test_study_of_five_variants_compiles_once(tmp_path):
    from bayes_nlme.sensitivity import SensitivityStudy, run_sensitivity

    model = _new_structure_model(tmp_path)
    study = run_sensitivity(model, "theophylline", out=tmp_path / "sens", scales=(0.25, 0.5, 2, 4), workers=2,
                            quiet=True, **TINY)
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


def test_dask_scheduler(tmp_path, capsys):
    distributed = pytest.importorskip("dask.distributed")
    from bayes_nlme.fit import ConvergenceWarning
    from bayes_nlme.sensitivity import run_sensitivity

    model = _new_structure_model(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster:
            study = run_sensitivity(model, "theophylline", out=tmp_path / "sens", scales=(2,),
                                    scheduler=cluster.scheduler_address, quiet=True, **TINY)
            code = main(["sensitivity", str(model), "--data", "theophylline", "--out", str(tmp_path / "cli"),
                         "--scales", "0.5", "--scheduler", cluster.scheduler_address, "--draws", "50",
                         "--tune", "50", "--chains", "2", "--seed", "1", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert list(dict.fromkeys(study.variants["variant"])) == ["base", "scale_2"]
    assert study.n_compilations == 1  # this process compiled; the Dask workers loaded it from the disk cache
    cli = pd.read_csv(tmp_path / "cli" / "variants.csv")
    assert list(dict.fromkeys(cli["variant"])) == ["base", "scale_0.5"]
    assert pd.read_csv(tmp_path / "cli" / "compilations.csv")["compilations"].sum() == 0  # all from the cache


# --- the study in the fit's report ----------------------------------------------------------

def _synthetic_study(path):
    psense = pd.DataFrame({"parameter": ["theta_CL", "theta_V"], "prior": [0.2, 0.01], "likelihood": [0.1, 0.02],
                           "verdict": ["prior-data conflict", "ok"]})
    variants = pd.DataFrame({"variant": ["base", "scale_2"] * 2, "parameter": ["theta_CL"] * 2 + ["theta_V"] * 2,
                             "mean": [2.7, 2.8, 31.0, 32.0], "sd": [0.2, 0.3, 1.0, 1.5],
                             "q5": [2.4, 2.3, 29.0, 29.5], "q95": [3.0, 3.3, 33.0, 34.5]})
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
    assert "Prior-sensitive: theta_CL." in html and "prior and data pull" in html
    assert html.count('src="data:image/png;base64,') == 1  # the forest plot, embedded
    assert "://" not in html and "href=\"sensitivity" not in html  # still self-contained


@quiet_fit
def test_fit_report_shows_the_study_in_the_fit_directory(base_fit, tmp_path, capsys):
    fit_dir = Path(base_fit.save(tmp_path / "fit"))
    _synthetic_study(fit_dir / "sensitivity")
    assert main(["report", str(fit_dir)]) == 0
    html = (fit_dir / "report.html").read_text()
    assert '<section id="sensitivity">' in html and "prior-data conflict" in html
    assert '<a href="#sensitivity">Prior sensitivity</a>' in html
