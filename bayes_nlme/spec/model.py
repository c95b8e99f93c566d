"""The model spec: frozen dataclasses equal to the TOML model file (CONTRACT section 2).

A :class:`ModelSpec` is built either by :func:`bayes_nlme.spec.load_model` from a TOML
file or directly in Python; the two routes give equal objects. Construction validates
cross-field rules and raises :class:`~bayes_nlme.errors.SpecError` naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .priors import Prior

__all__ = [
    "CovariateEffect",
    "Parameter",
    "Omega",
    "Residual",
    "Sampling",
    "ModelSpec",
    "COVARIATE_EFFECTS",
    "RESIDUAL_MODELS",
]

COVARIATE_EFFECTS = ("power", "linear", "exponential")
RESIDUAL_MODELS = ("additive", "proportional", "combined", "exponential")


@dataclass(frozen=True)
class CovariateEffect:
    """A covariate effect that multiplies a typical value.

    Parameters
    ----------
    column : str
        Dataset column of the covariate.
    effect : {"power", "linear", "exponential"}
        ``power``: ``(x/reference)**exponent``; ``linear``: ``1 + beta*(x - reference)``;
        ``exponential``: ``exp(beta*(x - reference))``.
    reference : float
        Reference covariate value.
    coefficient : float or Prior
        The exponent (``power``) or ``beta`` (other effects): a number fixes it, a
        :class:`~bayes_nlme.spec.priors.Normal` (or other) prior estimates it. Its
        canonical name is ``beta_<P>_<COLUMN>``.
    """

    column: str
    effect: Literal["power", "linear", "exponential"]
    reference: float
    coefficient: float | Prior

    @property
    def estimated(self) -> bool:
        """True when the coefficient has a prior."""
        return isinstance(self.coefficient, Prior)


@dataclass(frozen=True)
class Parameter:
    """One structural parameter (``ka``, ``CL``, ``V``, ``tlag``, ``F`` ...).

    Exactly one of ``typical`` (a prior on the typical value, normally
    :class:`~bayes_nlme.spec.priors.LogNormal`) and ``fixed`` is given.
    ``P_i = theta_P * prod(covariate factors) * exp(eta_P,i)`` when ``iiv``.

    Parameters
    ----------
    name : str
    typical : Prior, optional
    fixed : float, optional
        A fixed value: no prior, no IIV.
    iiv : bool
        Between-subject variability (default True; False when ``fixed``).
    initial : float, optional
        Start value for the frequentist path.
    covariates : tuple of CovariateEffect
    """

    name: str
    typical: Prior | None = None
    fixed: float | None = None
    iiv: bool = True
    initial: float | None = None
    covariates: tuple[CovariateEffect, ...] = ()

    @property
    def is_fixed(self) -> bool:
        """True when the parameter is fixed (no prior, no IIV)."""
        return self.fixed is not None


@dataclass(frozen=True)
class Omega:
    """Between-subject covariance of the etas.

    Parameters
    ----------
    blocks : tuple of tuple of str
        The block structure, as parameter names in declaration order. ``diagonal``
        is one 1x1 block per IIV parameter; ``full`` is one block of all.
    prior : Prior or None
        For ``diagonal``: an :class:`InverseGamma` applied to every variance, or an
        :class:`InverseWishart` whose diagonal gives each 1x1 block. For blocks: an
        :class:`InverseWishart` over all IIV parameters (the sub-matrix of its scale
        gives each block's scale) or an :class:`LKJ`. ``None`` means the default
        weakly informative prior chosen by the builder.
    structure : str
        ``"diagonal"``, ``"full"`` or ``"block"`` (as written in the file).
    initial : tuple of tuple of float, optional
        Start value of the whole omega matrix (IIV parameters in declaration order)
        for the frequentist path; from ``[omega] initial`` (a diagonal list or a
        nested list). ``None``: the builder's default (0.1 on the diagonal).
    """

    blocks: tuple[tuple[str, ...], ...]
    prior: Prior | None = None
    structure: str = "diagonal"
    initial: tuple[tuple[float, ...], ...] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """All IIV parameter names, in declaration order."""
        return tuple(name for block in self.blocks for name in block)


@dataclass(frozen=True)
class Residual:
    """Residual error model.

    ``additive``: ``y = f + eps``, Var = ``sigma2_add``; ``proportional``: Var =
    ``sigma2_prop * f**2``; ``combined``: Var = ``sigma2_add + sigma2_prop * f**2``;
    ``exponential``: ``log(y) = log(f) + eps``, Var = ``sigma2_exp``.

    Parameters
    ----------
    model : str
    add, prop, exp : Prior, optional
        Priors on ``sigma2_add``, ``sigma2_prop`` and ``sigma2_exp`` (normally
        :class:`InverseGamma`). The Bayesian path requires the ones its model uses.
    initial : dict
        Frequentist start values, ``{"add": 0.5}`` (keys ``add``, ``prop``, ``exp``),
        from ``[residual] initial = { add = 0.5 }``.
    """

    model: Literal["additive", "proportional", "combined", "exponential"]
    add: Prior | None = None
    prop: Prior | None = None
    exp: Prior | None = None
    initial: dict = field(default_factory=dict, hash=False, compare=True)

    @property
    def variances(self) -> tuple[str, ...]:
        """Canonical names of the residual variances of this model."""
        return {
            "additive": ("sigma2_add",),
            "proportional": ("sigma2_prop",),
            "combined": ("sigma2_add", "sigma2_prop"),
            "exponential": ("sigma2_exp",),
        }[self.model]


@dataclass(frozen=True)
class Sampling:
    """Default sampling settings of the ``[sampling]`` table."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int = 1


@dataclass(frozen=True)
class ModelSpec:
    """A whole model: structural model, parameters, omega, residual error.

    Parameters
    ----------
    name : str
    structural : str
        One of ``bayes_nlme.pk.STRUCTURAL_MODELS``.
    parameters : tuple of Parameter
        In declaration order.
    omega : Omega
    residual : Residual
    columns : dict
        Role -> dataset column (the ``[columns]`` table).
    sampling : Sampling
    flip_flop_guard : bool or None
        Keep ``ka > CL/V`` (oral models). ``None``: on for oral models.
    """

    name: str
    structural: str
    parameters: tuple[Parameter, ...]
    omega: Omega
    residual: Residual
    columns: dict = field(default_factory=dict, hash=False)
    sampling: Sampling = Sampling()
    flip_flop_guard: bool | None = None

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
    def covariate_columns(self) -> tuple[str, ...]:
        """The dataset columns that covariate effects use."""
        seen: list[str] = []
        for p in self.parameters:
            for c in p.covariates:
                if c.column not in seen:
                    seen.append(c.column)
        return tuple(seen)
