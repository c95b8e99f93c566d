"""The verdict of each population parameter in a prior sensitivity study, with one sentence.

Inputs per parameter: the power-scaling sensitivities to the prior and to the
likelihood with their Monte-Carlo errors (:mod:`.mcse`), the prior quantile of the
posterior median, and for typical values with IIV the ETABAR check (:mod:`.checks`).

A sensitivity is *high* when it clears :data:`THRESHOLD` by more than :data:`MARGIN`
standard errors, *low* when it stays below by as much, and *unsure* otherwise. Then:

1. prior sensitivity low: ``ok`` (the data determine the parameter);
2. prior sensitivity unsure: ``inconclusive: run longer``, with the draws per chain
   that would settle it (the error shrinks as one over the square root of the draws);
3. prior sensitivity high, and the prior and the data disagree: ``prior-data
   conflict``. Disagreement is either the posterior median outside the prior's central
   99% (:data:`TAIL`), or, for a typical value with IIV, a conflict absorbed by the
   random effects: ETABAR differs from zero (p < :data:`ETABAR_P`) and the typical value
   the subjects imply, ``theta * exp(mean eta)``, lies outside the prior's central 99%;
4. otherwise (prior sensitivity high, no disagreement): ``prior-informed variance`` for a
   between-subject variance or covariance (with few subjects, its prior legitimately
   informs it), and for the other parameters ``strong prior / weak likelihood``
   (likelihood sensitivity low), ``informative prior`` (likelihood sensitivity high) or
   ``inconclusive: run longer`` (likelihood sensitivity unsure).

The ``verdict`` text of a conflict says how it shows, e.g. ``prior-data conflict
(absorbed by IIV: mean eta_CL = -0.97)``; the kind is the text before `` (`` or ``:``
(:func:`verdict_kind`).
"""

from __future__ import annotations

import math

__all__ = [
    "THRESHOLD",
    "MARGIN",
    "TAIL",
    "ETABAR_P",
    "VERDICTS",
    "EXPLANATIONS",
    "verdict",
    "verdict_kind",
    "judge",
    "draws_to_settle",
]

#: Sensitivity above which a parameter counts as sensitive (as in psense_summary).
THRESHOLD = 0.05

#: A sensitivity crosses the threshold only when it clears it by this many standard errors.
MARGIN = 2.0

#: Two-sided prior tail probability below which a posterior sits in the prior's tail.
TAIL = 0.01

#: ETABAR p-value below which the etas are shifted.
ETABAR_P = 0.05

#: The verdict kinds of ``psense.csv`` (the ``verdict`` text starts with one of them).
VERDICTS = (
    "ok",
    "prior-data conflict",
    "strong prior / weak likelihood",
    "prior-informed variance",
    "informative prior",
    "inconclusive: run longer",
)

#: A generic explanation per verdict kind (the tables carry a specific sentence per row).
EXPLANATIONS = {
    "ok": "The data, not the prior, determine this parameter: its posterior hardly moves when the prior "
    "is made stronger or weaker.",
    "prior-data conflict": "The prior and the data disagree about this parameter (its posterior, or the "
    "typical value its subjects imply, lies in the prior's tail): check the prior's "
    "median, spread and units.",
    "strong prior / weak likelihood": "The posterior follows the prior but hardly the data: the data carry "
    "little information about this parameter, so report it as prior-driven "
    "or justify the prior.",
    "prior-informed variance": "The prior informs this between-subject variance but its posterior lies "
    "within the prior's range: with few subjects that is expected, not a conflict, "
    "but report and justify the prior.",
    "informative prior": "Both the prior and the data move this parameter and its posterior lies within the "
    "prior's range: the prior is informative but agrees with the data; report and "
    "justify it.",
    "inconclusive: run longer": "A sensitivity is within its Monte-Carlo error of the threshold, so the "
    "verdict could go either way: run more draws.",
}


def _state(value: float, se: float, threshold: float, margin: float) -> str:
    err = margin * (se if math.isfinite(se) else 0.0)
    if value - err >= threshold:
        return "high"
    if value + err < threshold:
        return "low"
    return "unsure"


def _tail(quantile: float) -> bool:
    return math.isfinite(quantile) and 2.0 * min(quantile, 1.0 - quantile) < TAIL


def _absorbed(eta: dict | None) -> bool:
    return (
        eta is not None
        and math.isfinite(eta.get("etabar_p", math.nan))
        and eta["etabar_p"] < ETABAR_P
        and _tail(eta.get("implied_quantile", math.nan))
    )


def verdict(
    prior: float,
    likelihood: float,
    threshold: float = THRESHOLD,
    *,
    prior_se: float = 0.0,
    likelihood_se: float = 0.0,
    prior_quantile: float = math.nan,
    eta: dict | None = None,
    variance: bool = False,
    margin: float = MARGIN,
) -> str:
    """The verdict kind of one parameter (the rule of the module docstring).

    Parameters
    ----------
    prior, likelihood : float
        Power-scaling sensitivities.
    threshold : float
    prior_se, likelihood_se : float
        Their Monte-Carlo standard errors (0 or NaN: taken as exact).
    prior_quantile : float
        The prior's cumulative probability at the posterior median (NaN: unknown).
    eta : dict, optional
        The ETABAR check of a typical value with IIV: ``etabar_p`` and
        ``implied_quantile`` (see :func:`~bayes_nlme.sensitivity.checks.etabar`).
    variance : bool
        The parameter is a between-subject variance or covariance (``omega_*``).
    margin : float
        Standard errors by which a sensitivity must clear the threshold.

    Returns
    -------
    str
        One of :data:`VERDICTS`.
    """
    p_state = _state(prior, prior_se, threshold, margin)
    if p_state == "low":
        return "ok"
    if p_state == "unsure":
        return "inconclusive: run longer"
    if _tail(prior_quantile) or _absorbed(eta):
        return "prior-data conflict"
    if variance:
        return "prior-informed variance"
    l_state = _state(likelihood, likelihood_se, threshold, margin)
    return {"low": "strong prior / weak likelihood", "high": "informative prior"}.get(
        l_state, "inconclusive: run longer"
    )


def verdict_kind(text: str) -> str:
    """The kind of a verdict text, e.g. ``prior-data conflict`` of ``prior-data conflict (absorbed ...)``."""
    for kind in sorted(VERDICTS, key=len, reverse=True):
        if text.startswith(kind):
            return kind
    return text


def draws_to_settle(
    value: float, se: float, draws: int, threshold: float = THRESHOLD, margin: float = MARGIN
) -> int | None:
    """Draws per chain after which ``value`` would clear ``threshold`` by ``margin`` errors.

    The error shrinks as one over the square root of the draws; the result is rounded
    up to a hundred. None when the value sits on the threshold (more than a hundred
    times the draws would be needed).

    Parameters
    ----------
    value, se : float
        The sensitivity and its standard error.
    draws : int
        Draws per chain of the fit.
    threshold, margin : float

    Returns
    -------
    int or None
    """
    gap = abs(value - threshold)
    if not math.isfinite(se) or se <= 0:
        return draws
    needed = draws * (margin * se / gap) ** 2 if gap > 0 else math.inf
    if needed > 100 * draws:
        return None
    return int(math.ceil(max(needed, draws + 1) / 100.0 - 1e-9) * 100)


def _q(quantile: float) -> str:
    return f"{quantile:.3f}" if 0.001 <= quantile <= 0.999 else f"{quantile:.1e}"


def _settle_text(row: dict, threshold: float, draws: int, margin: float) -> tuple[str, str]:
    which = "prior" if _state(row["prior"], row["prior_se"], threshold, margin) == "unsure" else "likelihood"
    value, se = row[which], row[f"{which}_se"]
    n = draws_to_settle(value, se, draws, threshold, margin)
    how = (
        f"about {n} draws per chain would settle it"
        if n is not None
        else "it sits on the threshold, so more draws will not settle it"
    )
    short = f"about {n} draws per chain" if n is not None else "on the threshold"
    return (
        f"inconclusive: run longer ({short})",
        f"The {which} sensitivity of {row['parameter']} ({value:.3f} ± {se:.3f}) is within "
        f"{margin:g} Monte-Carlo errors of the threshold {threshold:g}, so the verdict could go either "
        f"way; {how}.",
    )


def judge(row: dict, *, draws: int, threshold: float = THRESHOLD, margin: float = MARGIN) -> tuple[str, str]:
    """The verdict text and its one-sentence explanation for one parameter.

    Parameters
    ----------
    row : dict
        ``parameter``, ``prior``, ``prior_se``, ``likelihood``, ``likelihood_se``,
        ``prior_quantile`` and, for a typical value with IIV, ``etabar``,
        ``etabar_p``, ``theta`` (posterior median), ``implied`` and
        ``implied_quantile`` (NaN elsewhere).
    draws : int
        Draws per chain of the fit (for the draws that would settle an inconclusive verdict).
    threshold, margin : float

    Returns
    -------
    (str, str)
        The verdict text (starting with one of :data:`VERDICTS`) and the sentence.
    """
    name = row["parameter"]
    eta = row if math.isfinite(row.get("etabar_p", math.nan)) else None
    kind = verdict(
        row["prior"],
        row["likelihood"],
        threshold,
        prior_se=row["prior_se"],
        likelihood_se=row["likelihood_se"],
        prior_quantile=row["prior_quantile"],
        eta=eta,
        variance=name.startswith("omega_"),
        margin=margin,
    )
    q = row["prior_quantile"]
    where = f"at the prior's {_q(q)} quantile" if math.isfinite(q) else "where the prior puts it"
    if kind == "inconclusive: run longer":
        return _settle_text(row, threshold, draws, margin)
    if kind == "prior-data conflict":
        if _absorbed(eta):
            eta_name = "eta_" + name.removeprefix("theta_")
            return (
                f"prior-data conflict (absorbed by IIV: mean {eta_name} = {row['etabar']:.2f})",
                f"The prior holds {name} at {row['theta']:.3g} while the subjects' {eta_name} are shifted one "
                f"way (mean {row['etabar']:.2f}, p = {row['etabar_p']:.1g}), so the subjects imply "
                f"a typical value of about {row['implied']:.3g}, at the prior's {_q(row['implied_quantile'])} "
                f"quantile: check the prior's median, spread and units.",
            )
        return (
            f"prior-data conflict (posterior in the prior's tail: quantile {_q(q)})",
            f"The prior and the data disagree about {name}: the prior matters (sensitivity "
            f"{row['prior']:.3f}) and the posterior median sits {where}, outside its central "
            f"{1 - TAIL:.0%}; check the prior's median, spread and units.",
        )
    sentence = {
        "ok": f"The data, not the prior, determine {name}: its posterior hardly moves when the prior is made "
        f"stronger or weaker (prior sensitivity {row['prior']:.3f}).",
        "prior-informed variance": f"The prior informs {name} (sensitivities {row['prior']:.3f} to the prior, "
        f"{row['likelihood']:.3f} to the data) but its posterior median sits {where}: "
        f"with few subjects a between-subject variance leans on its prior, which is "
        f"not a conflict, but report and justify the prior.",
        "informative prior": f"Both the prior and the data move {name} (sensitivities {row['prior']:.3f} and "
        f"{row['likelihood']:.3f}) and its posterior median sits {where}: the prior is "
        f"informative but agrees with the data; report and justify it.",
        "strong prior / weak likelihood": f"The posterior of {name} follows its prior (sensitivity "
        f"{row['prior']:.3f}) but hardly the data (likelihood sensitivity "
        f"{row['likelihood']:.3f}): report it as prior-driven or justify "
        f"the prior.",
    }[kind]
    return kind, sentence[:-1] + _note(row, kind) + "."


def _note(row: dict, kind: str) -> str:
    """A clause for what the checks saw that the verdict does not blame on this prior."""
    if kind == "ok" and (_tail(row["prior_quantile"]) or _absorbed(row)):
        return (
            "; its posterior, or the typical value its subjects imply, lies in the prior's tail, but the "
            "data outweigh the prior"
        )
    p = row.get("etabar_p", math.nan)
    if math.isfinite(p) and p < ETABAR_P:
        eta_name = "eta_" + row["parameter"].removeprefix("theta_")
        return (
            f"; the subjects' {eta_name} are off-centre (mean {row['etabar']:.2f}, p = {p:.1g}), which this "
            f"prior does not explain: look at the other verdicts and at the model"
        )
    return ""
