"""Exception types of bayes_nlme.

Every error that a user can cause with bad input derives from :class:`InputError`.
The command line turns an ``InputError`` into one message on stderr and exit code 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

__all__ = ["BayesNlmeError", "InputError", "DataError", "SpecError", "ArgumentError"]


class BayesNlmeError(Exception):
    """Base class of every bayes_nlme error."""


class InputError(BayesNlmeError, ValueError):
    """Bad user input: a dataset, a model file or an argument."""


class ArgumentError(InputError):
    """A bad argument of a public function or of the command line."""


class DataError(InputError):
    """A dataset that cannot be used.

    Parameters
    ----------
    message : str
        The headline, naming the file.
    violations : pandas.DataFrame, optional
        One row per problem, with the columns ``check``, ``column``, ``rows`` and
        ``message``. ``rows`` are 1-based data-row numbers as a spreadsheet shows
        them below the header (the header line is row 0).
    source : str, optional
        The file or dataset name.

    Attributes
    ----------
    violations : pandas.DataFrame
        The table of every problem found (possibly empty).
    """

    COLUMNS = ("check", "column", "rows", "message")

    def __init__(
        self,
        message: str,
        violations: pd.DataFrame | None = None,
        source: str | None = None,
    ) -> None:
        if violations is None:
            violations = pd.DataFrame(columns=list(self.COLUMNS))
        self.violations = violations.reset_index(drop=True)
        self.source = source
        self.headline = message
        super().__init__(self._render())

    def _render(self) -> str:
        if self.violations.empty:
            return self.headline
        lines = [self.headline]
        for item in self.violations.itertuples(index=False):
            lines.append(f"  - {item.message}")
        return "\n".join(lines)


def format_rows(rows: Sequence[int], limit: int = 10) -> str:
    """Format row numbers for a message: ``"rows 3, 4, 9"`` (at most ``limit`` shown)."""
    rows = [int(r) for r in rows]
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    word = "row" if len(rows) == 1 else "rows"
    return f"{word} {shown}{more}"


class SpecError(InputError):
    """A model specification (TOML file or Python object) that is not valid.

    Parameters
    ----------
    message : str
        What is wrong.
    key : str, optional
        The dotted key path, e.g. ``"parameters.CL.typical"``.
    valid : sequence of str, optional
        The valid choices, listed in the message.
    source : str, optional
        The model file.
    """

    def __init__(
        self,
        message: str,
        key: str | None = None,
        valid: Sequence[str] | None = None,
        source: str | None = None,
    ) -> None:
        self.key = key
        self.valid = tuple(valid) if valid is not None else None
        self.source = source
        parts = []
        if source:
            parts.append(f"{source}: ")
        if key:
            parts.append(f"key '{key}': ")
        parts.append(message)
        if self.valid:
            parts.append(" (valid: " + ", ".join(repr(v) for v in self.valid) + ")")
        super().__init__("".join(parts))
