"""Per-observation predictions and their derivatives with respect to individual parameters.

Every observation ``j`` depends on its own subject's log individual parameters
``u_j`` only (a row of ``U``, n_obs x M). The kernel evaluates the structural model
on a *pointwise* event design, in which each observation is its own "subject", so a
single reverse pass of PyTensor gives the exact Jacobian ``J[j, m] = d f_j / d u_jm``
of all observations at once; the Jacobian of the predictions with respect to eta is
its IIV columns. Second and third derivatives (``H``, ``T``) are central differences
of that exact Jacobian (relative accuracy about 1e-10 and 1e-8): symbolic second
derivatives of the analytic PK solutions give graphs whose compilation takes minutes,
while the differences cost a few extra (vectorised) kernel calls.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pytensor
import pytensor.tensor as pt

__all__ = ["PredictionKernel", "pointwise_design", "design_key", "kernel_mode"]

_H_STEP = 6e-6
_T_STEP = 1e-4


def kernel_mode():
    """The PyTensor mode of the kernel: ``BAYES_NLME_KERNEL_MODE``, ``NUMBA`` (default) or ``C``.

    Numba compiles each new dataset in a few seconds and caches it on disk; the C
    backend compiles its operations once (slowly) and then reuses them for any dataset.
    """
    import os

    from pytensor.compile.mode import Mode, get_mode

    name = os.environ.get("BAYES_NLME_KERNEL_MODE", "NUMBA").upper()
    if name == "C":
        return Mode(linker="cvm", optimizer="fast_run")
    return get_mode(name)


def pointwise_design(design, keep: np.ndarray | None = None):
    """The same event design with every prediction point as its own subject.

    Parameters
    ----------
    design : EventDesign
        From :func:`bayes_nlme.data.events.build_event_design`.
    keep : numpy.ndarray of bool, optional
        Points to keep (default all).

    Returns
    -------
    EventDesign
        ``n_subjects == n_points``; the parameters passed to
        :func:`bayes_nlme.pk.concentrations` are then one value per (kept) point.
    """
    n = design.n_points
    keep = np.ones(n, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    new_index = np.full(n, -1, dtype=np.int64)
    new_index[keep] = np.arange(int(keep.sum()))
    groups = []
    for group in design.groups:
        point = np.asarray(group.point)
        mask = keep[point]
        if not mask.any():
            continue
        changes = {}
        for item in dataclasses.fields(group):
            value = getattr(group, item.name)
            if isinstance(value, np.ndarray) and value.shape[:1] == point.shape:
                changes[item.name] = value[mask]
        changes["point"] = new_index[point[mask]]
        changes["subject"] = changes["point"]
        groups.append(dataclasses.replace(group, **changes))
    m = int(keep.sum())
    return dataclasses.replace(
        design,
        n_subjects=m,
        n_points=m,
        point_subject=np.arange(m),
        point_time=np.asarray(design.point_time)[keep],
        point_row=np.asarray(design.point_row)[keep],
        groups=tuple(groups),
    )


def design_key(design) -> str:
    """A digest of an event design's content (to reuse compiled kernels)."""
    import hashlib

    digest = hashlib.sha1()
    digest.update(design.structural.name.encode())
    digest.update(np.asarray(design.n_points).tobytes())
    for group in design.groups:
        for item in dataclasses.fields(group):
            value = getattr(group, item.name)
            digest.update(item.name.encode())
            digest.update(np.ascontiguousarray(value).tobytes() if isinstance(value, np.ndarray) else str(value).encode())
    return digest.hexdigest()


class PredictionKernel:
    """Predictions ``f(U)`` and their derivatives with respect to ``U``.

    Parameters
    ----------
    predictor : callable
        ``predictor(params) -> tensor (n_obs,)`` with ``params`` mapping each
        parameter name to a PyTensor vector of individual values, one per observation.
    names : sequence of str
        The parameters that vary with the estimates (the columns of ``U``, log scale).
    constants : dict of str to numpy.ndarray
        The other parameters: values per observation.
    log_transform : bool
        Return ``log f`` (exponential residual error model).
    """

    def __init__(self, predictor: Callable, names, constants: dict, log_transform: bool = False) -> None:
        start = time.perf_counter()
        self.names = tuple(names)
        self.m = len(self.names)
        u = pt.matrix("U")
        params = {name: pt.exp(u[:, k]) for k, name in enumerate(self.names)}
        params.update({k: pt.as_tensor_variable(np.asarray(v, dtype=float)) for k, v in constants.items()})
        f = pt.as_tensor_variable(predictor(params))
        if log_transform:
            f = pt.log(f)
        jac = pt.grad(f.sum(), u) if self.m else pt.zeros((f.shape[0], 0))
        mode = kernel_mode()
        self._fj = pytensor.function([u], [f, jac], on_unused_input="ignore", trust_input=True, mode=mode)
        self._f = pytensor.function([u], f, on_unused_input="ignore", trust_input=True, mode=mode)
        self._cache: OrderedDict = OrderedDict()
        self.n_calls = 0
        self.seconds_compile = time.perf_counter() - start

    def warm_up(self, u: np.ndarray) -> float:
        """Call the compiled functions once (JIT compilation); returns the seconds taken."""
        start = time.perf_counter()
        self._fj(np.ascontiguousarray(u, dtype=float))
        self._f(np.ascontiguousarray(u, dtype=float))
        spent = time.perf_counter() - start
        self.seconds_compile += spent
        return spent

    def value(self, u: np.ndarray) -> np.ndarray:
        """Predictions only."""
        self.n_calls += 1
        return np.asarray(self._f(np.ascontiguousarray(u, dtype=float)))

    def _eval(self, u: np.ndarray):
        self.n_calls += 1
        f, jac = self._fj(u)
        return np.asarray(f), np.asarray(jac)

    def __call__(self, u: np.ndarray, order: int, directions=None) -> list[np.ndarray]:
        """``[f, J, H, T][: order + 1]`` at ``U`` (n_obs x M), ``order`` from 1 to 3.

        ``H[j, a, b] = d2 f_j / du_a du_b``; ``T[j, a, b, c]`` the third derivatives.
        With ``directions`` (column indices, e.g. those with IIV), only the entries of
        ``H`` with ``a`` or ``b`` among them and of ``T`` with ``a`` and ``b`` among them
        are computed (the others are NaN), at a cost that grows with their number.
        """
        u = np.ascontiguousarray(u, dtype=float)
        dirs = tuple(range(u.shape[1])) if directions is None else tuple(int(k) for k in directions)
        key = (order, dirs, u.tobytes())
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        f, jac = self._eval(u)
        out = [f, jac]
        if order >= 2:
            out.append(self._hessian(u, dirs))
        if order >= 3:
            out.append(self._third(u, jac, dirs))
        self._cache[key] = out
        if len(self._cache) > 6:
            self._cache.popitem(last=False)
        return out

    @staticmethod
    def _shift(u, steps: dict) -> np.ndarray:
        v = u.copy()
        for k, h in steps.items():
            v[:, k] += h
        return v

    def _hessian(self, u: np.ndarray, dirs: tuple) -> np.ndarray:
        n, m = u.shape
        hess = np.full((n, m, m), np.nan)
        h = _H_STEP
        for b in dirs:
            up = self._eval(self._shift(u, {b: h}))[1]
            down = self._eval(self._shift(u, {b: -h}))[1]
            col = (up - down) / (2.0 * h)
            hess[:, :, b] = col
            hess[:, b, :] = col
        idx = np.ix_(range(n), dirs, dirs)
        block = hess[idx]
        hess[idx] = 0.5 * (block + np.swapaxes(block, 1, 2))
        return hess

    def _third(self, u: np.ndarray, jac: np.ndarray, dirs: tuple) -> np.ndarray:
        n, m = u.shape
        h = _T_STEP
        third = np.full((n, m, m, m), np.nan)
        plus = {a: self._eval(self._shift(u, {a: h}))[1] for a in dirs}
        minus = {a: self._eval(self._shift(u, {a: -h}))[1] for a in dirs}
        for i, a in enumerate(dirs):
            third[:, a, a, :] = (plus[a] - 2.0 * jac + minus[a]) / h**2
            for b in dirs[:i]:
                pp = self._eval(self._shift(u, {a: h, b: h}))[1]
                pm = self._eval(self._shift(u, {a: h, b: -h}))[1]
                mp = self._eval(self._shift(u, {a: -h, b: h}))[1]
                mm = self._eval(self._shift(u, {a: -h, b: -h}))[1]
                third[:, a, b, :] = (pp - pm - mp + mm) / (4.0 * h * h)
                third[:, b, a, :] = third[:, a, b, :]
        # average the fully known block over the orders of its indices
        idx = np.ix_(range(n), dirs, dirs, dirs)
        block = third[idx]
        perms = [(1, 2, 3), (1, 3, 2), (2, 1, 3), (2, 3, 1), (3, 1, 2), (3, 2, 1)]
        third[idx] = sum(np.transpose(block, (0, *p)) for p in perms) / 6.0
        return third
