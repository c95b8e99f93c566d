"""Diagnostics of fits: convergence, shrinkage, LOO/WAIC, NPDE, CWRES, VPC statistics.

Everything reads a fit directory (a path, a :class:`~bayes_nlme.fitdir.FitDirectory`
or a :class:`FitData`), so the same diagnostics serve NUTS fits and the frequentist
methods:

>>> from bayes_nlme import diagnostics as dg                      # doctest: +SKIP
>>> fd = dg.as_fit_data("fits/nuts")                              # doctest: +SKIP
>>> dg.convergence_verdict(fd)["text"]                            # doctest: +SKIP
>>> dg.loo_table(fd); dg.eta_shrinkage(fd); dg.fit_npde(fd)       # doctest: +SKIP
"""

from __future__ import annotations

from .convergence import (
    convergence_table,
    convergence_verdict,
    omega_cv_pct,
    omega_elements,
    population_dataset,
    population_names,
)
from .fitdata import FitData, Population, as_fit_data
from .loo import compare_loo, loo_observation, loo_subject, loo_table, waic
from .npde import npde, npde_summary
from .shrinkage import eta_shrinkage, kappa_shrinkage, kappas_by_occasion
from .simulate import individual_curves, simulate_replicates
from .units import Units, dataset_units
from .vpc import prediction_correct, time_bins, vpc_table

__all__ = [
    "FitData",
    "Population",
    "as_fit_data",
    "Units",
    "dataset_units",
    "population_names",
    "omega_elements",
    "population_dataset",
    "convergence_table",
    "convergence_verdict",
    "omega_cv_pct",
    "eta_shrinkage",
    "kappa_shrinkage",
    "kappas_by_occasion",
    "loo_observation",
    "loo_subject",
    "waic",
    "loo_table",
    "compare_loo",
    "npde",
    "npde_summary",
    "fit_npde",
    "cwres",
    "simulate_replicates",
    "individual_curves",
    "time_bins",
    "prediction_correct",
    "vpc_table",
]


def fit_npde(fit, *, n: int = 500, seed: int = 20240601, simulated=None):
    """NPDE of a fit's observations (simulation-based, decorrelated per subject).

    Parameters
    ----------
    fit : path, FitDirectory or FitData
    n : int
        Replicates (ignored when ``simulated`` is given).
    seed : int
    simulated : numpy.ndarray (K, n_obs), optional
        Replicates from :func:`simulate_replicates`.

    Returns
    -------
    pandas.DataFrame
        ``ID, TIME, DV, PRED`` and the columns of :func:`npde`.
    """
    fd = as_fit_data(fit)
    sims = simulate_replicates(fd, n, seed=seed) if simulated is None else simulated
    out = npde(fd.obs["DV"].to_numpy(float), sims, fd.obs["SUBJECT"].to_numpy())
    out.insert(0, "PRED", fd.pred)
    for i, column in enumerate(("ID", "TIME", "DV")):
        out.insert(i, column, fd.obs[column].to_numpy())
    return out


def cwres(fit):
    """CWRES of a frequentist fit, as stored by the estimation (None if absent).

    Parameters
    ----------
    fit : path, FitDirectory or FitData

    Returns
    -------
    numpy.ndarray or None
    """
    return as_fit_data(fit).cwres
