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

The draws are the same whether the callbacks were compiled or loaded: fast-math is off
and the initial points come from the stored support point plus a seeded jitter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import pickle
import warnings
from pathlib import Path

import numba
import numpy as np

__all__ = ["compile_native", "graph_key", "cache_directory"]

#: Bumped when the generated callbacks or the metadata layout change.
_FORMAT = 2


def cache_directory() -> Path:
    """Where the native route keeps its metadata.

    ``BAYES_NLME_CACHE_DIR`` if set, else ``<pytensor base_compiledir>/bayes_nlme``
    (the machine code itself lives in PyTensor's Numba cache, ``.../numba``).

    Returns
    -------
    pathlib.Path
    """
    env = os.environ.get("BAYES_NLME_CACHE_DIR")
    if env:
        return Path(env)
    import pytensor

    return Path(pytensor.config.base_compiledir) / "bayes_nlme"


_SOURCE_DIGEST: str | None = None
#: Modules whose code shapes the compiled graph or the callbacks.
_GRAPH_SOURCES = ("build", "pk", "spec", "data", "individual.py", "fit/native.py", "fit/compile.py")


def _source_digest() -> str:
    """Digest of the sources that shape the graph: a change there invalidates the cache."""
    global _SOURCE_DIGEST
    if _SOURCE_DIGEST is None:
        root = Path(__file__).resolve().parent.parent
        h = hashlib.sha256()
        paths = [p for part in _GRAPH_SOURCES for p in (sorted((root / part).rglob("*.py")) if (root / part).is_dir()
                                                         else [root / part])]
        for path in paths:
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
        _SOURCE_DIGEST = h.hexdigest()
    return _SOURCE_DIGEST


def graph_key(*parts) -> str:
    """Cache key of a model graph.

    Parameters
    ----------
    *parts
        What fixes the graph besides the library versions (the model structure and the
        dataset digest); they are hashed through their ``repr``.

    Returns
    -------
    str
        A hex digest covering ``parts``, the bayes_nlme source, and the versions of
        PyTensor, PyMC, Numba, nutpie and NumPy.
    """
    import numba
    import nutpie
    import pymc
    import pytensor

    versions = (pytensor.__version__, pymc.__version__, numba.__version__, nutpie.__version__, np.__version__)
    text = repr((_FORMAT, versions, _source_digest(), parts))
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- sources

_LOGP_SRC = '''
def bayes_nlme_logp(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_dim},))
        logp = numba.carray(logp_, ())
        addr = numba.carray(user_data_, ({n_addr},), np.uint64)
{unpack}
        value, grad, expanded = inner(x{args})
        logp[()] = value
        out[...] = grad
        if addr[0] != 0:
            traced = numba.carray(as_pointer(addr[0]), ({n_expanded},), np.float64)
            traced[...] = expanded
            return 0
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(value):
            return 4
    except Exception:
        return 1
    return 0
'''


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


def _callback(meta: dict, key: str, inner):
    """The log-density C callback (not compiled yet; see :func:`_load`)."""
    import numba
    from numba import types
    from numba.core.ccallback import CFunc
    from nutpie.compile_pymc import address_as_void_pointer
    from pytensor.link.numba.cache import compile_numba_function_src

    names = meta["data_names"]
    unpack, args = _unpack(names, meta["layout"])
    src = _LOGP_SRC.format(
        n_dim=meta["n_dim"], n_expanded=meta["n_expanded"], n_addr=len(names) + _FIRST_DATA, unpack=unpack, args=args
    )
    fn = compile_numba_function_src(
        src,
        "bayes_nlme_logp",
        global_env={"__name__": __name__, "numba": numba, "np": np, "as_pointer": address_as_void_pointer,
                    "inner": inner},
        cache_key=f"bayes_nlme_logp_{key}",
    )
    double = types.CPointer(types.double)
    sig = ((types.uint64, double, double, double, types.voidptr), types.int64)
    cfunc = CFunc(fn, sig, locals={}, options={})
    cfunc.enable_caching()
    return cfunc


#: Address slots of ``user_data`` before the data: the traced-values buffer (0: do not
#: write them), the log-density callback, and the number of slots.
_OUT, _LOGP, _LENGTH, _FIRST_DATA = 0, 1, 2, 3


def _call_logp_intrinsic():
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def call_logp(typingctx, fn, dim, x, out, logp, user_data):
        """Call the log-density C callback at address ``fn`` (all arguments are addresses)."""
        sig = types.int64(types.uint64, types.uint64, types.uint64, types.uint64, types.uint64, types.uint64)

        def codegen(context, builder, signature, args):
            fn_, dim_, *pointers = args
            i8p = ir.IntType(8).as_pointer()
            fnty = ir.FunctionType(ir.IntType(64), [ir.IntType(64), i8p, i8p, i8p, i8p])
            target = builder.inttoptr(fn_, fnty.as_pointer())
            return builder.call(target, [dim_, *[builder.inttoptr(p, i8p) for p in pointers]])

        return sig, codegen

    return call_logp


call_logp = _call_logp_intrinsic()


def _native_expand(dim, expanded, x_, out_, user_data_):  # pragma: no cover - compiled by Numba
    head = numba.carray(user_data_, (_FIRST_DATA,), np.uint64)
    addr = numba.carray(user_data_, (head[_LENGTH],), np.uint64)
    local = addr.copy()
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (expanded,))
    local[_OUT] = out.ctypes.data
    grad = np.empty(dim)
    value = np.empty(1)
    code = call_logp(addr[_LOGP], dim, x.ctypes.data, grad.ctypes.data, value.ctypes.data, local.ctypes.data)
    if code != 0:
        return -2
    return 0


_EXPAND = None


def _expand_callback():
    """nutpie's expand callback: the log-density callback asked to write the traced values.

    One generic C function for every model (compiled once, cached next to this module):
    it copies the address array, points slot 0 at nutpie's output buffer and calls the
    model's log-density callback, so the compiled model code exists once. No GIL.
    """
    global _EXPAND
    if _EXPAND is None:
        from numba import types

        double = types.CPointer(types.double)
        sig = types.int64(types.uint64, types.uint64, double, double, types.voidptr)
        _EXPAND = numba.cfunc(sig, cache=True)(_native_expand)
    return _EXPAND


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
            user_data = _addresses(self.data_names, shared, self.compiled_logp_func.address)
            return dataclasses.replace(self, shared_data=shared, user_data=user_data)

    return NativeCompiledModel


def _addresses(names, shared: dict, logp_address: int) -> np.ndarray:
    out = np.zeros(len(names) + _FIRST_DATA, dtype=np.uint64)
    out[_LOGP] = logp_address
    out[_LENGTH] = len(out)
    for i, name in enumerate(names):
        out[i + _FIRST_DATA] = shared[name].ctypes.data
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


def _combined_function(model):
    """One PyTensor function ``x -> (logp, grad, expanded)`` (nutpie's two, merged).

    Adapted from ``nutpie.compile_pymc._make_functions``: the log density, its gradient
    and every traced variable (free values first, then the deterministics), flat. One
    graph means one rewrite and one compilation, the traced quantities re-using the
    log density's intermediate results (``ipred``, ``omega``, ...).
    """
    from math import prod

    import pytensor.tensor as pt
    from nutpie.compile_pymc import _compute_shapes
    from pymc.pytensorf import compile as compile_pymc
    from pytensor.graph import clone_replace, rewrite_graph

    from .compile import _nogil_mode

    shapes = _shapes(model) or _compute_shapes(model)
    value_vars = [model.rvs_to_values[var] for var in model.free_RVs]
    logp = model.logp()
    rewrites = ["canonicalize", "stabilize"]
    if not model.check_bounds:
        rewrites.append("local_remove_check_parameter")
    logp = rewrite_graph(logp, include=rewrites)
    grad = pt.concatenate([pt.as_tensor(g, allow_xtensor_conversion=True).ravel() for g in pt.grad(logp, value_vars)])
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
    joined = pt.TensorType("float64", shape=(n_dim,))(name="_unconstrained_point")
    free = [joined[sl] for sl in slices]
    replacements = {
        model.rvs_to_values[var]: value.reshape(shape).astype(var.dtype)
        for var, shape, value in zip(model.free_RVs, shape_list, free, strict=True)
    }
    remaining = [var for var in model.unobserved_value_vars if var.name not in names]
    for var in remaining:
        shape = tuple(int(d) for d in shapes[var.name])
        names.append(var.name)
        shape_list.append(shape)
        slices.append(slice(count, count + prod(shape)))
        count += prod(shape)
    outputs = clone_replace([logp, grad, *remaining], replacements)
    expanded = pt.concatenate(
        [*[v.ravel() for v in free], *[pt.as_tensor(v, allow_xtensor_conversion=True).ravel() for v in outputs[2:]]]
    )
    reparameterized = [
        model.rvs_to_values[var].name for var in model.free_RVs if model.rvs_to_transforms.get(var) is not None
    ]
    with model:
        fn = compile_pymc((joined,), (outputs[0], outputs[1], expanded), mode=_nogil_mode())
    return fn, n_dim, count, (names, slices, shape_list), reparameterized


def _metadata(model):
    """Compile the PyTensor function and collect what the callback and nutpie need."""
    import pytensor
    from nutpie.compile_pymc import _prepare_dims_and_coords
    from pymc.initial_point import make_initial_point_fn

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)
        fn, n_dim, n_expanded, shape_info, reparameterized = _combined_function(model)
        with pytensor.config.change_flags(mode="FAST_COMPILE"):  # evaluated once: no need for Numba
            point = make_initial_point_fn(
                model=model, jitter_rvs=set(), return_transformed=True, default_strategy="support_point"
            )(0)
    x0 = np.concatenate(
        [np.asarray(point[name], dtype=np.float64).ravel() for name in shape_info[0][: len(model.free_RVs)]]
    )
    shared_vars = {}
    for var in fn.get_shared():
        value = np.asarray(var.get_value())
        if var.name is None or value.dtype != np.float64:
            return None  # not expressible as named float64 data: use another route
        if var.name in shared_vars and shared_vars[var.name] is not var:
            return None
        shared_vars[var.name] = var
    names = list(shared_vars)
    if not set(names) <= set(_model_data(model)):
        return None
    layout = {
        name: (i + _FIRST_DATA, tuple(np.shape(shared_vars[name].get_value()))) for i, name in enumerate(names)
    }
    dims, coords = _prepare_dims_and_coords(model, shape_info, reparameterized)
    meta = {
        "n_dim": int(n_dim),
        "n_expanded": int(n_expanded),
        "shape_info": shape_info,
        "reparameterized": list(reparameterized),
        "dims": dims,
        "coords": coords,
        "x0": x0,
        "layout": layout,
        "data_names": names,
    }
    return meta, fn.vm.jit_fn


def _loaded_only(*args, **kwargs):  # pragma: no cover - never compiled: only used on a cache hit
    """The model function of a callback that is loaded from the cache, never compiled."""
    raise RuntimeError("bayes_nlme native cache: the model function of a cached callback was called directly")


def _model_data(model) -> dict:
    return {
        var.name: np.asarray(var.get_value())
        for var in model.data_vars
        if getattr(var, "name", None) is not None and hasattr(var, "get_value")
    }


def compile_native(model, key: str):
    """Compile a PyMC model for nutpie through cached C callbacks.

    Parameters
    ----------
    model : pymc.Model
    key : str
        :func:`graph_key` of the model's graph.

    Returns
    -------
    tuple (nutpie CompiledModel, bool) or None
        The compiled model and whether it was freshly compiled (False: loaded from the
        cache); None when the model cannot take this route (e.g. non-float data).
    """
    import pytensor

    from .compile import jittered_initial_points

    directory = cache_directory()
    meta_path = directory / f"{key}.pkl"
    meta = None
    fresh = True
    callback = None
    if meta_path.exists():
        try:
            meta = pickle.loads(meta_path.read_bytes())
        except Exception:  # noqa: BLE001 - a corrupt entry is rebuilt
            meta = None
    with pytensor.config.change_flags(numba__fastmath=False):
        if meta is not None:
            cached = _callback(meta, key, _loaded_only)
            if _load(cached):
                callback, fresh = cached, False
        if callback is None:
            with _optimisation_level(_OPT_LEVEL):
                made = _metadata(model)
                if made is None:
                    return None
                meta, inner = made
                callback = _callback(meta, key, inner)
                callback.compile()
            fresh = callback.cache_hits == 0
            directory.mkdir(parents=True, exist_ok=True)
            tmp = meta_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps(meta))
            os.replace(tmp, meta_path)
    values = _model_data(model)
    shared = {}
    for name in meta["data_names"]:
        arr = np.array(values[name], dtype=np.float64, order="C", copy=True)
        arr.flags.writeable = False
        shared[name] = arr
    names, slices, shapes = meta["shape_info"]
    cls = _model_class()
    compiled = cls(
        _n_dim=meta["n_dim"],
        dims=meta["dims"],
        _coords=meta["coords"],
        _shapes={n: tuple(s) for n, s in zip(names, shapes, strict=True)},
        compiled_logp_func=callback,
        compiled_expand_func=_expand_callback(),
        initial_point_func=jittered_initial_points(meta["x0"]),
        shared_data=shared,
        shared_var_keys={},
        user_data=_addresses(meta["data_names"], shared, callback.address),
        n_expanded=meta["n_expanded"],
        shape_info=(names, slices, shapes),
        logp_func=None,
        expand_func=None,
        reparameterized_names=meta["reparameterized"],
        data_names=tuple(meta["data_names"]),
    )
    return compiled, fresh
