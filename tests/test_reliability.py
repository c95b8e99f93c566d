"""Issue 15: never a wrong result that looks right.

Interrupted fits, checks that ``check`` and ``fit`` share, values that would crash the
sampler, ``--out`` problems, contradictory records, exact IDs, all-BLQ data, tiny draw
counts, exit codes, warnings and the newcomer's path. Every test goes through the CLI or
the public API; none fits a model (the sampler is replaced where a fit is needed).
"""

from __future__ import annotations

import json
import signal
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayes_nlme
from bayes_nlme.cli import EXIT_INTERRUPTED, MIN_DRAWS, build_parser, main
from bayes_nlme.fit import BayesFit, ConvergenceWarning
from bayes_nlme.fit.convergence import assess
from bayes_nlme.fitdir import write_fit_dir

ROOT = Path(__file__).resolve().parents[1]
THEO = ROOT / "models" / "theophylline.toml"
HEADER = "ID,TIME,DV,AMT,EVID,MDV,CMT,WT"


def run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def csv(tmp_path, rows, header=HEADER, name="data.csv"):
    path = tmp_path / name
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def model(tmp_path, old=None, new=None, extra="", name="m.toml"):
    text = THEO.read_text()
    if old is not None:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text + extra)
    return path


def subject(i, dv=(8.0, 6.0, 4.0), wt=70, cmt_obs=2):
    rows = [f"{i},0,.,320,1,1,1,{wt}"]
    rows += [f"{i},{t},{y},0,0,0,{cmt_obs},{wt}" for t, y in zip((1, 4, 8), dv)]
    return rows


def assert_bad_input(code, err, *needles):
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("bayes-nlme: error:")
    for needle in needles:
        assert needle in err, (needle, err)


# ------------------------------------------------------------- 1. interrupted fits


def _draws(values):
    return xr.Dataset({"theta_CL": (("chain", "draw"), np.asarray(values, dtype=float))})


def _stats(chains, n):
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {
            "diverging": (("chain", "draw"), np.zeros((chains, n), dtype=bool)),
            "energy": (("chain", "draw"), rng.normal(size=(chains, n))),
        }
    )


def test_nan_draws_never_pass_the_verdict():
    rng = np.random.default_rng(1)
    good = rng.normal(size=(2, 2000))
    assert assess(_draws(good), _stats(2, 2000)).ok
    partial = good.copy()
    partial[:, 400:] = np.nan  # nutpie pads an interrupted run with NaN
    verdict = assess(_draws(partial), _stats(2, 2000))
    assert not verdict.ok
    assert any("interrupted" in m for m in verdict.messages)
    everything_nan = assess(_draws(np.full((2, 500), np.nan)), _stats(2, 500))
    assert not everything_nan.ok
    assert any("R-hat cannot be computed" in m for m in everything_nan.messages)
    assert "Convergence: PROBLEMS" in everything_nan.report()
    empty = assess(_draws(np.zeros((2, 0))), _stats(2, 0))  # interrupted during tuning
    assert not empty.ok


def test_single_chain_gets_a_split_r_hat():
    """One chain: R-hat of its halves (not NaN, which would now fail every one-chain fit)."""
    rng = np.random.default_rng(4)
    stats = _stats(1, 2000)
    steady = assess(_draws(rng.normal(size=(1, 2000))), stats)
    assert steady.ok and np.isfinite(steady.max_r_hat)
    drifting = assess(_draws(np.r_[rng.normal(size=1000), rng.normal(3.0, 1.0, size=1000)][None]), stats)
    assert not drifting.ok and drifting.max_r_hat > 1.5


def test_nan_energy_fails_the_verdict():
    rng = np.random.default_rng(2)
    stats = _stats(2, 500)
    stats["energy"][:] = np.nan
    verdict = assess(_draws(rng.normal(size=(2, 500))), stats)
    assert not verdict.ok and any("E-BFMI" in m for m in verdict.messages)


class _Partial:
    """What a sampler that swallows Ctrl-C returns: a result whose save would write a fit."""

    convergence = None

    def save(self, out):  # pragma: no cover - must not be reached
        Path(out).mkdir(parents=True)
        (Path(out) / "fit.json").write_text("{}")
        return Path(out)


@pytest.mark.parametrize("after", ["returns", "fails"])
def test_interrupted_fit_writes_nothing_and_exits_130(tmp_path, capsys, monkeypatch, after):
    def interrupted_sample(*args, **kwargs):
        try:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C during sampling ...
        except KeyboardInterrupt:
            pass  # ... caught by the sampler (nutpie returns the draws so far)
        if after == "fails":  # an interrupt during tuning leaves no draws at all
            raise IndexError("index 0 is out of bounds for axis 1 with size 0")
        return _Partial()

    monkeypatch.setattr(bayes_nlme.fit, "sample", interrupted_sample)
    out = tmp_path / "fit"
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the runner started in the background
    code, stdout, err = run(["fit", THEO, "--data", "theophylline", "--out", out, "--quiet"], capsys)
    assert code == EXIT_INTERRUPTED
    assert "interrupted" in err and "nothing was written" in err
    assert "Convergence: ok" not in stdout + err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGINT) is before  # the CLI restores the handler it found


def test_report_and_compare_refuse_an_incomplete_fit(tmp_path, capsys):
    fit = tmp_path / "partial"
    fit.mkdir()
    for name in ("summary.csv", "fit.nc"):
        (fit / name).write_text("x\n")
    (fit / "fit.json").write_text(json.dumps({"method": "nuts", "complete": False}))
    for args in (["report", fit], ["compare", fit]):
        code, _, err = run(args, capsys)
        assert_bad_input(code, err, "incomplete fit", str(fit))
    assert not (fit / "report.html").exists()


# ------------------------------------------------------------- 2. check is a pre-flight


def test_check_runs_the_residual_checks_of_fit(tmp_path, capsys):
    proportional = model(
        tmp_path,
        'model = "additive"\nadd = { inverse_gamma = { alpha = 2.0, beta = 0.5 } }',
        'model = "proportional"\nprop = { inverse_gamma = { alpha = 2.0, beta = 0.5 } }',
    )
    for method in ("nuts", "fo"):
        code, _, err = run(["check", proportional, "--data", "theophylline", "--method", method], capsys)
        assert_bad_input(code, err, "prediction 0", "proportional")
    exponential = model(
        tmp_path,
        'model = "additive"\nadd = { inverse_gamma = { alpha = 2.0, beta = 0.5 } }',
        'model = "exponential"\nexp = { inverse_gamma = { alpha = 2.0, beta = 0.5 } }',
        name="e.toml",
    )
    data = csv(tmp_path, subject(1, dv=(8.0, -1.0, 4.0)) + subject(2))
    code, _, err = run(["check", exponential, "--data", data], capsys)
    assert_bad_input(code, err, "DV <= 0", "row 3")
    # the same pair is rejected by fit before any work
    out = tmp_path / "fit"
    code, _, err = run(["fit", exponential, "--data", data, "--out", out], capsys)
    assert_bad_input(code, err, "DV <= 0")
    assert not out.exists()


def test_check_validates_priors_for_bayesian_methods_only(tmp_path, capsys):
    no_prior = model(tmp_path, "prior = { inverse_wishart = { df = 4, scale = [0.4, 0.4, 0.4] } }", "")
    code, _, err = run(["check", no_prior, "--data", "theophylline"], capsys)
    assert_bad_input(code, err, "omega.prior")
    code, out, err = run(["check", no_prior, "--data", "theophylline", "--method", "focei"], capsys)
    assert code == 0, err
    assert "OK" in out


# ------------------------------------------------------------- 3. values that crash the sampler


@pytest.mark.parametrize("wt", ["0", "-99"])
def test_power_covariate_not_positive_is_rejected(tmp_path, capsys, wt):
    m = model(
        tmp_path,
        extra="",
        old="[parameters.CL]\ntypical = { lognormal = { median = 3.0, sigma = 1.0 } }",
        new="[parameters.CL]\ntypical = { lognormal = { median = 3.0, sigma = 1.0 } }\n"
        'covariates = [{ column = "WT", effect = "power", reference = 70, exponent = 0.75 }]',
    )
    rows = subject(1) + [r.replace(",70", f",{wt}") for r in subject(2)]
    code, _, err = run(["check", m, "--data", csv(tmp_path, rows)], capsys)
    assert_bad_input(code, err, "'WT'", "power", "rows 5, 6, 7, 8")
    if wt == "-99":
        assert "missing-value code" in err


@pytest.mark.parametrize("column, value", [("AMT", "1e308"), ("TIME", "1e300")])
def test_values_that_overflow_are_rejected(tmp_path, capsys, column, value):
    rows = subject(1) + subject(2)
    if column == "AMT":
        rows[4] = "2,0,.,1e308,1,1,1,70"
    else:
        rows[7] = "2,1e300,4.0,0,0,0,2,70"
    code, _, err = run(["check", THEO, "--data", csv(tmp_path, rows)], capsys)
    assert_bad_input(code, err, f"'{column}'", "too large", "row 5" if column == "AMT" else "row 8")


LINEAR_WT = """name = "linear-wt"
structural = "one_compartment_oral"
[parameters.ka]
typical = { lognormal = { median = 1.5, sigma = 1.0 } }
iiv = true
[parameters.CL]
typical = { lognormal = { median = 3.0, sigma = 1.0 } }
iiv = true
covariates = [{ column = "WT", effect = "linear", reference = 70, beta = 0.1 }]
[parameters.V]
typical = { lognormal = { median = 30.0, sigma = 1.0 } }
iiv = true
[omega]
structure = "diagonal"
prior = { inverse_gamma = { alpha = 2.0, beta = 0.2 } }
[residual]
model = "additive"
add = { inverse_gamma = { alpha = 2.0, beta = 0.5 } }
"""

RUST_FAILURE = (
    "All initialization points failed\n\nCaused by:\n    Logp function returned error: BadLogp(NaN)"
    "\n\nStack backtrace:\n   0: nuts_rs::sampler::..."
)


@pytest.mark.parametrize("wt", [5, 70])
def test_sampler_initialisation_failure_names_rows_without_backtrace(tmp_path, capsys, monkeypatch, wt):
    # CL = theta * (1 + 0.1 (WT - 70)) is negative for WT 5: the checks cannot know, the sampler fails
    def failing_sample(*args, **kwargs):
        raise RuntimeError(RUST_FAILURE)

    monkeypatch.setattr(bayes_nlme.fit, "sample", failing_sample)
    m = tmp_path / "linear.toml"
    m.write_text(LINEAR_WT)
    data = csv(tmp_path, subject(1) + subject(2, wt=wt))
    code, _, err = run(["fit", m, "--data", data, "--out", tmp_path / "f", "--quiet"], capsys)
    assert_bad_input(code, err, "no starting point with a finite log density")
    assert "backtrace" not in err.lower() and "nuts_rs" not in err
    assert err.count("\n") == 1
    if wt == 5:
        assert "rows 6, 7, 8 (subject ID 2)" in err and "covariate" in err
    assert not (tmp_path / "f").exists()


# ------------------------------------------------------------- 4. --out


def test_out_that_is_a_file_is_rejected_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bayes_nlme.fit, "sample", lambda *a, **k: pytest.fail("fit ran"))
    existing = tmp_path / "file"
    existing.write_text("keep")
    code, _, err = run(["fit", THEO, "--data", "theophylline", "--out", existing], capsys)
    assert_bad_input(code, err, "--out", "existing file")
    assert existing.read_text() == "keep"
    code, _, err = run(["fit", THEO, "--data", "theophylline", "--out", existing / "sub"], capsys)
    assert_bad_input(code, err, "is a file, not a directory")
    if Path("/sys").is_dir():  # not writable, even for root
        code, _, err = run(["fit", THEO, "--data", "theophylline", "--out", "/sys/bayes_nlme_fit"], capsys)
        assert_bad_input(code, err, "cannot write in '/sys'")


def test_existing_fit_needs_overwrite_and_other_dirs_are_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bayes_nlme.fit, "sample", lambda *a, **k: pytest.fail("fit ran"))
    fit = tmp_path / "fit"
    fit.mkdir()
    (fit / "fit.json").write_text("{}")
    code, _, err = run(["fit", THEO, "--data", "theophylline", "--out", fit], capsys)
    assert_bad_input(code, err, "--overwrite")
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("x")
    code, _, err = run(["fit", THEO, "--data", "theophylline", "--out", other, "--overwrite"], capsys)
    assert_bad_input(code, err, "not a fit directory")
    assert (other / "todo.txt").read_text() == "x"


@pytest.mark.parametrize("command", ["report", "predict", "compare"])
def test_out_of_report_predict_compare_checked_first(tmp_path, capsys, command):
    target = tmp_path / "adir"
    target.mkdir()
    args = {
        "report": ["report", tmp_path / "nofit", "--out", target],
        "predict": [
            "predict",
            THEO,
            "--data",
            "theophylline",
            "--params",
            ROOT / "models" / "theophylline_params.json",
            "--out",
            target,
        ],
        "compare": ["compare", tmp_path / "nofit", "--out", target],
    }[command]
    code, _, err = run(args, capsys)
    assert_bad_input(code, err, "--out", "is a directory")


def test_predict_does_not_overwrite_its_inputs(tmp_path, capsys):
    data = csv(tmp_path, subject(1) + subject(2))
    before = data.read_text()
    code, _, err = run(
        ["predict", THEO, "--data", data, "--params", ROOT / "models" / "theophylline_params.json", "--out", data],
        capsys,
    )
    assert_bad_input(code, err, "--data file")
    assert data.read_text() == before


def _tiny_dir(out, stale=False):
    tree = xr.DataTree.from_dict({"/posterior": xr.DataTree(_draws(np.zeros((1, 3))))})
    return write_fit_dir(out, tree=tree, summary=pd.DataFrame({"parameter": ["theta_CL"]}), info={"method": "x"})


def test_report_out_cannot_overwrite_the_fit(tmp_path, capsys):
    fit = tmp_path / "fit"
    _tiny_dir(fit)
    before = (fit / "fit.json").read_text()
    code, _, err = run(["report", fit, "--out", fit / "fit.json"], capsys)
    assert_bad_input(code, err, "is a file of the fit directory")
    assert (fit / "fit.json").read_text() == before


def test_fit_directory_is_replaced_whole(tmp_path):
    out = tmp_path / "fit"
    _tiny_dir(out)
    (out / "report.html").write_text("stale report of an earlier fit")
    (out / "ebe.csv").write_text("stale")
    _tiny_dir(out)
    assert sorted(p.name for p in out.iterdir()) == ["fit.json", "fit.nc", "summary.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["fit"]  # no staging directory left


# ------------------------------------------------------------- 5. contradictory records


@pytest.mark.parametrize(
    "row, needle",
    [
        ("1,2,.,50,0,1,2,70", "not a dose"),  # AMT on EVID 0
        ("1,2,5.5,0,2,0,2,70", "EVID 2"),  # EVID 2 with DV and MDV 0
        ("1,2,5.5,100,1,0,1,70", "EVID 1"),  # a dose with DV and MDV 0
        ("1,2,5.5,0,0,0,2,70,1,0", "SS"),  # SS on an observation
        ("1,2,.,100,1,1,1,70,0,24", "no effect"),  # II without ADDL or SS
    ],
)
def test_contradictory_records_are_rejected_with_rows(tmp_path, capsys, row, needle):
    header = HEADER + ",SS,II"
    rows = [r + ",0,0" for r in subject(1)] + [row if row.count(",") == 9 else row + ",0,0"]
    rows += [r + ",0,0" for r in subject(2)]
    code, _, err = run(["check", THEO, "--data", csv(tmp_path, rows, header=header)], capsys)
    assert_bad_input(code, err, needle, "row 5")


def test_observation_of_another_compartment_is_rejected(tmp_path, capsys):
    rows = subject(1) + subject(2) + ["2,9,3.2,0,0,0,3,70", "2,10,3.0,0,0,0,3,70"]
    code, _, err = run(["check", THEO, "--data", csv(tmp_path, rows)], capsys)
    assert_bad_input(code, err, "observation of compartment 3", "rows 9, 10", "CMT 2")


# ------------------------------------------------------------- 6. exact IDs


def test_ids_are_exact_keys(tmp_path, capsys):
    """IDs are read as exact keys (integers of any size, or text), never through a float:
    IDs beyond 2^53 that a float would merge stay two subjects, and text IDs are valid."""
    from bayes_nlme.data import load_dataset

    for first, second in (("9007199254740993", "9007199254740992"), ("10" * 20, "10" * 20 + "1"), ("S-01", "S-1")):
        rows = [r.replace("1,", f"{first},", 1) for r in subject(1)]
        rows += [r.replace("2,", f"{second},", 1) for r in subject(2)]
        path = csv(tmp_path, rows)
        code, out, err = run(["check", THEO, "--data", path], capsys)
        assert code == 0, err
        ds = load_dataset(path)
        assert ds.n_subjects == 2
        shown = [str(i) for i in ds.subject_ids]
        assert shown == [first, second], shown
    code, _, err = run(
        [
            "predict",
            THEO,
            "--data",
            path,
            "--params",
            ROOT / "models" / "theophylline_params.json",
            "--out",
            tmp_path / "pred.csv",
        ],
        capsys,
    )
    assert code == 0, err
    assert set(pd.read_csv(tmp_path / "pred.csv", dtype={"ID": str})["ID"]) == {"S-01", "S-1"}


# ------------------------------------------------------------- 7. all observations BLQ


@pytest.mark.parametrize("command", ["check", "fit"])
def test_all_blq_is_bad_input(tmp_path, capsys, command):
    rows = [r + (",0" if ",1,1,1," in r else ",1") for r in subject(1) + subject(2)]
    data = csv(tmp_path, rows, header=HEADER + ",BLQ")
    args = {
        "check": ["check", THEO, "--data", data],
        "fit": ["fit", THEO, "--data", data, "--out", tmp_path / "f", "--method", "fo"],
    }[command]
    code, _, err = run(args, capsys)
    assert_bad_input(code, err, "BLQ", "nothing is measured")
    assert not (tmp_path / "f").exists()


# ------------------------------------------------------------- 8. tiny draw counts


def test_draws_below_the_minimum_are_rejected(tmp_path, capsys):
    code, _, err = run(["fit", THEO, "--data", "theophylline", "--out", tmp_path / "f", "--draws", "1"], capsys)
    assert_bad_input(code, err, "--draws", str(MIN_DRAWS))
    one = model(tmp_path, "draws = 1000", "draws = 1")
    code, _, err = run(["fit", one, "--data", "theophylline", "--out", tmp_path / "f"], capsys)
    assert_bad_input(code, err, "[sampling] draws", str(MIN_DRAWS))
    assert not (tmp_path / "f").exists()


def test_tune_zero_is_accepted_like_the_model_file():
    args = build_parser().parse_args(["fit", "m.toml", "--data", "d", "--out", "o", "--tune", "0"])
    assert args.tune == 0


# ------------------------------------------------------------- 9. exit codes


def test_huge_seed_is_bad_input(tmp_path, capsys):
    code, _, err = run(
        ["fit", THEO, "--data", "theophylline", "--out", tmp_path / "f", "--seed", "99999999999999999999"], capsys
    )
    assert_bad_input(code, err, "--seed")


def test_damaged_fit_json_names_the_file(tmp_path, capsys):
    fit = tmp_path / "fit"
    _tiny_dir(fit)
    (fit / "fit.json").write_text("{not json")
    code, _, err = run(["report", fit], capsys)
    assert_bad_input(code, err, str(fit / "fit.json"), "damaged")


# ------------------------------------------------------------- 10. warnings


def test_cli_shows_no_python_warnings(tmp_path, capsys, monkeypatch):
    def noisy_sample(*args, **kwargs):
        warnings.warn("max R-hat 1.2 > 1.01", ConvergenceWarning, stacklevel=2)
        warnings.warn("All-NaN slice encountered", RuntimeWarning, stacklevel=2)
        raise RuntimeError("stop here")

    monkeypatch.setattr(bayes_nlme.fit, "sample", noisy_sample)
    code, out, err = run(["fit", THEO, "--data", "theophylline", "--out", tmp_path / "f", "--quiet"], capsys)
    assert code == 1
    assert "Warning" not in out + err and "All-NaN" not in out + err
    assert err.count("\n") == 1


# ------------------------------------------------------------- 11. the newcomer's path


@pytest.mark.parametrize("args", [[], ["--version"]])
def test_bare_command_and_version(capsys, args):
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert ("usage: bayes-nlme" in out) if not args else (bayes_nlme.__version__ in out)


def test_every_argument_has_help(capsys):
    for command in ("fit", "sensitivity", "predict", "check", "report", "compare"):
        code, out, _ = run([command, "--help"], capsys)
        assert code == 0
        parser = build_parser()
        sub = next(a for a in parser._actions if a.dest == "command").choices[command]
        for action in sub._actions:
            assert action.help, (command, action.dest)


def test_report_compare_takes_several_directories():
    args = build_parser().parse_args(["report", "a", "--compare", "b", "c", "--compare", "d"])
    assert args.compare == ["b", "c", "d"]


def test_tour_params_file_is_shipped(tmp_path, capsys):
    params = ROOT / "models" / "theophylline_params.json"
    code, _, err = run(
        ["predict", THEO, "--data", "theophylline", "--params", params, "--out", tmp_path / "pred.csv"], capsys
    )
    assert code == 0, err
    assert "models/theophylline_params.json" in (ROOT / "README.md").read_text()


def test_fit_announces_the_compile_on_a_terminal(tmp_path, capsys, monkeypatch):
    import bayes_nlme.cli as cli

    monkeypatch.setattr(bayes_nlme.fit, "sample", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
    monkeypatch.setattr(cli, "_tty", lambda: True)
    monkeypatch.delenv("CI", raising=False)  # CI sets it, and CI=1 means quiet
    _, _, err = run(["fit", THEO, "--data", "theophylline", "--out", tmp_path / "f"], capsys)
    assert "compiling" in err
    _, _, err = run(["fit", THEO, "--data", "theophylline", "--out", tmp_path / "f", "--quiet"], capsys)
    assert "compiling" not in err
    monkeypatch.setattr(cli, "_tty", lambda: False)  # a pipe or a log file: no progress lines
    _, _, err = run(["fit", THEO, "--data", "theophylline", "--out", tmp_path / "f"], capsys)
    assert "compiling" not in err


# ------------------------------------------------------------- 13. one definition of R-hat


def test_fit_json_figures_are_the_verdict_figures():
    spec = bayes_nlme.load_model(THEO)
    data = bayes_nlme.load_dataset("theophylline")
    rng = np.random.default_rng(3)
    posterior = _draws(rng.normal(size=(2, 200)))
    posterior["eta"] = (("chain", "draw", "subject"), rng.normal(size=(2, 200, 12)))
    verdict = assess(posterior, _stats(2, 200))
    tree = xr.DataTree.from_dict({"/posterior": xr.DataTree(posterior)})
    fit = BayesFit(
        tree=tree,
        spec=spec,
        dataset=data,
        method="nuts",
        seconds_build=0,
        seconds_sample=0,
        seconds=0,
        draws=200,
        tune=0,
        chains=2,
        convergence=verdict,
    )
    info = fit.info(summary=pd.DataFrame({"parameter": ["theta_CL"], "r_hat": [1.0], "ess_bulk": [9999.0]}))
    assert info["max_r_hat"] == info["convergence"]["max_r_hat"] == verdict.max_r_hat
    assert info["min_ess_bulk"] == info["convergence"]["min_ess_bulk"]
    assert info["complete"] is True
    short = BayesFit(
        tree=tree,
        spec=spec,
        dataset=data,
        method="nuts",
        seconds_build=0,
        seconds_sample=0,
        seconds=0,
        draws=1000,
        tune=0,
        chains=2,
        convergence=verdict,
    )  # stopped after 200
    assert short.info()["complete"] is False and short.info()["draws_completed"] == 200


# ------------------------------------------------------------- 12. report provenance and LOO


def test_subject_loo_with_every_pareto_k_high_says_it_is_unreliable():
    from bayes_nlme.report.sections import loo_reliability_note

    table = pd.DataFrame(
        {
            "criterion": ["LOO (observation)", "LOO (subject)", "WAIC (observation)"],
            "elpd": [-100.0, -120.0, -99.0],
            "se": [5.0, 9.0, 5.0],
            "p": [20.0, 40.0, 21.0],
            "n_data_points": [132, 12, 132],
            "good_k": [0.7, 0.7, np.nan],
            "n_high_k": [0, 12, 3],
            "max_k": [0.5, 1.9, np.nan],
        }
    )
    note = loo_reliability_note(table)
    assert "every subject" in note and "unreliable" in note
    assert "K-fold" in note and "bayes-nlme kfold" in note  # what to run instead, and the report then shows it
    assert "K-fold cross-validation by subject above" in loo_reliability_note(table, kfold=True)
    table.loc[1, "n_high_k"] = 0
    assert loo_reliability_note(table) == ""


@pytest.mark.slow
def test_sigint_during_a_real_fit_exits_130_and_writes_nothing(tmp_path):
    """A real Ctrl-C: after the compile, while nutpie samples (nutpie returns the partial draws)."""
    import os
    import subprocess
    import sys
    import time

    out = tmp_path / "fit"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bayes_nlme",
            "fit",
            str(THEO),
            "--data",
            "theophylline",
            "--out",
            str(out),
            "--draws",
            "1000000",
            "--tune",
            "100",
            "--chains",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    time.sleep(float(os.environ.get("BAYES_NLME_TEST_SIGINT_AFTER", "120")))
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "interrupted; nothing was written" in stderr
    assert "Convergence: ok" not in stdout + stderr
    assert "Traceback" not in stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_report_checks_table_fails_non_finite_values():
    from bayes_nlme.diagnostics.convergence import _stored_verdict

    verdict = _stored_verdict(
        {"ok": False, "max_r_hat": float("nan"), "min_ess_bulk": 500.0, "messages": ["R-hat cannot be computed"]},
        chains=2,
        draws=100,
    )
    checks = verdict["checks"].set_index("check")
    assert not checks.loc["max R-hat (population and etas)", "ok"]
    assert checks.loc["min bulk ESS", "ok"]
    assert not verdict["ok"]


def _synthetic_fit(draws=100, chains=2, seed=5):
    """A BayesFit of the Theophylline model from synthetic draws (no sampling)."""
    spec = bayes_nlme.load_model(THEO)
    data = bayes_nlme.load_dataset("theophylline")
    rng = np.random.default_rng(seed)
    shape = (chains, draws)
    names = ["ka", "CL", "V"]
    omega = np.broadcast_to(np.diag([0.3, 0.2, 0.1]), (*shape, 3, 3)).copy()
    posterior = xr.Dataset(
        {
            "theta_ka": (("chain", "draw"), 1.5 + 0.1 * rng.normal(size=shape)),
            "theta_CL": (("chain", "draw"), 2.8 + 0.1 * rng.normal(size=shape)),
            "theta_V": (("chain", "draw"), 32 + rng.normal(size=shape)),
            "omega": (("chain", "draw", "parameter", "parameter2"), omega),
            "sigma2_add": (("chain", "draw"), 0.5 + 0.01 * rng.normal(size=shape)),
        },
        coords={"parameter": names, "parameter2": names},
    )
    tree = xr.DataTree.from_dict({"/posterior": xr.DataTree(posterior)})
    verdict = assess(posterior[["theta_ka", "theta_CL", "theta_V"]], _stats(chains, draws))
    return BayesFit(
        tree=tree,
        spec=spec,
        dataset=data,
        method="nuts",
        seconds_build=0,
        seconds_sample=0,
        seconds=0,
        draws=draws,
        tune=50,
        chains=chains,
        seed=123,
        convergence=verdict,
    )


def test_fit_overwrite_replaces_the_directory_whole(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bayes_nlme.fit, "sample", lambda *a, **k: _synthetic_fit())
    out = tmp_path / "fit"
    code, _, err = run(["fit", THEO, "--data", "theophylline", "--out", out, "--quiet", "--draws", "100"], capsys)
    assert code == 0, err
    (out / "report.html").write_text("stale report of an earlier fit")
    (out / "ebe.csv").write_text("stale EBEs of an earlier FOCE-I fit")
    code, _, err = run(["fit", THEO, "--data", "theophylline", "--out", out, "--quiet"], capsys)
    assert_bad_input(code, err, "--overwrite")
    assert (out / "report.html").is_file()  # untouched without --overwrite
    code, _, err = run(["fit", THEO, "--data", "theophylline", "--out", out, "--quiet", "--overwrite"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["fit.json", "fit.nc", "summary.csv"]
    info = json.loads((out / "fit.json").read_text())
    assert info["complete"] is True and info["seed"] == 123
    assert info["bayes_nlme_version"] == bayes_nlme.__version__ and info["created"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit"]
