"""Compile a PyMC model for nutpie: three routes.

* ``"native"`` (:mod:`bayes_nlme.fit.native`, the default for real fits): one PyTensor
  function gives the log density, its gradient and every traced variable; a generated
  C callback calls it, with the data passed by address. The callback's machine code is
  stored in PyTensor's Numba cache, keyed on the model graph, with the model's metadata
  beside it: a later fit of the same graph, in any process, loads it in about a second
  (no graph rewriting, no LLVM), and the chains run in parallel without the GIL.
* ``"cfunc"``: ``nutpie.compile_pymc_model(backend="numba")``. Its ``numba.cfunc``
  embeds run-time addresses, so Numba cannot cache it and every fit pays for type
  inference and LLVM code generation again (20-30 s for Theophylline, quiet 2 cores).
* ``"pyfunc"``: the same PyTensor functions as ``cfunc``, compiled with PyTensor's Numba
  linker (cached on disk under ``pytensor.config.base_compiledir``) and handed to nutpie
  as Python callables (``nutpie.compiled_pyfunc.from_pyfunc``). The graph is rewritten
  in every process (~10 s), each gradient costs a Python call, and chains share the GIL.
  Its first compilation is the cheapest, so :func:`bayes_nlme.fit.sample` uses it for
  short fits (``compile_backend="auto"``).

Fast-math is off in every route, and every route starts its chains from the same
jittered support point (:func:`jittered_initial_points`), so a fixed seed gives the
same draws from a fresh or a cached compilation, and from any route.

The shared variables of the model (prior hyperparameters, the observations) stay
inputs of the compiled functions: ``compiled.with_data(name=value)`` gives a model
with new values and no recompilation.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["CompiledFit", "compile_nutpie", "BACKENDS"]

#: Compilation routes: ``"native"`` (C callbacks cached on disk per model graph,
#: :mod:`bayes_nlme.fit.native`), ``"pyfunc"`` (cached PyTensor-Numba functions called
#: from Python) or ``"cfunc"`` (``nutpie.compile_pymc_model``, recompiled every time).
BACKENDS = ("native", "pyfunc", "cfunc")


@dataclass(frozen=True, eq=False)
class CompiledFit:
    """A model compiled for nutpie.

    Attributes
    ----------
    compiled : nutpie CompiledModel
        Pass to ``nutpie.sample``; ``compiled.with_data(**values)`` swaps data.
    backend : str
        ``"native"``, ``"pyfunc"`` or ``"cfunc"``.
    seconds : float
        Compilation time (the first evaluation included, which triggers Numba).
    fresh : bool
        True when machine code was generated (a compilation), False when it was loaded
        from the on-disk cache.
    """

    compiled: object
    backend: str
    seconds: float
    fresh: bool = True


def _nogil_mode():
    """PyTensor's Numba mode whose compiled functions release the GIL while they run.

    nutpie calls the log density from one thread per chain; releasing the GIL during
    the Numba computation lets chains run in parallel.
    """
    from pytensor.compile.mode import Mode, get_mode
    from pytensor.link.numba.linker import NumbaLinker

    class NogilNumbaLinker(NumbaLinker):
        def jit_compile(self, fn_and_cache):
            from pytensor.link.numba.dispatch.basic import numba_njit

            fn, cache_key = fn_and_cache
            return numba_njit(fn.py_func, final_function=True, cache=cache_key is not None, nogil=True)

    return Mode(linker=NogilNumbaLinker(), optimizer=get_mode("NUMBA").provided_optimizer)


def jittered_initial_points(x0: np.ndarray):
    """nutpie's initial-point function: ``x0`` plus ``Uniform(-1, 1)`` jitter, seeded.

    The same in every compilation route, so that a seed gives the same chains whichever
    route compiled the model (PyMC's own jitter depends on how its function was built).

    Parameters
    ----------
    x0 : numpy.ndarray
        The support point on the unconstrained scale (flat, in nutpie's order).

    Returns
    -------
    callable
        ``f(seed) -> numpy.ndarray``.
    """
    x0 = np.array(x0, dtype=np.float64, copy=True)

    def initial_point(seed=None):
        rng = np.random.default_rng(seed)
        return np.ascontiguousarray(x0 + rng.uniform(-1.0, 1.0, size=x0.shape))

    return initial_point


def _locked(func):
    """``func`` behind a lock: PyMC's initial-point function is not thread-safe, and
    nutpie initialises its chains from several threads."""
    import functools
    import threading

    lock = threading.Lock()

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with lock:
            return func(*args, **kwargs)

    return wrapper


def _pyfunc(model):
    import pytensor

    # Without fast-math flags the compiled code gives bit-identical results whether it
    # was just compiled or loaded from the cache, so a fixed seed reproduces a fit.
    # With them (PyTensor's default) LLVM may reassociate differently in the two
    # cases, and the chains of a fresh and a cached compilation drift apart.
    with pytensor.config.change_flags(numba__fastmath=False):
        return _pyfunc_inner(model)


def _pyfunc_inner(model):
    from nutpie.compile_pymc import _make_functions, _prepare_dims_and_coords
    from nutpie.compiled_pyfunc import from_pyfunc
    from pymc.initial_point import make_initial_point_fn

    with warnings.catch_warnings():
        # Shapes and the initial point are computed with PyTensor's C backend; its BLAS
        # notice does not concern the Numba functions used for sampling.
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)
        initial = _locked(
            make_initial_point_fn(
                model=model, jitter_rvs=set(), return_transformed=True, default_strategy="support_point"
            )
        )
        n_dim, _, logp_pt, expand_pt, initial_point_fn, shape_info, reparameterized = _make_functions(
            model,
            mode=_nogil_mode(),
            compute_grad=True,
            join_expanded=False,
            pymc_initial_point_fn=initial,
        )
    logp_jit = logp_pt.vm.jit_fn
    expand_jit = expand_pt.vm.jit_fn
    logp_names = [v.name for v in logp_pt.get_shared()]
    expand_names = [v.name for v in expand_pt.get_shared()]
    shared = {}
    for var in [*logp_pt.get_shared(), *expand_pt.get_shared()]:
        shared[var.name] = np.asarray(var.get_value())
    names, _, shapes = shape_info

    def make_logp_fn():
        def logp(x, **data):
            value, grad = logp_jit(x, *[data[n] for n in logp_names])
            return float(value), np.ascontiguousarray(grad, dtype=np.float64)

        return logp

    def make_expand_fn(seed1, seed2, chain):
        def expand(x, **data):
            values = expand_jit(x, *[data[n] for n in expand_names])
            return {
                name: np.asarray(val, dtype=np.float64, order="C").reshape(shape)
                for name, val, shape in zip(names, values, shapes, strict=True)
            }

        return expand

    # Trigger (or load from cache) the Numba compilation now, so it counts as build time.
    x0 = initial_point_fn(0)
    initial_point_fn = jittered_initial_points(x0)
    make_logp_fn()(x0, **shared)
    make_expand_fn(0, 0, 0)(x0, **shared)
    fresh = any(sum(fn.stats.cache_misses.values()) > 0 for fn in (logp_jit, expand_jit))
    dims, coords = _prepare_dims_and_coords(model, shape_info, reparameterized)
    return from_pyfunc(
        ndim=n_dim,
        make_logp_fn=make_logp_fn,
        make_expand_fn=make_expand_fn,
        make_initial_point_fn=initial_point_fn,
        expanded_dtypes=[np.dtype("float64")] * len(names),
        expanded_shapes=[tuple(s) for s in shapes],
        expanded_names=list(names),
        shared_data=shared,
        dims=dims,
        coords=coords,
        reparameterized_names=reparameterized,
    ), fresh


def compile_nutpie(model, *, backend: str = "pyfunc", key: str | None = None, recipe=None) -> CompiledFit:
    """Compile a PyMC model for ``nutpie.sample``.

    Parameters
    ----------
    model : pymc.Model
    backend : {"native", "pyfunc", "cfunc"}
        See the module docstring. ``"native"`` falls back to ``"cfunc"`` for a model
        whose data are not all named float arrays.
    key : str, optional
        The graph key (:func:`bayes_nlme.fit.native.graph_key`); needed by ``"native"``.
    recipe : tuple, optional
        ``(spec, dataset, centered)`` of the model, for ``"native"``'s helper process
        (see :func:`bayes_nlme.fit.native.compile_native`).

    Returns
    -------
    CompiledFit
    """
    import time

    import nutpie

    start = time.perf_counter()
    fresh = True
    if backend == "native":
        from .native import compile_native, graph_key

        made = compile_native(model, key or graph_key(id(model)), recipe=recipe)
        if made is not None:
            compiled, fresh = made
            return CompiledFit(compiled=compiled, backend=backend, seconds=time.perf_counter() - start, fresh=fresh)
        backend = "cfunc"
    if backend == "pyfunc":
        compiled, fresh = _pyfunc(model)
    elif backend == "cfunc":
        import pytensor

        with pytensor.config.change_flags(numba__fastmath=False), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)
            compiled = nutpie.compile_pymc_model(model, backend="numba", jitter_rvs=set())
        compiled = dataclasses.replace(
            compiled, initial_point_func=jittered_initial_points(compiled.initial_point_func(0))
        )
    else:
        from ..errors import ArgumentError

        raise ArgumentError(f"unknown compile backend {backend!r} (valid: {', '.join(BACKENDS)})")
    return CompiledFit(compiled=compiled, backend=backend, seconds=time.perf_counter() - start, fresh=fresh)
