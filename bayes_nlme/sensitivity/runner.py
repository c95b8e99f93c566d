"""Run a prior sensitivity study: refit under each prior variant, in parallel.

Each variant is fitted with :func:`bayes_nlme.fit.sample`. Prior hyperparameters
are data of the compiled model (see :mod:`bayes_nlme.fit.sampling`), so variants
of the same graph structure (``base``, the ``scale_*`` variants and user model
files) share one compiled model; ``lkj`` and ``residual_halfnormal`` change the
graph and form structures of their own.

Compile once: before any variant is dispatched, this process builds and compiles
each structure once with the ``"native"`` route, which stores the compiled C callback
in PyTensor's on-disk Numba cache (``pytensor.config.base_compiledir``) and its
metadata beside it (:mod:`bayes_nlme.fit.native`). The workers then fit with
``compile_backend="native"`` and load the machine code from the disk cache in about a
second instead of compiling it; their chains run in parallel at full speed. Variants
run in parallel locally, in this process and in worker
processes (:class:`concurrent.futures.ProcessPoolExecutor`; the workers start up
while this process compiles, and each takes a contiguous share of the variants
ordered by structure, so that it loads few structures), or on a Dask cluster when a
scheduler address is given (Dask workers on the same machine share the disk cache;
remote ones compile each structure once themselves).

Every fit reports its compilation (``fit.details["compilation"]``: ``backend``,
``seconds``, ``fresh``); the study counts the fresh compilations per structure
(:attr:`SensitivityStudy.compilations`, ``compilations.csv``).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import ArgumentError

__all__ = ["run_sensitivity", "fit_variant", "fit_variants", "default_workers", "SensitivityStudy", "structure_groups"]

#: The compilation route of every fit of a study (its code is cached on disk).
BACKEND = "native"

COMPILATION_COLUMNS = ["structure", "variants", "compilations", "cached", "seconds"]


@dataclass(eq=False)
class SensitivityStudy:
    """The result of :func:`run_sensitivity`: the output directory and its tables.

    Behaves as the output directory in path operations (``os.fspath(study)``,
    ``study / "variants.csv"``, ``str(study)``).

    Attributes
    ----------
    path : pathlib.Path
        The output directory.
    psense : pandas.DataFrame
        Power-scaling of ``base``, columns
        :data:`~bayes_nlme.sensitivity.psense.PSENSE_COLUMNS` (the sensitivities with
        their Monte-Carlo errors, the prior quantile of the posterior median, the
        ETABAR check, the verdict and a one-sentence explanation).
    variants : pandas.DataFrame
        ``variant, parameter, mean, sd, q5, q95``.
    compilations : pandas.DataFrame
        One row per graph structure: ``structure`` (its first variant), ``variants``
        (space-separated), ``compilations`` (fresh compilations, this process and the
        workers together; 1 when compiled once), ``cached`` (fits whose code came
        from a cache), ``seconds`` (total compile or load time).
    notes : list of str
        Convergence messages of the fits.
    seconds : float
        Wall time of the study.
    """

    path: Path
    psense: pd.DataFrame
    variants: pd.DataFrame
    compilations: pd.DataFrame
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_compilations(self) -> int | None:
        """Fresh compilations in total (None when a fit did not report its compilation)."""
        col = self.compilations["compilations"]
        return None if col.isna().any() else int(col.sum())

    def forest_plot(self):
        """The forest plot of :attr:`variants` (a matplotlib Figure)."""
        from .output import forest_plot

        return forest_plot(self.variants)

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __truediv__(self, other) -> Path:
        return self.path / other

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return (
            f"SensitivityStudy({str(self.path)!r}, variants={list(dict.fromkeys(self.variants['variant']))}, "
            f"compilations={self.n_compilations})"
        )


def _positive_int(name: str, value, default: int | None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(f"{name}: expected a whole number >= 1, got {value!r}")
    return value


def default_workers(chains: int) -> int:
    """The default size of the local pool: ``cpu_count // chains``, at least 1.

    A fit already runs its chains in parallel threads, so a pool pays off when the
    machine has more cores than one fit's chains use: with 16 cores and 4 chains, 4
    workers; with 2 cores, the variants are fitted one after the other
    (``benchmarks/sensitivity_pool.py`` measures both).
    """
    return max(1, (os.cpu_count() or 1) // max(1, chains))


def _compilation(info) -> dict | None:
    """A fit's or compiled model's compilation record, as a plain dict (or None)."""
    if info is None:
        return None
    if not isinstance(info, dict):
        info = {k: getattr(info, k) for k in ("backend", "seconds", "fresh") if hasattr(info, k)}
    if "fresh" not in info:
        return None
    return {"backend": info.get("backend"), "seconds": float(info.get("seconds") or 0.0), "fresh": bool(info["fresh"])}


def fit_variant(name: str, spec, dataset, settings: dict, power: bool) -> dict:
    """Fit one variant (runs in a worker).

    Parameters
    ----------
    name : str
    spec : ModelSpec
    dataset : Dataset
    settings : dict
        Keyword arguments of :func:`~bayes_nlme.fit.sample` (``draws``, ``tune``,
        ``chains``, ``seed``, ``cores``, ``compile_backend``, ``centered``).
    power : bool
        Also compute the power-scaling table (the base variant).

    Returns
    -------
    dict
        ``name``, ``summary`` (DataFrame), ``psense`` (DataFrame or None), ``notes``
        (convergence warnings, as text), ``compilation`` (the fit's
        ``details["compilation"]``, or None), ``seconds`` (``build``, ``sample``,
        ``postprocess``, ``psense``, ``total``) and ``pid``.
    """
    started = time.perf_counter()
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
    t_power = time.perf_counter()
    psense = power_scaling(fit) if power else None
    seconds = {
        "build": fit.seconds_build,
        "sample": fit.seconds_sample,
        "postprocess": fit.details.get("seconds_postprocess"),
        "psense": time.perf_counter() - t_power,
        "total": time.perf_counter() - started,
    }
    return {
        "name": name,
        "summary": summary[["parameter", "mean", "sd", "q5", "q95"]].reset_index(drop=True),
        "psense": psense,
        "notes": notes,
        "seconds": seconds,
        "compilation": _compilation(fit.details.get("compilation")),
        "pid": os.getpid(),
    }


def structure_groups(named, data, centered: bool = False) -> list[list[str]]:
    """The variant names grouped by compiled-graph structure, in order of first appearance.

    Two variants share a group when their built graphs have the same digest
    (:func:`bayes_nlme.fit.structure.structure_key`): only prior values differ.

    Parameters
    ----------
    named : list of (str, ModelSpec)
    data : Dataset
    centered : bool
        Centred etas (part of the graph).

    Returns
    -------
    list of list of str
    """
    from ..build import build
    from ..fit.structure import structure_key

    groups: dict = {}
    for name, spec in named:
        groups.setdefault(structure_key(build(spec, data, centered=centered)), []).append(name)
    return list(groups.values())


def _run_settings(spec, workers, scheduler, draws, tune, chains, seed) -> tuple:
    """The study's worker count and sampler settings, checked (defaults: ``[sampling]``)."""
    workers = _positive_int("workers", workers, None)
    sampling = spec.sampling
    draws = _positive_int("draws", draws, sampling.draws)
    chains = _positive_int("chains", chains, sampling.chains)
    if workers is None:
        workers = default_workers(chains)
    tune = sampling.tune if tune is None else tune
    if isinstance(tune, bool) or not isinstance(tune, int) or tune < 0:
        raise ArgumentError(f"tune: expected a whole number >= 0, got {tune!r}")
    seed = sampling.seed if seed is None else seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ArgumentError(f"seed: expected a whole number >= 0, got {seed!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise ArgumentError(f"scheduler: expected an address such as 'tcp://host:8786', got {scheduler!r}")
    return workers, draws, tune, chains, seed


def _collect(results) -> tuple[list, list, pd.DataFrame | None]:
    """The variants' summaries (tagged with the variant), their notes and the base's psense."""
    tables, notes, psense = [], [], None
    for res in results:
        tables.append(res["summary"].assign(variant=res["name"]))
        notes.extend(res["notes"])
        if res["psense"] is not None:
            psense = res["psense"]
    return tables, notes, psense


def _centred(spec, data) -> bool:
    """Centred etas or not, as ``sample(centered="auto")`` would choose.

    The choice is part of the compiled graph: the study makes it once and passes it to
    the compilation here and to every fit, so that they all use the same graph.
    """
    from ..fit.sampling import _centred as choose

    return choose("auto", data, spec)


def _precompile(named, groups, data, centered: bool, quiet: bool) -> dict:
    """Compile each structure once in this process (fills PyTensor's disk cache)."""
    from ..fit.sampling import compile_model

    specs = dict(named)
    out = {}
    for group in groups:
        start = time.perf_counter()
        with warnings.catch_warnings():
            # The C backend (initial points, shapes) may say once per process that it found
            # no BLAS; that does not concern the Numba code the fits run.
            warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)
            cm = compile_model(specs[group[0]], data, centered=centered, backend=BACKEND)
        seconds = time.perf_counter() - start
        info = _compilation(cm)  # its backend, seconds and fresh
        out[group[0]] = info
        if not quiet:
            how = "" if info is None else (" (compiled)" if info["fresh"] else " (from the cache)")
            print(f"sensitivity: structure of {', '.join(group)}: {seconds:.1f} s{how}", file=sys.stderr)
    return out


def fit_variants(jobs: list) -> list[dict]:
    """Fit several variants one after the other (one task of a local worker)."""
    return [fit_variant(*job) for job in jobs]


def _warm_up() -> int:
    """Import the fitting stack in a fresh worker (while the parent compiles)."""
    import bayes_nlme.fit  # noqa: F401
    import bayes_nlme.sensitivity.psense  # noqa: F401

    return os.getpid()


def _chunks(jobs: list, groups: list[list[str]], n: int) -> list[list]:
    """``jobs`` in ``n`` contiguous chunks of near-equal size, ordered by graph structure.

    Each worker then loads as few compiled structures as possible (loading one from the
    disk cache costs seconds), and the chunks cost about the same.
    """
    rank = {name: i for i, group in enumerate(groups) for name in group}
    ordered = sorted(jobs, key=lambda job: rank[job[0]])
    size, extra = divmod(len(ordered), n)
    out, start = [], 0
    for k in range(n):
        stop = start + size + (1 if k < extra else 0)
        out.append(ordered[start:stop])
        start = stop
    return [c for c in out if c]


class _LocalPool:
    """Local parallelism: this process and ``n - 1`` spawned workers.

    The workers start (and import the fitting stack) while this process compiles. The
    variants, ordered by structure, are cut into ``n`` contiguous shares: this process
    fits the first (the ``base`` structure, already compiled here, so nothing to load)
    and each worker one of the others, loading its structures from the disk cache.
    """

    def __init__(self, workers: int, n_jobs: int) -> None:
        self.n = min(workers, n_jobs)
        self.pool = None
        if self.n > 1:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")  # no fork of a process that holds compiled models / threads
            self.pool = ProcessPoolExecutor(max_workers=self.n - 1, mp_context=ctx)
            self.warm = [self.pool.submit(_warm_up) for _ in range(self.n - 1)]

    def run(self, jobs: list, groups: list[list[str]]) -> list[dict]:
        if self.pool is None:
            return fit_variants(jobs)
        own, *shares = _chunks(jobs, groups, self.n)
        futures = [self.pool.submit(fit_variants, share) for share in shares]
        done = fit_variants(own)
        by_name = {res["name"]: res for res in done + [r for f in futures for r in f.result()]}
        return [by_name[job[0]] for job in jobs]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _dask_client(scheduler: str):
    try:
        from dask.distributed import Client
    except ImportError:
        raise ArgumentError("--scheduler needs Dask, which is not installed: pip install 'bayes_nlme[dask]'") from None
    try:
        return Client(scheduler, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ArgumentError(f"scheduler: cannot connect to Dask scheduler {scheduler!r}: {exc}") from None


def _run_dask(jobs: list, client) -> list[dict]:
    futures = [client.submit(fit_variant, *job, pure=False) for job in jobs]
    return client.gather(futures)


def _compilation_table(groups, parent: dict, results: list[dict]) -> pd.DataFrame:
    by_name = {r["name"]: r["compilation"] for r in results}
    rows = []
    for group in groups:
        records = [parent.get(group[0])] + [by_name.get(n) for n in group]
        known = [r for r in records if r is not None]
        unknown = len(known) < len(records)
        rows.append(
            {
                "structure": group[0],
                "variants": " ".join(group),
                "compilations": pd.NA if unknown else sum(r["fresh"] for r in known),
                "cached": pd.NA if unknown else sum(not r["fresh"] for r in known),
                "seconds": sum(r["seconds"] for r in known),
            }
        )
    table = pd.DataFrame(rows, columns=COMPILATION_COLUMNS)
    table["compilations"] = table["compilations"].astype("Int64")
    table["cached"] = table["cached"].astype("Int64")
    return table


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
) -> SensitivityStudy:
    """Prior sensitivity study of a model: power-scaling and refits under alternative priors.

    Parameters
    ----------
    spec : ModelSpec or path
    dataset : Dataset, path, bundled name or DataFrame
    out : path
        Output directory: ``psense.csv``, ``variants.csv``, ``compilations.csv``,
        ``forest.png``, ``report.html``. Inside a fit directory as
        ``<fit dir>/sensitivity``, the fit's report shows the study.
    scales : sequence of float
        Spread factors of the ``scale_<f>`` variants (default 0.5 and 2).
    variants : sequence of path
        Alternative model files of the same structure.
    workers : int, optional
        Local processes fitting variants in parallel, this one included (default
        :func:`default_workers`: one per ``chains`` cores; 1 fits the variants one after
        the other in this process); ignored with ``scheduler``.
    scheduler : str, optional
        Address of a Dask scheduler, e.g. ``"tcp://host:8786"`` (needs the ``dask``
        extra).
    draws, tune, chains, seed : int, optional
        Sampler settings for every variant (default: the spec's ``[sampling]``).
    quiet : bool
        No progress messages and no convergence notes on stderr.

    Returns
    -------
    SensitivityStudy
        The tables of the study; it stands for the output directory in path
        operations (``study / "psense.csv"``).

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

    started = time.perf_counter()
    if isinstance(spec, (str, os.PathLike)):
        from ..spec import load_model

        spec = load_model(spec)
    workers, draws, tune, chains, seed = _run_settings(spec, workers, scheduler, draws, tune, chains, seed)
    data = resolve_dataset(spec, dataset)
    named = prior_variants(spec, scales, variants)
    client = _dask_client(scheduler) if scheduler else None
    pool = None
    try:
        n_proc = 1 if scheduler else min(workers, len(named))
        centered = _centred(spec, data)
        settings = {
            "draws": draws,
            "tune": tune,
            "chains": chains,
            "seed": seed,
            "cores": max(1, min(chains, (os.cpu_count() or 1) // n_proc)),
            "compile_backend": BACKEND,
            "centered": centered,
        }
        groups = structure_groups(named, data, centered)
        if not quiet:
            print(
                f"sensitivity: {len(named)} variants ({', '.join(n for n, _ in named)}) "
                f"in {len(groups)} graph structure(s)",
                file=sys.stderr,
            )
        if client is None:
            pool = _LocalPool(workers, len(named))  # its workers start up while this process compiles
        parent = _precompile(named, groups, data, centered, quiet)
        jobs = [(name, s, data, settings, name == "base") for name, s in named]
        results = _run_dask(jobs, client) if client is not None else pool.run(jobs, groups)
    finally:
        if client is not None:
            client.close()
        if pool is not None:
            pool.close()
    tables, notes, psense = _collect(results)
    if not quiet:
        for note in notes:
            print(f"sensitivity: {note}", file=sys.stderr)
    variants_df = pd.concat(tables, ignore_index=True)
    compilations = _compilation_table(groups, parent, results)
    path = write_outputs(out, spec.name, psense, variants_df, notes, compilations=compilations)
    return SensitivityStudy(
        path=Path(path),
        psense=psense,
        variants=variants_df[["variant", "parameter", "mean", "sd", "q5", "q95"]],
        compilations=compilations,
        notes=notes,
        seconds=time.perf_counter() - started,
    )
