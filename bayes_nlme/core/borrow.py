"""Borrowed views of arrays for the engine's hot loops (Numba).

Every array that a compiled function receives or creates carries a reference count,
and Numba raises and lowers it (an atomic operation) at every call that passes the
array and at every view taken of it. In the engine's record loop, with its many small
calls, that bookkeeping cost more than the arithmetic. :func:`borrow` returns the same
array (data, shape, strides) without its reference count, so that passing it on costs
nothing. The caller must keep the owner alive for as long as the borrowed array is
used: the engine borrows only its own arguments, which its caller holds until it
returns.
"""

from __future__ import annotations

from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = ["borrow"]


def _borrowed(context, builder, ty, value):
    if isinstance(ty, types.Array):
        src = context.make_array(ty)(context, builder, value=value)
        dst = context.make_array(ty)(context, builder)
        for field in ("nitems", "itemsize", "data", "shape", "strides"):
            setattr(dst, field, getattr(src, field))
        dst.meminfo = cgutils.get_null_value(dst.meminfo.type)
        dst.parent = cgutils.get_null_value(dst.parent.type)
        return dst._getvalue()
    if isinstance(ty, types.BaseTuple):
        items = [_borrowed(context, builder, t, builder.extract_value(value, i)) for i, t in enumerate(ty)]
        return context.make_tuple(builder, ty, items)
    context.nrt.incref(builder, ty, value)  # anything else: a new reference, as a call returns
    return value


@intrinsic
def borrow(typingctx, value):
    """``value`` (an array, or a tuple of arrays and tuples) without reference counts.

    The result aliases ``value``'s data; it is valid while ``value``'s owner is alive.
    """

    def codegen(context, builder, signature, args):
        return _borrowed(context, builder, signature.args[0], args[0])

    return value(value), codegen
