"""Compile a PyMC model for nutpie, re-using PyTensor's on-disk Numba cache.

``nutpie.compile_pymc_model(backend="numba")`` wraps the log-density in a
``numba.cfunc`` that cannot be cached (it embeds run-time addresses), so every fit
recompiles the whole graph in LLVM: measured on the Theophylline model, 20-30 s on a
quiet 2-core machine (60-90 s under load) even when PyTensor's own cache is warm. The
``"pyfunc"`` route compiles the same PyTensor functions (log density with gradient,
and the "expand" function giving every traced variable) with PyTensor's Numba
linker, whose compiled code PyTensor caches on disk (under
``pytensor.config.base_compiledir``), and handed to nutpie as Python callables
(``nutpie.compiled_pyfunc.from_pyfunc``, the route nutpie itself uses for JAX). A
repeated fit of the same model structure then compiles in seconds. The price is a
Python call per gradient evaluation (tens of microseconds) and chains that share the
GIL (in practice they run one at a time).

Measured on the bundled Theophylline fit (4 x (1000 + 1000), 2 cores, warm caches):
``pyfunc`` compiles in ~11 s and samples in ~32 s; ``cfunc`` compiles in ~23 s and
samples in ~7 s. :func:`bayes_nlme.fit.sample` chooses by the amount of work
(``compile_backend="auto"``).

Fast-math is off in both routes (see :func:`_pyfunc`), so a fixed seed gives the same
draws from a fresh or a cached compilation, and from either route.

The shared variables of the model (prior hyperparameters, the observations) stay
inputs of the compiled functions: ``compiled.with_data(name=value)`` gives a model
with new values and no recompilation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["CompiledFit", "compile_nutpie", "BACKENDS"]

#: Compilation routes: ``"pyfunc"`` (cached PyTensor-Numba functions) or ``"cfunc"``
#: (``nutpie.compile_pymc_model``, recompiled in LLVM every time, faster sampling).
BACKENDS = ("pyfunc", "cfunc")


@dataclass(frozen=True, eq=False)
class CompiledFit:
    """A model compiled for nutpie.

    Attributes
    ----------
    compiled : nutpie CompiledModel
        Pass to ``nutpie.sample``; ``compiled.with_data(**values)`` swaps data.
    backend : str
        ``"pyfunc"`` or ``"cfunc"``.
    seconds : float
        Compilation time (the first evaluation included, which triggers Numba).
    """

    compiled: object
    backend: str
    seconds: float


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

    initial = _locked(
        make_initial_point_fn(
            model=model, jitter_rvs=set(model.free_RVs), return_transformed=True, default_strategy="support_point"
        )
    )
    with warnings.catch_warnings():
        # Shapes are computed with PyTensor's C backend; its BLAS notice does not concern
        # the Numba functions used for sampling.
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)
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
    make_logp_fn()(x0, **shared)
    make_expand_fn(0, 0, 0)(x0, **shared)
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
    )


def compile_nutpie(model, *, backend: str = "pyfunc") -> CompiledFit:
    """Compile a PyMC model for ``nutpie.sample``.

    Parameters
    ----------
    model : pymc.Model
    backend : {"pyfunc", "cfunc"}
        See the module docstring.

    Returns
    -------
    CompiledFit
    """
    import time

    import nutpie

    start = time.perf_counter()
    if backend == "pyfunc":
        compiled = _pyfunc(model)
    elif backend == "cfunc":
        import pytensor

        with pytensor.config.change_flags(numba__fastmath=False), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)
            compiled = nutpie.compile_pymc_model(model, backend="numba")
    else:
        from ..errors import ArgumentError

        raise ArgumentError(f"unknown compile backend {backend!r} (valid: {', '.join(BACKENDS)})")
    return CompiledFit(compiled=compiled, backend=backend, seconds=time.perf_counter() - start)
