"""Eta shrinkage (SD-based), for both paths.

``shrinkage_P = 1 - sd_i(eta_hat_iP) / sqrt(omega_PP)``, where ``eta_hat`` is the EBE
(frequentist) or the posterior mean of each subject's eta (Bayesian), and ``omega_PP``
the estimate or the posterior mean of the variance. Near 0: the data inform each
subject's parameter; near 1: the individual estimates collapse onto the typical value,
and eta-based diagnostics (eta vs covariate plots) lose their power.

With inter-occasion variability the kappas have their own shrinkage, reported
separately (:func:`kappa_shrinkage`): ``1 - sd(kappa_hat_ik) / sqrt(omega_iov_P)`` over
every subject-occasion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .fitdata import as_fit_data

__all__ = ["eta_shrinkage", "kappa_shrinkage", "kappas_by_occasion"]


def eta_shrinkage(fit) -> pd.Series:
    """SD-based eta shrinkage per parameter with IIV, as a fraction.

    Parameters
    ----------
    fit : path, FitDirectory or FitData

    Returns
    -------
    pandas.Series
        Index: the parameters with IIV; name ``eta_shrinkage_sd``. For frequentist fits
        the values of ``fit.json`` (``eta_shrinkage_sd``) are used when present.
    """
    fd = as_fit_data(fit)
    names = list(fd.spec.iiv_names)
    stored = fd.info.get("eta_shrinkage_sd") if not fd.bayesian else None
    if isinstance(stored, dict) and all(n in stored for n in names):
        values = [float(stored[n]) if stored[n] is not None else np.nan for n in names]
    else:
        eta = fd.eta_mean.to_numpy()
        omega = fd.population.omega.mean(axis=0)
        sd = eta.std(axis=0, ddof=1) if eta.shape[0] > 1 else np.zeros(len(names))
        values = 1.0 - sd / np.sqrt(np.diag(omega))
    return pd.Series(values, index=pd.Index(names, name="parameter"), name="eta_shrinkage_sd")


def _kappa_means(fd) -> dict:
    """Posterior means (or EBEs) of the kappas per IOV parameter, one per subject-occasion."""
    return {name: values.mean(axis=0) for name, values in fd.kappa_draws.items()}


def kappa_shrinkage(fit) -> pd.Series:
    """SD-based kappa shrinkage per parameter with IOV, as a fraction.

    Parameters
    ----------
    fit : path, FitDirectory or FitData

    Returns
    -------
    pandas.Series
        Index: the parameters with IOV (empty without); name ``kappa_shrinkage_sd``.
        ``1 - sd(kappa_hat) / sqrt(omega_iov_P)`` over every subject-occasion, with the
        posterior means of the kappas and of ``omega_iov_P`` (Bayesian) or the EBEs and
        the estimate (frequentist; the values of ``fit.json`` when present).
    """
    fd = as_fit_data(fit)
    names = list(getattr(fd.spec, "iov_names", ()))
    stored = fd.info.get("kappa_shrinkage_sd") if not fd.bayesian else None
    if isinstance(stored, dict) and all(n in stored for n in names):
        values = [float(stored[n]) if stored[n] is not None else np.nan for n in names]
    else:
        means = _kappa_means(fd)
        values = []
        for name in names:
            kappa = means[name]
            sd = float(np.std(kappa, ddof=1)) if kappa.size > 1 else np.nan
            values.append(1.0 - sd / float(np.sqrt(np.mean(fd.population.iov[name]))))
    return pd.Series(values, index=pd.Index(names, name="parameter"), name="kappa_shrinkage_sd", dtype=float)


def kappas_by_occasion(fit) -> pd.DataFrame:
    """The kappas (posterior means or EBEs) summarised per occasion (``OCC`` value).

    Parameters
    ----------
    fit : path, FitDirectory or FitData

    Returns
    -------
    pandas.DataFrame
        One row per IOV parameter and occasion: ``parameter, OCC, subjects, mean, sd,
        min, max`` of the kappas (empty without IOV).
    """
    fd = as_fit_data(fit)
    columns = ["parameter", "OCC", "subjects", "mean", "sd", "min", "max"]
    if not getattr(fd.spec, "iov_names", ()):
        return pd.DataFrame(columns=columns)
    labels = np.asarray(fd.design.occasion_label)
    rows = []
    for name, kappa in _kappa_means(fd).items():
        for occ in sorted(set(labels.tolist())):
            values = kappa[labels == occ]
            sd = float(np.std(values, ddof=1)) if values.size > 1 else np.nan
            rows.append((name, int(occ), int(values.size), float(values.mean()), sd, values.min(), values.max()))
    return pd.DataFrame(rows, columns=columns)
