"""Predictions of the frequentist engines and their derivatives, from the model core.

The predictions are the event engine's (:mod:`bayes_nlme.core`), evaluated directly:
for log individual parameters ``U`` (one row per parameter segment, one column per
free parameter) the engine returns the predictions and their exact Jacobian with
respect to every segment of the observation's subject. The etas and the typical values
shift every segment of a subject alike, so the derivatives that the FO/FOCE/Laplace
objectives need are derivatives along **common shifts** (:meth:`EngineKernel.shift`):
first derivatives are exact, second and third derivatives are central differences of
the exact Jacobian (relative accuracy about 1e-10 and 1e-8), as before; symbolic
higher derivatives of the closed forms are not worth their cost.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np

__all__ = ["EngineKernel", "H_STEP", "T_STEP"]

#: Step of first differences of the exact Jacobian (second derivatives).
H_STEP = 6e-6
#: Step of second differences of the exact Jacobian (third derivatives).
T_STEP = 1e-4


class EngineKernel:
    """Predictions ``f(U)`` and Jacobians for the frequentist engines.

    Parameters
    ----------
    design : EngineDesign
    names : sequence of str
        The parameters that vary with the estimates: the columns of ``U`` (log scale).
    constants : dict of str to numpy.ndarray
        Values per segment of the other parameters.
    keep : numpy.ndarray of bool, optional
        Observations that enter the objective (default all).
    log_transform : bool or numpy.ndarray of bool
        Return ``log f`` (exponential residual error model), on every kept row or on
        the rows marked (several outputs, CONTRACT 5.4).
    """

    def __init__(self, design, names, constants: dict, keep=None, log_transform: bool = False) -> None:
        start = time.perf_counter()
        self.design = design
        self.names = tuple(names)
        self.m = len(self.names)
        self.keep = np.ones(design.n_obs, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
        self.log_transform = log_transform
        self._base = np.zeros((design.n_segments, len(design.columns)))
        self._free_cols = np.array([design.columns.index(n) for n in self.names], dtype=np.int64)
        for name, values in constants.items():
            if name in design.columns:
                self._base[:, design.columns.index(name)] = values
        self.jac_index = design.jac_index[self.keep]
        self._cache: OrderedDict = OrderedDict()
        self.n_calls = 0
        self.seconds_compile = time.perf_counter() - start

    def warm_up(self, u: np.ndarray) -> float:
        """Evaluate once (Numba compilation on first use); returns the seconds taken."""
        start = time.perf_counter()
        self.jacobian(u)
        spent = time.perf_counter() - start
        self.seconds_compile += spent
        return spent

    def _params(self, u: np.ndarray) -> np.ndarray:
        params = self._base.copy()
        params[:, self._free_cols] = np.exp(u)
        return params

    def value(self, u: np.ndarray) -> np.ndarray:
        """Predictions only (log scale with ``log_transform``)."""
        return self.jacobian(u)[0]

    def predict(self, u: np.ndarray) -> np.ndarray:
        """Predictions only, uncached, from the engine's value-only walk (no
        sensitivities): SAEM's Metropolis steps and importance sampling call it many times
        at points never repeated. The same values as :meth:`value`, bit for bit."""
        from ..core.op import predict_values

        self.n_calls += 1
        with np.errstate(all="ignore"):
            f = predict_values(self.design, self._params(np.ascontiguousarray(u, dtype=float)))[self.keep]
            return _log_rows(f, self.log_transform)

    def jacobian(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and ``d f / d U`` per segment: (n_obs,), (n_obs, max_seg, M)."""
        from ..core.op import predict_numeric

        u = np.ascontiguousarray(u, dtype=float)
        key = u.tobytes()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        self.n_calls += 1
        params = self._params(u)
        with np.errstate(all="ignore"):
            f, jac = predict_numeric(self.design, params)
            f, jac = f[self.keep], jac[self.keep]
            jac = jac[:, :, self._free_cols] * params[self.jac_index][:, :, self._free_cols]
            if np.any(self.log_transform):
                mask = np.broadcast_to(np.asarray(self.log_transform, dtype=bool), f.shape)
                jac = np.where(mask[:, None, None], jac / f[:, None, None], jac)
                f = np.where(mask, np.log(f), f)
        out = (f, jac)
        self._cache[key] = out
        if len(self._cache) > 16:
            self._cache.popitem(last=False)
        return out

    @staticmethod
    def shift(u: np.ndarray, steps: dict) -> np.ndarray:
        """``U`` with column ``k`` of every segment shifted by ``steps[k]``."""
        v = np.array(u, dtype=float, copy=True)
        for k, h in steps.items():
            v[:, k] += h
        return v

    @staticmethod
    def move(u: np.ndarray, steps: list) -> np.ndarray:
        """``U`` moved along directions: ``steps`` is a list of ``(direction, h)``, a
        direction being a column (every segment shifted, as :meth:`shift`) or an
        (n_segments, M) array."""
        v = np.array(u, dtype=float, copy=True)
        for direction, h in steps:
            if isinstance(direction, (int, np.integer)):
                v[:, direction] += h
            else:
                v += h * direction
        return v

    def first_difference(self, u: np.ndarray, a) -> np.ndarray:
        """``d jac / d shift_a`` (n_obs, max_seg, M) by a central difference.

        ``a`` is a column (a common shift of every segment) or an (n_segments, M)
        direction (a shift of some segments, e.g. one occasion's).
        """
        h, move = H_STEP, EngineKernel.move
        return (self.jacobian(move(u, [(a, h)]))[1] - self.jacobian(move(u, [(a, -h)]))[1]) / (2.0 * h)

    def second_difference(self, u: np.ndarray, a, b) -> np.ndarray:
        """``d2 jac / d shift_a d shift_b`` (n_obs, max_seg, M) by central differences
        (``a``, ``b`` as in :meth:`first_difference`; the same object twice: a pure second derivative)."""
        h, move = T_STEP, EngineKernel.move
        jac = self.jacobian
        same = a is b or (isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)) and a == b)
        if same:
            return (jac(move(u, [(a, h)]))[1] - 2.0 * jac(u)[1] + jac(move(u, [(a, -h)]))[1]) / h**2
        pp = jac(move(u, [(a, h), (b, h)]))[1]
        pm = jac(move(u, [(a, h), (b, -h)]))[1]
        mp = jac(move(u, [(a, -h), (b, h)]))[1]
        mm = jac(move(u, [(a, -h), (b, -h)]))[1]
        return (pp - pm - mp + mm) / (4.0 * h * h)


def _log_rows(f: np.ndarray, log_transform) -> np.ndarray:
    """``log f`` on every row (``True``), none (``False``) or the rows of a mask."""
    if isinstance(log_transform, np.ndarray):
        return np.where(log_transform, np.log(f), f)
    return np.log(f) if log_transform else f
