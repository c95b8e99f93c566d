"""Truncated bivariate Taylor series ("jets") in the prediction ``f`` and the residual
variance ``r``, to third order.

The frequentist objectives need the partial derivatives of each row's loss in
``(f, r)`` up to third order. For the Gaussian and M3 rows they are written out in
:mod:`.loss`; for M4 (two normal probabilities at once) the chain rule is carried by
jet arithmetic instead: a jet holds the Taylor coefficients ``c[i, j]`` of
``delta_f^i delta_r^j`` for ``i + j <= 3``, arrays over rows. Composition with a
univariate function needs only its first three derivatives at the expansion point, so
every function is evaluated in its numerically stable form (``log_ndtr``).
"""

from __future__ import annotations

from math import factorial

import numpy as np
from scipy.special import log_ndtr

__all__ = ["Jet", "log_ndtr_jet", "log1mexp_jet", "partials"]

ORDER = 3
INDEX = tuple((i, j) for i in range(ORDER + 1) for j in range(ORDER + 1 - i))


class Jet:
    """A truncated Taylor series in ``(delta_f, delta_r)``: ``coef[(i, j)]`` arrays."""

    __slots__ = ("coef",)

    def __init__(self, coef: dict):
        self.coef = coef

    @classmethod
    def variable(cls, value: np.ndarray, which: str) -> Jet:
        """The jet of ``f`` (``which="f"``) or ``r`` (``which="r"``) at ``value``."""
        value = np.asarray(value, dtype=float)
        coef = {key: np.zeros_like(value) for key in INDEX}
        coef[(0, 0)] = value.copy()
        coef[(1, 0) if which == "f" else (0, 1)] = np.ones_like(value)
        return cls(coef)

    @property
    def value(self) -> np.ndarray:
        """The expansion point's value."""
        return self.coef[(0, 0)]

    def __add__(self, other) -> Jet:
        if isinstance(other, Jet):
            return Jet({k: self.coef[k] + other.coef[k] for k in INDEX})
        out = dict(self.coef)
        out[(0, 0)] = out[(0, 0)] + other
        return Jet(out)

    __radd__ = __add__

    def __neg__(self) -> Jet:
        return Jet({k: -v for k, v in self.coef.items()})

    def __sub__(self, other) -> Jet:
        return self + (-other)

    def __rsub__(self, other) -> Jet:
        return (-self) + other

    def __mul__(self, other) -> Jet:
        if not isinstance(other, Jet):
            return Jet({k: v * other for k, v in self.coef.items()})
        out = {}
        for i, j in INDEX:
            total = 0.0
            for a in range(i + 1):
                for b in range(j + 1):
                    total = total + self.coef[(a, b)] * other.coef[(i - a, j - b)]
            out[(i, j)] = total
        return Jet(out)

    __rmul__ = __mul__

    def compose(self, d0, d1, d2, d3) -> Jet:
        """``g(self)`` from ``g`` and its first three derivatives at :attr:`value`."""
        h = Jet({k: (np.zeros_like(v) if k == (0, 0) else v) for k, v in self.coef.items()})
        h2 = h * h
        h3 = h2 * h
        out = h * d1 + h2 * (0.5 * d2) + h3 * (d3 / 6.0)
        return out + d0


def _mills(z: np.ndarray) -> np.ndarray:
    """``phi(z) / Phi(z)``, stable in both tails."""
    return np.exp(-0.5 * z**2 - 0.5 * np.log(2.0 * np.pi) - log_ndtr(z))


def log_ndtr_jet(x: Jet) -> Jet:
    """``log Phi(x)`` of a jet."""
    z = x.value
    lam = _mills(z)
    dlam = -lam * (z + lam)
    return x.compose(log_ndtr(z), lam, dlam, -(dlam * (z + lam) + lam * (1.0 + dlam)))


def log1mexp_jet(x: Jet) -> Jet:
    """``log(1 - exp(x))`` of a jet with ``x < 0``."""
    t = x.value
    q = 1.0 / np.expm1(-t)  # e^t / (1 - e^t)
    d1 = -q
    d2 = -(q + q**2)
    d3 = -(1.0 + 2.0 * q) * (q + q**2)
    return x.compose(np.log(-np.expm1(t)), d1, d2, d3)


def inverse_sqrt_jet(x: Jet) -> Jet:
    """``x ** -0.5`` of a jet with ``x > 0``."""
    v = x.value
    return x.compose(v**-0.5, -0.5 * v**-1.5, 0.75 * v**-2.5, -1.875 * v**-3.5)


def partials(x: Jet) -> dict:
    """The partial derivatives of a jet, keyed as :func:`.loss.observation_loss` keys them."""
    names = {"l": (0, 0), "f": (1, 0), "r": (0, 1), "ff": (2, 0), "fr": (1, 1), "rr": (0, 2)}
    names.update({"fff": (3, 0), "ffr": (2, 1), "frr": (1, 2), "rrr": (0, 3)})
    return {key: x.coef[(i, j)] * factorial(i) * factorial(j) for key, (i, j) in names.items()}
