"""Parameter names of the structural models (CONTRACT section 2).

This table is the single source of the names a model file may declare. The PK
registry ``bayes_nlme.pk.models.STRUCTURAL_MODELS`` agrees with it (its tests check
that), so ``bayes_nlme.spec`` does not import ``bayes_nlme.pk``.
"""

from __future__ import annotations

__all__ = [
    "STRUCTURAL_PARAMETERS",
    "OPTIONAL_PARAMETERS",
    "ORAL_MODELS",
    "structural_names",
    "valid_parameter_names",
]

#: Required parameters of each structural model, in their canonical order.
STRUCTURAL_PARAMETERS: dict[str, tuple[str, ...]] = {
    "one_compartment_iv": ("CL", "V"),
    "one_compartment_oral": ("ka", "CL", "V"),
    "two_compartment_iv": ("CL", "V1", "Q", "V2"),
    "two_compartment_oral": ("ka", "CL", "V1", "Q", "V2"),
    "three_compartment_iv": ("CL", "V1", "Q2", "V2", "Q3", "V3"),
    "three_compartment_oral": ("ka", "CL", "V1", "Q2", "V2", "Q3", "V3"),
}

#: Parameters every model may declare: absorption lag and bioavailability.
OPTIONAL_PARAMETERS: tuple[str, ...] = ("tlag", "F")

#: Structural models with a depot (first-order absorption).
ORAL_MODELS: frozenset[str] = frozenset({"one_compartment_oral", "two_compartment_oral", "three_compartment_oral"})


def structural_names() -> tuple[str, ...]:
    """The names of the structural models.

    Returns
    -------
    tuple of str
        ``one_compartment_iv``, ``one_compartment_oral``, ``two_compartment_iv``,
        ``two_compartment_oral``.
    """
    return tuple(STRUCTURAL_PARAMETERS)


def valid_parameter_names(structural: str) -> tuple[str, ...]:
    """Every parameter name a model of this structural type may declare.

    Parameters
    ----------
    structural : str
        A key of :data:`STRUCTURAL_PARAMETERS`.

    Returns
    -------
    tuple of str
        The required names followed by :data:`OPTIONAL_PARAMETERS`.

    Raises
    ------
    KeyError
        If ``structural`` is not a known structural model.
    """
    return STRUCTURAL_PARAMETERS[structural] + OPTIONAL_PARAMETERS
