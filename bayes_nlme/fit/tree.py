"""Assemble the DataTree of a Bayesian fit.

Groups (ArviZ conventions):

* ``posterior`` (NUTS) or ``prior`` (forward prior draws): every model variable;
* ``sample_stats`` (NUTS): the sampler's statistics;
* ``log_likelihood``: ``y`` (``chain x draw x observation``), the pointwise
  log-likelihood of each observation, and ``y_subject`` (``chain x draw x subject``),
  its sum per subject, for leave-one-subject-out cross-validation;
* ``posterior_predictive`` / ``prior_predictive``: ``y``, draws of every observation
  with the residual error (censored at the LLOQ on BLQ rows);
* ``observed_data``: ``y``, the observations;
* ``constant_data``: per observation ``time``, ``subject_index``, ``subject_id``,
  ``blq``; per dose record (dim ``dose``) ``dose_time``, ``dose_amount``,
  ``dose_rate``, ``dose_cmt``, ``dose_subject_index``, ``dose_row``; and every prior
  hyperparameter (``prior__<variable>__<field>``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..build.model import prior_data
from ..build.residual import pointwise_loglik, predictive_draws
from ..data.dataset import id_array

__all__ = ["finish_tree", "constant_data", "observed_data", "likelihood_groups"]

_SAMPLE_DIMS = ("chain", "draw")


def constant_data(built) -> xr.Dataset:
    """The ``constant_data`` group of a built model.

    Parameters
    ----------
    built : BuiltModel

    Returns
    -------
    xarray.Dataset
    """
    obs = built.observations
    coords = {"observation": obs["ROW"].astype(int).to_numpy()}
    data = {
        "time": ("observation", obs["TIME"].to_numpy(dtype=float)),
        "subject_index": ("observation", obs["SUBJECT"].to_numpy(dtype=int)),
        "subject_id": ("observation", id_array(obs["ID"])),
        "blq": ("observation", obs["BLQ"].fillna(0).to_numpy(dtype=int)),
    }
    doses = built.dataset.doses
    data.update(
        {
            "dose_time": ("dose", doses["TIME"].to_numpy(dtype=float)),
            "dose_amount": ("dose", doses["AMT"].to_numpy(dtype=float)),
            "dose_rate": ("dose", doses["RATE"].to_numpy(dtype=float)),
            "dose_cmt": ("dose", doses["CMT"].to_numpy(dtype=float)),
            "dose_subject_index": ("dose", doses["SUBJECT"].to_numpy(dtype=int)),
            "dose_row": ("dose", doses["ROW"].to_numpy(dtype=int)),
        }
    )
    for name, value in prior_data(built.spec).items():
        value = np.asarray(value, dtype=float)
        data[name] = (tuple(f"{name}_dim_{i}" for i in range(value.ndim)), value)
    return xr.Dataset(data, coords=coords)


def observed_data(built) -> xr.Dataset:
    """The ``observed_data`` group: ``y`` over ``observation``."""
    obs = built.observations
    return xr.Dataset(
        {"y": ("observation", obs["DV"].to_numpy(dtype=float))},
        coords={"observation": obs["ROW"].astype(int).to_numpy()},
    )


def _sigma2(built, draws: xr.Dataset) -> dict:
    return {name: np.asarray(draws[name].transpose(*_SAMPLE_DIMS).values) for name in built.spec.residual.variances}


def likelihood_groups(built, draws: xr.Dataset, seed) -> tuple[xr.Dataset, xr.Dataset]:
    """Pointwise log-likelihood and predictive draws from the draws of ``ipred``.

    Parameters
    ----------
    built : BuiltModel
    draws : xarray.Dataset
        Posterior (or prior) draws with ``ipred`` and the residual variances.
    seed : int or None
        Seed of the predictive draws.

    Returns
    -------
    (log_likelihood, predictive) : tuple of xarray.Dataset
    """
    ipred = draws["ipred"].transpose(*_SAMPLE_DIMS, "observation")
    f = np.asarray(ipred.values, dtype=float)
    sigma2 = _sigma2(built, draws)
    coords = {d: draws[d].values for d in _SAMPLE_DIMS}
    obs_coord = ipred["observation"].values
    loglik = pointwise_loglik(built.spec, f, sigma2, built.dv, built.lower, built.design.obs_output)
    subject = built.observations["SUBJECT"].to_numpy(dtype=int)
    n_subjects = built.dataset.n_subjects
    per_subject = np.stack([loglik[..., subject == s].sum(axis=-1) for s in range(n_subjects)], axis=-1)
    log_likelihood = xr.Dataset(
        {
            "y": ((*_SAMPLE_DIMS, "observation"), loglik),
            "y_subject": ((*_SAMPLE_DIMS, "subject"), per_subject),
        },
        coords={**coords, "observation": obs_coord, "subject": list(built.dataset.subject_ids)},
    )
    rng = np.random.default_rng(seed)
    y = predictive_draws(built.spec, f, sigma2, rng, built.lower, built.design.obs_output)
    predictive = xr.Dataset({"y": ((*_SAMPLE_DIMS, "observation"), y)}, coords={**coords, "observation": obs_coord})
    return log_likelihood, predictive


def finish_tree(tree: xr.DataTree, built, *, seed=None, prior: bool = False) -> xr.DataTree:
    """Complete a sampler's tree with the groups listed in the module docstring.

    Parameters
    ----------
    tree : xarray.DataTree
        With a ``posterior`` (or, when ``prior``, a ``prior``) group holding ``ipred``.
    built : BuiltModel
    seed : int, optional
        Seed for the predictive draws.
    prior : bool
        Forward prior draws: fill ``prior_predictive`` instead of
        ``posterior_predictive``.

    Returns
    -------
    xarray.DataTree
        A new tree.
    """
    group = "prior" if prior else "posterior"
    draws = tree[group].to_dataset()
    groups = {group: draws}
    if not prior and "sample_stats" in tree.children:
        groups["sample_stats"] = tree["sample_stats"].to_dataset()
    log_likelihood, predictive = likelihood_groups(built, draws, seed)
    groups["log_likelihood"] = log_likelihood
    groups["prior_predictive" if prior else "posterior_predictive"] = predictive
    groups["observed_data"] = observed_data(built)
    groups["constant_data"] = constant_data(built)
    out = xr.DataTree.from_dict({f"/{name}": xr.DataTree(ds) for name, ds in groups.items()})
    out.attrs.update(tree.attrs)
    for name in groups:
        if name in tree.children:
            out[name].attrs.update(tree[name].attrs)
    return out
