"""Numerically stable exponential helpers, in PyTensor.

The dose-response functions of :mod:`bayes_nlme.pk.superposition` are written once,
generically, as functions ``Phi(lambda)`` of a rate constant. Two *rate* objects
evaluate them:

* :class:`PlainRate` gives the value ``Phi(lambda)`` (doses into the central
  compartment);
* :class:`DividedRate` gives the divided difference ``Phi[a, b] = (Phi(b) - Phi(a)) /
  (b - a)`` of the same expression at two rate constants, by the Leibniz (product)
  rule on :class:`Divided` numbers. First-order absorption makes the central amount of
  a depot dose ``-ka * sum_k c_k Phi[lambda_k, ka]``.

The divided difference of ``exp(-lambda s)`` is ``-s exp(-a s) phi1((b - a) s)`` with
``a <= b``, where :func:`phi1` is ``(1 - exp(-x)) / x``: there is no subtraction of
nearly equal numbers and no division by ``b - a``, so ``ka == k`` (or ``ka`` equal to a
macro rate constant) needs no special case and values, gradients and Hessians stay
finite and smooth there. The only switch is inside :func:`phi1` (a Taylor polynomial
for ``|x| < 0.01``), written with the "double-where" idiom so that the unselected
branch never produces an infinity or NaN in the gradient.
"""

from __future__ import annotations

import pytensor.tensor as pt

__all__ = ["phi1", "Divided", "PlainRate", "DividedRate", "ordered"]

#: Below this ``|x|``, :func:`phi1` uses its Taylor polynomial.
PHI1_SERIES_BOUND = 1e-2
#: Terms of the Taylor polynomial: the remainder is below ``x**8 / 9! < 3e-22``.
_PHI1_TERMS = 8


def phi1(x):
    """``phi1(x) = (1 - exp(-x)) / x``, with ``phi1(0) = 1``, stable for every ``x``.

    For ``|x| < 0.01`` a Taylor polynomial ``sum_n (-x)**n / (n + 1)!`` (8 terms,
    truncation error < 3e-22, and < 1e-15 relative in the first two derivatives) is
    used; elsewhere ``-expm1(-x) / x``, whose derivatives lose at most ``eps / x**k``
    (``1e-12`` for the first, ``1e-10`` for the second derivative at the bound). The
    denominator of the unselected branch is replaced by 1 ("double where"), so
    gradients of any order stay finite.

    Parameters
    ----------
    x : tensor-like

    Returns
    -------
    TensorVariable
        Same shape as ``x``.
    """
    x = pt.as_tensor_variable(x)
    small = pt.abs(x) < PHI1_SERIES_BOUND
    x_safe = pt.switch(small, 1.0, x)
    direct = -pt.expm1(-x_safe) / x_safe
    # Horner: 1 - x/2 (1 - x/3 (1 - x/4 (...)))
    poly = pt.ones_like(x)
    for n in range(_PHI1_TERMS, 1, -1):
        poly = 1.0 - x / n * poly
    return pt.switch(small, poly, direct)


def ordered(a, b):
    """``(min(a, b), max(a, b))`` by switches (one branch each, also at ``a == b``).

    ``pt.minimum``/``pt.maximum`` would pass the full gradient to both arguments at
    a tie; a divided difference is symmetric, so either order is correct, but each
    argument must receive its gradient once.

    Parameters
    ----------
    a, b : tensor-like

    Returns
    -------
    tuple of TensorVariable
    """
    first = a <= b
    return pt.switch(first, a, b), pt.switch(first, b, a)


class Divided:
    """A function ``f`` known by ``f(a)``, ``f(b)`` and its divided difference ``f[a, b]``.

    Arithmetic follows the Leibniz rule ``(fg)[a, b] = f[a, b] g(b) + f(a) g[a, b]``,
    so an expression written with ``+ - *`` and :meth:`reciprocal` yields its divided
    difference without ever forming ``(f(b) - f(a)) / (b - a)``. Plain tensors (and
    numbers) act as constants: ``c[a, b] = 0``.

    Parameters
    ----------
    lo, hi : TensorVariable
        ``f(a)`` and ``f(b)``.
    dd : TensorVariable
        ``f[a, b]``.
    """

    __slots__ = ("lo", "hi", "dd")

    def __init__(self, lo, hi, dd):
        self.lo = lo
        self.hi = hi
        self.dd = dd

    def __add__(self, other):
        if isinstance(other, Divided):
            return Divided(self.lo + other.lo, self.hi + other.hi, self.dd + other.dd)
        return Divided(self.lo + other, self.hi + other, self.dd)

    __radd__ = __add__

    def __neg__(self):
        return Divided(-self.lo, -self.hi, -self.dd)

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if isinstance(other, Divided):
            return Divided(
                self.lo * other.lo,
                self.hi * other.hi,
                self.dd * other.hi + self.lo * other.dd,
            )
        return Divided(self.lo * other, self.hi * other, self.dd * other)

    __rmul__ = __mul__

    def reciprocal(self):
        """``1 / f``: ``(1/f)[a, b] = -f[a, b] / (f(a) f(b))``."""
        return Divided(1.0 / self.lo, 1.0 / self.hi, -self.dd / (self.lo * self.hi))


def reciprocal(f):
    """``1 / f`` for a :class:`Divided` number or a tensor."""
    if isinstance(f, Divided):
        return f.reciprocal()
    return 1.0 / f


class PlainRate:
    """Evaluate a dose-response expression at one rate constant ``lam``.

    Parameters
    ----------
    lam : TensorVariable
        Rate constants (> 0), broadcastable with the times.
    """

    def __init__(self, lam):
        self.lam = lam

    def exp_neg(self, s):
        """``exp(-lam s)``."""
        return pt.exp(-self.lam * s)

    def one_minus_exp_neg(self, s):
        """``1 - exp(-lam s)`` (by ``expm1``)."""
        return -pt.expm1(-self.lam * s)

    def inv(self):
        """``1 / lam``."""
        return 1.0 / self.lam


class DividedRate:
    """Evaluate the divided difference of an expression between rates ``a <= b``.

    Parameters
    ----------
    a, b : TensorVariable
        Rate constants with ``a <= b`` elementwise (see :func:`ordered`); ``a == b``
        is allowed and gives the derivative.
    """

    def __init__(self, a, b):
        self.a = a
        self.b = b
        self.gap = b - a

    def exp_neg(self, s):
        """``exp(-lam s)`` for ``s >= 0``: ``[a, b] = -s exp(-a s) phi1((b - a) s)``."""
        ea = pt.exp(-self.a * s)
        return Divided(ea, pt.exp(-self.b * s), -s * ea * phi1(self.gap * s))

    def one_minus_exp_neg(self, s):
        """``1 - exp(-lam s)`` for ``s >= 0``."""
        ea = pt.exp(-self.a * s)
        return Divided(
            -pt.expm1(-self.a * s), -pt.expm1(-self.b * s), s * ea * phi1(self.gap * s)
        )

    def inv(self):
        """``1 / lam``: ``[a, b] = -1 / (a b)``."""
        return Divided(1.0 / self.a, 1.0 / self.b, -1.0 / (self.a * self.b))
