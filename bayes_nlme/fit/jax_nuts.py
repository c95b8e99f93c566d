"""Support for the JAX samplers (numpyro, blackjax) behind ``pm.sample(nuts_sampler=...)``.

* :func:`prepare` registers the JAX implementation of the model's custom scalar op
  (the model core's event engine, :mod:`bayes_nlme.core.op`) and picks the chain method;
* :func:`blackjax_loop` replaces PyMC's blackjax sampling loop where it does not fit the
  installed blackjax (PyMC 6.4 passes ``progress_bar`` to ``blackjax.window_adaptation``
  and calls ``blackjax.progress_bar.gen_scan_fn``, both gone in blackjax 1.6/1.7); the
  algorithm (window adaptation, then NUTS steps by ``lax.scan``) and the statistics are
  PyMC's;
* :func:`normalise_stats` gives the statistics PyMC's own names and meanings:
  ``lp`` is the log density (numpyro records the potential energy, ``-lp``), and
  ``reached_max_treedepth`` is added.

Needs the ``jax`` extra; nothing here is imported by :mod:`bayes_nlme` itself.
"""

from __future__ import annotations

import contextlib

import xarray as xr

__all__ = ["MAX_TREEDEPTH", "chain_method", "prepare", "blackjax_loop", "blackjax_patched", "normalise_stats"]

#: The maximum tree depth of numpyro's and blackjax's NUTS (their default, 10).
MAX_TREEDEPTH = 10


def chain_method(chains: int) -> str:
    """``"parallel"`` (``pmap``, one XLA device per chain) when JAX has a device for
    every chain, else ``"vectorized"`` (``vmap``). PyMC asks for 100 CPU devices, but
    that works only when it is imported before JAX starts its backend."""
    import jax
    import pymc.sampling.jax  # noqa: F401  (sets XLA_FLAGS before the JAX backend starts)

    return "parallel" if jax.local_device_count() >= chains else "vectorized"


def prepare(chains: int) -> dict:
    """Register the JAX implementations and return the ``nuts`` options for ``pm.sample``."""
    from ..core import op  # noqa: F401  (registers the event engine's JAX implementation)

    return {"chain_method": chain_method(chains)}


def blackjax_loop(seed, init_position, logp_fn, draws, tune, target_accept, **adaptation_kwargs):
    """PyMC's ``_blackjax_inference_loop`` for blackjax >= 1.6 (no progress bar)."""
    import blackjax
    import jax
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    adaptation_kwargs.pop("progress_bar", None)
    algorithm_name = adaptation_kwargs.pop("algorithm", "nuts")
    algorithms = {"nuts": blackjax.nuts, "hmc": blackjax.hmc}
    if algorithm_name not in algorithms:
        raise ValueError("Only supporting 'nuts' or 'hmc' as algorithm to draw samples.")
    algorithm = algorithms[algorithm_name]
    adapt = blackjax.window_adaptation(
        algorithm=algorithm,
        logdensity_fn=logp_fn,
        target_acceptance_rate=target_accept,
        adaptation_info_fn=get_filter_adapt_info_fn(),
        **adaptation_kwargs,
    )
    (last_state, tuned_params), _ = adapt.run(seed, init_position, num_steps=tune)
    kernel = algorithm(logp_fn, **tuned_params).step

    def one_step(state, rng_key):
        state, info = kernel(rng_key, state)
        stats = {
            "diverging": info.is_divergent,
            "energy": info.energy,
            "tree_depth": info.num_trajectory_expansions,
            "n_steps": info.num_integration_steps,
            "acceptance_rate": info.acceptance_rate,
            "lp": state.logdensity,
        }
        return state, (state.position, stats)

    _, (samples, stats) = jax.lax.scan(one_step, last_state, jax.random.split(seed, draws))
    return samples, stats


def _pymc_loop_fits() -> bool:
    import blackjax

    return hasattr(getattr(blackjax, "progress_bar", None), "gen_scan_fn")


@contextlib.contextmanager
def blackjax_patched():
    """Run PyMC's blackjax route with :func:`blackjax_loop` where PyMC's loop does not fit."""
    import pymc.sampling.jax as pymc_jax

    if _pymc_loop_fits() or not hasattr(pymc_jax, "_blackjax_inference_loop"):
        yield
        return
    original = pymc_jax._blackjax_inference_loop
    pymc_jax._blackjax_inference_loop = blackjax_loop
    try:
        yield
    finally:
        pymc_jax._blackjax_inference_loop = original


def normalise_stats(stats: xr.Dataset, sampler: str) -> xr.Dataset:
    """PyMC's names and meanings for the statistics of a numpyro or blackjax fit."""
    stats = stats.copy()
    if sampler == "numpyro" and "lp" in stats:
        stats["lp"] = -stats["lp"]  # numpyro's potential energy
    if "tree_depth" in stats and "reached_max_treedepth" not in stats:
        stats["reached_max_treedepth"] = stats["tree_depth"] >= MAX_TREEDEPTH
    if "diverging" in stats:
        stats["diverging"] = stats["diverging"].astype(bool)
    return stats
