"""Say why the log density is not finite at a model's initial point.

When NUTS cannot start (nutpie: "All initialization points failed ... BadLogp(NaN)"),
:func:`explain_initial_point` evaluates each term of the log density at the initial
point, and for the likelihood each observation, and names what is not finite: a
parameter's prior, or the observations (rows, subjects) whose log-likelihood is NaN or
infinite, with the individual prediction there.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import format_rows

__all__ = ["explain_initial_point"]

_log = logging.getLogger(__name__)


def _pointwise(model, point) -> dict[str, np.ndarray]:
    """Elementwise log density of every free and observed variable at ``point``."""
    from pytensor.compile.mode import Mode

    variables = list(model.free_RVs) + list(model.observed_RVs)
    terms = model.logp(vars=variables, sum=False, jacobian=True)
    extra = [model["ipred"]] if "ipred" in model.named_vars else []
    fn = model.compile_fn(
        terms + extra,
        inputs=model.value_vars,
        on_unused_input="ignore",
        mode=Mode(linker="py", optimizer="fast_compile"),
    )
    with np.errstate(all="ignore"):
        values = fn(point)
    out = {v.name: np.asarray(val, dtype=float) for v, val in zip(variables, values)}
    if extra:
        out["__ipred__"] = np.asarray(values[-1], dtype=float)
    return out


def explain_initial_point(built) -> str:
    """Name the terms of the log density that are not finite at the initial point.

    Parameters
    ----------
    built : BuiltModel
        A model from :func:`bayes_nlme.build.build`.

    Returns
    -------
    str
        One sentence; empty when every term is finite (the failure lies elsewhere).
    """
    model = built.model
    point = model.initial_point()
    try:
        terms = _pointwise(model, point)
    except Exception as exc:  # noqa: BLE001 - a diagnosis must not hide the original failure
        _log.debug("initial point diagnosis failed: %s", exc)
        return ""
    ipred = terms.pop("__ipred__", None)
    parts = []
    observed = {v.name for v in model.observed_RVs}
    coords = model.coords.get("observation")
    table = built.dataset.table
    for name, values in terms.items():
        bad = ~np.isfinite(values)
        if not bad.any():
            continue
        if name in observed and coords is not None and values.shape == (len(coords),):
            rows = [int(r) for r in np.asarray(coords)[bad]]
            ids = table.set_index("ROW").loc[rows, "ID"].to_numpy()
            subjects = ", ".join(dict.fromkeys(str(int(i)) if float(i).is_integer() else str(i) for i in ids))
            preds = ""
            if ipred is not None and ipred.shape == values.shape:
                shown = ", ".join(f"{p:.3g}" for p in ipred[bad][:5])
                preds = f"; individual predictions there: {shown}"
                if not np.isfinite(ipred[bad]).all():
                    preds += (
                        " (an individual parameter is not finite or not positive: check the covariate "
                        "effects and the covariate values of that subject)"
                    )
            parts.append(
                f"the log-likelihood of the observations in data {format_rows(rows)} (subject ID "
                f"{subjects}) is not finite{preds}"
            )
        else:
            parts.append(f"the log density of '{name}' is not finite at its initial value")
    return "; ".join(parts)
