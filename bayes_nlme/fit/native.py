"""The ``"native"`` compilation route: nutpie C callbacks cached on disk.

``nutpie.compile_pymc_model(backend="numba")`` wraps PyTensor's Numba functions in a
``numba.cfunc`` that captures the model's data as constants, so Numba cannot cache it
and every fit pays for type inference and LLVM code generation of the whole log
density again (20-30 s for the Theophylline model on a quiet 2-core machine).

This route writes the two C callbacks nutpie needs (log density with gradient, and the
"expand" function that gives every traced variable) as generated source whose data
arrive through ``user_data`` (an array of addresses), so nothing run-time is baked into
the code. The callbacks are compiled once per *model graph* and stored in PyTensor's
Numba cache (under ``pytensor.config.base_compiledir``), keyed on a digest of the
graph (see :func:`graph_key`). The model's metadata (dimensions, names, shapes,
coordinates, initial point) is stored beside them. A later fit of a model with the
same key, in any process, loads the machine code and the metadata and skips PyTensor's
graph rewriting and Numba's compilation altogether.

The two callbacks are compiled from two PyTensor functions (``x -> (logp, grad)`` and
``x -> traced values``); on a fresh compilation a helper process
(:mod:`bayes_nlme.fit.native_worker`) compiles the second while this process compiles
the first, since Numba compiles on one core (Theophylline, 2 cores: ~32 s instead of
~40 s for one combined function, ~50 s for the two in sequence).

The draws are the same whether the callbacks were compiled or loaded: fast-math is off
and the initial points come from the stored support point plus a seeded jitter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import pickle
import warnings
from pathlib import Path

import numba
import numpy as np

from .native_key import cache_directory, graph_key

__all__ = ["compile_native", "graph_key", "cache_directory"]

# --------------------------------------------------------------------------- sources

_LOGP_SRC = """
def bayes_nlme_logp(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_dim},))
        logp = numba.carray(logp_, ())
        addr = numba.carray(user_data_, ({n_addr},), np.uint64)
{unpack}
        value, grad = inner(x{args})
        logp[()] = value
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(value):
            return 4
    except Exception:
        return 1
    return 0
"""

_EXPAND_SRC = """
def bayes_nlme_expand(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim} or expanded != {n_expanded}:
        return -1
    try:
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_expanded},))
        addr = numba.carray(user_data_, ({n_addr},), np.uint64)
{unpack}
        out[...] = inner(x{args})[0]
    except Exception:
        return 1
    return 0
"""


def _unpack(names: list[str], layout: dict) -> tuple[str, str]:
    lines, args = [], []
    for i, name in enumerate(names):
        index, shape = layout[name]
        size = int(np.prod(shape, dtype=int))
        lines.append(
            f"        s{i} = numba.carray(as_pointer(addr[{index}]), ({size},), np.float64).reshape({tuple(shape)!r})"
        )
        args.append(f", s{i}")
    return "\n".join(lines) if lines else "        pass", "".join(args)


#: The generated C callbacks: kind -> (source, name of the generated function, argument
#: types after ``dim``: the log density takes ``x, grad, logp, user_data``, the expand
#: function ``n_expanded, x, out, user_data``). ``user_data`` holds the addresses of the
#: model data (every float64 ``pm.Data`` container, sorted by name).
_KINDS = {
    "logp": (_LOGP_SRC, "bayes_nlme_logp", ("double*", "double*", "double*")),
    "expand": (_EXPAND_SRC, "bayes_nlme_expand", ("uint64", "double*", "double*")),
}


def _signature(kind: str):
    from numba import types

    names = {"double*": types.CPointer(types.double), "uint64": types.uint64}
    middle = tuple(names[t] for t in _KINDS[kind][2])
    return (types.uint64, *middle, types.voidptr), types.int64


def _callback(kind: str, meta: dict, key: str, inner):
    """The C callback ``kind`` ("logp" or "expand"), not compiled yet (see :func:`_load`)."""
    from numba.core.ccallback import CFunc
    from nutpie.compile_pymc import address_as_void_pointer
    from pytensor.link.numba.cache import compile_numba_function_src

    source, name, _ = _KINDS[kind]
    unpack, args = _unpack(meta[f"{kind}_data"], meta["layout"])
    src = source.format(
        n_dim=meta["n_dim"],
        n_expanded=meta["n_expanded"],
        n_addr=len(meta["layout"]),
        unpack=unpack,
        args=args,
    )
    fn = compile_numba_function_src(
        src,
        name,
        global_env={
            "__name__": __name__,
            "numba": numba,
            "np": np,
            "as_pointer": address_as_void_pointer,
            "inner": inner,
        },
        cache_key=f"{name}_{key}",
    )
    cfunc = CFunc(fn, _signature(kind), locals={}, options={})
    cfunc.enable_caching()
    return cfunc


#: LLVM optimisation level of the native compilation. Measured on Theophylline (quiet
#: 2 cores): level 2 compiles in 55 s against 65 s at Numba's default 3, and the
#: log density with gradient runs as fast (34 vs 33 microseconds per evaluation);
#: level 1 is no faster to compile, level 0 is 15x slower to run.
_OPT_LEVEL = 2


@contextlib.contextmanager
def _optimisation_level(level: int):
    """Numba's LLVM optimisation level for the compilations inside the block."""
    from numba.core import config, registry

    codegen = registry.cpu_target.target_context.codegen()
    old, old_codegen = config.OPT, getattr(codegen, "_opt_level", None)
    config.OPT = type(old)(level)
    if old_codegen is not None:
        codegen._opt_level = min(old_codegen, level)
    try:
        yield
    finally:
        config.OPT = old
        if old_codegen is not None:
            codegen._opt_level = old_codegen


def _load(cfunc) -> bool:
    """Install the cached machine code of ``cfunc``; False when it is not in the cache."""
    from numba.core import registry

    cres = cfunc._cache.load_overload(cfunc._sig, registry.cpu_target.target_context)
    if cres is None:
        return False
    cfunc._library = cres.library
    cfunc._wrapper_name = cres.fndesc.llvm_cfunc_wrapper_name
    cfunc._wrapper_address = cres.library.get_pointer_to_function(cfunc._wrapper_name)
    cfunc._cache_hits += 1
    return True


# --------------------------------------------------------------------------- model


@functools.cache
def _model_class():
    from nutpie.compile_pymc import CompiledPyMCModel

    @dataclasses.dataclass(frozen=True)
    class NativeCompiledModel(CompiledPyMCModel):
        """nutpie's compiled PyMC model, with data passed as an array of addresses."""

        data_names: tuple = ()

        def with_data(self, **updates):
            shared = dict(self.shared_data)
            for name, value in updates.items():
                if name not in shared:
                    continue  # data the compiled graph does not use (pruned by PyTensor)
                old = shared[name]
                new = np.array(value, dtype=np.float64, order="C", copy=True)
                if new.shape != old.shape:
                    raise ValueError(f"Shared variable {name} must have shape {old.shape}, got {new.shape}")
                new.flags.writeable = False
                shared[name] = new
            user_data = _addresses(self.data_names, shared)
            return dataclasses.replace(self, shared_data=shared, user_data=user_data)

    return NativeCompiledModel


def _addresses(names, shared: dict) -> np.ndarray:
    out = np.zeros(len(names), dtype=np.uint64)
    for i, name in enumerate(names):
        out[i] = shared[name].ctypes.data
    return out


def _shapes(model) -> dict | None:
    """Shapes of the traced variables from their dims and static types (no compilation);
    None when one is not known statically (then nutpie's ``_compute_shapes`` is used)."""
    dims = model.named_vars_to_dims
    lengths = {name: len(values) for name, values in model.coords.items() if values is not None}
    rvs = {value.name: rv for value, rv in model.values_to_rvs.items()}
    out = {}
    for var in model.value_vars + model.free_RVs + model.deterministics:
        if var in model.observed_RVs or var in model.potentials:
            continue
        source = rvs.get(var.name, var)
        if source is not var and model.rvs_to_transforms.get(source) is not None:
            source = var  # a transform may change the shape: only the value's own type counts
        shape = list(source.type.shape)
        names = dims.get(source.name) or ()
        for i, dim in enumerate(names):
            if i < len(shape) and shape[i] is None and dim in lengths:
                shape[i] = lengths[dim]
        if len(var.type.shape) != len(shape):
            return None
        if any(d is None for d in shape):
            return None
        out[var.name] = tuple(int(d) for d in shape)
    return out


def _point(model):
    """The flat unconstrained point and the traced variables' layout (no compilation).

    Returns ``(joined, free, n_dim, n_expanded, (names, slices, shapes), reparameterized,
    remaining)``: ``joined`` the flat point variable, ``free`` the free value variables
    as slices of it, ``remaining`` the deterministics traced after the free values.
    """
    from math import prod

    import pytensor.tensor as pt
    from nutpie.compile_pymc import _compute_shapes

    shapes = _shapes(model) or _compute_shapes(model)
    names, slices, shape_list = [], [], []
    count = 0
    for var in model.free_RVs:
        value = model.rvs_to_values[var]
        shape = tuple(int(d) for d in shapes[value.name])
        names.append(value.name)
        shape_list.append(shape)
        slices.append(slice(count, count + prod(shape)))
        count += prod(shape)
    n_dim = count
    remaining = [var for var in model.unobserved_value_vars if var.name not in names]
    for var in remaining:
        shape = tuple(int(d) for d in shapes[var.name])
        names.append(var.name)
        shape_list.append(shape)
        slices.append(slice(count, count + prod(shape)))
        count += prod(shape)
    joined = pt.TensorType("float64", shape=(n_dim,))(name="_unconstrained_point")
    free = [joined[sl] for sl in slices[: len(model.free_RVs)]]
    reparameterized = [
        model.rvs_to_values[var].name for var in model.free_RVs if model.rvs_to_transforms.get(var) is not None
    ]
    return joined, free, n_dim, count, (names, slices, shape_list), reparameterized, remaining


def _function(model, kind: str):
    """The PyTensor function of a callback: ``x -> (logp, grad)`` or ``x -> traced values``.

    Adapted from ``nutpie.compile_pymc._make_functions``. The traced values are the free
    values, then the deterministics, flat.
    """
    import pytensor.tensor as pt
    from pymc.pytensorf import compile as compile_pymc
    from pytensor.graph import clone_replace, rewrite_graph

    from .compile import _nogil_mode

    joined, free, _, _, (_, _, shapes), _, remaining = _point(model)
    replacements = {
        model.rvs_to_values[var]: value.reshape(shape).astype(var.dtype)
        for var, shape, value in zip(model.free_RVs, shapes, free, strict=False)
    }
    if kind == "logp":
        value_vars = [model.rvs_to_values[var] for var in model.free_RVs]
        logp = model.logp()
        rewrites = ["canonicalize", "stabilize"]
        if not model.check_bounds:
            rewrites.append("local_remove_check_parameter")
        logp = rewrite_graph(logp, include=rewrites)
        grads = pt.grad(logp, value_vars)
        grad = pt.concatenate([pt.as_tensor(g, allow_xtensor_conversion=True).ravel() for g in grads])
        outputs = clone_replace([logp, grad], replacements)
    else:
        traced = clone_replace(remaining, replacements)
        outputs = [
            pt.concatenate(
                [*[v.ravel() for v in free], *[pt.as_tensor(v, allow_xtensor_conversion=True).ravel() for v in traced]]
            )
        ]
    with model, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)
        fn = compile_pymc((joined,), outputs, mode=_nogil_mode())
    return fn


def _layout(model) -> dict:
    """Slots of the model data in ``user_data``: every float64 data container, by name
    (a callback that reads other data cannot take this route, see :func:`_used_data`)."""
    values = _model_data(model)
    names = sorted(name for name, value in values.items() if value.dtype == np.float64)
    return {name: (i, tuple(np.shape(values[name]))) for i, name in enumerate(names)}


def _used_data(fn, layout) -> list[str] | None:
    """The data a compiled function reads, in its argument order (names in ``layout``);
    None if it reads other data or two variables share a name."""
    used = [var.name for var in fn.get_shared()]
    if any(name is None or name not in layout for name in used) or len(set(used)) != len(used):
        return None
    return used


def _metadata(model, *, for_nutpie: bool = True) -> dict:
    """What the callbacks (and, ``for_nutpie``, the sampler: names, coordinates and the
    initial point) need, without compiling anything."""
    import pytensor
    from nutpie.compile_pymc import _prepare_dims_and_coords
    from pymc.initial_point import make_initial_point_fn

    _, _, n_dim, n_expanded, shape_info, reparameterized, _ = _point(model)
    meta = {"n_dim": int(n_dim), "n_expanded": int(n_expanded), "layout": _layout(model)}
    if not for_nutpie:
        return meta
    with pytensor.config.change_flags(mode="FAST_COMPILE"), warnings.catch_warnings():  # evaluated once
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)
        point = make_initial_point_fn(
            model=model, jitter_rvs=set(), return_transformed=True, default_strategy="support_point"
        )(0)
    x0 = np.concatenate(
        [np.asarray(point[name], dtype=np.float64).ravel() for name in shape_info[0][: len(model.free_RVs)]]
    )
    dims, coords = _prepare_dims_and_coords(model, shape_info, reparameterized)
    meta.update(shape_info=shape_info, reparameterized=list(reparameterized), dims=dims, coords=coords, x0=x0)
    return meta


def _loaded_only(*args, **kwargs):  # pragma: no cover - never compiled: only used on a cache hit
    """The model function of a callback that is loaded from the cache, never compiled."""
    raise RuntimeError("bayes_nlme native cache: the model function of a cached callback was called directly")


def _model_data(model) -> dict:
    return {
        var.name: np.asarray(var.get_value())
        for var in model.data_vars
        if getattr(var, "name", None) is not None and hasattr(var, "get_value")
    }


def compile_callback(model, kind: str, key: str, meta: dict):
    """Compile the callback ``kind`` of a model into the cache; the names of the data it
    reads, or None when the model cannot take this route.

    Parameters
    ----------
    model : pymc.Model
    kind : {"logp", "expand"}
    key : str
        :func:`graph_key` of the model's graph.
    meta : dict
        From :func:`_metadata`; ``meta[kind + "_data"]`` is set.

    Returns
    -------
    numba CFunc or None
    """
    import pytensor

    with pytensor.config.change_flags(numba__fastmath=False), _optimisation_level(_OPT_LEVEL):
        fn = _function(model, kind)
        used = _used_data(fn, meta["layout"])
        if used is None:
            return None
        meta[f"{kind}_data"] = used
        callback = _callback(kind, meta, key, fn.vm.jit_fn)
        callback.compile()
    return callback


def _cached(kind: str, meta: dict, key: str):
    """The callback ``kind`` loaded from the cache, or None."""
    import pytensor

    if f"{kind}_data" not in meta:
        return None
    with pytensor.config.change_flags(numba__fastmath=False):
        callback = _callback(kind, meta, key, _loaded_only)
        return callback if _load(callback) else None


def _read(path: Path):
    try:
        return pickle.loads(path.read_bytes())
    except Exception:  # noqa: BLE001 - a missing or corrupt entry is rebuilt
        return None


def _write(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(pickle.dumps(value))
    os.replace(tmp, path)


def compile_native(model, key: str, recipe=None):
    """Compile a PyMC model for nutpie through cached C callbacks.

    On a fresh compilation with a ``recipe``, the expand callback is compiled by a
    helper process (:mod:`bayes_nlme.fit.native_worker`) while this process compiles the
    log density: Numba compiles on one core, so the two halves take the time of the
    longer. Without a recipe, or when the helper fails, both compile here.

    Parameters
    ----------
    model : pymc.Model
    key : str
        :func:`graph_key` of the model's graph.
    recipe : tuple, optional
        ``(spec, dataset, centered)`` that rebuild ``model`` with
        :func:`bayes_nlme.build.build` (picklable), for the helper process.

    Returns
    -------
    tuple (nutpie CompiledModel, bool) or None
        The compiled model and whether it was freshly compiled (False: loaded from the
        cache); None when the model cannot take this route (e.g. non-float data).
    """
    directory = cache_directory()
    meta_path = directory / f"{key}.pkl"
    meta = _read(meta_path) if meta_path.exists() else None
    logp = expand = None
    if meta is not None:
        logp, expand = _cached("logp", meta, key), _cached("expand", meta, key)
    fresh = logp is None or expand is None
    if fresh:
        callbacks = _compile_callbacks(model, key, recipe, directory, meta, logp, expand)
        if callbacks is None:
            return None
        meta, logp, expand = callbacks
        _write(meta_path, meta)
    return _nutpie_model(model, meta, logp, expand), fresh


def _compile_callbacks(model, key: str, recipe, directory, meta, logp, expand):
    """Compile the callbacks that the cache did not supply (``logp`` and/or ``expand`` None),
    the expand callback by the helper process when both are missing and there is a recipe.

    Returns ``(meta, logp, expand)``, or None when the model cannot take this route.
    """
    meta = meta if logp is not None else _metadata(model)
    helper = None
    if logp is None and expand is None and recipe is not None:
        from .native_worker import start_helper

        helper = start_helper(recipe, key, directory)
    if logp is None:
        try:
            logp = compile_callback(model, "logp", key, meta)
        except BaseException:  # an error or an interrupt: do not leave the helper running
            if helper is not None:
                helper.cancel()
            raise
        if logp is None:
            if helper is not None:
                helper.cancel()
            return None
    if expand is None and helper is not None:
        expand_meta = helper.result()
        if expand_meta is not None and expand_meta["n_expanded"] == meta["n_expanded"]:
            meta["expand_data"] = expand_meta["expand_data"]
            expand = _cached("expand", meta, key)
    if expand is None:
        expand = compile_callback(model, "expand", key, meta)
        if expand is None:
            return None
    return meta, logp, expand


def _nutpie_model(model, meta, logp, expand):
    """nutpie's compiled model over the two callbacks, with the model's data as read-only arrays."""
    from .compile import jittered_initial_points

    values = _model_data(model)
    names = sorted(meta["layout"], key=lambda n: meta["layout"][n][0])
    shared = {}
    for name in names:
        arr = np.array(values[name], dtype=np.float64, order="C", copy=True)
        arr.flags.writeable = False
        shared[name] = arr
    point_names, slices, shapes = meta["shape_info"]
    compiled = _model_class()(
        _n_dim=meta["n_dim"],
        dims=meta["dims"],
        _coords=meta["coords"],
        _shapes={n: tuple(s) for n, s in zip(point_names, shapes, strict=True)},
        compiled_logp_func=logp,
        compiled_expand_func=expand,
        initial_point_func=jittered_initial_points(meta["x0"]),
        shared_data=shared,
        shared_var_keys={},
        user_data=_addresses(names, shared),
        n_expanded=meta["n_expanded"],
        shape_info=(point_names, slices, shapes),
        logp_func=None,
        expand_func=None,
        reparameterized_names=meta["reparameterized"],
        data_names=tuple(names),
    )
    return compiled
