"""NONMEM role vocabulary and the mapping of roles onto dataset columns.

A dataset column plays a *role* (``ID``, ``TIME``, ``DV``, ...) when its name is the
role's name, compared case-insensitively, or when a model file's ``[columns]`` table maps
the role onto it (``ID = "Subject"``). Every other column is a covariate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import SpecError

__all__ = [
    "ROLES",
    "REQUIRED",
    "DEFAULTS",
    "RESERVED",
    "COMPARTMENTS",
    "ColumnResolution",
    "normalise_mapping",
    "resolve_columns",
    "column_label",
]

#: Every role, by NONMEM name, in the order of ``Dataset.table``.
ROLES: tuple[str, ...] = (
    "ID",
    "TIME",
    "DV",
    "AMT",
    "EVID",
    "MDV",
    "CMT",
    "RATE",
    "II",
    "ADDL",
    "SS",
    "BLQ",
    "LLOQ",
    "OCC",
    "DVID",
)

#: Roles that every dataset must have.
REQUIRED: tuple[str, ...] = ("ID", "TIME", "DV", "AMT")

#: Value of an optional role when its column is absent or its field is missing.
#: ``CMT`` stays missing (NaN): the default compartment depends on the structural model.
DEFAULTS: dict[str, float] = {
    "AMT": 0.0,
    "RATE": 0.0,
    "II": 0.0,
    "ADDL": 0.0,
    "SS": 0.0,
    "BLQ": 0.0,
    "LLOQ": float("nan"),
    "CMT": float("nan"),
    "OCC": float("nan"),
    "DVID": float("nan"),
}

#: Column names that ``Dataset.table`` adds; input columns of these names are not covariates.
RESERVED: tuple[str, ...] = ("ROW", "SUBJECT")

#: Compartments of each structural model, in NONMEM ADVAN numbering.
COMPARTMENTS: dict[str, dict[int, str]] = {
    "one_compartment_iv": {1: "central"},
    "one_compartment_oral": {1: "depot", 2: "central"},
    "two_compartment_iv": {1: "central", 2: "peripheral"},
    "two_compartment_oral": {1: "depot", 2: "central", 3: "peripheral"},
    "three_compartment_iv": {1: "central", 2: "peripheral", 3: "peripheral"},
    "three_compartment_oral": {1: "depot", 2: "central", 3: "peripheral", 4: "peripheral"},
}


@dataclass
class ColumnResolution:
    """The outcome of matching dataset columns to roles.

    Attributes
    ----------
    roles : dict of str to str
        Role -> actual dataset column name, for every role found.
    covariates : tuple of str
        Columns that play no role, in dataset order.
    ignored : tuple of str
        Columns named like a role (or like a reserved column) that do not play it,
        because ``[columns]`` maps that role elsewhere. They are kept in
        ``Dataset.original`` only.
    problems : list of dict
        Violations (``check``, ``column``, ``rows``, ``message``) found while matching.
    """

    roles: dict[str, str]
    covariates: tuple[str, ...]
    ignored: tuple[str, ...]
    problems: list[dict] = field(default_factory=list)


def normalise_mapping(columns: Mapping[str, str] | None) -> dict[str, str]:
    """Check a ``[columns]`` table and return it with upper-case role keys.

    Parameters
    ----------
    columns : mapping of str to str, optional
        Role -> dataset column name, e.g. ``{"ID": "Subject"}``. Role keys are matched
        case-insensitively.

    Returns
    -------
    dict of str to str
        The mapping with canonical role names as keys.

    Raises
    ------
    SpecError
        If a key is not a role, a value is not a non-empty string, or two roles are
        mapped onto the same column.
    """
    if columns is None:
        return {}
    if not isinstance(columns, Mapping):
        raise SpecError(
            f"must be a table of role = column name, got {type(columns).__name__}",
            key="columns",
        )
    result: dict[str, str] = {}
    for key, value in columns.items():
        role = str(key).strip().upper()
        if role not in ROLES:
            raise SpecError(f"unknown role {key!r}", key=f"columns.{key}", valid=ROLES)
        if role in result:
            raise SpecError(f"role {role} is mapped twice", key=f"columns.{key}")
        if not isinstance(value, str) or not value.strip():
            raise SpecError(
                f"must be the name of a dataset column (a non-empty string), got {value!r}",
                key=f"columns.{key}",
            )
        result[role] = value.strip()
    seen: dict[str, str] = {}
    for role, name in result.items():
        if name.lower() in seen:
            raise SpecError(
                f"column {name!r} is mapped to both {seen[name.lower()]} and {role}",
                key=f"columns.{role}",
            )
        seen[name.lower()] = role
    return result


def _find(names: Sequence[str], wanted: str) -> list[str]:
    """Columns of ``names`` equal to ``wanted``: the exact match, else case-insensitive ones."""
    if wanted in names:
        return [wanted]
    return [n for n in names if n.lower() == wanted.lower()]


def resolve_columns(names: Sequence[str], mapping: Mapping[str, str] | None = None) -> ColumnResolution:
    """Match dataset column names to roles.

    Parameters
    ----------
    names : sequence of str
        The dataset's column names, in order.
    mapping : mapping of str to str, optional
        The ``[columns]`` table (role -> column name), already normalised or not.

    Returns
    -------
    ColumnResolution
        Roles found, covariates, ignored columns and any problems: a mapped or required
        column that is missing (the message lists the columns found), or a role that
        matches several columns.

    Raises
    ------
    SpecError
        If ``mapping`` itself is not valid (see :func:`normalise_mapping`).
    """
    mapping = normalise_mapping(mapping)
    names = [str(n) for n in names]
    found = ", ".join(repr(n) for n in names)
    roles: dict[str, str] = {}
    problems: list[dict] = []
    for role in ROLES:
        wanted = mapping.get(role, role)
        matches = _find(names, wanted)
        if len(matches) == 1 and matches[0] in roles.values():
            other = next(r for r, n in roles.items() if n == matches[0])
            problems.append(_problem("columns", matches[0], f"column {matches[0]!r} cannot be both {other} and {role}"))
        elif len(matches) == 1:
            roles[role] = matches[0]
        elif len(matches) > 1:
            listed = ", ".join(repr(m) for m in matches)
            problems.append(
                _problem(
                    "columns",
                    wanted,
                    f"role {role} matches several columns ({listed}); rename all but one",
                )
            )
        elif role in mapping:
            problems.append(
                _problem(
                    "columns",
                    wanted,
                    f"column {wanted!r} (mapped to {role} by [columns]) is missing; columns found: {found}",
                )
            )
        elif role in REQUIRED:
            problems.append(
                _problem(
                    "columns",
                    role,
                    f"required column {role!r} is missing; columns found: {found}"
                    + (f' (map it with [columns], e.g. {role} = "...")' if names else ""),
                )
            )
    used = set(roles.values())
    shadow = {r.lower() for r in ROLES} | {r.lower() for r in RESERVED}
    covariates = tuple(n for n in names if n not in used and n.lower() not in shadow)
    ignored = tuple(n for n in names if n not in used and n.lower() in shadow)
    return ColumnResolution(roles, covariates, ignored, problems)


def column_label(role: str, name: str | None) -> str:
    """Name a column in a message: ``column 'TIME'``, or ``column 'Time' (TIME)``.

    Parameters
    ----------
    role : str
        The role (or covariate name when ``name`` is None).
    name : str, optional
        The actual dataset column name.

    Returns
    -------
    str
        The label.
    """
    if name is None or name == role:
        return f"column {role!r}"
    return f"column {name!r} ({role})"


def _problem(check: str, column: str, message: str) -> dict:
    return {"check": check, "column": column, "rows": [], "message": message}
