"""Registry of the structural PK models (CONTRACT section 2).

Each model is described by a :class:`StructuralModel`: its parameter names, whether it
has a depot (first-order absorption), its NONMEM ADVAN number and its compartments in
ADVAN numbering (the ``CMT`` data item).

=========================  =====  =========================  ==========================
name                       ADVAN  parameters                 compartments
=========================  =====  =========================  ==========================
``one_compartment_iv``     1      CL, V                      1 central
``one_compartment_oral``   2      ka, CL, V                  1 depot, 2 central
``two_compartment_iv``     3      CL, V1, Q, V2              1 central, 2 peripheral
``two_compartment_oral``   4      ka, CL, V1, Q, V2          1 depot, 2 central,
                                                             3 peripheral
=========================  =====  =========================  ==========================

Every model may also declare ``tlag`` (absorption lag) and ``F`` (bioavailability):
see :data:`OPTIONAL_PARAMETERS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import SpecError

__all__ = [
    "StructuralModel",
    "STRUCTURAL_MODELS",
    "OPTIONAL_PARAMETERS",
    "structural_model",
    "OdeModel",
    "model_of",
]

#: Parameters that every structural model may declare.
OPTIONAL_PARAMETERS: tuple[str, ...] = ("tlag", "F")


@dataclass(frozen=True)
class StructuralModel:
    """A structural (compartmental) PK model.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"one_compartment_oral"``.
    parameters : tuple of str
        Required parameter names, in canonical order.
    oral : bool
        Whether the model has a depot compartment with first-order absorption ``ka``.
    advan : int
        The equivalent NONMEM ADVAN subroutine.
    compartments : dict of int to str
        ADVAN compartment numbers (the ``CMT`` data item) to their role:
        ``"depot"``, ``"central"`` or ``"peripheral"``.

    Attributes
    ----------
    optional : tuple of str
        The optional parameters (``tlag``, ``F``).
    n_compartments : int
        1 or 2: the number of disposition compartments (depot not counted).
    volume : str
        The name of the central volume parameter (``V`` or ``V1``).
    """

    name: str
    parameters: tuple[str, ...]
    oral: bool
    advan: int
    compartments: dict[int, str] = field(hash=False, compare=True)
    #: The observed outputs (CONTRACT 5.4): ``(name, id, tree)``; empty for a built-in
    #: model whose only output is the central concentration. A built-in model's trees
    #: use ``C`` and parameters; an ODE model's are compiled into its engine.
    outputs: tuple = field(default=(), hash=False, compare=False)

    @property
    def output_ids(self) -> tuple:
        """The outputs' ids (DVID/CMT values), in order (empty without ``[outputs]``)."""
        return tuple(o[1] for o in self.outputs)

    @property
    def optional(self) -> tuple[str, ...]:
        """The optional parameters every model may declare."""
        return OPTIONAL_PARAMETERS

    @property
    def all_parameters(self) -> tuple[str, ...]:
        """Required parameters followed by the optional ones."""
        return self.parameters + OPTIONAL_PARAMETERS

    @property
    def n_compartments(self) -> int:
        """Number of disposition compartments (1 or 2; the depot is not counted)."""
        return 1 + sum(role == "peripheral" for role in self.compartments.values())

    @property
    def volume(self) -> str:
        """Name of the central volume parameter."""
        return "V1" if self.n_compartments >= 2 else "V"

    def compartment_role(self, cmt: int) -> str | None:
        """The role of an ADVAN compartment number, or ``None`` if it is not valid.

        Parameters
        ----------
        cmt : int
            A ``CMT`` value.

        Returns
        -------
        str or None
            ``"depot"``, ``"central"``, ``"peripheral"`` or ``None``.
        """
        return self.compartments.get(int(cmt))

    @property
    def default_dose_compartment(self) -> int:
        """The compartment that receives a dose without ``CMT``: depot if oral, else central."""
        role = "depot" if self.oral else "central"
        return next(k for k, v in self.compartments.items() if v == role)


STRUCTURAL_MODELS: dict[str, StructuralModel] = {
    "one_compartment_iv": StructuralModel("one_compartment_iv", ("CL", "V"), False, 1, {1: "central"}),
    "one_compartment_oral": StructuralModel(
        "one_compartment_oral", ("ka", "CL", "V"), True, 2, {1: "depot", 2: "central"}
    ),
    "two_compartment_iv": StructuralModel(
        "two_compartment_iv", ("CL", "V1", "Q", "V2"), False, 3, {1: "central", 2: "peripheral"}
    ),
    "two_compartment_oral": StructuralModel(
        "two_compartment_oral",
        ("ka", "CL", "V1", "Q", "V2"),
        True,
        4,
        {1: "depot", 2: "central", 3: "peripheral"},
    ),
    "three_compartment_iv": StructuralModel(
        "three_compartment_iv",
        ("CL", "V1", "Q2", "V2", "Q3", "V3"),
        False,
        11,
        {1: "central", 2: "peripheral", 3: "peripheral"},
    ),
    "three_compartment_oral": StructuralModel(
        "three_compartment_oral",
        ("ka", "CL", "V1", "Q2", "V2", "Q3", "V3"),
        True,
        12,
        {1: "depot", 2: "central", 3: "peripheral", 4: "peripheral"},
    ),
}


def structural_model(name: str | StructuralModel) -> StructuralModel:
    """Look up a structural model by name.

    Parameters
    ----------
    name : str or StructuralModel
        A key of :data:`STRUCTURAL_MODELS` (a model is returned unchanged).

    Returns
    -------
    StructuralModel

    Raises
    ------
    SpecError
        With ``key="structural"`` and the valid names, if ``name`` is unknown.
    """
    if isinstance(name, StructuralModel):
        return name
    try:
        return STRUCTURAL_MODELS[name]
    except (KeyError, TypeError):
        raise SpecError(
            f"unknown structural model {name!r}",
            key="structural",
            valid=list(STRUCTURAL_MODELS),
        ) from None


@dataclass(frozen=True)
class OdeModel(StructuralModel):
    """A structural model defined by differential equations (CONTRACT 5.4).

    ``parameters`` are all declared parameters (the engine's columns, in declaration
    order); ``compartments`` maps ``CMT`` numbers to the compartment names. A dose
    without ``CMT`` enters compartment 1.

    Parameters
    ----------
    system : OdeSystem
        The parsed model (:func:`bayes_nlme.spec.ode.ode_system`).
    """

    system: object = field(default=None, hash=False, compare=False)

    is_ode = True

    @property
    def default_dose_compartment(self) -> int:
        """Compartment 1 (NONMEM's default dose compartment of ``$DES`` models)."""
        return 1

    @property
    def modified_compartments(self) -> tuple[str, ...]:
        """The compartments whose doses take the bioavailability and lag parameters."""
        return tuple(dict.fromkeys([*self.system.bioavailability, *self.system.lag]))


def model_of(spec) -> StructuralModel:
    """The structural model of a spec: a built-in model, or an :class:`OdeModel`.

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    StructuralModel
    """
    from dataclasses import replace

    ids = {o.name: o.id for o in spec.outputs}
    if spec.structural != "ode":
        base = structural_model(spec.structural)
        trees = spec.output_trees
        return replace(base, outputs=tuple((n, ids[n], t) for n, t in trees)) if trees else base
    system = spec.ode_system
    return OdeModel(
        "ode",
        tuple(system.parameters),
        False,
        13,
        {i + 1: name for i, name in enumerate(system.states)},
        outputs=tuple((n, ids[n], t) for n, t in system.outputs),
        system=system,
    )
