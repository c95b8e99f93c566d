"""Side-by-side table of fits of the same model (``bayes-nlme compare``).

One row per canonical population parameter; for each fit its point value and
interval: Bayesian fits (``nuts``, ``prior``) the posterior median and the 90% central
interval (``q5``, ``q95``), frequentist fits the estimate and the 95% Wald interval
(``estimate -/+ 1.96 se``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["compare_fits", "fit_label", "fit_note"]


def _load(fit):
    from .diagnostics.fitdata import FitData, as_fit_data
    from .fitdir import FitDirectory

    if isinstance(fit, (FitData, FitDirectory, str, Path)):
        return as_fit_data(fit)
    if hasattr(fit, "save"):  # a live BayesFit / EstimationResult: read it as its directory
        with tempfile.TemporaryDirectory(prefix="bayes_nlme_") as tmp:
            return as_fit_data(fit.save(Path(tmp) / "fit"))  # load_fit_dir reads all into memory
    raise TypeError(f"expected a fit directory, FitDirectory or fit object, got {type(fit).__name__}")


def fit_label(fd, taken=()) -> str:
    """A column label for a fit: its method (``nuts``, ``focei``), made unique.

    Parameters
    ----------
    fd : FitData
    taken : collection of str
        Labels already used.

    Returns
    -------
    str
    """
    label = fd.method or Path(fd.fitdir.path).name
    if label in taken:
        label = f"{label}[{Path(fd.fitdir.path).name}]"
    k = 2
    base = label
    while label in taken:
        label = f"{base}#{k}"
        k += 1
    return label


def _values(fd) -> pd.DataFrame:
    summary = fd.summary.set_index("parameter")
    if fd.draws_group is not None:
        from .diagnostics.convergence import population_dataset

        ds = population_dataset(fd)
        rows = {n: np.quantile(ds[n].values.ravel(), [0.5, 0.05, 0.95]) for n in ds.data_vars}
        return pd.DataFrame(rows, index=["point", "lo", "hi"]).T
    if fd.bayesian:
        return summary[["median", "q5", "q95"]].astype(float).set_axis(["point", "lo", "hi"], axis=1)
    est = summary["estimate"].astype(float)
    se = summary["se"].astype(float) if "se" in summary.columns else pd.Series(np.nan, index=est.index)
    return pd.DataFrame({"point": est, "lo": est - 1.959964 * se, "hi": est + 1.959964 * se})


def compare_fits(*fits) -> pd.DataFrame:
    """Compare fits parameter by parameter.

    Parameters
    ----------
    *fits : path, FitDirectory, FitData or fit object
        Fit directories (or live fits with a ``save`` method), typically one NUTS fit
        and one or more frequentist fits of the same model.

    Returns
    -------
    pandas.DataFrame
        Columns ``parameter``, ``unit``, then for each fit labelled ``L`` (its method):
        Bayesian ``L median``, ``L 5%``, ``L 95%``; frequentist ``L estimate``,
        ``L 2.5%``, ``L 97.5%``. Rows: every canonical parameter of any fit, in the
        order of the first fit's ``summary.csv``. ``attrs["notes"]``: per label, why a
        frequentist fit has no intervals or did not converge (:func:`fit_note`).

    Raises
    ------
    ValueError
        Without fits.
    """
    from .plots._common import parameter_unit

    if not fits:
        raise ValueError("compare_fits needs at least one fit")
    data = [_load(f) for f in fits]
    order: list[str] = []
    for fd in data:
        order += [p for p in fd.summary["parameter"] if p not in order]
    table = pd.DataFrame({"parameter": order})
    table["unit"] = [parameter_unit(p, data[0].units) for p in order]
    labels: list[str] = []
    for fd in data:
        label = fit_label(fd, labels)
        labels.append(label)
        values = _values(fd).reindex(order)
        names = ("median", "5%", "95%") if fd.bayesian else ("estimate", "2.5%", "97.5%")
        for column, name in zip(("point", "lo", "hi"), names):
            table[f"{label} {name}"] = values[column].to_numpy()
    table.attrs["labels"] = labels
    table.attrs["notes"] = {label: note for label, fd in zip(labels, data) if (note := fit_note(fd))}
    return table


def fit_note(fd) -> str:
    """Why a frequentist fit's intervals are missing or its estimates are not an optimum ("" if
    nothing is to be said).

    Parameters
    ----------
    fd : FitData

    Returns
    -------
    str
    """
    info = fd.info or {}
    notes = []
    if not fd.bayesian and "converged" in info and not info["converged"]:
        notes.append(f"not converged: {info.get('convergence_reason') or info.get('optimizer_message', '')}")
    if info.get("covariance") and not info.get("covariance_ok", True):
        notes.append(f"no standard errors: {info.get('covariance_message', 'the covariance step failed')}")
    elif not fd.bayesian and not info.get("covariance"):
        notes.append("no standard errors: the covariance step was not requested")
    return "; ".join(notes)
