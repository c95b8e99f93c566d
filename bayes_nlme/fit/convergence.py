"""Convergence verdict of a NUTS fit, with advice in plain words.

Checks (thresholds after Vehtari et al. 2021 and Betancourt 2016):

* divergent transitions: any is a problem;
* rank-normalised split R-hat: at most 1.01;
* bulk and tail effective sample sizes: at least 100 per chain;
* E-BFMI (energy Bayesian fraction of missing information), the minimum over chains:
  at least 0.3;
* tree-depth saturation: at most 1% of the draws may hit the maximum tree depth;
* stuck chains: a chain whose step size collapsed (below 1e-4 of the other chains'
  median, or below 1e-6) or whose draws barely move (more than half repeat the
  previous draw), named with what to do (:func:`stuck_chains`);
* chains that disagree (R-hat above its threshold): the chains whose per-chain means
  of the population parameters lie more than 3 pooled within-chain sds from the
  median of the chain means, with those parameters (:func:`disagreeing_chains`);
* chains in different flip-flop modes (oral models, :mod:`bayes_nlme.fit.flipflop`).

R-hat and ESS are taken over the population parameters (the rows of the summary)
and the etas. Each problem gives a message saying what to do, and a
:class:`ConvergenceWarning`.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import xarray as xr

__all__ = [
    "ConvergenceWarning",
    "ConvergenceVerdict",
    "assess",
    "nonfinite_draws",
    "THRESHOLDS",
    "stuck_chains",
    "disagreeing_chains",
]

#: Thresholds of the checks.
THRESHOLDS = {
    "max_r_hat": 1.01,
    "min_ess_per_chain": 100.0,
    "min_bfmi": 0.3,
    "max_treedepth_fraction": 0.01,
    "stuck_step_ratio": 1e-4,
    "stuck_step_size": 1e-6,
    "stuck_repeat_fraction": 0.5,
    "disagree_sd": 3.0,
}


class ConvergenceWarning(UserWarning):
    """A NUTS fit shows a sampling problem (divergences, high R-hat, low ESS ...)."""


@dataclass(frozen=True)
class ConvergenceVerdict:
    """The outcome of the convergence checks.

    Attributes
    ----------
    ok : bool
        True when no check found a problem.
    messages : tuple of str
        One plain-words message per problem, with advice.
    divergences : int
    max_r_hat : float
    min_ess_bulk : float
    min_ess_tail : float
    min_bfmi : float
        Minimum E-BFMI over chains.
    treedepth_fraction : float
        Fraction of draws that hit the maximum tree depth.
    worst : dict
        The variable with the worst R-hat, bulk ESS and tail ESS.
    stuck_chains : list of int
        Chains whose step size collapsed or whose draws do not move.
    disagreeing_chains : dict
        Chain (as a string, for JSON) to the population parameters on which it
        disagrees with the other chains (filled when R-hat fails).
    """

    ok: bool
    messages: tuple[str, ...]
    divergences: int
    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    min_bfmi: float
    treedepth_fraction: float
    worst: dict = field(default_factory=dict)
    stuck_chains: list = field(default_factory=list)
    disagreeing_chains: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready dict (the ``convergence`` block of ``fit.json``)."""
        out = asdict(self)
        out["messages"] = list(self.messages)
        return out

    def report(self) -> str:
        """A short text for the terminal."""
        head = (
            f"Convergence: {'ok' if self.ok else 'PROBLEMS'} (divergences {self.divergences}, "
            f"max R-hat {self.max_r_hat:.3f}, min ESS bulk {self.min_ess_bulk:.0f} / tail "
            f"{self.min_ess_tail:.0f}, min E-BFMI {self.min_bfmi:.2f}, "
            f"max tree depth hit {self.treedepth_fraction:.1%})"
        )
        return "\n".join([head, *[f"  - {m}" for m in self.messages]])

    def warn(self, stacklevel: int = 2) -> None:
        """Emit one :class:`ConvergenceWarning` per problem."""
        for message in self.messages:
            warnings.warn(message, ConvergenceWarning, stacklevel=stacklevel + 1)


def _stat(stats: xr.Dataset, *names):
    for name in names:
        if name in stats:
            return stats[name]
    return None


def _bfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI per chain: ``mean(diff(E)^2) / var(E)``."""
    energy = np.atleast_2d(np.asarray(energy, dtype=float))
    if energy.shape[1] < 2:
        return np.full(energy.shape[0], np.nan)
    with np.errstate(all="ignore"):
        num = np.mean(np.diff(energy, axis=1) ** 2, axis=1)
        den = np.var(energy, axis=1)
        return num / den


def _extreme(values: dict, worst_max: bool):
    """The worst value and its variable; a non-finite value is the worst of all."""
    if not values:
        return float("nan"), None
    bad = [k for k, v in values.items() if not np.isfinite(v)]
    if bad:
        return float("nan"), bad[0]
    key = max(values, key=values.get) if worst_max else min(values, key=values.get)
    return float(values[key]), key


def _halves(draws: xr.Dataset) -> xr.Dataset:
    """One chain as two chains of its halves: the split R-hat of a single chain."""
    n = int(draws.sizes.get("draw", 0)) // 2
    first = draws.isel(chain=0, draw=slice(0, n)).drop_vars(["chain", "draw"], errors="ignore")
    second = draws.isel(chain=0, draw=slice(n, 2 * n)).drop_vars(["chain", "draw"], errors="ignore")
    return xr.concat([first, second], dim="chain").transpose("chain", "draw", ...)


def _per_element(draws: xr.Dataset) -> dict:
    """R-hat and ESS (bulk, tail) per variable, reduced to the worst element.

    Elements whose draws are all equal (a fixed off-diagonal omega element) carry no
    information and are left out. A non-finite R-hat or ESS of any other element makes
    the variable's value NaN, which fails the checks: it is never skipped.
    """
    import arviz_stats as azs

    out = {"r_hat": {}, "ess_bulk": {}, "ess_tail": {}}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = azs.rhat(_halves(draws) if draws.sizes.get("chain", 1) == 1 else draws)
        bulk = azs.ess(draws, method="bulk")
        tail = azs.ess(draws, method="tail")
    for name in draws.data_vars:
        values = np.asarray(draws[name].values, dtype=float)
        if values.size == 0:
            continue
        flat = values.reshape(values.shape[0] * values.shape[1], -1)
        constant = np.all(flat == flat[:1], axis=0)
        if constant.all():
            continue
        for key, result in (("r_hat", rhat), ("ess_bulk", bulk), ("ess_tail", tail)):
            element = np.asarray(result[name].values, dtype=float).reshape(-1)[~constant]
            if not np.all(np.isfinite(element)):
                out[key][name] = float("nan")
            else:
                out[key][name] = float(element.max() if key == "r_hat" else element.min())
    return out


def nonfinite_draws(draws: xr.Dataset) -> tuple[int, int]:
    """Count the draws that are missing or not finite (an interrupted or failed run).

    Parameters
    ----------
    draws : xarray.Dataset
        Draws with dims ``chain``, ``draw``, ...

    Returns
    -------
    tuple of int
        The (chain, draw) pairs with a non-finite value in any variable, and the number
        of (chain, draw) pairs.
    """
    n = int(draws.sizes.get("chain", 1)) * int(draws.sizes.get("draw", 0))
    bad = np.zeros((int(draws.sizes.get("chain", 1)), int(draws.sizes.get("draw", 0))), dtype=bool)
    for name in draws.data_vars:
        values = np.asarray(draws[name].values, dtype=float)
        if values.ndim >= 2 and values.shape[:2] == bad.shape:
            bad |= ~np.isfinite(values).all(axis=tuple(range(2, values.ndim)))
    return int(bad.sum()), n


def _rhat_ess_messages(draws: xr.Dataset, n_chains: int) -> tuple[dict, list[str]]:
    """Missing draws, R-hat and ESS: the worst values and the messages of the checks that fail."""
    messages: list[str] = []
    n_bad, n_draws = nonfinite_draws(draws)
    if n_draws == 0 or n_bad:
        messages.append(
            f"{n_bad} of {n_draws} draws are missing or not finite: the sampling was interrupted or "
            "failed, so these draws are not a sample of the posterior. Run the fit again to the end"
            if n_draws
            else "there are no draws: the sampling was interrupted or failed. Run the fit again"
        )
    per = _per_element(draws)
    max_rhat, rhat_var = _extreme(per["r_hat"], worst_max=True)
    min_bulk, bulk_var = _extreme(per["ess_bulk"], worst_max=False)
    min_tail, tail_var = _extreme(per["ess_tail"], worst_max=False)
    worst = {"r_hat": (max_rhat, rhat_var), "ess_bulk": (min_bulk, bulk_var), "ess_tail": (min_tail, tail_var)}
    if not np.isfinite(max_rhat) or max_rhat > THRESHOLDS["max_r_hat"]:
        messages.append(
            (
                f"max R-hat {max_rhat:.3f} > {THRESHOLDS['max_r_hat']} ({rhat_var}): the chains disagree. "
                if np.isfinite(max_rhat)
                else f"R-hat cannot be computed ({rhat_var or 'no variable'}: not finite), so convergence is "
                "unknown: too few draws, or draws that are missing or not finite. "
            )
            + "Run longer (more tune and draws); if it persists, the posterior may have several modes "
            "(check the trace plots and the starting values)"
        )
    need = THRESHOLDS["min_ess_per_chain"] * n_chains
    for label, value, var in (("bulk", min_bulk, bulk_var), ("tail", min_tail, tail_var)):
        if not np.isfinite(value) or value < need:
            shown = f"{value:.0f}" if np.isfinite(value) else "not finite"
            messages.append(
                f"min {label} ESS {shown} < {need:.0f} ({var}): too few effective draws for reliable "
                f"{'means and medians' if label == 'bulk' else '5% and 95% quantiles'}. Run more draws "
                "(or more chains)"
            )
    return worst, messages


def stuck_chains(draws: xr.Dataset, stats: xr.Dataset) -> tuple[list[int], dict]:
    """Chains whose step size collapsed or whose draws do not move.

    Parameters
    ----------
    draws : xarray.Dataset
        Posterior draws (dims ``chain``, ``draw``, ...).
    stats : xarray.Dataset
        The ``sample_stats`` group (``step_size`` when the sampler records it).

    Returns
    -------
    tuple (list of int, dict)
        The stuck chains, and per chain its median step size and the share of draws
        that repeat the previous one.
    """
    n_chains = int(draws.sizes.get("chain", 1))
    if int(draws.sizes.get("draw", 0)) < 2:  # no draws (an interrupted run): nothing to judge here
        return [], {}
    flat = [
        np.asarray(v.transpose("chain", "draw", ...).values, dtype=float).reshape(n_chains, v.sizes["draw"], -1)
        for v in draws.data_vars.values()
        if "chain" in v.dims and "draw" in v.dims
    ]
    if not flat or flat[0].shape[1] < 2:
        return [], {}
    x = np.concatenate(flat, axis=2)
    repeat = np.mean(np.all(np.diff(x, axis=1) == 0.0, axis=2), axis=1)
    step = _stat(stats, "step_size")
    step = np.nanmedian(np.asarray(step, dtype=float).reshape(n_chains, -1), axis=1) if step is not None else None
    out = []
    for c in range(n_chains):
        collapsed = False
        if step is not None and np.isfinite(step[c]):
            others = np.delete(step, c)
            ref = float(np.nanmedian(others)) if others.size else np.nan
            collapsed = step[c] < THRESHOLDS["stuck_step_size"] or (
                np.isfinite(ref) and step[c] < THRESHOLDS["stuck_step_ratio"] * ref
            )
        if collapsed or repeat[c] > THRESHOLDS["stuck_repeat_fraction"]:
            out.append(c)
    info = {"step_size": None if step is None else [float(v) for v in step], "repeat_fraction": repeat.tolist()}
    return out, info


def disagreeing_chains(draws: xr.Dataset, names=None) -> dict:
    """Chains whose means of scalar parameters lie far from the other chains'.

    Parameters
    ----------
    draws : xarray.Dataset
        Draws with dims ``chain`` and ``draw``.
    names : sequence of str, optional
        The variables to compare (default: every scalar variable).

    Returns
    -------
    dict
        Chain (str) to the list of parameters whose chain mean lies more than
        ``THRESHOLDS["disagree_sd"]`` pooled within-chain sds from the median of the
        chain means (at most one chain per parameter side: the median is robust to a
        minority of chains in another mode).
    """
    out: dict = {}
    names = [n for n in (names or draws.data_vars) if n in draws and set(draws[n].dims) == {"chain", "draw"}]
    for name in names:
        x = np.asarray(draws[name].transpose("chain", "draw").values, dtype=float)
        if x.shape[0] < 2 or x.shape[1] < 2 or not np.isfinite(x).all():
            continue
        means = x.mean(axis=1)
        within = float(np.sqrt(np.mean(x.var(axis=1))))
        centre = float(np.median(means))
        spread = np.abs(means - centre)
        scale = within if within > 0 else float(np.max(spread)) or 1.0
        for c in np.flatnonzero(spread > THRESHOLDS["disagree_sd"] * scale):
            out.setdefault(str(int(c)), []).append(name)
    return out


def _reparameterise(centered, first: str) -> str:
    """Advice a user can follow from the CLI or ``[sampling]``."""
    text = f"{first} (CLI --target-accept 0.95, or target_accept = 0.95 in [sampling])"
    if centered is None:
        return text + ", or try the other eta parameterisation, centred or non-centred (--centered true or false)"
    if isinstance(centered, tuple):
        listed = ",".join(centered)
        return (
            f"{text}, or refit with every eta non-centred (--centered false, or centered = false in [sampling]): "
            f"{listed} were centred, and a centred variance with mass near zero makes a funnel"
        )
    other = "false" if centered else "true"
    form = "non-centred" if centered else "centred"
    why = (
        "a variance with mass near zero makes a funnel in the centred form"
        if centered
        else "rich data per subject make the non-centred form curved"
    )
    return f"{text}, or refit with {form} etas (--centered {other}, or centered = {other} in [sampling]): {why}"


def _chain_messages(draws, stats, max_rhat, init) -> tuple[list[str], list[int], dict]:
    messages = []
    stuck, info = stuck_chains(draws, stats)
    started = "from the FOCE-I/FO estimates" if init in ("focei", "fo") else "from the jittered prior point"
    if stuck:
        steps = info["step_size"]
        detail = ", ".join(f"chain {c}" + (f" (step size {steps[c]:.2g})" if steps is not None else "") for c in stuck)
        advice = (
            'Refit with init="focei" (CLI --init focei, or init = "focei" in [sampling]), which starts '
            "the chains at the maximum-likelihood estimates"
            if init not in ("focei", "fo")
            else "Refit with more tuning steps (--tune) or a higher target_accept (--target-accept 0.95)"
        )
        messages.append(
            f"stuck chain{'s' if len(stuck) > 1 else ''}: {detail}: the step size collapsed or the draws do not "
            f"move, so these chains stayed where they started ({started}) and their draws are not from the "
            f"posterior. {advice}"
        )
    disagree = {}
    if np.isfinite(max_rhat) and max_rhat > THRESHOLDS["max_r_hat"]:
        scalars = [n for n in draws.data_vars if set(draws[n].dims) == {"chain", "draw"}]
        disagree = disagreeing_chains(draws, scalars)
        moving = {c: v for c, v in disagree.items() if int(c) not in stuck}
        if moving:
            text = "; ".join(f"chain {c}: {', '.join(v[:4])}{' ...' if len(v) > 4 else ''}" for c, v in moving.items())
            messages.append(
                f"chains in separate modes: {text} (chain means more than {THRESHOLDS['disagree_sd']:g} "
                "within-chain sds from the other chains'). The chains cannot be pooled; refit with "
                'init="focei" (CLI --init focei) and more tuning steps (--tune), and compare the modes\' '
                "log densities in the trace plots"
            )
    return messages, stuck, disagree


def _bfmi_check(stats: xr.Dataset, centered, messages: list) -> float:
    """The smallest E-BFMI of the chains (NaN without energy); a message when it is low
    or cannot be computed."""
    energy = _stat(stats, "energy")
    bfmi = _bfmi(np.asarray(energy)) if energy is not None else None
    min_bfmi = float(np.min(bfmi)) if bfmi is not None and bfmi.size else float("nan")
    if bfmi is not None and (not np.isfinite(min_bfmi) or min_bfmi < THRESHOLDS["min_bfmi"]):
        chain = int(np.argmin(np.where(np.isfinite(bfmi), bfmi, -np.inf)))
        messages.append(
            f"E-BFMI {min_bfmi:.2f} < {THRESHOLDS['min_bfmi']} in chain {chain}: the sampler explores the "
            f"energy poorly, typical of funnels and heavy tails. {_reparameterise(centered, 'Raise target_accept')}"
            if np.isfinite(min_bfmi)
            else f"E-BFMI cannot be computed in chain {chain} (energy missing or not finite): the sampling "
            "was interrupted or failed"
        )
    return min_bfmi


def _treedepth_check(stats: xr.Dataset, max_treedepth, messages: list) -> float:
    """The fraction of draws at the maximum tree depth; a message when it is too large."""
    saturated = _stat(stats, "maxdepth_reached", "reached_max_treedepth")
    if saturated is None and max_treedepth is not None and _stat(stats, "depth", "tree_depth") is not None:
        saturated = np.asarray(_stat(stats, "depth", "tree_depth")) >= max_treedepth
    saturated = np.asarray(saturated) if saturated is not None else np.zeros(0)
    fraction = float(np.mean(saturated)) if saturated.size else 0.0
    if fraction > THRESHOLDS["max_treedepth_fraction"]:
        messages.append(
            f"{fraction:.1%} of the draws hit the maximum tree depth: the sampler is inefficient (not "
            "biased). Reparameterise, or rescale parameters that differ by orders of magnitude"
        )
    return fraction


def _divergence_message(divergences: int, non_finite, centered) -> str:
    """The divergences, told apart: energy errors (curvature) and a log density that was
    not finite (an ODE solver failure or an overflow)."""
    bad = int(np.asarray(non_finite).sum()) if non_finite is not None else 0
    text = f"{divergences} divergent transition{'s' if divergences > 1 else ''}"
    if bad:
        text += (
            f" ({bad} where the log density was not finite: for an ODE model a failed integration "
            "(see [ode] solver, rtol, atol: 'stiff' for a stiff system), otherwise an overflow; "
            "tighter priors keep the sampler away from extreme parameter values)"
        )
    if bad == divergences:
        return text + ", so the draws may be biased."
    return (
        text + ": the sampler met regions of high curvature, so the draws may be biased. "
        f"{_reparameterise(centered, 'Increase target_accept')}"
    )


def assess(
    draws: xr.Dataset,
    stats: xr.Dataset,
    *,
    extra_messages=(),
    max_treedepth: int | None = None,
    init: str | None = None,
    centered: bool | tuple | None = None,
) -> ConvergenceVerdict:
    """Run the convergence checks.

    Parameters
    ----------
    draws : xarray.Dataset
        Posterior draws (dims ``chain``, ``draw``, ...) of the variables to check.
    stats : xarray.Dataset
        The ``sample_stats`` group (nutpie or PyMC names).
    extra_messages : sequence of str
        Problems found elsewhere (the flip-flop check), each counted as a failure.
    max_treedepth : int, optional
        The maximum tree depth, when the sampler does not record its saturation.
    init : str, optional
        How the chains were started (``"focei"``, ``"fo"``, ``"jitter"``), for the
        advice on stuck chains.
    centered : bool or tuple of str, optional
        Whether the etas were centred (or which were), for the advice on divergences
        and E-BFMI.

    Returns
    -------
    ConvergenceVerdict
    """
    n_chains = int(draws.sizes.get("chain", 1))
    messages: list[str] = []
    diverging = _stat(stats, "diverging")
    divergences = int(np.asarray(diverging).sum()) if diverging is not None else 0
    if divergences:
        messages.append(_divergence_message(divergences, _stat(stats, "diverging_non_finite"), centered))
    per, rhat_ess = _rhat_ess_messages(draws, n_chains)
    messages.extend(rhat_ess)
    max_rhat, rhat_var = per["r_hat"]
    min_bulk, bulk_var = per["ess_bulk"]
    min_tail, tail_var = per["ess_tail"]
    min_bfmi = _bfmi_check(stats, centered, messages)
    fraction = _treedepth_check(stats, max_treedepth, messages)
    chain_messages, stuck, disagree = _chain_messages(draws, stats, max_rhat, init)
    messages.extend(chain_messages)
    messages.extend(extra_messages)
    return ConvergenceVerdict(
        ok=not messages,
        messages=tuple(messages),
        divergences=divergences,
        max_r_hat=max_rhat,
        min_ess_bulk=min_bulk,
        min_ess_tail=min_tail,
        min_bfmi=min_bfmi,
        treedepth_fraction=fraction,
        worst={"r_hat": rhat_var, "ess_bulk": bulk_var, "ess_tail": tail_var},
        stuck_chains=stuck,
        disagreeing_chains=disagree,
    )
