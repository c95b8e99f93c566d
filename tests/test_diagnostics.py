"""Diagnostics that need no fit: NPDE, VPC binning, priors, units, HTML helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_nlme.diagnostics import npde, npde_summary, omega_cv_pct, prediction_correct, time_bins, vpc_table
from bayes_nlme.diagnostics.units import Units, dataset_units


def _replicates(rng, n_subjects=40, times=(0.5, 1, 2, 4, 8, 12), k=800):
    """A random-intercept model: y_ij = 10 exp(b_i) exp(-0.1 t_j) + e_ij."""
    t = np.tile(np.asarray(times, float), n_subjects)
    subject = np.repeat(np.arange(n_subjects), len(times))

    def draw(size):
        b = rng.normal(0.0, 0.3, size=(size, n_subjects))[:, subject]
        return 10 * np.exp(b) * np.exp(-0.1 * t) + rng.normal(0.0, 0.5, size=(size, len(t)))

    return t, subject, draw(1)[0], draw(k)


def test_npde_of_data_from_the_model_is_standard_normal():
    rng = np.random.default_rng(1)
    _, subject, obs, sims = _replicates(rng)
    out = npde(obs, sims, subject)
    assert list(out.columns) == ["pd", "npd", "pde", "npde"]
    assert np.all(np.isfinite(out["npde"]))
    assert abs(out["npde"].mean()) < 0.25
    assert 0.7 < out["npde"].var() < 1.3
    summary = npde_summary(out["npde"])
    assert summary.loc["normality", "p_value"] > 0.001
    assert summary.loc["mean", "p_value"] > 0.001


def test_npde_decorrelation_removes_within_subject_correlation():
    rng = np.random.default_rng(2)
    _, subject, _, sims = _replicates(rng, n_subjects=200)
    obs = _replicates(np.random.default_rng(3), n_subjects=200)[2]
    out = npde(obs, sims, subject)
    # Correlation between consecutive values of a subject: strong for npd, ~0 for npde.
    first = subject == np.roll(subject, -1)
    npd = out["npd"].to_numpy()
    npde_values = out["npde"].to_numpy()
    idx = np.flatnonzero(first)
    r_npd = np.corrcoef(npd[idx], npd[idx + 1])[0, 1]
    r_npde = np.corrcoef(npde_values[idx], npde_values[idx + 1])[0, 1]
    assert r_npd > 0.4
    assert abs(r_npde) < 0.15


def test_npde_detects_a_biased_model():
    rng = np.random.default_rng(4)
    _, subject, obs, sims = _replicates(rng)
    out = npde(obs + 2.0, sims, subject)
    assert out["npde"].mean() > 0.5
    assert npde_summary(out["npde"]).loc["mean", "p_value"] < 1e-4


def test_npde_checks_shapes():
    with pytest.raises(ValueError, match="simulated must be"):
        npde(np.zeros(3), np.zeros((10, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="at least 2"):
        npde(np.zeros(3), np.zeros((1, 3)), np.zeros(3))


def test_pde_is_kept_away_from_0_and_1():
    out = npde(np.array([100.0, -100.0]), np.zeros((50, 2)) + np.arange(50)[:, None] * 0.01, np.array([0, 1]))
    assert out["pde"].max() == pytest.approx(1 - 1 / 100)
    assert out["pde"].min() == pytest.approx(1 / 100)
    assert np.all(np.isfinite(out["npde"]))


def test_time_bins_never_split_equal_times():
    times = np.repeat([0.0, 0.5, 1.0, 2.0, 4.0, 8.0], 10)
    edges = time_bins(times, 6)
    assert len(edges) == 7
    which = np.digitize(times, edges[1:-1])
    for t in np.unique(times):
        assert len(np.unique(which[times == t])) == 1
    assert len(np.unique(which)) == 6
    # more bins than distinct times: one bin per time
    assert np.allclose(time_bins(times, 20), [-np.inf, 0.25, 0.75, 1.5, 3.0, 6.0, np.inf])


def test_vpc_table_covers_data_from_the_model():
    rng = np.random.default_rng(5)
    t, subject, _, sims = _replicates(rng, k=300)
    inside = []
    for obs in sims[:20]:  # 90% intervals: each observed percentile is inside 90% of the time
        table = vpc_table(t, obs, sims[20:], subject=subject)
        assert len(table) == 6  # six sampling times per subject
        assert table["n"].sum() == len(t)
        for tag in ("p5", "p50", "p95"):
            assert np.all(table[f"sim_{tag}_lo"] <= table[f"sim_{tag}_hi"])
            obs_q = table[f"obs_{tag}"]
            inside.append((obs_q >= table[f"sim_{tag}_lo"]) & (obs_q <= table[f"sim_{tag}_hi"]))
    assert 0.75 < np.mean(np.concatenate(inside)) <= 1.0
    assert list(table.attrs["edges"])[0] == -np.inf


def test_prediction_correction_scales_to_the_bin_median_and_drops_zero_pred():
    t = np.array([0.0, 1.0, 1.0, 1.0])
    pred = np.array([0.0, 1.0, 2.0, 4.0])
    y = np.array([0.3, 1.0, 2.0, 4.0])
    corrected, keep = prediction_correct(t, y, pred, time_bins(t, 2))
    assert keep.tolist() == [False, True, True, True]
    assert np.allclose(corrected[1:], 2.0)
    table = vpc_table(t, y, np.tile(y, (5, 1)), pred=pred, n_bins=2)
    assert table["n"].sum() == 3


def test_omega_cv_pct():
    assert omega_cv_pct(0.09) == pytest.approx(np.sqrt(np.exp(0.09) - 1) * 100)
    assert omega_cv_pct(0.0) == 0.0


def test_inverse_wishart_marginal_prior_matches_monte_carlo():
    from bayes_nlme.plots.mcmc import prior_distribution
    from bayes_nlme.spec import load_model

    spec = load_model("models/theophylline.toml")
    marginal = prior_distribution(spec, "omega_CL_CL")
    draws = stats.invwishart(df=spec.omega.prior.df, scale=spec.omega.prior.scale_matrix).rvs(
        20000, random_state=np.random.default_rng(0)
    )
    assert stats.kstest(draws[:, 1, 1], marginal.cdf).pvalue > 0.001
    assert prior_distribution(spec, "omega_ka_CL") is None
    assert prior_distribution(spec, "theta_CL").median() == pytest.approx(3.0)
    assert prior_distribution(spec, "sigma2_add").mean() == pytest.approx(0.5)


def test_units_of_the_bundled_dataset():
    from bayes_nlme.data import load_dataset

    units = dataset_units(load_dataset("theophylline"))
    assert (units.time, units.amount, units.concentration) == ("h", "mg", "mg/L")
    assert [units.parameter(p) for p in ("CL", "V", "ka", "Q", "tlag", "F")] == ["L/h", "L", "1/h", "L/h", "h", ""]
    assert units.time_label == "Time (h)"
    assert units.column("WT") == "kg"
    frame = load_dataset("theophylline").original
    generic = dataset_units(load_dataset(frame))
    assert generic == Units()
    assert generic.conc_label == "Concentration"


def test_html_tables_escape_and_format():
    from bayes_nlme.report.html import format_number, table_html

    html = table_html(pd.DataFrame({"name": ["<b>"], "x": [1234.5678], "n": [12.0]}), {"n": "int"})
    assert "&lt;b&gt;" in html and "<b>" not in html
    assert ">1235<" in html and ">12<" in html
    assert format_number(float("nan")) == "–"
    assert format_number(1.00456, "rhat") == "1.005"
    assert format_number(1e-6) == "1.000e-06"


def test_shrinkage_chart_is_labelled():
    from bayes_nlme.plots import plot_shrinkage, png_bytes

    fig = plot_shrinkage(pd.Series({"CL": 0.1, "V": 0.45}))
    ax = fig.axes[0]
    assert "Eta shrinkage" in ax.get_xlabel() and ax.get_title()
    png = png_bytes(fig)
    assert png.startswith(b"\x89PNG") and png == png_bytes(plot_shrinkage(pd.Series({"CL": 0.1, "V": 0.45})))
