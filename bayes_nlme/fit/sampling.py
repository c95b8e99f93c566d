"""Fit a model by NUTS (:func:`sample`) or draw from its prior (:func:`sample_prior`).

The default sampler is nutpie. A model is compiled once per process and structure
(:func:`compile_model`): a later fit of a spec that differs only in prior values
(a prior-sensitivity variant) re-uses the compiled model with new prior data, and a
fit in a new process re-uses PyTensor's on-disk Numba cache
(:mod:`bayes_nlme.fit.compile`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
import xarray as xr

from ..build.etas import centring
from ..build.model import BuiltModel, build, prior_data, resolve_dataset
from ..errors import ArgumentError
from ..spec.components import SAMPLING_ADAPTATIONS
from .arguments import _load_spec, _positive, _settings
from .compile import compile_nutpie
from .convergence import assess
from .flipflop import flip_flop_check
from .init import check_init, frequentist_fit, start_point, with_start
from .native import graph_key
from .prior_sampling import sample_prior
from .result import BayesFit
from .structure import structure_key
from .summary import canonical_draws
from .tree import finish_tree

__all__ = ["SAMPLERS", "CompiledModel", "compile_model", "sample", "sample_prior", "clear_cache"]

#: Valid NUTS samplers.
SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")
_JAX_SAMPLERS = {"numpyro": "numpyro", "blackjax": "blackjax"}
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 8


@dataclass(frozen=True, eq=False)
class CompiledModel:
    """A built and compiled model, re-usable for specs of the same structure.

    Attributes
    ----------
    built : BuiltModel
    compiled : nutpie CompiledModel
    backend : str
    seconds : float
        Time to build and compile.
    fresh : bool
        Whether machine code was generated (False: this process's cache or the on-disk
        cache supplied it).
    """

    built: BuiltModel
    compiled: object
    backend: str
    seconds: float
    fresh: bool = True

    def for_spec(self, spec):
        """The compiled model with the prior data of ``spec`` (same structure)."""
        return self.compiled.with_data(**prior_data(spec))


def clear_cache() -> None:
    """Forget the compiled models of this process."""
    _CACHE.clear()


def compile_model(spec, data, *, centered: bool = False, backend: str = "native") -> CompiledModel:
    """Build and compile a model, or take it from this process's cache.

    The cache key is the digest of the built graph (:func:`.structure.structure_key`),
    so specs that differ only in prior values share one compiled model, and any other
    change compiles anew.

    Parameters
    ----------
    spec : ModelSpec
    data : Dataset, path, bundled name or DataFrame
    centered : bool
        Centred etas.
    backend : {"native", "pyfunc", "cfunc"}
        See :mod:`bayes_nlme.fit.compile`.

    Returns
    -------
    CompiledModel
        With the prior data of ``spec`` set.
    """
    dataset = resolve_dataset(spec, data)
    start = time.perf_counter()
    built = build(spec, dataset, centered=centered)
    key = (structure_key(built), backend)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        cached = _CACHE[key]
        return replace(
            cached, built=replace(cached.built, spec=spec), compiled=cached.for_spec(spec), seconds=0.0, fresh=False
        )
    initial = tuple((p.name, p.initial) for p in spec.parameters)
    compiled = compile_nutpie(
        built.model, backend=backend, key=graph_key(key, initial), recipe=(spec, dataset, centered)
    )
    result = CompiledModel(
        built=built,
        compiled=compiled.compiled,
        backend=compiled.backend,
        seconds=time.perf_counter() - start,
        fresh=compiled.fresh,
    )
    _CACHE[key] = result
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return result


def _progress(progressbar, quiet: bool) -> bool:
    if progressbar is not None:
        return bool(progressbar)
    return not quiet and not os.environ.get("CI")


def _check_sampler(sampler: str) -> None:
    if sampler not in SAMPLERS:
        raise ArgumentError(f"unknown sampler {sampler!r} (valid: {', '.join(SAMPLERS)})")
    if sampler in _JAX_SAMPLERS:
        missing = [m for m in ("jax", _JAX_SAMPLERS[sampler]) if importlib.util.find_spec(m) is None]
        if missing:
            raise ArgumentError(
                f"sampler {sampler!r} needs {' and '.join(missing)}, which is not installed: install the "
                "extra with `pip install 'bayes_nlme[jax]'`, or use another sampler "
                f"(valid: {', '.join(SAMPLERS)}; nutpie needs nothing extra)"
            )


#: Below this ``n_obs * (draws + tune) * chains``, ``compile_backend="auto"`` takes
#: ``"pyfunc"`` when the model is not in the native cache yet (a short fit does not
#: repay the extra code generation of the native callbacks).
AUTO_NATIVE_WORK = 1_000_000

_COMPILE_BACKENDS = ("auto", "native", "pyfunc", "cfunc")


def _backend(choice: str, dataset, draws: int, tune: int, chains: int) -> str:
    if choice == "auto":
        work = dataset.n_observations * (draws + tune) * chains
        return "native" if work >= AUTO_NATIVE_WORK else "pyfunc"
    if choice not in _COMPILE_BACKENDS:
        raise ArgumentError(
            f"unknown compile_backend {choice!r} (valid: {', '.join(repr(c) for c in _COMPILE_BACKENDS)})"
        )
    return choice


#: nutpie's mass-matrix adaptations offered by :func:`sample`.
ADAPTATIONS = SAMPLING_ADAPTATIONS


def _check_adaptation(adaptation, sampler: str) -> None:
    if adaptation not in ADAPTATIONS:
        raise ArgumentError(f"unknown adaptation {adaptation!r} (valid: {', '.join(ADAPTATIONS)})")
    if adaptation != "diag" and sampler != "nutpie":
        raise ArgumentError(f"adaptation {adaptation!r} needs the nutpie sampler (got sampler {sampler!r})")


def _target_accept(value, centered) -> float:
    if value is not None:
        return float(value)
    return 0.8 if centered is True else 0.9


#: ``centered="auto"`` takes the non-centred form for an IIV parameter whose EBE
#: shrinkage (SD-based) at the frequentist start exceeds this: the data then barely
#: inform that parameter per subject, its variance has mass near zero, and the
#: centred form makes a funnel there.
MAX_SHRINKAGE_CENTRED = 0.25


def _centred(choice, dataset, spec, estimated=None) -> bool | tuple:
    """The eta parameterisation: True, False or the names of the centred parameters.

    ``"auto"`` decides per parameter: a parameter is centred when the median subject
    has at least 2 observations per IIV parameter (and 4 at least), so the data
    identify each subject's parameters, and (with a frequentist fit) its EBE shrinkage
    is at most :data:`MAX_SHRINKAGE_CENTRED`; the others are non-centred
    (:func:`bayes_nlme.build.etas.random_effects`, mixed form).
    """
    if choice == "auto":
        names = list(spec.iiv_names)
        if not names:
            return False
        table = dataset.table
        counts = table.loc[table["EVID"] == 0].groupby("SUBJECT").size()
        if not (len(counts) and float(np.median(counts)) >= max(4, 2 * len(names))):
            return False
        shrinkage = {} if estimated is None else getattr(estimated, "eta_shrinkage_sd", {})
        choice = [n for n in names if not float(shrinkage.get(n, 0.0)) > MAX_SHRINKAGE_CENTRED]
    elif not isinstance(choice, (bool, list, tuple)):
        raise ArgumentError(f"centered must be True, False, 'auto' or parameter names, got {choice!r}")
    try:
        return centring(spec, choice)
    except ValueError as exc:
        raise ArgumentError(f"centered: {exc}") from None


def _numeric(ds: xr.Dataset) -> xr.Dataset:
    """The numeric statistics, with ``diverging_non_finite``: the divergences that
    nutpie reports as a log density that was not finite (an ODE solver failure, an
    overflow) rather than an energy error."""
    out = ds[[n for n, v in ds.data_vars.items() if v.dtype.kind in "biuf"]]
    if "divergence_message" in ds and "diverging" in ds:
        text = np.char.startswith(ds["divergence_message"].values.astype(str), "Logp function returned error")
        out = out.assign(diverging_non_finite=ds["diverging"].copy(data=text & ds["diverging"].values.astype(bool)))
    return out


def _run_nutpie(cm: CompiledModel, spec, *, draws, tune, chains, seed, progress, target_accept, cores, x0, adaptation):
    import nutpie

    kwargs = {"target_accept": target_accept} if target_accept is not None else {}
    return nutpie.sample(
        with_start(cm.for_spec(spec), x0),
        adaptation=adaptation,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        seed=seed,
        save_warmup=False,
        progress_bar=progress,
        **kwargs,
    )


def _run_pymc(built, sampler, *, draws, tune, chains, seed, progress, target_accept, cores, initvals):
    import pymc as pm

    kwargs = {"target_accept": target_accept} if target_accept is not None else {}
    if initvals:
        kwargs["initvals"] = {name: np.asarray(value) for name, value in initvals.items()}
    context = contextlib.nullcontext()
    if sampler in _JAX_SAMPLERS:
        from . import jax_nuts

        kwargs["nuts"] = jax_nuts.prepare(chains)
        if sampler == "blackjax":
            context = jax_nuts.blackjax_patched()
    with context:
        return pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=seed,
            progressbar=progress,
            nuts_sampler=sampler,
            model=built.model,
            compute_convergence_checks=False,
            **kwargs,
        )


def sample(
    spec,
    data,
    *,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    seed: int | None = None,
    sampler: str = "nutpie",
    progressbar: bool | None = None,
    quiet: bool = False,
    target_accept: float | None = None,
    centered: bool | str | None = None,
    cores: int | None = None,
    compile_backend: str = "auto",
    init: str | None = None,
    adaptation: str | None = None,
) -> BayesFit:
    """Fit a model by NUTS.

    Parameters
    ----------
    spec : ModelSpec or path
        The model (a TOML path is loaded).
    data : Dataset, path, bundled name or pandas.DataFrame
    draws, tune, chains, seed : int, optional
        Default: the spec's ``[sampling]`` table.
    sampler : {"nutpie", "pymc", "numpyro", "blackjax"}
        numpyro and blackjax need the ``jax`` extra; they compile the model to JAX
        (:mod:`bayes_nlme.fit.jax_nuts`) and run the chains in parallel on one XLA CPU
        device each when there are enough (else vectorised), so ``cores`` does not
        apply to them.
    progressbar : bool, optional
        Default: on, unless ``quiet`` or the environment variable ``CI`` is set.
    quiet : bool
        No progress bar and no convergence report (warnings are still emitted).
    target_accept : float, optional
        NUTS target acceptance rate. Default: ``[sampling] target_accept``, else 0.8
        for a centred model and 0.9 for a non-centred one, whose curved tails need
        smaller steps (the bundled
        Theophylline fit non-centred: 2 divergences at 0.8, none at 0.9; centred: none
        at 0.8 in 8 seeds, with a third fewer gradient evaluations than at 0.9). Raise
        it, e.g. to 0.95, against divergences.
    centered : bool or "auto", optional
        Default: ``[sampling] centered`` ("auto" unless set). Parameterisation of the
        random effects (:mod:`bayes_nlme.build.etas`): centred on the log individual
        parameters (True) or non-centred (False). ``"auto"`` centres when the median
        subject has at least ``max(4, 2 x n_iiv)`` observations and no IIV
        parameter's EBE shrinkage in the frequentist start exceeds 25%: rich data
        identify each subject's parameters, and the centred form then mixes several
        times better (Theophylline: min bulk ESS ~3,800 per 4,000 draws centred, ~900
        non-centred); sparse data, or a variance with mass near zero, favour the
        non-centred form.
    cores : int, optional
        Chains run in parallel (default ``min(chains, cpu count)``).
    compile_backend : {"auto", "native", "pyfunc", "cfunc"}
        nutpie only; see :mod:`bayes_nlme.fit.compile`. All give the same posterior.
        ``"native"``: C callbacks cached on disk per model graph; the first fit of a
        model compiles them, later fits (any process) load them in about a second, and
        chains run in parallel at full speed. ``"pyfunc"``: PyTensor functions called
        from Python (cheaper first compilation, slower sampling: chains share the GIL).
        ``"cfunc"``: nutpie's own route (recompiled by every fit). ``"auto"`` takes
        ``"native"`` when ``n_obs * (draws + tune) * chains >= 1e6`` (e.g. the default
        Theophylline fit), ``"pyfunc"`` otherwise.
    init : {"auto", "focei", "fo", "jitter"}, optional
        Default: ``[sampling] init`` ("auto" unless set). Where the chains start
        (:mod:`bayes_nlme.fit.init`). ``"focei"`` / ``"fo"``: at the
        maximum-likelihood estimates and EBEs of that method, with a small jitter;
        ``"jitter"``: at the prior support point plus ``Uniform(-1, 1)`` jitter on
        the unconstrained scale (chains of large studies can be trapped there).
        ``"auto"``: FOCE-I, else FO, else the jittered prior point. Recorded in
        ``fit.json`` (``init``).
    adaptation : {"diag", "draw_diag", "low_rank"}, optional
        Default: ``[sampling] adaptation`` ("diag" unless set). nutpie's mass-matrix
        adaptation (nutpie only): diagonal from draws and gradients, diagonal from
        draws only (as Stan and PyMC), or low-rank plus diagonal (experimental in
        nutpie).

    Returns
    -------
    BayesFit
        Method ``"nuts"``; its ``convergence`` verdict is printed (unless quiet) and
        each problem is emitted as a :class:`~bayes_nlme.fit.ConvergenceWarning`.

    Raises
    ------
    ArgumentError
        Bad settings or an unavailable sampler.
    SpecError, DataError
        A model or dataset that cannot be fitted.
    """
    start = time.perf_counter()
    spec = _load_spec(spec)
    _check_sampler(sampler)
    draws, tune, chains, seed = _settings(spec, draws, tune, chains, seed)
    opts = _options(spec, sampler, chains, target_accept, centered, cores, init, adaptation)
    if opts["centered"] != "auto":
        _centred(opts["centered"], None, spec)  # a bad choice fails before any work
    progress = _progress(progressbar, quiet)
    dataset = resolve_dataset(spec, data)
    estimated, init_info = frequentist_fit(spec, dataset, opts["init"])
    centered = _centred(opts["centered"], dataset, spec, estimated)
    target_accept = _target_accept(opts["target_accept"], centered)
    run = {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "progress": progress}
    run.update(target_accept=target_accept, cores=opts["cores"])
    built, cm, raw, seconds_build, seconds_sample = _run_chains(
        spec, dataset, sampler, compile_backend, centered, estimated, init_info, opts["adaptation"], run, start
    )
    t1 = time.perf_counter()
    tree = _posterior_tree(raw, built, sampler, seed)
    verdict = _verdict(spec, tree, init_info, centered)
    details = _details(built, cm, sampler, centered, target_accept, opts["adaptation"], init_info)
    if "diverging_non_finite" in tree["sample_stats"]:
        details["non_finite_log_density"] = int(tree["sample_stats"]["diverging_non_finite"].sum())
    details["seconds_postprocess"] = time.perf_counter() - t1
    fit = BayesFit(
        tree=tree,
        spec=spec,
        dataset=built.dataset,
        method="nuts",
        seconds_build=seconds_build,
        seconds_sample=seconds_sample,
        seconds=time.perf_counter() - start,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        sampler=sampler,
        convergence=verdict,
        details=details,
    )
    if not quiet:
        print(verdict.report(), file=sys.stderr)
    verdict.warn(stacklevel=2)
    return fit


def _options(spec, sampler, chains, target_accept, centered, cores, init, adaptation) -> dict:
    """The NUTS settings: arguments over ``[sampling]``, checked."""
    s = spec.sampling
    target_accept = s.target_accept if target_accept is None else target_accept
    if target_accept is not None and (
        isinstance(target_accept, bool) or not isinstance(target_accept, (int, float)) or not 0.0 < target_accept < 1.0
    ):
        raise ArgumentError(f"target_accept must be in (0, 1), got {target_accept!r}")
    init = s.init if init is None else init
    adaptation = s.adaptation if adaptation is None else adaptation
    check_init(init)
    _check_adaptation(adaptation, sampler)
    return {
        "target_accept": target_accept,
        "centered": s.centered if centered is None else centered,
        "cores": _positive("cores", cores) if cores is not None else max(1, min(chains, os.cpu_count() or 1)),
        "init": init,
        "adaptation": adaptation,
    }


def _run_chains(spec, dataset, sampler, compile_backend, centered, estimated, init_info, adaptation, run, start):
    """Build (or take the compiled model from the cache), start and run the chains.

    Returns ``built, compiled model (nutpie) or None, raw draws, seconds to build,
    seconds to sample``."""
    if sampler == "nutpie":
        backend = _backend(compile_backend, dataset, run["draws"], run["tune"], run["chains"])
        cm = compile_model(spec, dataset, centered=centered, backend=backend)
        x0, _ = start_point(cm.built, estimated, init_info)
        seconds_build = time.perf_counter() - start
        t0 = time.perf_counter()
        raw = _run_nutpie(cm, spec, x0=x0, adaptation=adaptation, **run)
        return cm.built, cm, raw, seconds_build, time.perf_counter() - t0
    built = build(spec, dataset, centered=centered)
    _, values = start_point(built, estimated, init_info)
    seconds_build = time.perf_counter() - start
    t0 = time.perf_counter()
    raw = _run_pymc(built, sampler, initvals=values, **run)
    return built, None, raw, seconds_build, time.perf_counter() - t0


def _details(built, cm, sampler, centered, target_accept, adaptation, init_info) -> dict:
    """The fit's ``details``: guard, parameterisation, compilation and NUTS settings, start."""
    nutpie = sampler == "nutpie"
    return {
        "flip_flop_guard": bool(built.guard),
        "centered": list(centered) if isinstance(centered, tuple) else bool(centered),
        "compile_backend": cm.backend if nutpie else None,
        "compilation": {"backend": cm.backend, "seconds": cm.seconds, "fresh": bool(cm.fresh)} if nutpie else None,
        "target_accept": target_accept,
        "adaptation": adaptation if nutpie else None,
        "init": init_info,
    }


def _posterior_tree(raw, built, sampler: str, seed) -> xr.DataTree:
    """The fit's DataTree from the sampler's raw draws and statistics."""
    tree = xr.DataTree.from_dict(
        {
            "/posterior": xr.DataTree(raw["posterior"].to_dataset()),
            "/sample_stats": xr.DataTree(_numeric(raw["sample_stats"].to_dataset())),
        }
    )
    for group in ("posterior", "sample_stats"):
        tree[group].attrs.update(raw[group].attrs)
    if sampler in _JAX_SAMPLERS:
        from .jax_nuts import normalise_stats

        tree["sample_stats"] = xr.DataTree(normalise_stats(tree["sample_stats"].to_dataset(), sampler))
    return finish_tree(tree, built, seed=None if seed is None else seed + 1)


def _verdict(spec, tree, init_info, centered):
    """The convergence verdict on the population parameters (and etas), flip-flop check included."""
    posterior = tree["posterior"].to_dataset()
    checked = canonical_draws(spec, posterior)
    if "eta" in posterior:
        checked["eta"] = posterior["eta"]
    flip = flip_flop_check(spec, posterior)
    return assess(
        checked,
        tree["sample_stats"].to_dataset(),
        extra_messages=[flip] if flip else [],
        max_treedepth=10,
        init=init_info.get("method"),
        centered=centered,
    )
