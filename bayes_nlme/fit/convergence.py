"""Convergence verdict of a NUTS fit, with advice in plain words.

Checks (thresholds after Vehtari et al. 2021 and Betancourt 2016):

* divergent transitions: any is a problem;
* rank-normalised split R-hat: at most 1.01;
* bulk and tail effective sample sizes: at least 100 per chain;
* E-BFMI (energy Bayesian fraction of missing information), the minimum over chains:
  at least 0.3;
* tree-depth saturation: at most 1% of the draws may hit the maximum tree depth;
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

__all__ = ["ConvergenceWarning", "ConvergenceVerdict", "assess", "nonfinite_draws", "THRESHOLDS"]

#: Thresholds of the checks.
THRESHOLDS = {
    "max_r_hat": 1.01,
    "min_ess_per_chain": 100.0,
    "min_bfmi": 0.3,
    "max_treedepth_fraction": 0.01,
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
            if n_draws else "there are no draws: the sampling was interrupted or failed. Run the fit again"
        )
    per = _per_element(draws)
    max_rhat, rhat_var = _extreme(per["r_hat"], worst_max=True)
    min_bulk, bulk_var = _extreme(per["ess_bulk"], worst_max=False)
    min_tail, tail_var = _extreme(per["ess_tail"], worst_max=False)
    worst = {"r_hat": (max_rhat, rhat_var), "ess_bulk": (min_bulk, bulk_var), "ess_tail": (min_tail, tail_var)}
    if not np.isfinite(max_rhat) or max_rhat > THRESHOLDS["max_r_hat"]:
        messages.append(
            (f"max R-hat {max_rhat:.3f} > {THRESHOLDS['max_r_hat']} ({rhat_var}): the chains disagree. "
             if np.isfinite(max_rhat) else
             f"R-hat cannot be computed ({rhat_var or 'no variable'}: not finite), so convergence is "
             "unknown: too few draws, or draws that are missing or not finite. ")
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


def assess(
    draws: xr.Dataset, stats: xr.Dataset, *, extra_messages=(), max_treedepth: int | None = None
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

    Returns
    -------
    ConvergenceVerdict
    """
    n_chains = int(draws.sizes.get("chain", 1))
    messages: list[str] = []
    diverging = _stat(stats, "diverging")
    divergences = int(np.asarray(diverging).sum()) if diverging is not None else 0
    if divergences:
        messages.append(
            f"{divergences} divergent transition{'s' if divergences > 1 else ''}: the sampler met regions "
            "of high curvature, so the draws may be biased. Increase target_accept (e.g. 0.95), or "
            "reparameterise: consider centred etas (centered=True) for parameters with strong data, or "
            "more informative priors on omega"
        )
    per, rhat_ess = _rhat_ess_messages(draws, n_chains)
    messages.extend(rhat_ess)
    max_rhat, rhat_var = per["r_hat"]
    min_bulk, bulk_var = per["ess_bulk"]
    min_tail, tail_var = per["ess_tail"]
    energy = _stat(stats, "energy")
    bfmi = _bfmi(np.asarray(energy)) if energy is not None else None
    min_bfmi = float(np.min(bfmi)) if bfmi is not None and bfmi.size else float("nan")
    if bfmi is not None and (not np.isfinite(min_bfmi) or min_bfmi < THRESHOLDS["min_bfmi"]):
        chain = int(np.argmin(np.where(np.isfinite(bfmi), bfmi, -np.inf)))
        messages.append(
            f"E-BFMI {min_bfmi:.2f} < {THRESHOLDS['min_bfmi']} in chain {chain}: the sampler explores the "
            "energy poorly, typical of funnels and heavy tails. Reparameterise (centred vs non-centred "
            "etas) or use more informative priors on omega"
            if np.isfinite(min_bfmi) else
            f"E-BFMI cannot be computed in chain {chain} (energy missing or not finite): the sampling "
            "was interrupted or failed"
        )
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
    )
