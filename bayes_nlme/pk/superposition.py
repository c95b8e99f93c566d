"""Central concentrations by superposition of analytic dose responses (PyTensor).

The models are linear, so the central amount at a point is the sum over the (point,
dose) pairs of an :class:`~bayes_nlme.data.events.EventDesign` of each dose's response.
With the disposition ``h(t) = sum_k c_k exp(-lambda_k t)`` (see
:mod:`bayes_nlme.pk.disposition`), every dose kind has a response ``Phi(lambda; tau)``
to a unit-coefficient exponential, ``tau`` being the time since the (lagged) dose:

=======================  ======================================================
kind                     Phi(lambda)
=======================  ======================================================
bolus                    exp(-lambda tau)
bolus_ss                 exp(-lambda tau) / (1 - exp(-lambda II))
infusion (R, T)          R exp(-lambda u) (1 - exp(-lambda w)) / lambda,
                         w = min(tau, T), u = tau - w
infusion_ss (R, T, II)   R/lambda [m + sgn(d) exp(-lambda (tau - d+))
                         (1 - exp(-lambda |d|)) / (1 - exp(-lambda II))],
                         m = #{n >= 0 : tau + n II < T}, d = T - m II
infusion_ss_constant     R / lambda
=======================  ======================================================

``infusion_ss`` sums the running (n < m) and finished (n >= m) infusions of the
regimen, and is valid for ``T > II`` too; every exponent above is ``<= 0``. A dose into
the central compartment gives ``sum_k c_k Phi(lambda_k)``; a dose into the depot is
convolved with ``ka exp(-ka t)`` and gives ``-ka sum_k c_k Phi[lambda_k, ka]``, the
divided difference being computed by :class:`~bayes_nlme.pk.exponentials.DividedRate`
(stable and smooth at ``ka == lambda_k``). Boluses are multiplied by ``F * AMT``.

Bioavailability ``F`` scales the amount of depot doses (oral models) or of every dose
(IV models); an infusion keeps its ``RATE`` so its duration is ``T = F AMT / RATE``.
The lag ``tlag`` shifts the same doses: ``tau = elapsed - tlag``; a lagged dose with
``tau < 0`` contributes nothing, except at steady state, where ``tau`` is moved up by
whole intervals (``tau + II ceil(-tau/II)``: the earlier doses of the regimen). F does
not apply to a steady-state constant infusion (NONMEM).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping

import numpy as np
import pytensor
import pytensor.tensor as pt

from ..errors import ArgumentError
from .disposition import macro_constants
from .exponentials import DividedRate, PlainRate, ordered, reciprocal

__all__ = ["concentrations", "predict_concentrations", "dose_response"]


def dose_response(kind: str, rate_obj, tau, *, rate=None, duration=None, interval=None):
    """``Phi`` of one dose kind, for a :class:`PlainRate` or a :class:`DividedRate`.

    Parameters
    ----------
    kind : str
        ``"bolus"``, ``"bolus_ss"``, ``"infusion"``, ``"infusion_ss"`` or
        ``"infusion_ss_constant"``.
    rate_obj : PlainRate or DividedRate
        Supplies ``exp(-lambda s)``, ``1 - exp(-lambda s)`` and ``1/lambda``.
    tau : tensor
        Time since the (lagged) dose, ``>= 0``.
    rate, duration, interval : tensor, optional
        Infusion rate ``R``, infusion duration ``T``, dosing interval ``II``.

    Returns
    -------
    tensor or Divided
        ``Phi(lambda)`` (per unit amount for boluses).
    """
    r = rate_obj
    if kind == "bolus":
        return r.exp_neg(tau)
    if kind == "bolus_ss":
        return r.exp_neg(tau) * reciprocal(r.one_minus_exp_neg(interval))
    if kind == "infusion":
        running = tau < duration
        w = pt.switch(running, tau, duration)
        return r.exp_neg(tau - w) * r.one_minus_exp_neg(w) * r.inv() * rate
    if kind == "infusion_ss":
        m = pt.maximum(pt.ceil((duration - tau) / interval), 0.0)
        d = duration - m * interval
        positive = d >= 0
        d_pos = pt.switch(positive, d, 0.0)
        sign = pt.switch(positive, 1.0, -1.0)
        finished = (
            r.exp_neg(tau - d_pos)
            * r.one_minus_exp_neg(pt.abs(d))
            * reciprocal(r.one_minus_exp_neg(interval))
        )
        return (finished * sign + m) * r.inv() * rate
    if kind == "infusion_ss_constant":
        return r.inv() * rate
    raise ValueError(f"unknown dose kind {kind!r}")


def _group_amount(group, model, disp, lag, bio):
    """Central amount of every (pair, exponential term) entry of one group.

    Returns the amounts and the prediction point of each entry: with two exponential
    terms, every pair appears twice (alpha entries, then beta entries) and the
    scatter-add into points sums the terms.
    """
    n_terms, n_subjects = disp["n_terms"], disp["n_subjects"]
    idx = np.tile(group.subject, n_terms)  # per-subject parameters
    term_idx = (idx + n_subjects * np.repeat(np.arange(n_terms), len(group))).astype(np.int64)

    def tile(values):
        return np.tile(values, n_terms)

    applies = (group.route == "depot") or not model.oral
    lag = lag if applies else None
    bio = bio if applies else None
    kind = group.kind
    steady = kind in ("bolus_ss", "infusion_ss")
    tau = pt.as_tensor_variable(tile(group.elapsed))
    active = None
    if lag is not None and kind != "infusion_ss_constant":
        tau = tau - lag[idx]
        if steady:
            ii = tile(group.interval)
            tau = pt.switch(tau < 0, tau + ii * pt.ceil(-tau / ii), tau)
        else:
            active = tau >= 0
            tau = pt.switch(active, tau, 0.0)
    bio_p = bio[idx] if bio is not None else None

    options = {}
    if kind in ("infusion", "infusion_ss", "infusion_ss_constant"):
        options["rate"] = tile(group.rate)
    if kind in ("infusion", "infusion_ss"):
        duration = tile(group.amount / group.rate)
        options["duration"] = duration * bio_p if bio_p is not None else pt.as_tensor_variable(duration)
    if steady:
        options["interval"] = tile(group.interval)

    if group.route == "central":
        total = dose_response(kind, PlainRate(disp["rate"][term_idx]), tau, **options)
    else:
        lo, hi = disp["ordered"]
        total = -dose_response(kind, DividedRate(lo[term_idx], hi[term_idx]), tau, **options).dd
        total = total * disp["ka"][idx]
    if disp["coef"] is not None:
        total = total * disp["coef"][term_idx]
    if kind in ("bolus", "bolus_ss"):
        amount = tile(group.amount)
        total = total * (amount * bio_p if bio_p is not None else amount)
    if active is not None:
        total = pt.switch(active, total, 0.0)
    return total, tile(group.point)


def concentrations(design, params: Mapping):
    """Central concentrations at the prediction points of a design.

    Parameters
    ----------
    design : EventDesign
        From :func:`bayes_nlme.data.events.build_event_design`.
    params : mapping of str to tensor-like
        Individual values of every structural parameter of ``design.structural``
        (``ka``, ``CL``, ``V`` ...), and optionally ``tlag`` (default 0) and ``F``
        (default 1): PyTensor vectors of length ``n_subjects`` (or scalars, shared by
        all subjects), or numpy arrays. Other keys are ignored.

    Returns
    -------
    TensorVariable
        Vector of length ``design.n_points``: central amount / central volume.

    Raises
    ------
    ArgumentError
        If a structural parameter is missing.
    """
    model = design.structural
    missing = [n for n in model.parameters if n not in params]
    if missing:
        raise ArgumentError(
            f"concentrations: missing parameter(s) {', '.join(missing)} for {model.name} "
            f"(needs {', '.join(model.parameters)}; optional tlag, F)"
        )
    p = {}
    for name in model.all_parameters:
        if name in params:
            value = pt.as_tensor_variable(params[name], dtype="float64")
            p[name] = pt.alloc(value, design.n_subjects) if value.ndim == 0 else value
    coef, rate, volume = macro_constants(model, p)
    n_terms = model.n_compartments
    disp = {"coef": coef, "rate": rate, "n_terms": n_terms, "n_subjects": design.n_subjects}
    if model.oral and any(g.route == "depot" for g in design.groups):
        disp["ka"] = p["ka"]
        disp["ordered"] = ordered(rate, p["ka"] if n_terms == 1 else pt.concatenate([p["ka"]] * n_terms))
    parts, points = [], []
    for group in design.groups:
        part, point = _group_amount(group, model, disp, p.get("tlag"), p.get("F"))
        parts.append(part)
        points.append(point)
    amount = pt.zeros((design.n_points,), dtype="float64")
    if parts:
        values = parts[0] if len(parts) == 1 else pt.concatenate(parts)
        index = points[0] if len(points) == 1 else np.concatenate(points)
        amount = pt.inc_subtensor(amount[index.astype(np.int64)], values)
    return amount / volume[design.point_subject]


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(design, names: tuple[str, ...], mode):
    per_design = _CACHE.setdefault(design, {})
    key = (names, mode)
    if key not in per_design:
        inputs = [pt.dvector(n) for n in names]
        out = concentrations(design, dict(zip(names, inputs)))
        per_design[key] = pytensor.function(inputs, out, mode=mode, on_unused_input="ignore")
    return per_design[key]


def predict_concentrations(design, values: Mapping[str, np.ndarray], *, mode=None) -> np.ndarray:
    """Numeric central concentrations (compiled once per design, parameter set and mode).

    Parameters
    ----------
    design : EventDesign
    values : mapping of str to array-like
        Individual parameter values, one per subject (a scalar is used for every
        subject); ``tlag`` and ``F`` are optional. Other keys are ignored.
    mode : str or pytensor Mode, optional
        PyTensor compilation mode; default: PyTensor's default (Numba). ``"FAST_COMPILE"``
        compiles fastest, for one-off predictions.

    Returns
    -------
    numpy.ndarray
        One concentration per prediction point.
    """
    names = tuple(sorted(n for n in values if n in design.structural.all_parameters))
    fn = _compiled(design, names, mode)
    args = [np.broadcast_to(np.asarray(values[n], dtype=float), (design.n_subjects,)).copy() for n in names]
    return np.asarray(fn(*args))
