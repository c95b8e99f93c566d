"""The ``[outputs]`` of a built-in structural model, applied after the engine (CONTRACT 5.4).

A built-in model's engine predicts the central concentration ``C``. With ``[outputs]``
each observation row is of one output, whose expression uses ``C`` and the declared
parameters (for a direct Emax effect ``E0 + Emax * C / (EC50 + C)``). The output map
turns the engine's ``C`` at each observation into that row's output, with the
parameters of the row's own segment:

* :func:`apply_outputs` (NumPy) also carries the Jacobian: the chain rule through
  ``C`` (every segment of the subject) plus the direct parameter derivatives (the row's
  segment), from symbolic derivatives (:func:`bayes_nlme.spec.expression.derivative`).
  Every path that calls :func:`.op.predict_numeric` (the frequentist kernel, predict,
  diagnostics, simulation) gets it.
* :func:`outputs_tensor` (PyTensor) is the same map in the NUTS graph; PyTensor
  differentiates it.

An ODE model's outputs are compiled into its engine instead (:mod:`.odegen`).
"""

from __future__ import annotations

import numpy as np

from ..spec.expression import derivative

__all__ = ["evaluate", "apply_outputs", "apply_output_values", "outputs_tensor"]


def evaluate(tree, values: dict, xp=np):
    """Evaluate an expression tree with NumPy or PyTensor.

    Parameters
    ----------
    tree : tuple
        An expression tree (:mod:`bayes_nlme.spec.expression`).
    values : dict
        Symbol -> array or tensor.
    xp : module
        ``numpy`` or ``pytensor.tensor``.

    Returns
    -------
    array or tensor
    """
    kind = tree[0]
    if kind == "num":
        return tree[1]
    if kind == "sym":
        return values[tree[1]]
    if kind == "neg":
        return -evaluate(tree[1], values, xp)
    if kind == "call":
        return getattr(xp, tree[1])(evaluate(tree[2], values, xp))
    if kind == "less":
        a, b, x, y = (evaluate(c, values, xp) for c in tree[1:])
        return np.where(a < b, x, y) if xp is np else xp.switch(xp.lt(a, b), x, y)
    a, b = evaluate(tree[1], values, xp), evaluate(tree[2], values, xp)
    if kind == "add":
        return a + b
    if kind == "sub":
        return a - b
    if kind == "mul":
        return a * b
    if kind == "div":
        return a / b
    return a**b


def _local_segment(design) -> np.ndarray:
    """Position of each observation's own segment among its subject's segments."""
    return design.obs_segment - design.subj[design.obs_subject, 1]


def apply_outputs(design, f: np.ndarray, jac: np.ndarray, params: np.ndarray):
    """Each observation's output from the engine's concentration, with the Jacobian.

    Parameters
    ----------
    design : EngineDesign
    f : numpy.ndarray (n_obs,)
        The central concentration at each prediction point.
    jac : numpy.ndarray (n_obs, max_seg, P)
        Its Jacobian with respect to the parameters of the subject's segments.
    params : numpy.ndarray (n_segments, P)
        Parameters in ``design.columns`` order.

    Returns
    -------
    y : numpy.ndarray (n_obs,)
    jac_y : numpy.ndarray (n_obs, max_seg, P)
    """
    if not design.output_map:
        return f, jac
    local = _local_segment(design)
    y = np.full_like(f, np.nan)
    out_jac = np.zeros_like(jac)
    for tree, rows, values in _output_rows(design, f, params):
        with np.errstate(all="ignore"):
            y[rows] = np.broadcast_to(evaluate(tree, values), rows.shape)
            g_c = np.broadcast_to(evaluate(derivative(tree, "C"), values), rows.shape)
            out_jac[rows] = g_c[:, None, None] * jac[rows]
            for j, name in enumerate(design.columns):
                g_p = evaluate(derivative(tree, name), values)
                if np.ndim(g_p) or g_p != 0.0:
                    out_jac[rows, local[rows], j] += g_p
    return y, out_jac


def apply_output_values(design, f: np.ndarray, params: np.ndarray) -> np.ndarray:
    """The output map of :func:`apply_outputs` on the predictions alone (no Jacobian).

    Parameters
    ----------
    design : EngineDesign
    f : numpy.ndarray (n_obs,)
    params : numpy.ndarray (n_segments, P)

    Returns
    -------
    numpy.ndarray (n_obs,)
    """
    if not design.output_map:
        return f
    y = np.full_like(f, np.nan)
    for tree, rows, values in _output_rows(design, f, params):
        with np.errstate(all="ignore"):
            y[rows] = np.broadcast_to(evaluate(tree, values), rows.shape)
    return y


def _output_rows(design, f: np.ndarray, params: np.ndarray):
    """Per output with observations: its expression, its rows, and the values of ``C``
    and of every parameter (each row's own segment) on those rows."""
    own = params[design.obs_segment]
    for k, (_, tree) in enumerate(design.output_map):
        rows = np.flatnonzero(design.obs_output == k)
        if len(rows):
            values = {"C": f[rows]}
            values.update({name: own[rows, j] for j, name in enumerate(design.columns)})
            yield tree, rows, values


def outputs_tensor(design, f, params):
    """The output map of :func:`apply_outputs` in PyTensor (no Jacobian needed).

    Parameters
    ----------
    design : EngineDesign
    f : tensor (n_obs,)
    params : tensor (n_segments, P)

    Returns
    -------
    tensor (n_obs,)
    """
    import pytensor.tensor as pt

    outputs = design.output_map
    if not outputs:
        return f
    y = pt.zeros_like(f)
    for k, (_, tree) in enumerate(outputs):
        rows = np.flatnonzero(design.obs_output == k)
        if not len(rows):
            continue
        own = params[design.obs_segment[rows]]
        values = {"C": f[rows]}
        values.update({name: own[:, j] for j, name in enumerate(design.columns)})
        y = pt.set_subtensor(y[rows], pt.broadcast_to(evaluate(tree, values, pt), (len(rows),)))
    return y
