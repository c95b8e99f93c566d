"""What identifies a compiled model: a digest of its PyTensor graph.

The compiled log density of a NUTS fit is reused (within a process, and on disk by the
native route) whenever the graph is the same. The key is derived from the graph itself,
not from a hand-kept list of spec fields: every operation with its properties, the
wiring, the types, the values of constants and of the data containers, so that any
change of the model (a censoring method, a time-varying rule, a new random effect) is a
new key without anyone remembering to add it. The values of the prior
hyperparameters are left out: they are data containers set after compilation
(:func:`bayes_nlme.build.prior_data`), so specs that differ only in prior values share
one compiled model.
"""

from __future__ import annotations

import hashlib

import numpy as np
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import toposort

__all__ = ["graph_digest", "structure_key"]


def _array_digest(value) -> str:
    """Digest of a numeric value; random generators and other objects count by type only
    (the log density does not depend on a generator's state)."""
    arr = np.ascontiguousarray(np.asarray(value))
    if arr.dtype.kind == "O":
        return f"object:{type(value).__name__}"
    return f"{arr.dtype.str}{arr.shape}" + hashlib.sha256(arr.tobytes()).hexdigest()[:24]


def _op_text(op) -> str:
    props = getattr(op, "__props__", None)
    if props:
        return f"{type(op).__module__}.{type(op).__qualname__}{[(p, repr(getattr(op, p))) for p in props]}"
    return f"{type(op).__module__}.{type(op).__qualname__}:{op}"


def graph_digest(outputs, exclude=()) -> str:
    return hashlib.sha256("\n".join(graph_lines(outputs, exclude)).encode()).hexdigest()


def graph_lines(outputs, exclude=()) -> list[str]:
    """A digest of the graph of ``outputs`` that two structurally equal graphs share.

    Parameters
    ----------
    outputs : list of pytensor.Variable
    exclude : iterable of str
        Names of shared variables (data containers) whose *values* are left out; their
        names, types and places in the graph still count.

    Returns
    -------
    str
        A hex digest.
    """
    exclude = set(exclude)
    ids: dict = {}
    lines: list[str] = []

    def ref(var) -> str:
        if var in ids:
            return ids[var]
        if isinstance(var, Constant):
            text = f"const:{var.type}:{_array_digest(var.data)}"
        elif isinstance(var, SharedVariable):
            value = "" if var.name in exclude else _array_digest(var.get_value(borrow=True))
            text = f"shared:{var.name}:{var.type}:{value}"
        else:
            text = f"input:{var.name}:{var.type}"
        ids[var] = f"v{len(ids)}"
        lines.append(f"{ids[var]}={text}")
        return ids[var]

    for k, node in enumerate(toposort(outputs)):
        args = ",".join(ref(i) for i in node.inputs)
        lines.append(f"n{k}={_op_text(node.op)}({args})")
        for j, out in enumerate(node.outputs):
            ids[out] = f"n{k}.{j}"
            lines.append(f"{ids[out]}:{out.type}")
    lines.append("out=" + ",".join(ref(o) for o in outputs))
    return lines


def structure_key(built) -> str:
    """The graph digest of a built NUTS model (its log density and deterministics),
    prior hyperparameter values excluded.

    Parameters
    ----------
    built : bayes_nlme.build.BuiltModel

    Returns
    -------
    str
    """
    from ..build import prior_data

    model = built.model
    outputs = [model.logp(), *model.deterministics, *model.free_RVs]
    return graph_digest(outputs, exclude=prior_data(built.spec))
