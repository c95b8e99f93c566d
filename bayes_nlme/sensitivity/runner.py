"""Run a prior sensitivity study: refit under each prior variant, in parallel.

Each variant is fitted with :func:`bayes_nlme.fit.sample`. Prior hyperparameters
are data of the compiled model (see :mod:`bayes_nlme.fit.sampling`), so within one
process the variants of the same structure (``base`` and the ``scale_*``
variants) reuse one compiled model; ``lkj`` and ``residual_halfnormal`` change the
graph and compile their own. Variants run in local worker processes
(:class:`concurrent.futures.ProcessPoolExecutor`), or on a Dask cluster when a
scheduler address is given.
"""

from __future__ import annotations

import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from ..errors import ArgumentError

__all__ = ["run_sensitivity", "fit_variant"]


def _positive_int(name: str, value, default: int | None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(f"{name}: expected a whole number >= 1, got {value!r}")
    return value


def fit_variant(name: str, spec, dataset, settings: dict, power: bool) -> dict:
    """Fit one variant (runs in a worker).

    Parameters
    ----------
    name : str
    spec : ModelSpec
    dataset : Dataset
    settings : dict
        ``draws``, ``tune``, ``chains``, ``seed``, ``cores``.
    power : bool
        Also compute the power-scaling table (the base variant).

    Returns
    -------
    dict
        ``name``, ``summary`` (DataFrame), ``psense`` (DataFrame or None) and
        ``notes`` (convergence warnings, as text).
    """
    from ..fit import ConvergenceWarning, sample
    from .psense import power_scaling

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        fit = sample(spec, dataset, quiet=True, **settings)
    notes = [f"{name}: {w.message}" for w in caught if issubclass(w.category, ConvergenceWarning)]
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    summary = fit.summary()
    return {
        "name": name,
        "summary": summary[["parameter", "mean", "sd", "q5", "q95"]].reset_index(drop=True),
        "psense": power_scaling(fit) if power else None,
        "notes": notes,
    }


def _run_local(jobs: list, workers: int) -> list[dict]:
    if workers == 1 or len(jobs) == 1:
        return [fit_variant(*job) for job in jobs]
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # no fork of a process that holds compiled models / threads
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
        futures = [pool.submit(fit_variant, *job) for job in jobs]
        return [f.result() for f in futures]


def _run_dask(jobs: list, scheduler: str) -> list[dict]:
    try:
        from dask.distributed import Client
    except ImportError:
        raise ArgumentError(
            "--scheduler needs Dask, which is not installed: pip install 'bayes_nlme[dask]'"
        ) from None
    try:
        client = Client(scheduler)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ArgumentError(f"scheduler: cannot connect to Dask scheduler {scheduler!r}: {exc}") from None
    try:
        futures = [client.submit(fit_variant, *job, pure=False) for job in jobs]
        return client.gather(futures)
    finally:
        client.close()


def run_sensitivity(
    spec,
    dataset,
    *,
    out,
    scales=(0.5, 2.0),
    variants=(),
    workers: int | None = None,
    scheduler: str | None = None,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    seed: int | None = None,
    quiet: bool = False,
) -> Path:
    """Prior sensitivity study of a model: power-scaling and refits under alternative priors.

    Parameters
    ----------
    spec : ModelSpec or path
    dataset : Dataset, path, bundled name or DataFrame
    out : path
        Output directory: ``psense.csv``, ``variants.csv``, ``forest.png``,
        ``report.html``.
    scales : sequence of float
        Spread factors of the ``scale_<f>`` variants (default 0.5 and 2).
    variants : sequence of path
        Alternative model files of the same structure.
    workers : int, optional
        Local worker processes (default ``os.cpu_count()``); ignored with ``scheduler``.
    scheduler : str, optional
        Address of a Dask scheduler (needs the ``dask`` extra).
    draws, tune, chains, seed : int, optional
        Sampler settings for every variant (default: the spec's ``[sampling]``).
    quiet : bool
        No progress messages and no convergence notes on stderr.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    ArgumentError
        Bad arguments, or a scheduler without Dask installed.
    SpecError, DataError
        A model, variant file or dataset that cannot be used.
    """
    from ..build import resolve_dataset
    from .output import write_outputs
    from .variants import prior_variants

    if isinstance(spec, (str, os.PathLike)):
        from ..spec import load_model

        spec = load_model(spec)
    workers = _positive_int("workers", workers, os.cpu_count() or 1)
    sampling = spec.sampling
    draws = _positive_int("draws", draws, sampling.draws)
    chains = _positive_int("chains", chains, sampling.chains)
    tune = sampling.tune if tune is None else tune
    if isinstance(tune, bool) or not isinstance(tune, int) or tune < 0:
        raise ArgumentError(f"tune: expected a whole number >= 0, got {tune!r}")
    seed = sampling.seed if seed is None else seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ArgumentError(f"seed: expected a whole number >= 0, got {seed!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise ArgumentError(f"scheduler: expected an address such as 'tcp://host:8786', got {scheduler!r}")
    data = resolve_dataset(spec, dataset)
    named = prior_variants(spec, scales, variants)
    n_proc = 1 if scheduler else min(workers, len(named))
    settings = {
        "draws": draws, "tune": tune, "chains": chains, "seed": seed,
        "cores": max(1, min(chains, (os.cpu_count() or 1) // n_proc)),
    }
    jobs = [(name, s, data, settings, name == "base") for name, s in named]
    if not quiet:
        print(f"sensitivity: fitting {len(jobs)} variants ({', '.join(n for n, _ in named)})", file=sys.stderr)
    results = _run_dask(jobs, scheduler) if scheduler else _run_local(jobs, workers)
    tables, notes, psense = [], [], None
    for res in results:
        tables.append(res["summary"].assign(variant=res["name"]))
        notes.extend(res["notes"])
        if res["psense"] is not None:
            psense = res["psense"]
    if not quiet:
        for note in notes:
            print(f"sensitivity: {note}", file=sys.stderr)
    variants_df = pd.concat(tables, ignore_index=True)
    return write_outputs(out, spec.name, psense, variants_df, notes)
