"""The event engine as a PyTensor operation, with Numba and JAX implementations.

:func:`structural_predictions` returns, for a matrix of individual parameters (one row
per parameter segment), the central concentration at every observation of an
:class:`~.design.EngineDesign`. Its gradient is exact: the engine's forward
sensitivities give the Jacobian of each prediction with respect to the parameters of
its subject's segments, and the vector-Jacobian product is a scatter-add of them. The
Numba implementation is what nutpie's compiled log density runs; it is cacheable
(its key is the operation's properties), so a warm start compiles nothing.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from .engine import simulate, simulate_values
from .outputs import apply_output_values, apply_outputs, outputs_tensor

__all__ = [
    "EventPredictions",
    "structural_predictions",
    "predict_numeric",
    "predict_values",
    "engine_function",
]


def engine_function(key: str = ""):
    """The event engine's ``simulate``: the built-in one (``key == ""``) or the generated
    engine of an ODE model (:func:`bayes_nlme.core.odegen.ode_module`, by module name)."""
    if not key:
        return simulate
    from .odegen import loaded_module

    return loaded_module(key).simulate


def _values_function(key: str = ""):
    """The engine's ``simulate_values`` (predictions without sensitivities), as
    :func:`engine_function`."""
    if not key:
        return simulate_values
    from .odegen import loaded_module

    return loaded_module(key).simulate_values


class EventPredictions(Op):
    """Predictions and Jacobians of the event engine (see :func:`structural_predictions`).

    Inputs: ``params`` (n_segments, P), then the design arrays ``recf, reci, recl,
    subj, jac_index``. Outputs: ``f`` (n_obs,) and ``jac`` (n_obs, max_seg, P).
    """

    __props__ = ("cfg", "n_obs", "max_seg", "capacity", "engine_key")

    def __init__(self, cfg, n_obs: int, max_seg: int, capacity: int, engine_key: str = ""):
        self.cfg = tuple(int(c) for c in cfg)
        self.n_obs = int(n_obs)
        self.max_seg = int(max_seg)
        self.capacity = int(capacity)
        self.engine_key = str(engine_key)

    def make_node(self, params, recf, reci, recl, subj, jac_index):
        inputs = [pt.as_tensor_variable(params)] + [
            pt.as_tensor_variable(x) for x in (recf, reci, recl, subj, jac_index)
        ]
        outputs = [pt.dvector(), pt.tensor(dtype="float64", shape=(None, None, None))]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, outputs):
        params, recf, reci, recl, subj, _ = inputs
        f, jac = engine_function(self.engine_key)(
            np.ascontiguousarray(params, dtype=float),
            recf,
            reci,
            recl,
            subj,
            np.asarray(self.cfg, dtype=np.int64),
            self.n_obs,
            self.max_seg,
            self.capacity,
        )
        outputs[0][0] = f
        outputs[1][0] = jac

    def infer_shape(self, node, shapes):
        p = shapes[0][1]
        return [(self.n_obs,), (self.n_obs, self.max_seg, p)]

    def pullback(self, inputs, outputs, output_grads):
        params, jac_index = inputs[0], inputs[5]
        g_f, g_jac = output_grads
        if not isinstance(g_jac.type, DisconnectedType):
            raise NotImplementedError("second derivatives of the event engine are not available")
        n_par = params.shape[1]
        contrib = (g_f[:, None, None] * outputs[1]).reshape((-1, n_par))
        index = pt.cast(jac_index.reshape((-1,)), "int64")
        grad = pt.inc_subtensor(pt.zeros_like(params)[index], contrib)
        return [grad] + [disconnected_type() for _ in inputs[1:]]

    def connection_pattern(self, node):
        return [[True, True]] + [[False, False] for _ in node.inputs[1:]]


#: The modules whose compiled code the operation's Numba implementation contains.
_ENGINE_SOURCES = ("engine.py", "kinetics.py", "eigen.py", "exp_integrals.py", "dense.py", "borrow.py")


@functools.cache
def engine_source_digest() -> str:
    """Digest of the engine's source files (:data:`_ENGINE_SOURCES`).

    It enters the cache keys of the compiled log densities that contain the engine, so
    that a changed engine (a new version of the package) is never served from a cache
    compiled with the old one.
    """
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in _ENGINE_SOURCES:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]


def _register_numba() -> None:
    from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_default_op_cache_key

    @register_funcify_default_op_cache_key(EventPredictions)
    def numba_funcify_event_predictions(op, node=None, **kwargs):
        # generated source (no closure over the properties), so that Numba can cache the
        # enclosing compiled log density
        from pytensor.link.numba.cache import compile_numba_function_src

        src = (
            "def event_predictions(params, recf, reci, recl, subj, jac_index):\n"
            f"    cfg = np.array({list(op.cfg)!r}, dtype=np.int64)\n"
            f"    return simulate(params, recf, reci, recl, subj, cfg, {op.n_obs}, {op.max_seg}, {op.capacity})\n"
        )
        fn = compile_numba_function_src(
            src,
            "event_predictions",
            global_env={"np": np, "simulate": engine_function(op.engine_key)},
            cache_key=(
                f"bayes_nlme_event_predictions_{op.engine_key}{engine_source_digest()}"
                f"{abs(hash((op.cfg, op.n_obs, op.max_seg, op.capacity)))}"
            ),
        )
        # the integer salts PyTensor's cache key of the enclosing function: the engine's version
        return numba_njit(fn), int(engine_source_digest(), 16)


def _register_jax() -> None:
    try:
        import jax
        from pytensor.link.jax.dispatch import jax_funcify
    except ImportError:  # pragma: no cover - JAX is optional
        return

    @jax_funcify.register(EventPredictions)
    def jax_funcify_event_predictions(op, node=None, **kwargs):
        """A host callback to the Numba engine, with a custom VJP built from its
        Jacobian (JAX cannot differentiate a callback)."""
        import jax.numpy as jnp
        from pytensor.graph.basic import Constant

        cfg = np.asarray(op.cfg, dtype=np.int64)
        n_obs, max_seg, capacity = op.n_obs, op.max_seg, op.capacity
        data = [np.asarray(v.data) if isinstance(v, Constant) else None for v in node.inputs[1:]]
        if any(d is None for d in data):
            raise NotImplementedError("the event engine's JAX implementation needs the design as constants")
        recf, reci, recl, subj, jac_index = data
        flat_index = jnp.asarray(jac_index.reshape(-1).astype(np.int64))

        engine = engine_function(op.engine_key)

        def host(params):
            return engine(
                np.ascontiguousarray(params, dtype=float), recf, reci, recl, subj, cfg, n_obs, max_seg, capacity
            )

        def call(params):
            shapes = (
                jax.ShapeDtypeStruct((n_obs,), jnp.float64),
                jax.ShapeDtypeStruct((n_obs, max_seg, params.shape[1]), jnp.float64),
            )
            return jax.pure_callback(host, shapes, params, vmap_method="sequential")

        @jax.custom_vjp
        def predictions(params):
            return call(params)

        def forward(params):
            f, jac = call(params)
            return (f, jac), (jac, params.shape)

        def backward(residual, cotangent):
            jac, shape = residual
            g_f = cotangent[0]
            contrib = (g_f[:, None, None] * jac).reshape((-1, shape[1]))
            return (jnp.zeros(shape, dtype=jnp.float64).at[flat_index].add(contrib),)

        predictions.defvjp(forward, backward)

        def event_predictions(params, *design):
            return predictions(params)

        return event_predictions


_register_numba()
_register_jax()


def structural_predictions(design, params, data: dict | None = None):
    """Predictions at the observations of a design (PyTensor): the central
    concentration, or each row's output (CONTRACT 5.4).

    Parameters
    ----------
    design : EngineDesign
    params : mapping or tensor
        Parameter name -> vector of values per segment (``design.n_segments``), or a
        matrix (n_segments, P) in ``design.columns`` order.
    data : dict, optional
        Tensors (e.g. :func:`pymc.Data` containers) holding ``design.engine_inputs``;
        default: the arrays as constants. Data containers keep the compiled code free of
        the dataset (large constants make LLVM slow).

    Returns
    -------
    tensor (n_obs,)
    """
    if isinstance(params, dict):
        params = pt.stack([pt.as_tensor_variable(params[c]) for c in design.columns], axis=1)
    data = design.engine_inputs if data is None else data
    op = EventPredictions(design.cfg, design.n_obs, design.max_seg, design.capacity, design.engine_key)
    f, _ = op(params, *(data[name] for name in ("recf", "reci", "recl", "subj", "jac_index")))
    return outputs_tensor(design, f, params)


def predict_numeric(design, params) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and Jacobians, evaluated directly (NumPy in, NumPy out).

    Parameters
    ----------
    design : EngineDesign
    params : mapping or numpy.ndarray
        Parameter name -> values per segment, or a matrix (n_segments, P).

    Returns
    -------
    f : numpy.ndarray (n_obs,)
    jac : numpy.ndarray (n_obs, max_seg, P)
    """
    if isinstance(params, dict):
        params = np.stack(
            [np.broadcast_to(np.asarray(params[c], dtype=float), (design.n_segments,)) for c in design.columns], axis=1
        )
    params = np.ascontiguousarray(params, dtype=float)
    f, jac = design.engine(params, *_engine_arguments(design))
    return apply_outputs(design, f, jac, params)


def _engine_arguments(design) -> tuple:
    """The engine's arguments after the parameters: the record arrays and the layout."""
    inputs = design.engine_inputs
    return (
        inputs["recf"],
        inputs["reci"],
        inputs["recl"],
        inputs["subj"],
        design.cfg,
        design.n_obs,
        design.max_seg,
        design.capacity,
    )


def predict_values(design, params: np.ndarray) -> np.ndarray:
    """Predictions only (no Jacobian), evaluated directly: the ``f`` of
    :func:`predict_numeric`, bit for bit, without the cost of the sensitivities.

    Parameters
    ----------
    design : EngineDesign
    params : numpy.ndarray (n_segments, P)
        In ``design.columns`` order.

    Returns
    -------
    numpy.ndarray (n_obs,)
    """
    params = np.ascontiguousarray(params, dtype=float)
    f = _values_function(design.engine_key)(params, *_engine_arguments(design))
    return apply_output_values(design, f, params)
