"""The HTML report, compare_fits and the `report` / `compare` commands on real fits.

The fits are made once per module with small draws (a NUTS fit and a FOCE-I fit of the
bundled Theophylline model); the report is built once from the live fit (Python API) and
once from the fit directory (``bayes-nlme report``), and the two must be byte-identical.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import bayes_nlme as bn
from bayes_nlme.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "theophylline.toml"

SECTIONS = ("model", "convergence", "parameters", "gof", "individual", "vpc", "random-effects", "loo", "compare")


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    root = tmp_path_factory.mktemp("fits")
    spec = bn.load_model(MODEL)
    data = bn.load_dataset("theophylline")
    from bayes_nlme.estimation import CovarianceWarning
    from bayes_nlme.fit import ConvergenceWarning

    with warnings.catch_warnings():
        # Short chains do not converge, and the covariance step may fail: both are
        # reported in the fit (and the report); here they are expected, not errors.
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", CovarianceWarning)
        nuts = bn.sample(spec, data, draws=150, tune=150, chains=2, seed=11, quiet=True)
        focei = bn.estimate(spec, data, method="focei")
    nuts_dir = Path(nuts.save(root / "nuts"))
    focei_dir = Path(focei.save(root / "focei"))
    return {"nuts": nuts, "nuts_dir": nuts_dir, "focei_dir": focei_dir, "root": root}


@pytest.fixture(scope="module")
def report(fits, tmp_path_factory):
    """The report of the live NUTS fit (saved and read back inside write_report)."""
    out = tmp_path_factory.mktemp("report") / "live.html"
    path = bn.write_report(fits["nuts"], out=out, compare=[fits["focei_dir"]])
    assert path == out
    return path.read_text(encoding="utf-8")


def test_report_has_every_section_and_embedded_figures(report):
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in report, anchor
    images = re.findall(r"<img [^>]*>", report)
    assert len(images) >= 8
    assert all('src="data:image/png;base64,' in img for img in images)
    for text in (
        "Rank plots",
        "Prior (dashed)",
        "VPC",
        "Prediction-corrected VPC",
        "NPDE",
        "Individual fits",
        "Eta shrinkage",
        "Pareto k",
        "LOO (subject)",
        "WAIC",
        "R-hat",
        "CV% (omega)",
        "theta_CL",
        '<th colspan="3">nuts</th>',
        '<th colspan="3">focei</th>',
        "mg/L",
    ):
        assert text in report, text
    assert "Figure not drawn" not in report
    assert 'class="verdict' in report


def test_report_is_self_contained(report):
    assert "://" not in report  # no URL of any kind (base64 has no ':')
    assert "<script" not in report.lower()
    assert "<link" not in report.lower()
    assert re.search(r'(src|href)="(?!data:|#)', report) is None


def test_report_command_on_the_directory_equals_the_report_of_the_live_fit(fits, report, capsys):
    assert main(["report", str(fits["nuts_dir"]), "--compare", str(fits["focei_dir"])]) == 0
    written = fits["nuts_dir"] / "report.html"
    assert str(written) in capsys.readouterr().out
    assert written.read_text(encoding="utf-8") == report


def test_frequentist_report_from_the_command_line(fits, tmp_path, capsys):
    out = tmp_path / "focei.html"
    assert main(["report", str(fits["focei_dir"]), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    html = out.read_text(encoding="utf-8")
    for text in ("OFV", "AIC", "BIC", "RSE%", "CWRES", "NPDE", "Eta shrinkage", "VPC"):
        assert text in html, text
    assert '<section id="convergence">' not in html and '<section id="loo">' not in html
    assert html.count("<img ") >= 7


def test_compare_command_prints_both_fits(fits, tmp_path, capsys):
    csv = tmp_path / "table.csv"
    assert main(["compare", str(fits["nuts_dir"]), str(fits["focei_dir"]), "--out", str(csv)]) == 0
    printed = capsys.readouterr().out
    assert "nuts median" in printed and "focei estimate" in printed
    assert "theta_CL" in printed and "omega_CL_CL" in printed and "sigma2_add" in printed
    assert csv.is_file()


def test_compare_fits_agree_on_typical_values(fits):
    table = bn.compare_fits(fits["nuts_dir"], fits["focei_dir"]).set_index("parameter")
    assert list(table.columns[:1]) == ["unit"]
    assert table.loc["theta_CL", "unit"] == "L/h" and table.loc["theta_V", "unit"] == "L"
    for name in ("theta_ka", "theta_CL", "theta_V"):
        row = table.loc[name]
        assert row["nuts 5%"] < row["nuts median"] < row["nuts 95%"]
        if np.isfinite(row["focei 2.5%"]):  # NaN when the covariance step fails
            assert row["focei 2.5%"] < row["focei estimate"] < row["focei 97.5%"]
        # the two methods agree within the wider of the intervals
        assert abs(np.log(row["nuts median"] / row["focei estimate"])) < 0.3


def test_report_of_a_missing_directory_is_bad_input(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_diagnostics_of_the_nuts_fit(fits):
    from bayes_nlme import diagnostics as dg

    fd = dg.as_fit_data(fits["nuts_dir"])
    table = dg.convergence_table(fd)
    assert table["parameter"].tolist() == dg.population_names(fd.spec)
    assert np.all(table["r_hat"] < 1.2)
    shrink = dg.eta_shrinkage(fd)
    assert list(shrink.index) == ["ka", "CL", "V"] and np.all((shrink > -0.5) & (shrink < 1))
    loo = dg.loo_table(fd).set_index("criterion")
    assert loo.loc["LOO (observation)", "n_data_points"] == 132
    assert loo.loc["LOO (subject)", "n_data_points"] == 12
    assert np.isfinite(loo["elpd"]).all()
    npde = dg.fit_npde(fd, n=200)
    assert len(npde) == 132 and abs(npde["npde"].mean()) < 0.5


def test_report_provenance_derived_quantities_and_sampling_as_run(report):
    """Issue 15 (12): version, date and seed; the [sampling] used; correlations and SDs."""
    import bayes_nlme

    for text in (
        "Provenance",
        f"bayes_nlme {bayes_nlme.__version__}",
        "fit created (UTC)",
        "seed used",
        "draws x chains",
        "150 x 2",
        "corr_ka_CL",
        "sd_eta_CL",
        "sd_add",
    ):
        assert text in report, text
    assert "draws = 150" in report and "tune = 150" in report and "seed = 11" in report
    assert "draws = 1000" not in report
