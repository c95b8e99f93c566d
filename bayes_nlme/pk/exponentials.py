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
finite and smooth there. :func:`phi1` is a single scalar op (:class:`ExpMoment`) whose
derivatives are again such ops, so there is no switch and no removable singularity
in any gradient; its series branch near 0 plays the role of the "double where".
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytensor.tensor as pt
from pytensor.scalar.basic import UnaryScalarOp, upgrade_to_float
from pytensor.tensor.elemwise import Elemwise

__all__ = ["phi1", "exp_moment", "ExpMoment", "register_jax", "Divided", "PlainRate", "DividedRate", "ordered"]

#: Below this ``|x|``, :class:`ExpMoment` sums its power series (21 terms).
SERIES_BOUND = 1.0
_SERIES_TERMS = 21


def _exp_moment_py(order: int, x: float) -> float:
    """Reference implementation of ``I_order(x)`` (see :class:`ExpMoment`)."""
    x = float(x)
    if abs(x) < SERIES_BOUND:
        total, term = 0.0, 1.0
        for k in range(_SERIES_TERMS):
            total += term / (order + k + 1)
            term *= -x / (k + 1)
        return total
    value = -math.expm1(-x) / x
    ex = math.exp(-x)
    for m in range(1, order + 1):
        value = (m * value - ex) / x
    return value


_C_SUPPORT = """
#ifndef BAYES_NLME_EXP_MOMENT
#define BAYES_NLME_EXP_MOMENT
static double bayes_nlme_exp_moment(int order, double x) {
    if (fabs(x) < %(bound)r) {
        double total = 0.0, term = 1.0;
        for (int k = 0; k < %(terms)d; ++k) {
            total += term / (order + k + 1);
            term *= -x / (k + 1);
        }
        return total;
    }
    double value = -expm1(-x) / x;
    double ex = exp(-x);
    for (int m = 1; m <= order; ++m) {
        value = (m * value - ex) / x;
    }
    return value;
}
#endif
""" % {"bound": SERIES_BOUND, "terms": _SERIES_TERMS}


class ExpMoment(UnaryScalarOp):
    """Scalar op ``I_n(x) = integral_0^1 s**n exp(-x s) ds`` (``I_0 = phi1``).

    ``I_0(x) = (1 - exp(-x)) / x`` and ``d I_n / dx = -I_{n+1}``, so every derivative
    is again an :class:`ExpMoment` and gradients of any order stay exact and finite,
    also at ``x = 0``. For ``|x| < 1`` the power series ``sum_k (-x)**k / (k! (n+k+1))``
    (21 terms, truncation < 1e-20) is summed; elsewhere ``I_0 = -expm1(-x)/x`` and the
    recurrence ``I_m = (m I_{m-1} - exp(-x)) / x``, which is stable for ``|x| >= 1``
    and the small orders that derivatives need.

    One node replaces a "double-where" series/direct construction, which keeps the
    graphs of :mod:`bayes_nlme.pk` (and their compilation) small. Implemented for
    Python, C, Numba and JAX (:func:`register_jax`).

    Parameters
    ----------
    order : int
        ``n >= 0``.
    """

    nfunc_spec = None

    def __init__(self, order: int = 0):
        super().__init__(upgrade_to_float, name=f"exp_moment{order}")
        self.order = int(order)

    def __eq__(self, other):
        return type(self) is type(other) and self.order == other.order

    def __hash__(self):
        return hash((type(self), self.order))

    def impl(self, x):
        return np.float64(_exp_moment_py(self.order, x))

    def pullback(self, inputs, outputs, output_gradients):
        (x,) = inputs
        (gz,) = output_gradients
        return [-gz * ExpMoment(self.order + 1)(x)]

    def c_support_code(self, **kwargs):
        return _C_SUPPORT

    def c_code(self, node, name, inputs, outputs, sub):
        (x,) = inputs
        (z,) = outputs
        if node.inputs[0].type.dtype != "float64":
            raise NotImplementedError("ExpMoment: float64 only")
        return f"{z} = bayes_nlme_exp_moment({self.order}, {x});"

    def c_code_cache_version(self):
        return (1, _SERIES_TERMS)


def _register_numba():
    try:
        import numba
        from pytensor.link.numba.dispatch.scalar import register_scalar_funcify, scalar_op_cache_key
    except ImportError:  # pragma: no cover - numba backend unavailable
        return

    @register_scalar_funcify(ExpMoment)
    def numba_funcify_exp_moment(op, node, **kwargs):
        order, bound, terms = op.order, SERIES_BOUND, _SERIES_TERMS

        @numba.njit(cache=False)
        def exp_moment(x):
            if abs(x) < bound:
                total, term = 0.0, 1.0
                for k in range(terms):
                    total += term / (order + k + 1)
                    term *= -x / (k + 1)
                return total
            value = -math.expm1(-x) / x
            ex = math.exp(-x)
            for m in range(1, order + 1):
                value = (m * value - ex) / x
            return value

        return exp_moment, scalar_op_cache_key(op, order=order, version=1)


_register_numba()


def _jax_exp_moment(order: int):
    """The JAX function ``x -> I_order(x)`` (elementwise), with ``d/dx I_n = -I_{n+1}``.

    Same algorithm as :func:`_exp_moment_py`: the series for ``|x| < SERIES_BOUND``,
    the recurrence elsewhere, chosen by ``jnp.where``. Each branch is fed a safe
    argument where it is not selected (the "double where": 0 to the series, the bound
    to the recurrence), so neither produces ``inf``/``nan`` there, and the derivative is
    the exact relation ``-I_{n+1}`` (a ``jax.custom_jvp``), so ``jax.grad`` and
    higher derivatives stay finite and accurate, also at ``x = 0``. Needs jax.
    """
    order = int(order)
    if order < 0:
        raise ValueError(f"ExpMoment order must be >= 0, got {order}")
    cached = _JAX_FUNCS.get(order)
    if cached is not None:
        return cached

    import jax
    import jax.numpy as jnp

    bound, terms = SERIES_BOUND, _SERIES_TERMS

    @jax.custom_jvp
    def exp_moment_jax(x):
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.result_type(float))
        small = jnp.abs(x) < bound
        xs = jnp.where(small, x, jnp.zeros_like(x))
        total = jnp.zeros_like(x)
        term = jnp.ones_like(x)
        for k in range(terms):
            total = total + term / (order + k + 1)
            term = term * (-xs / (k + 1))
        xr = jnp.where(small, jnp.full_like(x, bound), x)
        value = -jnp.expm1(-xr) / xr
        ex = jnp.exp(-xr)
        for m in range(1, order + 1):
            value = (m * value - ex) / xr
        return jnp.where(small, total, value)

    @exp_moment_jax.defjvp
    def _jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        return exp_moment_jax(x), -_jax_exp_moment(order + 1)(x) * dx

    _JAX_FUNCS[order] = exp_moment_jax
    return exp_moment_jax


_JAX_FUNCS: dict = {}
_JAX_REGISTERED = False


def register_jax() -> bool:
    """Register the JAX implementation of :class:`ExpMoment` with PyTensor's JAX backend.

    Called by :func:`bayes_nlme.fit.sample` for the numpyro and blackjax samplers (and
    at import when PyTensor's JAX backend is already loaded); call it before compiling
    a model with ``mode="JAX"`` (or ``pm.sample(nuts_sampler="numpyro")``) yourself.
    Importing the JAX backend takes seconds, so it is not done at import.

    Returns
    -------
    bool
        False when jax is not installed.
    """
    global _JAX_REGISTERED
    if _JAX_REGISTERED:
        return True
    try:
        from pytensor.link.jax.dispatch import jax_funcify
    except ImportError:  # jax not installed
        return False

    @jax_funcify.register(ExpMoment)
    def jax_funcify_exp_moment(op, node=None, **kwargs):
        return _jax_exp_moment(op.order)

    _JAX_REGISTERED = True
    return True


if "pytensor.link.jax.dispatch" in sys.modules:  # pragma: no cover - depends on import order
    register_jax()

_ELEMWISE: dict[int, Elemwise] = {}


def exp_moment(order: int, x):
    """Elementwise :class:`ExpMoment` of order ``order``.

    Parameters
    ----------
    order : int
    x : tensor-like

    Returns
    -------
    TensorVariable
    """
    if order not in _ELEMWISE:
        _ELEMWISE[order] = Elemwise(ExpMoment(order), name=f"exp_moment{order}")
    return _ELEMWISE[order](pt.as_tensor_variable(x))


def phi1(x):
    """``phi1(x) = (1 - exp(-x)) / x`` with ``phi1(0) = 1``: :class:`ExpMoment` of order 0.

    Parameters
    ----------
    x : tensor-like

    Returns
    -------
    TensorVariable
        Same shape as ``x``; value and derivatives of every order are accurate and
        finite for every real ``x`` (not too negative for ``exp(-x)`` to overflow).
    """
    return exp_moment(0, x)


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
