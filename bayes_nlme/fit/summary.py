"""The summary table of a Bayesian fit: one row per population parameter.

Rows, in this order, with canonical names (CONTRACT section 3):

* ``theta_<P>`` for every estimated parameter, in declaration order;
* ``beta_<P>_<COL>`` for every estimated covariate coefficient;
* ``omega_<P>_<Q>``: each pair once, the upper triangle row by row over the
  parameters with IIV (declaration order), only pairs within a block;
* ``omega_iov_<P>``: the IOV variance of every parameter with ``iov`` (CONTRACT 5.3);
* ``sigma2_add``, ``sigma2_prop``, ``sigma2_exp`` as the error model uses them.

Columns: ``parameter, mean, sd, median, q5, q95`` and, for NUTS, ``ess_bulk,
ess_tail, r_hat, mcse_mean`` (from :mod:`arviz_stats`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..individual import estimated_coefficients

__all__ = ["canonical_draws", "summarise", "omega_pairs", "BASE_COLUMNS", "NUTS_COLUMNS"]

BASE_COLUMNS = ("parameter", "mean", "sd", "median", "q5", "q95")
NUTS_COLUMNS = BASE_COLUMNS + ("ess_bulk", "ess_tail", "r_hat", "mcse_mean")


def omega_pairs(spec) -> list[tuple[str, str]]:
    """The omega elements reported: upper triangle, row-major, within blocks.

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    list of (str, str)
    """
    names = list(spec.iiv_names)
    block_of = {n: b for b, block in enumerate(spec.omega.blocks) for n in block}
    return [(p, q) for i, p in enumerate(names) for q in names[i:] if block_of.get(p) == block_of.get(q)]


def canonical_draws(spec, draws: xr.Dataset) -> xr.Dataset:
    """The draws of every summary parameter as scalar variables with canonical names.

    Parameters
    ----------
    spec : ModelSpec
    draws : xarray.Dataset
        A ``posterior`` or ``prior`` group (dims ``chain``, ``draw``).

    Returns
    -------
    xarray.Dataset
        One ``(chain, draw)`` variable per row of the summary, in row order.
    """
    out = {}
    for p in spec.estimated:
        out[f"theta_{p.name}"] = draws[f"theta_{p.name}"]
    for name in estimated_coefficients(spec):
        out[name] = draws[name]
    if spec.iiv_names:
        omega = draws["omega"]
        for p, q in omega_pairs(spec):
            out[f"omega_{p}_{q}"] = omega.sel(parameter=p, parameter2=q, drop=True)
    for name in getattr(spec, "iov_names", ()):
        out[f"omega_iov_{name}"] = draws[f"omega_iov_{name}"]
    for name in spec.residual.variances:
        out[name] = draws[name]
    return xr.Dataset({k: v.reset_coords(drop=True) for k, v in out.items()})


def summarise(spec, draws: xr.Dataset, *, diagnostics: bool = True) -> pd.DataFrame:
    """The summary table.

    Parameters
    ----------
    spec : ModelSpec
    draws : xarray.Dataset
        Posterior or prior draws.
    diagnostics : bool
        Add ``ess_bulk, ess_tail, r_hat, mcse_mean`` (NUTS).

    Returns
    -------
    pandas.DataFrame
    """
    ds = canonical_draws(spec, draws)
    rows = []
    for name, da in ds.data_vars.items():
        values = np.asarray(da.values, dtype=float).ravel()
        rows.append(
            {
                "parameter": name,
                "mean": float(np.mean(values)),
                "sd": float(np.std(values, ddof=1)) if values.size > 1 else float("nan"),
                "median": float(np.median(values)),
                "q5": float(np.quantile(values, 0.05)),
                "q95": float(np.quantile(values, 0.95)),
            }
        )
    table = pd.DataFrame(rows, columns=list(BASE_COLUMNS))
    if diagnostics:
        import arviz_stats as azs

        stats = {
            "ess_bulk": azs.ess(ds, method="bulk"),
            "ess_tail": azs.ess(ds, method="tail"),
            "r_hat": azs.rhat(ds),
            "mcse_mean": azs.mcse(ds, method="mean"),
        }
        for column, result in stats.items():
            table[column] = [float(result[name].values) for name in table["parameter"]]
    return table
