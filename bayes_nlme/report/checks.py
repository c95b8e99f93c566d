"""Report sections that check the model against other evidence: predictive accuracy
(LOO, K-fold), comparison with other fits, and the prior sensitivity study."""

from __future__ import annotations

import pandas as pd

from .. import diagnostics as dg
from .. import plots
from .context import Context, _figure
from .html import escape, table_html

__all__ = ["predictive_accuracy", "loo_reliability_note", "comparison", "prior_sensitivity"]


def predictive_accuracy(page, ctx: Context) -> None:
    """PSIS-LOO per observation and per subject, WAIC, Pareto k plot."""
    fd = ctx.fd
    parts = page.section("loo", "Predictive accuracy (LOO)")
    obs, subj = dg.loo_observation(fd), dg.loo_subject(fd)
    table = dg.loo_table(fd, loo_obs=obs, loo_subj=subj)
    if table.empty:
        parts.append("<p>The fit has no log-likelihood group.</p>")
        return
    parts.append(
        "<p>PSIS-LOO leaving out one observation and one whole subject, and WAIC. "
        "n_high_k counts Pareto k above the reliability threshold good_k (for WAIC: points whose "
        "log-likelihood variance exceeds 0.4); with many such points the estimate is optimistic.</p>"
    )
    parts.append(table_html(table, {"n_data_points": "int", "n_high_k": "int", "good_k": "fixed2", "max_k": "fixed2"}))
    from ..diagnostics.kfold import read_kfold

    kfold = read_kfold(fd.fitdir.path)
    if kfold is not None:
        parts.append("<p>K-fold cross-validation by subject (<code>bayes-nlme kfold</code>, kfold.csv):</p>")
        parts.append(table_html(kfold, {"n_data_points": "int", "k": "int"}))
    note = loo_reliability_note(table, kfold=kfold is not None)
    if note:
        parts.append(f'<div class="verdict fail">{escape(note)}</div>')
    _figure(
        page,
        parts,
        lambda: plots.plot_pareto_k(fd, obs, subj),
        "Pareto k of PSIS-LOO per observation (against time) and per subject.",
    )


def loo_reliability_note(table: pd.DataFrame, kfold: bool = False) -> str:
    """A warning when subject-level PSIS-LOO is unreliable (Pareto k above the threshold).

    Parameters
    ----------
    table : pandas.DataFrame
        The LOO table (:func:`bayes_nlme.diagnostics.loo_table`).
    kfold : bool
        Whether the fit directory holds a K-fold result (shown instead).

    Returns
    -------
    str
        Empty when every subject's Pareto k is below the threshold.
    """
    rows = table[table["criterion"] == "LOO (subject)"]
    if rows.empty:
        return ""
    row = rows.iloc[0]
    n_high, n = int(row["n_high_k"]), int(row["n_data_points"])
    if n_high == 0:
        return ""
    share = "every subject" if n_high == n else f"{n_high} of {n} subjects"
    return (
        f"Subject-level LOO is unreliable here: {share} has a Pareto k above {row['good_k']:.2f} (max "
        f"{row['max_k']:.2f}), so leaving a whole subject out changes the posterior too much for importance "
        "sampling, and the elpd of 'LOO (subject)' is optimistic; do not use it to compare models. "
        + (
            "Use the K-fold cross-validation by subject above instead. "
            if kfold
            else "Use K-fold cross-validation by subject instead: `bayes-nlme kfold DIR --folds 5` refits the "
            "model without each fold of subjects, scores them as new subjects, and the report then shows it. "
        )
        + "Observation-level LOO (first row) is unaffected when its own Pareto k are low."
    )


def comparison(page, ctx: Context, compare_fds) -> None:
    """The side-by-side table of this fit and the compared fits, with a forest plot."""
    from ..compare import compare_fits

    fd = ctx.fd
    parts = page.section("compare", "Bayesian vs frequentist")
    table = compare_fits(fd, *compare_fds)
    parts.append(
        "<p>Bayesian fits: posterior median and 90% credible interval; frequentist fits: "
        "estimate and Wald 95% confidence interval.</p>"
    )
    labels = table.attrs.get("labels", [])
    groups = [("", 1), ("", 1)] + [(label, 3) for label in labels]
    parts.append(table_html(table, groups=groups if 2 + 3 * len(labels) == table.shape[1] else None))
    rows = []
    for other in (fd, *compare_fds):
        info = other.info
        rows.append(
            {
                "fit": other.label,
                "method": other.method,
                "seconds": info.get("seconds"),
                "OFV": info.get("ofv"),
                "AIC": info.get("aic"),
                "BIC": info.get("bic"),
            }
        )
    parts.append(table_html(pd.DataFrame(rows)))
    _figure(page, parts, lambda: plots.plot_compare(table), "Estimates and intervals of every fit.")
    bayes = [f for f in (fd, *compare_fds) if f.bayesian and dg.loo.loglik_var(f) is not None]
    if len(bayes) >= 2:
        labels = {}
        for f in bayes:
            labels[f"{f.label} ({f.fitdir.path.name})"] = f
        table = dg.compare_loo(labels)
        parts.append("<h3>LOO comparison (arviz-stats)</h3>" + table_html(table, index=True))


def prior_sensitivity(page, study_dir) -> bool:
    """The prior sensitivity study kept in the fit directory: verdicts and forest plot.

    Parameters
    ----------
    page : Page
    study_dir : path
        A study directory (``psense.csv``, ``variants.csv``, ``forest.png``), normally
        ``<fit dir>/sensitivity``.

    Returns
    -------
    bool
        False (and no section) when ``study_dir`` holds no study.
    """
    from pathlib import Path

    from ..sensitivity.output import psense_display, read_study, verdict_note
    from ..sensitivity.verdicts import verdict_kind

    study = read_study(study_dir)
    if study is None:
        return False
    parts = page.section("sensitivity", "Prior sensitivity")
    psense = study["psense"]
    kinds = psense["verdict"].map(verdict_kind)
    conflicts = psense.loc[kinds == "prior-data conflict", "parameter"].tolist()
    others = psense.loc[~kinds.isin(["ok", "prior-data conflict"]), "parameter"].tolist()
    text = (
        f"Prior-data conflict: {', '.join(conflicts)}."
        if conflicts
        else "No prior-data conflict."
        if others
        else "Every population parameter reads ok: the data, not the priors, determine the posterior."
    )
    if others:
        text += f" Prior-sensitive or inconclusive: {', '.join(others)}."
    parts.append(f'<div class="verdict {"fail" if conflicts else "ok"}">{escape(text)}</div>')
    parts.append(
        f"<p>Power-scaling sensitivity of each population parameter to the prior and to the "
        f"likelihood, with its Monte-Carlo error, from the study in "
        f"<code>{escape(Path(study_dir).name)}/</code> of this fit directory; its "
        f"<code>report.html</code> has the variants table and the sampler notes. "
        f"{escape(verdict_note())}</p>"
    )
    parts.append(table_html(psense_display(psense)))
    if study["forest"] is not None:
        page.figure(
            parts,
            study["forest"],
            "Posterior mean and 90% interval of each population parameter "
            "under each prior variant (dotted: the base posterior mean).",
        )
    return True
