"""Exact forward draws from the prior and the prior predictive distribution (:func:`sample_prior`).

With the flip-flop guard on, draws outside the allowed region are rejected and replaced
(rejection sampling), so the draws follow the restricted prior exactly.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import xarray as xr

from ..build import flipflop as guard
from ..build.model import build, resolve_dataset
from ..errors import ArgumentError
from .arguments import _load_spec, _settings
from .result import BayesFit
from .tree import finish_tree

__all__ = ["sample_prior"]


def _accepted(spec, draws: xr.Dataset) -> np.ndarray:
    """Which forward draws lie in the region the flip-flop guard allows."""
    if not guard.guard_enabled(spec):
        return np.ones(draws.sizes["draw"], dtype=bool)
    individual = draws["individual"].isel(chain=0)
    ind = {p: np.asarray(individual.sel(structural_parameter=p).values) for p in spec.parameter_names}
    theta = {p.name: np.asarray(draws[f"theta_{p.name}"].isel(chain=0).values) for p in spec.estimated}
    return ~guard.numeric_violations(spec, ind, theta)


def _prior_batches(model, names, draws, rng, max_batches):
    """Batches of forward prior draws (Python linker: nothing to compile)."""
    import pymc as pm
    from pytensor.compile.mode import Mode

    mode = Mode(linker="py", optimizer="fast_run")
    for _ in range(max_batches):
        batch = pm.sample_prior_predictive(
            draws=draws, model=model, var_names=names, random_seed=rng, compile_kwargs={"mode": mode}
        )
        yield batch["prior"].to_dataset()


def _restricted_prior(spec, model, names, draws, rng, max_batches):
    """``draws`` forward draws that the flip-flop guard accepts (batches until enough).

    Returns the draws (numbered from 0), the number of draws made and of those accepted.
    """
    kept, n_total, n_accepted = [], 0, 0
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)  # PyMC logs "Sampling: [...]" for each batch
    try:
        batches = _prior_batches(model, names, draws, rng, max_batches)
        for prior in batches:
            ok = _accepted(spec, prior)
            n_total += ok.size
            n_accepted += int(ok.sum())
            kept.append(prior.isel(draw=np.flatnonzero(ok)))
            if sum(k.sizes["draw"] for k in kept) >= draws:
                break
    finally:
        logger.setLevel(level)
    prior = xr.concat(kept, dim="draw").isel(draw=slice(0, draws))
    if prior.sizes["draw"] < draws:
        raise ArgumentError(
            f"the flip-flop guard rejected {n_total - prior.sizes['draw']} of {n_total} prior draws "
            "(ka <= CL/V): the priors put almost no mass on ka above the elimination rate; revise the ka prior"
        )
    return prior.assign_coords(draw=np.arange(draws)), n_total, n_accepted


def sample_prior(spec, data, *, draws: int | None = None, seed: int | None = None, max_batches: int = 50) -> BayesFit:
    """Exact forward draws from the prior (and the prior predictive distribution).

    With the flip-flop guard on, draws outside the allowed region are rejected and
    replaced (rejection sampling), so the draws follow the restricted prior exactly.

    Parameters
    ----------
    spec : ModelSpec or path
    data : Dataset, path, bundled name or pandas.DataFrame
    draws : int, optional
        Default: the spec's ``sampling.draws``.
    seed : int, optional
        Default: the spec's ``sampling.seed``.
    max_batches : int
        Give up after this many batches of rejected draws.

    Returns
    -------
    BayesFit
        Method ``"prior"``; the tree has ``prior`` and ``prior_predictive`` groups.

    Raises
    ------
    ArgumentError
        When the flip-flop guard rejects nearly every draw (a ``ka`` prior that sits
        below the elimination rate).
    """
    start = time.perf_counter()
    spec = _load_spec(spec)
    draws, _, _, seed = _settings(spec, draws, None, None, seed)
    built = build(spec, resolve_dataset(spec, data), guard=False)
    seconds_build = time.perf_counter() - start
    t0 = time.perf_counter()
    names = [v.name for v in built.model.unobserved_value_vars if not v.name.endswith("__")]
    rng = np.random.default_rng(seed)
    prior, n_total, n_accepted = _restricted_prior(spec, built.model, names, draws, rng, max_batches)
    tree = finish_tree(xr.DataTree.from_dict({"/prior": xr.DataTree(prior)}), built, seed=rng, prior=True)
    return BayesFit(
        tree=tree,
        spec=spec,
        dataset=built.dataset,
        method="prior",
        seconds_build=seconds_build,
        seconds_sample=time.perf_counter() - t0,
        seconds=time.perf_counter() - start,
        draws=draws,
        tune=0,
        chains=1,
        seed=seed,
        sampler="forward",
        details={
            "flip_flop_guard": guard.guard_enabled(spec),
            "prior_acceptance": n_accepted / n_total,
        },
    )
