"""Several observed outputs per subject (CONTRACT 5.4): residual tables and names.

A model with one output keeps ``[residual]`` and the canonical names ``sigma2_add`` ...;
a model with several outputs has one ``[residual.<output>]`` table per output
(:class:`OutputResiduals`) and the names ``sigma2_<output>_add`` ....
:func:`residual_parts` gives every consumer the same per-output view of both cases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from ._validate import describe, fail
from .components import RESIDUAL_VARIANCES, Residual

__all__ = [
    "OutputResiduals",
    "ResidualPart",
    "residual_parts",
    "residual_priors",
    "map_residuals",
    "residual_models",
    "variance_name",
    "BUILTIN_OUTPUT_NAMES",
]

#: Names a built-in model's output expression may use besides the declared parameters.
BUILTIN_OUTPUT_NAMES = ("C",)


def variance_name(slot: str, output: str | None = None) -> str:
    """The canonical name of a residual variance: ``sigma2_<slot>`` or ``sigma2_<output>_<slot>``."""
    return f"sigma2_{slot}" if output is None else f"sigma2_{output}_{slot}"


@dataclass(frozen=True)
class OutputResiduals:
    """The ``[residual.<output>]`` tables of a model with several outputs.

    Parameters
    ----------
    tables : tuple of (str, Residual)
        One residual model per output, in the order of the ``[outputs]`` table.
    """

    tables: tuple

    def __post_init__(self) -> None:
        tables = self.tables.items() if isinstance(self.tables, Mapping) else self.tables
        tables = tuple(tuple(item) for item in tables)
        for name, residual in tables:
            if not isinstance(residual, Residual):
                fail(f"expected a Residual, got {describe(residual)}", f"residual.{name}")
        object.__setattr__(self, "tables", tables)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The output names, in order."""
        return tuple(name for name, _ in self.tables)

    def of(self, output: str) -> Residual:
        """The residual model of one output."""
        return dict(self.tables)[output]

    @property
    def variances(self) -> tuple[str, ...]:
        """Canonical names of every residual variance (``sigma2_<output>_<slot>``)."""
        return tuple(variance_name(slot, name) for name, res in self.tables for slot in res.slots)

    @property
    def initial(self) -> dict:
        """Start values by canonical name (from each table's ``initial``)."""
        return {variance_name(slot, name): v for name, res in self.tables for slot, v in res.initial.items()}

    @property
    def blq_methods(self) -> tuple[str, ...]:
        """The distinct BLQ methods of the outputs."""
        return tuple(dict.fromkeys(res.blq for _, res in self.tables))


class ResidualPart(NamedTuple):
    """The residual model of one output.

    Attributes
    ----------
    output : str or None
        The output's name (None for a model with one output).
    index : int
        The output's position (the design's ``obs_output`` value of its rows).
    residual : Residual
    names : dict
        Slot (``add``, ``prop``, ``exp``) -> canonical variance name.
    """

    output: str | None
    index: int
    residual: Residual
    names: dict

    @property
    def label(self) -> str:
        """``residual`` or ``residual.<output>`` (the model-file table)."""
        return "residual" if self.output is None else f"residual.{self.output}"


def residual_parts(spec_or_residual) -> tuple[ResidualPart, ...]:
    """The per-output residual models of a spec (one part for a single-output model).

    Parameters
    ----------
    spec_or_residual : ModelSpec, Residual or OutputResiduals

    Returns
    -------
    tuple of ResidualPart
    """
    residual = getattr(spec_or_residual, "residual", spec_or_residual)
    if isinstance(residual, OutputResiduals):
        return tuple(
            ResidualPart(name, k, res, {slot: variance_name(slot, name) for slot in RESIDUAL_VARIANCES[res.model]})
            for k, (name, res) in enumerate(residual.tables)
        )
    return (ResidualPart(None, 0, residual, {slot: variance_name(slot) for slot in residual.slots}),)


def residual_priors(spec) -> dict:
    """Canonical variance name -> its prior (None where the table gives none)."""
    return {name: getattr(part.residual, slot) for part in residual_parts(spec) for slot, name in part.names.items()}


def residual_models(spec) -> tuple:
    """The residual model of each output (one entry for a single-output model)."""
    return tuple(part.residual.model for part in residual_parts(spec))


def map_residuals(residual, change):
    """Apply ``change`` (Residual -> Residual) to one residual table or to each output's."""
    if isinstance(residual, OutputResiduals):
        return OutputResiduals(tuple((name, change(res)) for name, res in residual.tables))
    return change(residual)


def builtin_output_trees(outputs, parameters, compartments=()) -> tuple:
    """Parse the ``[outputs]`` expressions of a built-in structural model.

    Parameters
    ----------
    outputs : sequence of Output
    parameters : sequence of str
        The declared parameters.
    compartments : sequence of str
        Names an output may not take (the model's compartment roles).

    Returns
    -------
    tuple of (str, tree)

    Raises
    ------
    SpecError
        For an output named like a parameter, ``C`` or a compartment, or an expression
        that uses another name than ``C`` and the declared parameters.
    """
    from .expression import parse_expression

    params = tuple(parameters)
    known = set(params) | set(BUILTIN_OUTPUT_NAMES)
    out = []
    for o in outputs:
        if o.name in known or o.name in set(compartments):
            fail(
                f"output name {o.name!r} is already a parameter, a compartment or the concentration C",
                f"outputs.{o.name}",
                sorted(known),
            )
        out.append((o.name, parse_expression(o.expression, f"outputs.{o.name}.expression", known)))
    return tuple(out)


def check_output_ids(outputs) -> None:
    """With several outputs, every output needs a distinct ``id`` (its DVID/CMT value).

    Raises
    ------
    SpecError
    """
    if len(outputs) < 2:
        return
    seen: dict = {}
    for o in outputs:
        if o.id is None:
            fail(
                "with several outputs each needs an id (the DVID, or CMT, of its observation rows)",
                f"outputs.{o.name}.id",
            )
        if o.id in seen:
            fail(f"id {o.id} is also the id of output {seen[o.id]!r}: ids must differ", f"outputs.{o.name}.id")
        seen[o.id] = o.name


def check_output_residuals(residual, outputs):
    """Match the residual table(s) to the outputs; returns the residual in output order.

    Raises
    ------
    SpecError
        A model with several outputs needs exactly one ``[residual.<output>]`` table per
        output; a model with one output keeps ``[residual]``.
    """
    names = tuple(o.name for o in outputs)
    if len(names) < 2:
        if isinstance(residual, OutputResiduals):
            fail(
                "a model with one output keeps a single [residual] table (model = ...), not [residual.<output>]",
                "residual",
                ("model", "add", "prop", "exp", "initial", "blq"),
            )
        return residual
    if isinstance(residual, Residual):
        fail(
            "a model with several outputs needs one [residual.<output>] table per output, "
            "not a single [residual] table",
            "residual",
            tuple(f"residual.{n}" for n in names),
        )
    if not isinstance(residual, OutputResiduals):
        fail(f"expected residual tables, got {describe(residual)}", "residual")
    given = residual.outputs
    for name in given:
        if name not in names:
            fail(
                f"[residual.{name}] does not match an output", f"residual.{name}", tuple(f"residual.{n}" for n in names)
            )
    for name in names:
        if name not in given:
            fail(f"missing the [residual.{name}] table of output {name!r}", f"residual.{name}", names)
    return OutputResiduals(tuple((n, residual.of(n)) for n in names))
