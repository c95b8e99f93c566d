"""Safe arithmetic expressions of ODE models: parsing, derivatives and Numba source.

An expression of a model file (CONTRACT 5.4) is parsed with :mod:`ast` and only the
whitelisted constructs are accepted: numbers, names, ``+ - * /``, ``^`` or ``**``,
parentheses and the functions ``exp log sqrt abs min max``. Nothing of the user's text
is ever evaluated. The result is a small expression tree of tuples:

``("num", value)``, ``("sym", name)``, ``("add", a, b)``, ``("sub", a, b)``,
``("mul", a, b)``, ``("div", a, b)``, ``("pow", a, b)``, ``("neg", a)``,
``("call", fname, a)``, ``("less", a, b, x, y)`` (``x if a < b else y``).

:func:`derivative` differentiates a tree symbolically (with light constant folding) and
:func:`to_source` prints it as a Numba-compatible Python expression.

(SymPy is not a dependency of the package; this module covers the small grammar of the
contract.)
"""

from __future__ import annotations

import ast
import math

from ._validate import fail

__all__ = ["FUNCTIONS", "parse_expression", "names_in", "derivative", "substitute", "to_source"]

#: Functions an expression may call, with their number of arguments.
FUNCTIONS = {"exp": 1, "log": 1, "sqrt": 1, "abs": 1, "min": 2, "max": 2}

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}


def parse_expression(text: str, key: str, known=None):
    """Parse an expression into a tree.

    Parameters
    ----------
    text : str
        The expression (``^`` is a power, as in rxode2).
    key : str
        The model-file key, for error messages.
    known : collection of str, optional
        The names the expression may use; another name is an error that lists them.

    Returns
    -------
    tuple
        The expression tree (module docstring).

    Raises
    ------
    SpecError
        For a syntax error, a construct outside the grammar or an unknown name.
    """
    if not isinstance(text, str) or not text.strip():
        fail(f"expected an expression (a string), got {text!r}", key)
    # ``^`` is a power (rxode2, R): written as ``**`` so that it binds like one (Python's
    # ``^`` would bind looser than ``*`` and ``-``)
    try:
        node = ast.parse(text.strip().replace("^", "**"), mode="eval").body
    except SyntaxError as exc:
        fail(f"cannot parse the expression {text.strip()!r} ({exc.msg})", key)
    return _convert(node, text.strip(), key, known)


def _convert(node, text, key, known):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return ("num", float(node.value))
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            fail(f"the function {node.id!r} needs arguments in {text!r}", key)
        if known is not None and node.id not in known:
            fail(f"unknown name {node.id!r} in {text!r}", key, sorted(known))
        return ("sym", node.id)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return (_BINOPS[type(node.op)], _convert(node.left, text, key, known), _convert(node.right, text, key, known))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _convert(node.operand, text, key, known)
        return ("neg", inner) if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        name = node.func.id
        if node.keywords or len(node.args) != FUNCTIONS[name]:
            fail(f"{name}() takes {FUNCTIONS[name]} argument(s) in {text!r}", key)
        args = [_convert(a, text, key, known) for a in node.args]
        if name == "min":
            return ("less", args[0], args[1], args[0], args[1])
        if name == "max":
            return ("less", args[0], args[1], args[1], args[0])
        return ("call", name, args[0])
    if isinstance(node, ast.Call):
        what = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
        fail(f"unknown function {what!r} in {text!r}", key, sorted(FUNCTIONS))
    fail(
        f"{ast.unparse(node)!r} is not allowed in an expression ({text!r}): use numbers, names, "
        "+ - * / ^, parentheses and exp log sqrt abs min max",
        key,
    )


def names_in(tree) -> set:
    """The names (symbols) an expression tree uses."""
    kind = tree[0]
    if kind == "sym":
        return {tree[1]}
    if kind == "num":
        return set()
    out: set = set()
    for child in tree[1:]:
        if isinstance(child, tuple):
            out |= names_in(child)
    return out


def substitute(tree, values: dict):
    """Replace the symbols named in ``values`` by their trees."""
    kind = tree[0]
    if kind == "sym":
        return values.get(tree[1], tree)
    if kind == "num":
        return tree
    return (kind,) + tuple(substitute(c, values) if isinstance(c, tuple) else c for c in tree[1:])


_ZERO, _ONE = ("num", 0.0), ("num", 1.0)


def _num(tree):
    return tree[1] if tree[0] == "num" else None


def _add(a, b):
    if _num(a) == 0.0:
        return b
    if _num(b) == 0.0:
        return a
    if _num(a) is not None and _num(b) is not None:
        return ("num", a[1] + b[1])
    return ("add", a, b)


def _sub(a, b):
    if _num(b) == 0.0:
        return a
    if _num(a) == 0.0:
        return _neg(b)
    if _num(a) is not None and _num(b) is not None:
        return ("num", a[1] - b[1])
    return ("sub", a, b)


def _neg(a):
    if _num(a) is not None:
        return ("num", -a[1])
    return ("neg", a)


def _mul(a, b):
    if _num(a) == 0.0 or _num(b) == 0.0:
        return _ZERO
    if _num(a) == 1.0:
        return b
    if _num(b) == 1.0:
        return a
    if _num(a) is not None and _num(b) is not None:
        return ("num", a[1] * b[1])
    return ("mul", a, b)


def _div(a, b):
    if _num(a) == 0.0:
        return _ZERO
    if _num(b) == 1.0:
        return a
    return ("div", a, b)


def derivative(tree, name: str):
    """Symbolic derivative of a tree with respect to the symbol ``name``.

    Parameters
    ----------
    tree : tuple
    name : str

    Returns
    -------
    tuple
        The derivative's tree (``("num", 0.0)`` when it does not depend on ``name``).
    """
    kind = tree[0]
    if kind == "num":
        return _ZERO
    if kind == "sym":
        return _ONE if tree[1] == name else _ZERO
    if name not in names_in(tree):
        return _ZERO
    if kind == "less":
        return ("less", tree[1], tree[2], derivative(tree[3], name), derivative(tree[4], name))
    if kind == "neg":
        return _neg(derivative(tree[1], name))
    if kind == "call":
        a = tree[2]
        da = derivative(a, name)
        fn = tree[1]
        if fn == "exp":
            return _mul(tree, da)
        if fn == "log":
            return _div(da, a)
        if fn == "sqrt":
            return _div(da, _mul(("num", 2.0), tree))
        return _mul(("call", "sign", a), da)  # abs
    a, b = tree[1], tree[2]
    da, db = derivative(a, name), derivative(b, name)
    if kind == "add":
        return _add(da, db)
    if kind == "sub":
        return _sub(da, db)
    if kind == "mul":
        return _add(_mul(da, b), _mul(a, db))
    if kind == "div":
        return _div(_sub(_mul(da, b), _mul(a, db)), _mul(b, b))
    # pow
    if _num(b) is not None:
        return _mul(_mul(b, ("pow", a, ("num", b[1] - 1.0))), da)
    return _mul(tree, _add(_mul(db, ("call", "log", a)), _div(_mul(b, da), a)))


_FUNC_SOURCE = {"exp": "np.exp", "log": "np.log", "sqrt": "np.sqrt", "abs": "abs", "sign": "np.sign"}
_OPS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}


def to_source(tree, names: dict) -> str:
    """Print a tree as a Python expression (fully parenthesised).

    Parameters
    ----------
    tree : tuple
    names : dict
        Symbol -> source text (e.g. ``"CL" -> "p[1]"``).

    Returns
    -------
    str
    """
    kind = tree[0]
    if kind == "num":
        value = tree[1]
        return repr(value) if math.isfinite(value) else f"np.float64({str(value)!r})"
    if kind == "sym":
        return names[tree[1]]
    if kind == "neg":
        return f"(-{to_source(tree[1], names)})"
    if kind == "call":
        return f"{_FUNC_SOURCE[tree[1]]}({to_source(tree[2], names)})"
    if kind == "less":
        a, b, x, y = (to_source(c, names) for c in tree[1:])
        return f"({x} if {a} < {b} else {y})"
    return f"({to_source(tree[1], names)} {_OPS[kind]} {to_source(tree[2], names)})"
