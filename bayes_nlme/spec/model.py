"""The model spec: frozen dataclasses equal to the TOML model file (CONTRACT section 2).

A :class:`ModelSpec` is built either by :func:`bayes_nlme.spec.load_model` from a TOML
file or directly in Python; the two routes give equal objects. Construction validates
cross-field rules and raises :class:`~bayes_nlme.errors.SpecError` naming the key.
The parts (:class:`Parameter`, :class:`Omega` ...) live in
:mod:`bayes_nlme.spec.components` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ._validate import as_string, describe, fail
from .components import (
    COEFFICIENT_PRIORS,
    COLUMN_ROLES,
    COVARIATE_EFFECTS,
    OMEGA_PRIORS,
    OMEGA_STRUCTURES,
    RESIDUAL_MODELS,
    RESIDUAL_PRIORS,
    RESIDUAL_VARIANCES,
    TYPICAL_PRIORS,
    CovariateEffect,
    Omega,
    Parameter,
    Residual,
    Sampling,
)
from .expression import names_in
from .ode import OdeSpec, Output, ode_system
from .outputs import (
    OutputResiduals,
    builtin_output_trees,
    check_output_ids,
    check_output_residuals,
)
from .priors import InverseWishart
from .structural_names import ORAL_MODELS, STRUCTURAL_PARAMETERS, valid_parameter_names

__all__ = [
    "CovariateEffect",
    "Parameter",
    "Omega",
    "Residual",
    "Sampling",
    "ModelSpec",
    "COVARIATE_EFFECTS",
    "RESIDUAL_MODELS",
    "RESIDUAL_VARIANCES",
    "OMEGA_STRUCTURES",
    "OMEGA_PRIORS",
    "TYPICAL_PRIORS",
    "COEFFICIENT_PRIORS",
    "RESIDUAL_PRIORS",
    "COLUMN_ROLES",
]


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class ModelSpec:
    """A whole model: structural model, parameters, omega, residual error.

    Parameters
    ----------
    name : str
    structural : str
        One of :data:`bayes_nlme.spec.structural_names.STRUCTURAL_PARAMETERS`.
    parameters : tuple of Parameter
        In declaration order: every parameter of the structural model, plus
        optionally ``tlag`` and ``F``.
    omega : Omega
        Must cover every parameter with IIV exactly once; its blocks are put in
        declaration order.
    residual : Residual or OutputResiduals
        One residual model; with several outputs, one per output (``[residual.<output>]``).
    columns : dict
        Role -> dataset column (the ``[columns]`` table); role keys are matched
        case-insensitively and stored upper-case.
    sampling : Sampling
    flip_flop_guard : bool or None
        Keep ``ka > CL/V`` (oral models only). ``None``: on for oral models.
    time_varying : {"locf", "nocb"}
        How covariate values between records are taken (CONTRACT 5.1): last
        observation carried forward (default) or next observation carried backward.
    saem : dict
        The optional ``[saem]`` table (settings of ``--method saem``, checked by
        :func:`bayes_nlme.estimation.saem.saem_settings`).
    ode : OdeSpec or None
        The ``[ode]`` table; required when ``structural == "ode"`` (CONTRACT 5.4).
    outputs : tuple of Output
        The ``[outputs]`` table (required for ODE models; optional for built-in models,
        whose expressions use ``C`` and the declared parameters).
    """

    name: str
    structural: str
    parameters: tuple[Parameter, ...]
    omega: Omega
    residual: Residual | OutputResiduals
    columns: dict = field(default_factory=dict, hash=False)
    sampling: Sampling = Sampling()
    flip_flop_guard: bool | None = None
    time_varying: str = "locf"
    saem: dict = field(default_factory=dict, hash=False, compare=False)
    ode: OdeSpec | None = None
    outputs: tuple = ()

    def __post_init__(self) -> None:
        if self.time_varying not in ("locf", "nocb"):
            fail(f"unknown time_varying {self.time_varying!r}", "time_varying", ("locf", "nocb"))
        as_string(self.name, "name")
        if not isinstance(self.structural, str) or self.structural not in (*STRUCTURAL_PARAMETERS, "ode"):
            fail(f"unknown structural model {self.structural!r}", "structural", tuple(STRUCTURAL_PARAMETERS) + ("ode",))
        if self.structural == "ode":
            self._check_ode()
        else:
            self._check_parameters()
        self._check_omega()
        for attr, cls in (("residual", (Residual, OutputResiduals)), ("sampling", (Sampling,))):
            if not isinstance(getattr(self, attr), cls):
                fail(f"expected a {cls[0].__name__}, got {describe(getattr(self, attr))}", attr)
        check_output_ids(self.outputs)
        _set(self, "residual", check_output_residuals(self.residual, self.outputs))
        self._check_columns()
        guard = self.flip_flop_guard
        if guard is not None and not isinstance(guard, (bool, np.bool_)):
            fail(f"expected true or false, got {describe(guard)}", "flip_flop_guard")
        if guard is not None:
            _set(self, "flip_flop_guard", bool(guard))
        if guard and self.structural not in ORAL_MODELS:
            fail(f"the flip-flop guard is for oral models, not {self.structural!r}", "flip_flop_guard", ("false",))

    def _check_parameters(self) -> None:
        params = self.parameters
        if isinstance(params, (str, bytes, Mapping)) or not isinstance(params, Sequence):
            fail(f"expected a sequence of Parameter, got {describe(params)}", "parameters")
        _set(self, "parameters", tuple(params))
        valid = valid_parameter_names(self.structural)
        outputs = self._builtin_outputs()
        if outputs:
            valid = valid + tuple(p.name for p in self.parameters if isinstance(p, Parameter) and p.name not in valid)
        seen: list[str] = []
        for p in self.parameters:
            if not isinstance(p, Parameter):
                fail(f"expected a Parameter, got {describe(p)}", "parameters")
            if p.name not in valid:
                fail(f"unknown parameter {p.name!r} for the {self.structural} model", f"parameters.{p.name}", valid)
            if p.name in seen:
                fail(f"parameter {p.name!r} is declared twice", f"parameters.{p.name}")
            seen.append(p.name)
        required = STRUCTURAL_PARAMETERS[self.structural]
        for name in required:
            if name not in seen:
                fail(
                    f"missing parameter {name!r}: the {self.structural} model needs "
                    f"[parameters.<P>] tables for each of its parameters",
                    f"parameters.{name}",
                    required,
                )

    def _builtin_outputs(self) -> tuple:
        """Check the ``[outputs]`` of a built-in model (CONTRACT 5.4): the parsed trees."""
        outputs = self.outputs
        if isinstance(outputs, Mapping) or not isinstance(outputs, Sequence):
            fail(f"expected a sequence of Output, got {describe(outputs)}", "outputs")
        _set(self, "outputs", tuple(outputs))
        if not self.outputs:
            return ()
        if any(not isinstance(o, Output) for o in self.outputs):
            fail("expected Output entries", "outputs")
        names = [o.name for o in self.outputs]
        if len(set(names)) != len(names):
            fail("an output is listed twice", "outputs", tuple(names))
        declared = [p.name for p in self.parameters if isinstance(p, Parameter)]
        trees = builtin_output_trees(self.outputs, declared, ("depot", "central", "peripheral"))
        structural = set(valid_parameter_names(self.structural))
        used = set().union(*(names_in(tree) for _, tree in trees))
        for name in declared:
            if name not in structural and name not in used:
                fail(
                    f"unknown parameter {name!r} for the {self.structural} model: it is not a parameter of "
                    "the model and no output uses it",
                    f"parameters.{name}",
                    valid_parameter_names(self.structural),
                )
        return trees

    def _check_ode(self) -> None:
        if not isinstance(self.ode, OdeSpec):
            fail("a model with structural = 'ode' needs an [ode] table", "ode", ("compartments", "equations"))
        outputs = self.outputs
        if isinstance(outputs, Mapping) or not isinstance(outputs, Sequence) or not outputs:
            fail("a model with structural = 'ode' needs an [outputs] table (name = { expression = ... })", "outputs")
        _set(self, "outputs", tuple(outputs))
        names = [o.name for o in self.outputs if isinstance(o, Output)]
        if len(names) != len(self.outputs) or len(set(names)) != len(names):
            fail("expected distinct Output entries", "outputs")
        params = self.parameters
        if isinstance(params, (str, bytes, Mapping)) or not isinstance(params, Sequence):
            fail(f"expected a sequence of Parameter, got {describe(params)}", "parameters")
        _set(self, "parameters", tuple(params))
        seen: list[str] = []
        for p in self.parameters:
            if not isinstance(p, Parameter):
                fail(f"expected a Parameter, got {describe(p)}", "parameters")
            if p.name in seen:
                fail(f"parameter {p.name!r} is declared twice", f"parameters.{p.name}")
            seen.append(p.name)
        ode_system(self.ode, self.outputs, tuple(seen))

    def _check_omega(self) -> None:
        omega = self.omega
        if not isinstance(omega, Omega):
            fail(f"expected an Omega, got {describe(omega)}", "omega")
        iiv = self.iiv_names
        centred = getattr(self.sampling, "centered", None)
        centred = centred if isinstance(centred, tuple) else ()
        for name in centred:
            if name not in iiv:
                fail(f"parameter {name!r} has no IIV, so it cannot be centred", "sampling.centered", iiv)
        for name in omega.names:
            if name not in self.parameter_names:
                fail(f"unknown parameter {name!r} in the omega structure", "omega.structure", iiv)
            if name not in iiv:
                fail(f"parameter {name!r} has no IIV (it is fixed or has iiv = false)", "omega.structure", iiv)
        missing = [n for n in iiv if n not in omega.names]
        if missing:
            fail(
                f"every parameter with IIV must be in exactly one omega block; missing: {', '.join(missing)}",
                "omega.structure",
                iiv,
            )
        order = {n: i for i, n in enumerate(iiv)}
        blocks = tuple(
            sorted((tuple(sorted(b, key=order.__getitem__)) for b in omega.blocks), key=lambda b: order[b[0]])
        )
        if blocks != omega.blocks:
            omega = replace(omega, blocks=blocks)
            _set(self, "omega", omega)
        block_of = {n: i for i, b in enumerate(blocks) for n in b}
        matrices = [("omega.initial", omega.initial)]
        if isinstance(omega.prior, InverseWishart):
            matrices.append(("omega.prior.inverse_wishart.scale", omega.prior.scale))
        for key, matrix in matrices:
            if matrix is None:
                continue
            for i, a in enumerate(iiv):
                for j, b in enumerate(iiv):
                    if block_of[a] != block_of[b] and matrix[i][j] != 0:
                        fail(
                            f"element ({a}, {b}) must be 0: {a} and {b} are in different "
                            f"omega blocks (the order is {', '.join(iiv)})",
                            key,
                        )

    def _check_columns(self) -> None:
        # Same rules as bayes_nlme.data.columns.normalise_mapping: role keys are
        # matched case-insensitively and stored upper-case.
        if not isinstance(self.columns, Mapping):
            fail(f"expected a table, got {describe(self.columns)}", "columns")
        columns: dict[str, str] = {}
        for key, column in self.columns.items():
            role = str(key).strip().upper()
            if role not in COLUMN_ROLES:
                fail(f"unknown role {key!r}", f"columns.{key}", COLUMN_ROLES)
            if role in columns:
                fail(f"role {role} is mapped twice", f"columns.{key}")
            column = as_string(column, f"columns.{key}").strip()
            if column.lower() in (c.lower() for c in columns.values()):
                fail(f"column {column!r} is mapped to two roles", f"columns.{key}")
            columns[role] = column
        _set(self, "columns", columns)

    def parameter(self, name: str) -> Parameter:
        """The parameter called ``name``."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """All structural parameter names, in declaration order."""
        return tuple(p.name for p in self.parameters)

    @property
    def estimated(self) -> tuple[Parameter, ...]:
        """The parameters with a prior on the typical value (not fixed)."""
        return tuple(p for p in self.parameters if not p.is_fixed)

    @property
    def iiv_names(self) -> tuple[str, ...]:
        """Names of the parameters with IIV, in declaration order."""
        return tuple(p.name for p in self.parameters if p.iiv and not p.is_fixed)

    @property
    def iov_names(self) -> tuple[str, ...]:
        """Names of the parameters with inter-occasion variability, in declaration order."""
        return tuple(p.name for p in self.parameters if getattr(p, "iov", None) is not None)

    @property
    def covariate_columns(self) -> tuple[str, ...]:
        """The dataset columns that covariate effects use."""
        seen: list[str] = []
        for p in self.parameters:
            for c in p.covariates:
                if c.column not in seen:
                    seen.append(c.column)
        return tuple(seen)

    @property
    def ode_system(self):
        """The parsed ODE model (:class:`~bayes_nlme.spec.ode.OdeSystem`), or ``None``."""
        if self.structural != "ode":
            return None
        cached = self.__dict__.get("_ode_system")
        if cached is None:
            cached = ode_system(self.ode, self.outputs, self.parameter_names)
            _set(self, "_ode_system", cached)
        return cached

    @property
    def output_names(self) -> tuple[str, ...]:
        """The names of the outputs (``("C",)`` for a built-in model without ``[outputs]``)."""
        return tuple(o.name for o in self.outputs) if self.outputs else ("C",)

    @property
    def n_outputs(self) -> int:
        """Number of observed outputs (1 without ``[outputs]``)."""
        return max(1, len(self.outputs))

    @property
    def output_trees(self) -> tuple:
        """The parsed output expressions ``(name, tree)`` of a built-in model with ``[outputs]``
        (empty otherwise; an ODE model's are in :attr:`ode_system`)."""
        if self.structural == "ode" or not self.outputs:
            return ()
        declared = self.parameter_names
        return builtin_output_trees(self.outputs, declared, ("depot", "central", "peripheral"))

    @property
    def uses_flip_flop_guard(self) -> bool:
        """Whether the builder keeps ``ka > CL/V``: ``flip_flop_guard``, or oral by default."""
        if self.flip_flop_guard is None:
            return self.structural in ORAL_MODELS
        return bool(self.flip_flop_guard)
