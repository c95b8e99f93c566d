"""Models defined by differential equations: the ``[ode]`` and ``[outputs]`` tables
(CONTRACT 5.4).

:class:`OdeSpec` and :class:`Output` are frozen dataclasses equal to the tables;
:func:`ode_system` checks them against the declared parameters and returns the parsed
:class:`OdeSystem` (right-hand sides with the intermediates substituted, initial
values, outputs), from which :mod:`bayes_nlme.core.odegen` generates compiled code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ._validate import as_number, as_string, describe, fail
from .expression import FUNCTIONS, names_in, parse_expression, substitute

__all__ = ["OdeSpec", "Output", "OdeSystem", "SOLVERS", "ODE_KEYS", "OUTPUT_KEYS", "ode_system"]

#: Choices of ``[ode] solver``.
SOLVERS = ("auto", "nonstiff", "stiff")
#: Keys of the ``[ode]`` table.
ODE_KEYS = ("compartments", "equations", "initial", "bioavailability", "lag", "solver", "rtol", "atol")
#: Keys of an ``[outputs]`` entry.
OUTPUT_KEYS = ("expression", "id")
_RESERVED = set(FUNCTIONS) | {"t", "sign", "np", "p", "a", "r", "out"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DERIV = re.compile(r"^d\s*/\s*dt\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*=(.*)$")
_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")


def _name_map(value, key: str) -> dict:
    if not isinstance(value, Mapping):
        fail(f"expected a table of compartment = string, got {describe(value)}", key)
    return {str(k): as_string(v, f"{key}.{k}") for k, v in value.items()}


@dataclass(frozen=True)
class OdeSpec:
    """The ``[ode]`` table.

    Parameters
    ----------
    compartments : tuple of str
        State names; a dose with ``CMT = n`` enters the n-th.
    equations : str
        rxode2-style lines: ``d/dt(X) = expr`` once per compartment, ``name = expr``
        intermediates, ``#`` comments.
    initial : dict
        Compartment -> expression of the parameters (default 0).
    bioavailability, lag : dict
        Compartment -> parameter name (a dose into that compartment is scaled/delayed).
    solver : {"auto", "nonstiff", "stiff"}
    rtol, atol : float
        Local error tolerances of the integrator.
    """

    compartments: tuple
    equations: str
    initial: dict = field(default_factory=dict, hash=False)
    bioavailability: dict = field(default_factory=dict, hash=False)
    lag: dict = field(default_factory=dict, hash=False)
    solver: str = "auto"
    rtol: float = 1e-7
    atol: float = 1e-11

    def __post_init__(self) -> None:
        comps = self.compartments
        if isinstance(comps, (str, bytes)) or not isinstance(comps, Sequence) or not comps:
            fail(f"expected a non-empty list of compartment names, got {describe(comps)}", "compartments")
        comps = tuple(as_string(c, "compartments") for c in comps)
        for c in comps:
            if not _IDENT.match(c) or c in _RESERVED:
                fail(
                    f"{c!r} is not a valid compartment name (letters, digits, _; not {sorted(_RESERVED)})",
                    "compartments",
                )
        if len(set(comps)) != len(comps):
            fail("a compartment is listed twice", "compartments", comps)
        object.__setattr__(self, "compartments", comps)
        as_string(self.equations, "equations")
        for name in ("initial", "bioavailability", "lag"):
            mapping = _name_map(getattr(self, name), name)
            for c in mapping:
                if c not in comps:
                    fail(f"unknown compartment {c!r}", f"{name}.{c}", comps)
            object.__setattr__(self, name, mapping)
        if self.solver not in SOLVERS:
            fail(f"unknown solver {self.solver!r}", "solver", SOLVERS)
        for name in ("rtol", "atol"):
            value = as_number(getattr(self, name), name)
            if not 0 < value < 1:
                fail(f"{name} must be in (0, 1), got {value!r}", name)
            object.__setattr__(self, name, float(value))


@dataclass(frozen=True)
class Output:
    """One ``[outputs]`` entry: a name, an expression and an optional id (DVID/CMT)."""

    name: str
    expression: str
    id: int | None = None

    def __post_init__(self) -> None:
        as_string(self.name, "outputs")
        if not _IDENT.match(self.name) or self.name in _RESERVED:
            fail(f"{self.name!r} is not a valid output name", f"outputs.{self.name}")
        as_string(self.expression, f"outputs.{self.name}.expression")
        if self.id is not None:
            if isinstance(self.id, bool) or not float(as_number(self.id, f"outputs.{self.name}.id")).is_integer():
                fail(f"expected a whole number, got {self.id!r}", f"outputs.{self.name}.id")
            object.__setattr__(self, "id", int(self.id))


@dataclass(frozen=True, eq=False)
class OdeSystem:
    """A parsed ODE model (trees of :mod:`bayes_nlme.spec.expression`).

    Attributes
    ----------
    states : tuple of str
    parameters : tuple of str
        The declared parameters, in declaration order (the engine's columns).
    rhs : tuple
        One tree per state: its derivative, intermediates substituted.
    initial : tuple
        One tree per state (``("num", 0.0)`` by default).
    outputs : tuple of (str, tree)
    bioavailability, lag : dict
        Compartment -> parameter name.
    solver, rtol, atol
        From the spec.
    """

    states: tuple
    parameters: tuple
    rhs: tuple
    initial: tuple
    outputs: tuple
    bioavailability: dict
    lag: dict
    solver: str
    rtol: float
    atol: float

    @property
    def uses_time(self) -> bool:
        """Whether the equations, initial state or outputs use the time ``t``."""
        trees = (*self.rhs, *self.initial, *(tree for _, tree in self.outputs))
        return any("t" in names_in(tree) for tree in trees)


def _statements(ode: OdeSpec, known: set, params: tuple):
    """Parse the equation lines: (derivatives by state, intermediates in order)."""
    derivs: dict = {}
    inter: dict = {}
    for number, raw in enumerate(ode.equations.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key = f"ode.equations (line {number})"
        m = _DERIV.match(line)
        if m:
            state, text = m.group(1), m.group(2)
            if state not in ode.compartments:
                fail(f"d/dt({state}): {state!r} is not a compartment", key, ode.compartments)
            if state in derivs:
                fail(f"d/dt({state}) is given twice: each compartment needs exactly one", key, ode.compartments)
            derivs[state] = parse_expression(text, key, known | set(inter))
            continue
        m = _ASSIGN.match(line)
        if not m:
            fail(f"cannot read {line!r}: expected 'd/dt(compartment) = expression' or 'name = expression'", key)
        name, text = m.group(1), m.group(2)
        if name in known or name in _RESERVED or name in inter:
            fail(
                f"{name!r} cannot be defined here: it is already a parameter, compartment, function or intermediate",
                key,
                sorted(params),
            )
        inter[name] = parse_expression(text, key, known | set(inter))
    missing = [c for c in ode.compartments if c not in derivs]
    if missing:
        fail(
            f"no d/dt line for compartment(s) {', '.join(missing)}: each compartment needs exactly one",
            "ode.equations",
            ode.compartments,
        )
    return derivs, inter


def ode_system(ode: OdeSpec, outputs: Sequence[Output], parameters: Sequence[str]) -> OdeSystem:
    """Check an ODE model against its declared parameters and parse it.

    Parameters
    ----------
    ode : OdeSpec
    outputs : sequence of Output
    parameters : sequence of str
        The declared parameter names (``[parameters.<P>]`` tables), in order.

    Returns
    -------
    OdeSystem

    Raises
    ------
    SpecError
        For an unknown name (listing the declared ones), a compartment without (or with
        two) ``d/dt`` lines, a parameter that nothing uses, an output named like a
        compartment or parameter, or a dose modifier that is not a parameter.
    """
    params = tuple(parameters)
    clash = sorted(set(params) & set(ode.compartments))
    if clash:
        fail(f"{clash[0]!r} is both a parameter and a compartment", "ode.compartments", ode.compartments)
    if "t" in params:
        fail("'t' is reserved for the time and cannot be a parameter", "parameters.t")
    known = set(params) | set(ode.compartments) | {"t"}
    derivs, inter = _statements(ode, known, params)
    expanded: dict = {}
    for name, tree in inter.items():
        expanded[name] = substitute(tree, expanded)
    used = set()
    rhs = []
    for c in ode.compartments:
        used |= names_in(derivs[c]) | set().union(*(names_in(inter[n]) for n in names_in(derivs[c]) if n in inter))
        rhs.append(substitute(derivs[c], expanded))
    initial = []
    for c in ode.compartments:
        if c in ode.initial:
            tree = parse_expression(ode.initial[c], f"ode.initial.{c}", set(params) | {"t"})
            used |= names_in(tree)
            initial.append(tree)
        else:
            initial.append(("num", 0.0))
    for table in ("bioavailability", "lag"):
        for c, name in getattr(ode, table).items():
            if name not in params:
                fail(f"unknown parameter {name!r}", f"ode.{table}.{c}", params)
            used.add(name)
    if ode.bioavailability and ode.lag and set(ode.bioavailability) != set(ode.lag):
        fail("bioavailability and lag must apply to the same compartments", "ode.lag", tuple(ode.bioavailability))
    if len(set(ode.bioavailability.values())) > 1 or len(set(ode.lag.values())) > 1:
        fail(
            "one bioavailability parameter and one lag parameter are supported (they may apply to "
            "several compartments)",
            "ode.bioavailability",
        )
    out = []
    for o in outputs:
        if o.name in known or o.name in inter:
            fail(
                f"output name {o.name!r} is already a parameter, compartment or intermediate",
                f"outputs.{o.name}",
                sorted(params),
            )
        tree = parse_expression(o.expression, f"outputs.{o.name}.expression", known | set(inter))
        used |= names_in(tree) | set().union(*(names_in(inter[n]) for n in names_in(tree) if n in inter))
        out.append((o.name, substitute(tree, expanded)))
    for tree in rhs + [t for _, t in out]:
        used |= names_in(tree)
    unused = [p for p in params if p not in used]
    if unused:
        fail(
            f"parameter {unused[0]!r} is declared but used nowhere (equations, initial, outputs, bioavailability, lag)",
            f"parameters.{unused[0]}",
            params,
        )
    return OdeSystem(
        states=ode.compartments,
        parameters=params,
        rhs=tuple(rhs),
        initial=tuple(initial),
        outputs=tuple(out),
        bioavailability=dict(ode.bioavailability),
        lag=dict(ode.lag),
        solver=ode.solver,
        rtol=ode.rtol,
        atol=ode.atol,
    )
