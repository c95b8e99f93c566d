"""Posterior summaries and MCMC convergence: the parameter table and a verdict.

The population parameters are put under their canonical names (``theta_<P>``,
``beta_<P>_<COL>``, ``omega_<P>_<Q>`` within omega blocks, ``sigma2_*``) and summarised
with :func:`arviz_stats.summary` (R-hat, bulk and tail ESS, MCSE). The verdict applies
the usual thresholds (Vehtari et al. 2021): R-hat <= 1.01, bulk and tail ESS >= 100 per
chain, no divergent transitions, E-BFMI >= 0.3 in every chain.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from .fitdata import as_fit_data

__all__ = [
    "population_names",
    "omega_elements",
    "population_dataset",
    "convergence_table",
    "convergence_verdict",
    "omega_cv_pct",
    "RHAT_MAX",
    "ESS_PER_CHAIN",
    "BFMI_MIN",
]

#: R-hat above this fails the verdict (as in :mod:`bayes_nlme.fit.convergence`).
RHAT_MAX = 1.01
#: Bulk and tail ESS below this many per chain fail the verdict.
ESS_PER_CHAIN = 100
#: E-BFMI below this in a chain fails the verdict.
BFMI_MIN = 0.3


def population_names(spec) -> list[str]:
    """Canonical names of the population parameters, in summary order.

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    list of str
    """
    from ..individual import estimated_coefficients

    names = [f"theta_{p.name}" for p in spec.estimated]
    names += list(estimated_coefficients(spec))
    names += list(omega_elements(spec))
    names += [f"omega_iov_{n}" for n in getattr(spec, "iov_names", ())]
    names += list(spec.residual.variances)
    return names


def omega_elements(spec) -> dict:
    """The estimated omega elements: canonical name -> ``(P, Q)``, within blocks.

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    dict of str to tuple of str
        E.g. ``{"omega_ka_ka": ("ka", "ka"), "omega_ka_CL": ("ka", "CL"), ...}``.
    """
    iiv = list(spec.iiv_names)
    block_of = {n: i for i, b in enumerate(spec.omega.blocks) for n in b}
    out = {}
    for i, a in enumerate(iiv):
        for b in iiv[i:]:
            if block_of.get(a) == block_of.get(b):
                out[f"omega_{a}_{b}"] = (a, b)
    return out


def omega_cv_pct(variance):
    """CV% of a log-normal parameter from its omega variance: ``sqrt(exp(w) - 1) * 100``."""
    return np.sqrt(np.expm1(np.asarray(variance, dtype=float))) * 100.0


def population_dataset(fit) -> xr.Dataset:
    """The posterior draws of the population parameters under canonical names.

    Parameters
    ----------
    fit : path, FitDirectory or FitData
        A Bayesian fit.

    Returns
    -------
    xarray.Dataset
        One ``(chain, draw)`` variable per canonical name.
    """
    fd = as_fit_data(fit)
    post = fd.tree[fd.draws_group or "posterior"].to_dataset()
    iiv = list(fd.spec.iiv_names)
    elements = omega_elements(fd.spec)
    out = {}
    for name in population_names(fd.spec):
        if name in post.data_vars:
            out[name] = post[name]
        elif name in elements and "omega" in post.data_vars:
            a, b = elements[name]
            out[name] = post["omega"].isel(parameter=iiv.index(a), parameter2=iiv.index(b), drop=True)
    return xr.Dataset(out)


def convergence_table(fit) -> pd.DataFrame:
    """Posterior summary of the population parameters with convergence diagnostics.

    Parameters
    ----------
    fit : path, FitDirectory or FitData
        A Bayesian fit.

    Returns
    -------
    pandas.DataFrame
        One row per canonical parameter: ``parameter, mean, sd, median, q5, q95,
        ess_bulk, ess_tail, r_hat, mcse_mean`` and ``cv_pct`` (omega variances: the
        CV% of the posterior mean, ``sqrt(exp(omega) - 1) * 100``; NaN otherwise).
    """
    import arviz_stats as azs

    ds = population_dataset(fit)
    diag = azs.summary(ds, kind="diagnostics", round_to="none")
    rows = []
    for name, da in ds.data_vars.items():
        x = da.values.ravel()
        d = diag.loc[name]
        rows.append(
            {
                "parameter": name,
                "mean": float(np.mean(x)),
                "sd": float(np.std(x, ddof=1)),
                "median": float(np.median(x)),
                "q5": float(np.quantile(x, 0.05)),
                "q95": float(np.quantile(x, 0.95)),
                "ess_bulk": float(d["ess_bulk"]),
                "ess_tail": float(d["ess_tail"]),
                "r_hat": float(d["r_hat"]),
                "mcse_mean": float(d["mcse_mean"]),
            }
        )
    table = pd.DataFrame(rows)
    variances = {n for n, (a, b) in omega_elements(as_fit_data(fit).spec).items() if a == b}
    table["cv_pct"] = [
        float(omega_cv_pct(m)) if n in variances else np.nan for n, m in zip(table["parameter"], table["mean"])
    ]
    return table


def _stored_verdict(conv: dict, chains: int, draws: int) -> dict:
    """The verdict the sampler wrote into ``fit.json`` (``convergence`` block) as a table."""
    need = ESS_PER_CHAIN * chains
    rows = [
        ("max R-hat (population and etas)", conv.get("max_r_hat"), f"<= {RHAT_MAX}", lambda v: v <= RHAT_MAX),
        ("min bulk ESS", conv.get("min_ess_bulk"), f">= {need}", lambda v: v >= need),
        ("min tail ESS", conv.get("min_ess_tail"), f">= {need}", lambda v: v >= need),
        ("divergent transitions", conv.get("divergences"), "= 0", lambda v: v == 0),
        ("min E-BFMI", conv.get("min_bfmi"), f">= {BFMI_MIN}", lambda v: v >= BFMI_MIN),
        ("draws at max tree depth", conv.get("treedepth_fraction"), "<= 1%", lambda v: v <= 0.01),
    ]
    checks = []
    for name, value, threshold, test in rows:
        if value is None:
            continue
        value = float(value)
        checks.append((name, value, threshold, bool(test(value)) if np.isfinite(value) else False))
    frame = pd.DataFrame(checks, columns=["check", "value", "threshold", "ok"])
    ok = bool(conv.get("ok", frame["ok"].all()))
    messages = [str(m) for m in conv.get("messages", [])]
    text = (
        f"Converged: every check passed ({chains} chains x {draws} draws)."
        if ok
        else f"Not converged ({chains} chains x {draws} draws): {len(messages) or (~frame['ok']).sum()} "
        "problem(s), see below."
    )
    return {"ok": ok, "checks": frame, "text": text, "messages": messages}


def convergence_verdict(fit, table: pd.DataFrame | None = None) -> dict:
    """Whether the sampler converged, with the reasons.

    The verdict written by the sampler (``fit.json``, block ``convergence``, from
    :func:`bayes_nlme.fit.convergence.assess`) is used when present, so the report says
    what ``bayes-nlme fit`` said; otherwise the checks are computed here.

    Parameters
    ----------
    fit : path, FitDirectory or FitData
        A NUTS fit.
    table : pandas.DataFrame, optional
        The :func:`convergence_table` (computed when needed and not given).

    Returns
    -------
    dict
        ``ok`` (bool), ``checks`` (a DataFrame: ``check, value, threshold, ok``),
        ``text`` (one sentence) and ``messages`` (advice per problem, possibly empty).
    """
    import arviz_stats as azs

    fd = as_fit_data(fit)
    post = fd.tree["posterior"]
    chains = int(post.sizes.get("chain", 1))
    draws = int(post.sizes.get("draw", 0))
    stored = fd.info.get("convergence")
    if isinstance(stored, dict) and "ok" in stored:
        return _stored_verdict(stored, chains, draws)
    table = convergence_table(fd) if table is None else table
    # skipna=False: a non-finite R-hat or ESS fails its check (NaN compares False)
    rhat, bulk, tail = (
        table[c].max(skipna=False) if c == "r_hat" else table[c].min(skipna=False)
        for c in ("r_hat", "ess_bulk", "ess_tail")
    )
    checks = [
        ("max R-hat (population)", float(rhat), f"<= {RHAT_MAX}", bool(rhat <= RHAT_MAX)),
        ("min bulk ESS", float(bulk), f">= {ESS_PER_CHAIN * chains}", bool(bulk >= ESS_PER_CHAIN * chains)),
        ("min tail ESS", float(tail), f">= {ESS_PER_CHAIN * chains}", bool(tail >= ESS_PER_CHAIN * chains)),
    ]
    if "eta" in post.data_vars:
        eta_rhat = float(np.max(azs.rhat(post["eta"]).values))
        checks.append(("max R-hat (etas)", eta_rhat, f"<= {RHAT_MAX}", bool(eta_rhat <= RHAT_MAX)))
    stats_ = fd.tree["sample_stats"] if "sample_stats" in fd.tree.children else None
    if stats_ is not None and "diverging" in stats_.data_vars:
        n_div = int(stats_["diverging"].values.sum())
    else:
        n_div = int(fd.info.get("divergences", 0) or 0)
    checks.append(("divergent transitions", float(n_div), "= 0", n_div == 0))
    if stats_ is not None and "energy" in stats_.data_vars:
        energy = stats_["energy"].transpose("chain", "draw").values
        bfmi = np.square(np.diff(energy, axis=1)).mean(axis=1) / np.var(energy, axis=1)
        checks.append(("min E-BFMI", float(bfmi.min()), f">= {BFMI_MIN}", bool(bfmi.min() >= BFMI_MIN)))
    frame = pd.DataFrame(checks, columns=["check", "value", "threshold", "ok"])
    ok = bool(frame["ok"].all())
    if ok:
        text = f"Converged: every check passed ({chains} chains x {draws} draws)."
    else:
        failed = ", ".join(frame.loc[~frame["ok"], "check"])
        text = f"Not converged ({chains} chains x {draws} draws): {failed} outside the threshold."
    return {"ok": ok, "checks": frame, "text": text, "messages": []}
