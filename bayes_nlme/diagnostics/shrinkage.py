"""Eta shrinkage (SD-based), for both paths.

``shrinkage_P = 1 - sd_i(eta_hat_iP) / sqrt(omega_PP)``, where ``eta_hat`` is the EBE
(frequentist) or the posterior mean of each subject's eta (Bayesian), and ``omega_PP``
the estimate or the posterior mean of the variance. Near 0: the data inform each
subject's parameter; near 1: the individual estimates collapse onto the typical value,
and eta-based diagnostics (eta vs covariate plots) lose their power.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .fitdata import as_fit_data

__all__ = ["eta_shrinkage"]


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
