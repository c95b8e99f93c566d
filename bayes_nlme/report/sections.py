"""The sections of the HTML report, each filling a :class:`~bayes_nlme.report.html.Page`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import diagnostics as dg
from .. import plots
from ..fitdir import SPEC_ATTR
from ..plots._common import parameter_unit
from .checks import comparison, loo_reliability_note, predictive_accuracy, prior_sensitivity
from .context import N_REPLICATES, SEED, Context, _figure
from .html import escape, table_html

__all__ = [
    "model_and_data",
    "convergence",
    "parameters",
    "goodness_of_fit",
    "individual",
    "vpc",
    "random_effects",
    "predictive_accuracy",
    "comparison",
    "prior_sensitivity",
    "Context",
    "STUDY_DIR",
    "provenance",
    "derived_quantities",
    "loo_reliability_note",
]

#: Where a fit directory keeps its prior sensitivity study
#: (``bayes-nlme sensitivity ... --out DIR/sensitivity``).
STUDY_DIR = "sensitivity"


def model_and_data(page, ctx: Context) -> None:
    """Model specification (TOML), dataset summary, covariates and a plot of the data."""
    fd = ctx.fd
    parts = page.section("model", "Model and data")
    parts.append("<h3>Provenance</h3>")
    parts.append(table_html(provenance(fd)))
    parts.append("<h3>Model specification</h3>")
    if fd.bayesian:
        parts.append(
            "<p>As the fit ran: <code>[sampling]</code> holds the draws, tuning steps, chains and "
            "seed actually used (command-line options included).</p>"
        )
    parts.append(f"<pre>{escape(fd.tree.attrs.get(SPEC_ATTR, ''))}</pre>")
    parts.append("<h3>Dataset</h3>")
    obs_per = fd.obs.groupby("SUBJECT").size()
    doses = fd.dataset.doses
    u = fd.units
    rows = [
        ("source", str(fd.dataset.source)),
        ("subjects", str(fd.n_subjects)),
        ("observations", f"{len(fd.obs)} ({obs_per.min()} to {obs_per.max()} per subject)"),
        (
            "dose records",
            f"{len(doses)}; amounts {doses['AMT'].min():.4g} to {doses['AMT'].max():.4g}"
            f"{' ' + u.amount if u.amount else ''}"
            if len(doses)
            else "0",
        ),
        ("time range", f"{fd.obs['TIME'].min():.4g} to {fd.obs['TIME'].max():.4g}{' ' + u.time if u.time else ''}"),
        (
            "concentrations",
            f"{fd.obs['DV'].min():.4g} to {fd.obs['DV'].max():.4g}{' ' + u.concentration if u.concentration else ''}",
        ),
        ("below limit (BLQ)", str(int((fd.obs["BLQ"].fillna(0) > 0).sum()))),
        ("covariates", ", ".join(fd.dataset.covariates) or "none"),
    ]
    parts.append(table_html(pd.DataFrame(rows, columns=["item", "value"])))
    covariates = [c for c in fd.dataset.covariates if c in fd.subject_covariates.columns]
    if covariates:
        table = fd.subject_covariates[covariates].astype(float)
        summary = pd.DataFrame(
            {
                "covariate": covariates,
                "unit": [u.column(c) for c in covariates],
                "min": table.min().to_numpy(),
                "median": table.median().to_numpy(),
                "max": table.max().to_numpy(),
                "used by the model": ["yes" if c in fd.spec.covariate_columns else "no" for c in covariates],
            }
        )
        parts.append("<p>Covariates per subject (first record):</p>" + table_html(summary))
    for output, name in _outputs(fd):
        _figure(
            page,
            parts,
            lambda o=output: plots.plot_data(fd, output=o),
            f"Observed {'concentrations' if not name else 'values' + name} against time, one colour per subject, "
            "on linear and log scales.",
        )


def provenance(fd) -> pd.DataFrame:
    """Who made the fit and how: package versions, date, method, sampler settings, seed.

    Parameters
    ----------
    fd : FitData

    Returns
    -------
    pandas.DataFrame
        Columns ``item`` and ``value``.
    """
    from .. import __version__

    info = fd.info
    rows = [
        ("fit made by", f"bayes_nlme {info.get('bayes_nlme_version', 'unknown (older than 0.1.0)')}"),
        ("fit created (UTC)", str(info.get("created") or "unknown")),
        ("report made by", f"bayes_nlme {__version__}"),
        ("method", str(fd.method)),
    ]
    if fd.bayesian:
        seed = info.get("seed")
        rows += [
            ("sampler", str(info.get("sampler", ""))),
            ("draws x chains", f"{info.get('draws')} x {info.get('chains')}"),
            ("tuning steps per chain", str(info.get("tune", 0))),
            ("seed used", "none (not reproducible)" if seed is None else str(seed)),
        ]
    return pd.DataFrame(rows, columns=["item", "value"])


def convergence(page, ctx: Context, table: pd.DataFrame) -> None:
    """Sampler settings, the convergence verdict and its checks, rank and trace plots."""
    fd = ctx.fd
    parts = page.section("convergence", "Sampler and convergence")
    verdict = dg.convergence_verdict(fd, table)
    cls = "ok" if verdict["ok"] else "fail"
    parts.append(f'<div class="verdict {cls}">{escape(verdict["text"])}</div>')
    if verdict["messages"]:
        parts.append("<ul>" + "".join(f"<li>{escape(m)}</li>" for m in verdict["messages"]) + "</ul>")
    checks = verdict["checks"].copy()
    checks["ok"] = checks["ok"].map({True: "pass", False: "FAIL"})
    parts.append(table_html(checks))
    info = fd.info
    keys = [
        k
        for k in ("draws", "tune", "chains", "divergences", "seconds_build", "seconds_sample", "seconds", "sampler")
        if k in info
    ]
    if keys:
        parts.append("<p>Sampler run (from fit.json):</p>")
        parts.append(table_html(pd.DataFrame({"item": keys, "value": [info[k] for k in keys]})))
    _figure(
        page,
        parts,
        lambda: plots.plot_rank(fd),
        "Rank plots of the population parameters: for each chain the ECDF of the fractional ranks "
        "minus the uniform CDF; chains sampling the same distribution stay close to 0 (the p-value is "
        "that of the multi-chain uniformity test).",
    )
    _figure(
        page,
        parts,
        lambda: plots.plot_trace(fd),
        "Traces of the population parameters, one colour per chain: chains should overlap and show no trend.",
    )


def _cv(name: str, value: float, elements: dict) -> float:
    a, b = elements.get(name, (None, None))
    variance = (a is not None and a == b) or name.startswith("omega_iov_")
    return float(dg.omega_cv_pct(value)) if variance and value >= 0 else np.nan


def parameters(page, ctx: Context, table: pd.DataFrame | None) -> None:
    """The parameter table, prior vs posterior densities and the pair plot."""
    fd = ctx.fd
    parts = page.section("parameters", "Parameters")
    elements = dg.omega_elements(fd.spec)
    if fd.bayesian:
        t = table
        out = pd.DataFrame(
            {
                "parameter": t["parameter"],
                "unit": [parameter_unit(p, fd.units) for p in t["parameter"]],
                "mean": t["mean"],
                "sd": t["sd"],
                "median": t["median"],
                "5%": t["q5"],
                "95%": t["q95"],
            }
        )
        if "r_hat" in t and fd.method == "nuts":
            out["R-hat"], out["ESS bulk"], out["ESS tail"] = t["r_hat"], t["ess_bulk"], t["ess_tail"]
        out["CV% (omega)"] = [_cv(n, m, elements) for n, m in zip(t["parameter"], t["mean"])]
        what = "Summaries of the prior draws" if fd.method == "prior" else "Posterior summaries"
        parts.append(
            f"<p>{what}; 5% and 95% bound the 90% central credible interval. "
            "CV% of a variance omega_PP (or IOV variance omega_iov_P) is sqrt(exp(omega_PP) - 1) x 100 "
            "at its posterior mean.</p>"
        )
        parts.append(table_html(out, {"R-hat": "rhat", "ESS bulk": "int", "ESS tail": "int", "CV% (omega)": "pct"}))
        derived = derived_quantities(fd)
        if not derived.empty:
            parts.append(
                "<p>Derived from the draws: omega correlations corr_P_Q = omega_P_Q / "
                "sqrt(omega_P_P omega_Q_Q), SDs of the etas sd_eta_P = sqrt(omega_P_P) and residual "
                "SDs sd_add = sqrt(sigma2_add) etc.</p>"
            )
            parts.append(table_html(derived))
        _figure(
            page,
            parts,
            lambda: plots.plot_prior_posterior(fd),
            "Prior (dashed) and posterior (filled) densities of the population parameters; priors as "
            "stated in the model file (the off-diagonal omega priors have no closed-form marginal and are "
            "not drawn).",
        )
        _figure(
            page,
            parts,
            lambda: plots.plot_pair(fd),
            "Pairs of posterior draws of the typical values and residual variances, with correlations.",
        )
        return
    s = fd.summary.set_index("parameter")
    est = s["estimate"].astype(float)
    se = s["se"].astype(float) if "se" in s else pd.Series(np.nan, index=est.index)
    out = pd.DataFrame(
        {
            "parameter": est.index,
            "unit": [parameter_unit(p, fd.units) for p in est.index],
            "estimate": est.to_numpy(),
            "SE": se.to_numpy(),
            "RSE%": s["rse_pct"].astype(float).to_numpy() if "rse_pct" in s else np.nan,
            "95% CI low": (est - 1.959964 * se).to_numpy(),
            "95% CI high": (est + 1.959964 * se).to_numpy(),
            "CV% (omega)": [_cv(n, v, elements) for n, v in zip(est.index, est.to_numpy())],
        }
    )
    parts.append(
        "<p>Maximum-likelihood estimates with standard errors (covariance step) and Wald 95% "
        "intervals. CV% of a variance omega_PP (or IOV variance omega_iov_P) is "
        "sqrt(exp(omega_PP) - 1) x 100.</p>"
    )
    parts.append(table_html(out, {"RSE%": "pct", "CV% (omega)": "pct"}))
    derived = derived_quantities(fd)
    if not derived.empty:
        parts.append("<p>Derived from the estimates: omega correlations, SDs of the etas and residual SDs.</p>")
        parts.append(table_html(derived))


def _derived(values: dict, spec) -> dict:
    """Correlations, eta SDs and residual SDs from canonical values (arrays or floats)."""
    from ..fit.summary import omega_pairs

    out = {}
    for p, q in omega_pairs(spec):
        if p == q:
            out[f"sd_eta_{p}"] = np.sqrt(values[f"omega_{p}_{p}"])
    for p, q in omega_pairs(spec):
        if p != q:
            out[f"corr_{p}_{q}"] = values[f"omega_{p}_{q}"] / np.sqrt(
                values[f"omega_{p}_{p}"] * values[f"omega_{q}_{q}"]
            )
    for name in spec.residual.variances:
        out[name.replace("sigma2_", "sd_", 1)] = np.sqrt(values[name])
    return out


def derived_quantities(fd) -> pd.DataFrame:
    """Omega correlations, eta SDs and residual SDs beside the variances of the summary.

    Parameters
    ----------
    fd : FitData

    Returns
    -------
    pandas.DataFrame
        Bayesian fits: ``quantity, mean, sd, median, 5%, 95%`` over the draws;
        frequentist fits: ``quantity, estimate``. Empty when nothing can be derived.
    """
    from ..fit.summary import canonical_draws

    try:
        with np.errstate(all="ignore"):
            if fd.bayesian:
                draws = canonical_draws(fd.spec, fd.group(fd.draws_group))
                values = {k: np.asarray(v.values, dtype=float).reshape(-1) for k, v in draws.items()}
                rows = [
                    (k, np.mean(v), np.std(v, ddof=1), np.median(v), np.quantile(v, 0.05), np.quantile(v, 0.95))
                    for k, v in _derived(values, fd.spec).items()
                ]
                return pd.DataFrame(rows, columns=["quantity", "mean", "sd", "median", "5%", "95%"])
            est = fd.summary.set_index("parameter")["estimate"].astype(float).to_dict()
            rows = [(k, float(v)) for k, v in _derived(est, fd.spec).items()]
            return pd.DataFrame(rows, columns=["quantity", "estimate"])
    except (KeyError, ValueError, TypeError):
        return pd.DataFrame()


def estimation(page, ctx: Context) -> None:
    """Objective function, information criteria and convergence of a frequentist fit."""
    fd = ctx.fd
    parts = page.section("estimation", "Estimation")
    info = fd.info
    names = {
        "method": "method",
        "ofv": "OFV",
        "minus2ll": "-2 log-likelihood",
        "aic": "AIC",
        "bic": "BIC",
        "n_parameters": "estimated parameters",
        "converged": "converged",
        "optimizer_message": "optimiser",
        "convergence_reason": "why not converged",
        "ofv_method": "OFV method",
        "ofv_mcse": "OFV Monte-Carlo standard error",
        "n_subjects": "subjects",
        "n_obs": "observations",
        "n_iterations": "iterations",
        "covariance": "covariance step",
        "covariance_ok": "covariance step succeeded",
        "covariance_message": "covariance step message",
        "n_blq_omitted": "BLQ observations omitted",
        "seconds_compile": "seconds (compilation)",
        "seconds": "seconds (estimation)",
    }
    keys = [k for k in names if k in info]
    rows = pd.DataFrame(
        {
            "item": [names[k] for k in keys],
            "value": [info[k] if not isinstance(info[k], (bool, dict, list)) else str(info[k]) for k in keys],
        }
    )
    parts.append(
        "<p>OFV is -2 log-likelihood without the n_obs ln(2 pi) constant (NONMEM); AIC and BIC "
        "are from the full -2 log-likelihood, BIC with ln(number of subjects).</p>"
    )
    parts.append(table_html(rows))
    if "converged" in info and not info["converged"]:
        reason = escape(str(info.get("convergence_reason") or info.get("optimizer_message") or ""))
        advice = escape(str(info.get("advice") or ""))
        parts.append(
            '<div class="verdict fail">Not converged: the estimates are not a verified optimum'
            f"{': ' + reason if reason else ''}.{' ' + advice + '.' if advice else ''}</div>"
        )
    if info.get("covariance") and not info.get("covariance_ok", True):
        message = escape(str(info.get("covariance_message") or "the covariance step failed"))
        parts.append(f'<div class="verdict fail">No standard errors: {message}.</div>')
    path = getattr(fd.fitdir, "path", None)
    if path is not None and (path / "saem_trajectory.csv").exists():
        trajectory = pd.read_csv(path / "saem_trajectory.csv")
        _figure(
            page,
            parts,
            lambda: plots.plot_saem_trajectory(trajectory),
            "SAEM trajectories of the population parameters; the dashed line ends the exploration phase "
            "(step 1), after which the estimates are averaged (step 1/k).",
        )


def _outputs(fd) -> list:
    """``(output, " (name)")`` per output of a model with several outputs (one panel
    each, CONTRACT 5.4); ``[(None, "")]`` otherwise."""
    names = fd.output_names
    if len(names) < 2:
        return [(None, "")]
    return [(k, f" ({name})") for k, name in enumerate(names)]


def goodness_of_fit(page, ctx: Context) -> None:
    """DV vs PRED/IPRED, residual plots (NPDE; CWRES for frequentist fits), per output."""
    fd = ctx.fd
    parts = page.section("gof", "Goodness of fit")
    cw = fd.cwres
    for output, name in _outputs(fd):
        _figure(
            page,
            parts,
            lambda o=output: plots.plot_dv_vs_pred(fd, output=o),
            f"Observations{name} against population predictions (PRED: typical subject with its covariates, "
            "etas zero) and individual predictions (IPRED), with the identity line and a binned median.",
        )
        if cw is not None:
            _figure(
                page,
                parts,
                lambda o=output: plots.plot_residuals(fd, cw, name="CWRES", output=o),
                f"Conditional weighted residuals{name} (CWRES, from the estimation) against time and PRED.",
            )
        _figure(
            page,
            parts,
            lambda o=output: plots.plot_residuals(fd, ctx.npde["npde"].to_numpy(), name="NPDE", output=o),
            f"NPDE{name} against time and PRED ({N_REPLICATES} replicates, decorrelated per subject with the "
            "Cholesky factor of the simulated covariance; Comets et al. 2008).",
        )
    _figure(
        page,
        parts,
        lambda: plots.plot_npde_distribution(ctx.npde["npde"].to_numpy()),
        "Distribution of the NPDE against the standard normal.",
    )
    values = ctx.npde["npde"].to_numpy()
    for output, name in _outputs(fd):
        rows = slice(None) if output is None else fd.output == output
        summary = dg.npde_summary(values[rows]).reset_index()
        parts.append(
            f"<p>NPDE tests{name} (Wilcoxon for the mean, Fisher for the variance, Shapiro-Wilk for "
            "normality):</p>" + table_html(summary, {"p_value": "g"})
        )


def individual(page, ctx: Context) -> None:
    """Individual fits (one figure per output)."""
    fd = ctx.fd
    parts = page.section("individual", "Individual fits")
    band = "posterior median and 90% credible band" if fd.bayesian else "prediction at the EBEs"
    for output, name in _outputs(fd):
        _figure(
            page,
            parts,
            lambda o=output: plots.plot_individual_fits(fd, output=o),
            f"Observations{name} and individual predictions ({band}); dashed: population prediction.",
        )


def vpc(page, ctx: Context) -> None:
    """VPC and prediction-corrected VPC (per output)."""
    fd = ctx.fd
    parts = page.section("vpc", "Visual predictive checks")
    source = (
        "the posterior predictive distribution of new subjects (each replicate from another posterior "
        "draw, new etas and residual errors)"
        if fd.bayesian
        else "the estimates (new etas and residual errors)"
    )
    parts.append(
        f"<p>{N_REPLICATES} replicates of the dataset simulated from {escape(source)}, seed {SEED}. "
        "Bands: 90% intervals of the simulated 5th, 50th and 95th percentiles in each time bin; "
        "lines: the observed percentiles.</p>"
    )
    for output, name in _outputs(fd):
        _figure(page, parts, lambda o=output: plots.plot_vpc(fd, ctx.sims, output=o), f"Visual predictive check{name}.")
        _figure(
            page,
            parts,
            lambda o=output: plots.plot_vpc(fd, ctx.sims, prediction_corrected=True, output=o),
            f"Prediction-corrected VPC{name} (Bergstrand et al. 2011): values scaled by the median PRED of the "
            "bin over their PRED; observations with PRED = 0 (at the dose time) are left out.",
        )


def random_effects(page, ctx: Context, compare_fds=()) -> None:
    """Eta shrinkage (table and chart) and etas vs covariates."""
    fd = ctx.fd
    parts = page.section("random-effects", "Random effects")
    if not fd.spec.iiv_names:
        parts.append("<p>The model has no between-subject variability.</p>")
        _occasions(parts, fd, "posterior means" if fd.bayesian else "EBEs")
        return
    shrink = {fd.label: dg.eta_shrinkage(fd)}
    for other in compare_fds:
        if list(other.spec.iiv_names) == list(fd.spec.iiv_names):
            label = other.label if other.label not in shrink else f"{other.label} ({other.fitdir.path.name})"
            shrink[label] = dg.eta_shrinkage(other)
    frame = pd.DataFrame(shrink)
    shown = (100 * frame).rename(columns=lambda c: f"{c} shrinkage %")
    how = "posterior means of the etas and the posterior mean of omega" if fd.bayesian else "EBEs and omega"
    parts.append(f"<p>SD-based eta shrinkage, 1 - sd(eta) / sqrt(omega_PP), from the {escape(how)}.</p>")
    parts.append(table_html(shown, {c: "pct" for c in shown.columns}, index=True))
    _figure(page, parts, lambda: plots.plot_shrinkage(frame), "Eta shrinkage by parameter.")
    _occasions(parts, fd, how)
    _figure(
        page,
        parts,
        lambda: plots.plot_eta_covariates(fd),
        "Etas against the covariates of the dataset, with least-squares lines and correlations.",
    )


def _occasions(parts, fd, how: str) -> None:
    """Kappa shrinkage (separate from the etas') and the kappas by occasion (IOV models)."""
    if not getattr(fd.spec, "iov_names", ()):
        return
    shrink = (100 * dg.kappa_shrinkage(fd)).rename("kappa shrinkage %").to_frame()
    parts.append(
        "<p>Inter-occasion variability: SD-based kappa shrinkage, 1 - sd(kappa) / sqrt(omega_iov_P) over "
        f"every subject-occasion, from the {escape(how.replace('etas', 'kappas').replace('omega', 'omega_iov'))}."
        "</p>"
    )
    parts.append(table_html(shrink, {"kappa shrinkage %": "pct"}, index=True))
    parts.append("<p>Kappas by occasion (OCC): number of subjects, mean, SD and range of the kappas.</p>")
    parts.append(table_html(dg.kappas_by_occasion(fd)))
