"""Validation helpers shared by the spec dataclasses and the TOML reader.

Every check raises :class:`~bayes_nlme.errors.SpecError` with the dotted key of the
offending value. The dataclasses only know keys relative to themselves (a prior
reports ``lognormal.sigma``); the TOML reader prefixes them with :func:`rekey`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import NoReturn

import numpy as np

from ..errors import SpecError

__all__ = [
    "spec_error",
    "fail",
    "rekey",
    "join_key",
    "describe",
    "as_number",
    "as_int",
    "as_string",
    "as_matrix",
    "check_symmetric_pd",
]


def spec_error(message, key=None, valid=None, source=None) -> SpecError:
    """A :class:`SpecError` that remembers its bare message (for :func:`rekey`)."""
    err = SpecError(message, key=key, valid=valid, source=source)
    err.detail = message
    return err


def fail(message: str, key: str | None = None, valid=None) -> NoReturn:
    """Raise a :class:`SpecError` for ``key`` listing the ``valid`` choices."""
    raise spec_error(message, key=key, valid=valid)


def join_key(prefix: str | None, key: str | None) -> str | None:
    """``prefix.key``, tolerating either part being empty."""
    if not prefix:
        return key
    if not key:
        return prefix
    return f"{prefix}.{key}"


def rekey(err: SpecError, prefix: str | None = None, source: str | None = None) -> SpecError:
    """The same error with ``prefix`` put before its key and ``source`` filled in.

    Parameters
    ----------
    err : SpecError
        An error raised by this package (other errors are returned unchanged
        except for the source, when the bare message is unknown).
    prefix : str, optional
        Dotted key of the table in which the failing object sits.
    source : str, optional
        The model file, used when ``err`` has none.
    """
    detail = getattr(err, "detail", None)
    if detail is None:
        if err.source is None and source is not None:
            return spec_error(str(err), source=source)
        return err
    return spec_error(detail, key=join_key(prefix, err.key), valid=err.valid, source=err.source or source)


def describe(value) -> str:
    """A TOML-flavoured name of the type of ``value`` for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, Real):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"


def as_number(value, key: str, *, positive: bool = False, nonnegative: bool = False) -> float:
    """Check that ``value`` is a finite real number and return it as a float.

    Parameters
    ----------
    value : object
    key : str
        Dotted key for the error message.
    positive, nonnegative : bool
        Require ``value > 0`` or ``value >= 0``.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        fail(f"expected a number, got {describe(value)} ({value!r})", key)
    number = float(value)
    if not math.isfinite(number):
        fail(f"expected a finite number, got {number!r}", key)
    if positive and number <= 0:
        fail(f"must be > 0, got {number!r}", key)
    if nonnegative and number < 0:
        fail(f"must be >= 0, got {number!r}", key)
    return number


def as_int(value, key: str, *, minimum: int = 1) -> int:
    """Check that ``value`` is an integer ``>= minimum`` (no bool, no float)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        fail(f"expected an integer, got {describe(value)} ({value!r})", key)
    if value < minimum:
        fail(f"must be an integer >= {minimum}, got {int(value)}", key)
    return int(value)


def as_string(value, key: str) -> str:
    """Check that ``value`` is a non-empty string."""
    if not isinstance(value, str):
        fail(f"expected a string, got {describe(value)} ({value!r})", key)
    if not value.strip():
        fail("must not be empty", key)
    return value


def as_matrix(value, key: str, *, dim: int | None = None) -> tuple[tuple[float, ...], ...]:
    """A square matrix from a diagonal list or a nested list, as tuples of floats.

    Parameters
    ----------
    value : sequence or array
        ``[a, b]`` (the diagonal) or ``[[a, c], [c, b]]`` (the full matrix).
    key : str
        Dotted key for the error message.
    dim : int, optional
        Required dimension.
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        fail(
            f"expected a non-empty array (the diagonal) or an array of arrays (the full matrix), got {describe(value)}",
            key,
        )
    nested = [isinstance(v, (Sequence, np.ndarray)) and not isinstance(v, str) for v in value]
    if all(nested):
        rows = [[as_number(x, f"{key}[{i}][{j}]") for j, x in enumerate(row)] for i, row in enumerate(value)]
        if any(len(row) != len(rows) for row in rows):
            fail(f"the matrix must be square, got rows of lengths {[len(r) for r in rows]}", key)
    elif not any(nested):
        diag = [as_number(x, f"{key}[{i}]") for i, x in enumerate(value)]
        rows = np.diag(diag).tolist()
    else:
        fail("mixes numbers and arrays: give the diagonal or the full matrix", key)
    if dim is not None and len(rows) != dim:
        fail(f"expected dimension {dim}, got {len(rows)}", key)
    return tuple(tuple(float(x) for x in row) for row in rows)


def check_symmetric_pd(matrix, key: str) -> None:
    """Require ``matrix`` to be symmetric and positive definite."""
    array = np.asarray(matrix, dtype=float)
    if not np.allclose(array, array.T, rtol=1e-10, atol=1e-12):
        fail("the matrix must be symmetric", key)
    try:
        np.linalg.cholesky(array)
    except np.linalg.LinAlgError:
        eig = float(np.linalg.eigvalsh(array).min())
        fail(f"the matrix must be positive definite (smallest eigenvalue {eig:.3g})", key)
