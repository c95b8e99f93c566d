"""Parts of a model spec: parameters, covariate effects, omega, residual error, sampling.

Frozen dataclasses, one per table of the model file (CONTRACT section 2), with the
schema vocabulary (allowed effects, residual models, prior kinds per place). Each
validates itself on construction and raises :class:`~bayes_nlme.errors.SpecError`
naming the model-file key (``parameters.CL.fixed``, ``omega.structure``); a
:class:`CovariateEffect`, which does not know where it sits, reports a key relative to
itself (``effect``, ``exponent``). :class:`~bayes_nlme.spec.model.ModelSpec` adds the
checks across tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._validate import as_int, as_matrix, as_number, as_string, check_symmetric_pd, describe, fail
from .priors import InverseWishart, Prior

__all__ = [
    "CovariateEffect",
    "Parameter",
    "Omega",
    "Residual",
    "Sampling",
    "SAMPLING_INITS",
    "SAMPLING_ADAPTATIONS",
    "SAMPLING_CENTERED",
    "COVARIATE_EFFECTS",
    "RESIDUAL_MODELS",
    "RESIDUAL_VARIANCES",
    "OMEGA_STRUCTURES",
    "OMEGA_PRIORS",
    "TYPICAL_PRIORS",
    "COEFFICIENT_PRIORS",
    "RESIDUAL_PRIORS",
    "IOV_PRIORS",
    "COLUMN_ROLES",
]

COVARIATE_EFFECTS = ("power", "linear", "exponential")
RESIDUAL_MODELS = ("additive", "proportional", "combined", "exponential")
#: Methods for observations below the limit of quantification (Beal 2001).
BLQ_METHODS = ("M3", "M4", "M1")
#: Residual model -> the keys of its variances (``add`` is ``sigma2_add`` ...).
RESIDUAL_VARIANCES = {
    "additive": ("add",),
    "proportional": ("prop",),
    "combined": ("add", "prop"),
    "exponential": ("exp",),
}
OMEGA_STRUCTURES = ("diagonal", "full", "block")
#: Omega structure -> prior kinds allowed for it.
OMEGA_PRIORS = {
    "diagonal": ("inverse_gamma", "inverse_wishart"),
    "full": ("inverse_wishart", "lkj"),
    "block": ("inverse_wishart", "lkj"),
}
TYPICAL_PRIORS = ("lognormal",)
COEFFICIENT_PRIORS = ("normal",)
RESIDUAL_PRIORS = ("inverse_gamma", "half_normal", "lognormal")
#: Priors of an IOV variance (CONTRACT 5.3): inverse-gamma on the variance, half-normal on the SD.
IOV_PRIORS = ("inverse_gamma", "half_normal")
#: NONMEM roles a ``[columns]`` table may map (CONTRACT section 1).
COLUMN_ROLES = ("ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "RATE", "II", "ADDL", "SS", "BLQ", "OCC", "DVID")


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)


def _check_prior(prior, key: str, allowed: Sequence[str]) -> None:
    if not isinstance(prior, Prior):
        fail(f"expected a prior table, got {describe(prior)}", key, allowed)
    if prior.kind not in allowed:
        fail(f"prior kind {prior.kind!r} is not allowed here", key, allowed)


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
        Reference covariate value (> 0 for ``power``).
    coefficient : float or Prior
        The exponent (``power``) or ``beta`` (other effects): a number fixes it, a
        :class:`~bayes_nlme.spec.priors.Normal` prior estimates it. Its canonical name
        is ``beta_<P>_<COLUMN>``.
    """

    column: str
    effect: Literal["power", "linear", "exponential"]
    reference: float
    coefficient: float | Prior

    def __post_init__(self) -> None:
        as_string(self.column, "column")
        if self.effect not in COVARIATE_EFFECTS:
            fail(f"unknown covariate effect {self.effect!r}", "effect", COVARIATE_EFFECTS)
        power = self.effect == "power"
        _set(self, "reference", as_number(self.reference, "reference", positive=power))
        if isinstance(self.coefficient, Prior):
            _check_prior(self.coefficient, self.coefficient_key, COEFFICIENT_PRIORS)
        else:
            _set(self, "coefficient", as_number(self.coefficient, self.coefficient_key))

    @property
    def estimated(self) -> bool:
        """True when the coefficient has a prior."""
        return isinstance(self.coefficient, Prior)

    @property
    def coefficient_key(self) -> str:
        """The model-file key of the coefficient: ``exponent`` or ``beta``."""
        return "exponent" if self.effect == "power" else "beta"

    def canonical_name(self, parameter: str) -> str:
        """``beta_<parameter>_<column>``, the name of an estimated coefficient."""
        return f"beta_{parameter}_{self.column}"


@dataclass(frozen=True)
class Parameter:
    """One structural parameter (``ka``, ``CL``, ``V``, ``tlag``, ``F`` ...).

    Exactly one of ``typical`` (a prior on the typical value, a
    :class:`~bayes_nlme.spec.priors.LogNormal`) and ``fixed`` is given.
    ``P_i = theta_P * prod(covariate factors) * exp(eta_P,i)`` when ``iiv``.

    Parameters
    ----------
    name : str
    typical : Prior, optional
    fixed : float, optional
        A fixed value (> 0; ``tlag`` may be 0): no prior, no IIV. ``iiv`` is then
        set to False. Covariate effects still apply to a fixed typical value.
    iiv : bool
        Between-subject variability (default True; False when ``fixed``).
    initial : float, optional
        Start value for the frequentist path (not with ``fixed``).
    covariates : tuple of CovariateEffect
        At most one effect per covariate column.
    iov : Prior, optional
        Inter-occasion variability (CONTRACT 5.3): ``P_ik = theta_P * factors *
        exp(eta_P,i + kappa_P,ik)``, ``kappa_P,ik ~ N(0, omega_iov_P)``. An
        :class:`~bayes_nlme.spec.priors.InverseGamma` prior is on the variance
        ``omega_iov_P``, a :class:`~bayes_nlme.spec.priors.HalfNormal` on its square
        root. Not with ``fixed``.
    iov_initial : float, optional
        Start value of ``omega_iov_P`` (a variance) for the frequentist path; only with
        ``iov``.
    """

    name: str
    typical: Prior | None = None
    fixed: float | None = None
    iiv: bool = True
    initial: float | None = None
    covariates: tuple[CovariateEffect, ...] = ()
    iov: Prior | None = None
    iov_initial: float | None = None

    def __post_init__(self) -> None:
        as_string(self.name, "parameters")
        key = f"parameters.{self.name}"
        choices = ("typical", "fixed")
        if self.typical is None and self.fixed is None:
            fail("give either 'typical' (a prior) or 'fixed' (a value)", key, choices)
        if self.typical is not None and self.fixed is not None:
            fail("'typical' and 'fixed' exclude each other: give one", key, choices)
        lag = self.name == "tlag"
        if self.typical is not None:
            _check_prior(self.typical, f"{key}.typical", TYPICAL_PRIORS)
        else:
            value = as_number(self.fixed, f"{key}.fixed", positive=not lag, nonnegative=lag)
            _set(self, "fixed", value)
            _set(self, "iiv", False)
            if self.initial is not None:
                fail("a fixed parameter takes no initial value", f"{key}.initial")
        if not isinstance(self.iiv, (bool, np.bool_)):
            fail(f"expected true or false, got {describe(self.iiv)}", f"{key}.iiv")
        _set(self, "iiv", bool(self.iiv))
        if self.initial is not None:
            _set(self, "initial", as_number(self.initial, f"{key}.initial", positive=not lag, nonnegative=lag))
        self._check_iov(key)
        if isinstance(self.covariates, (str, bytes)) or not isinstance(self.covariates, Sequence):
            fail(f"expected an array of tables, got {describe(self.covariates)}", f"{key}.covariates")
        _set(self, "covariates", tuple(self.covariates))
        columns: list[str] = []
        for i, cov in enumerate(self.covariates):
            if not isinstance(cov, CovariateEffect):
                fail(f"expected a CovariateEffect, got {describe(cov)}", f"{key}.covariates[{i}]")
            if cov.column in columns:
                fail(f"a second effect of column {cov.column!r}", f"{key}.covariates[{i}].column")
            columns.append(cov.column)

    def _check_iov(self, key: str) -> None:
        if self.iov is not None:
            if self.fixed is not None:
                fail("a fixed parameter has no inter-occasion variability: remove 'iov'", f"{key}.iov")
            _check_prior(self.iov, f"{key}.iov", IOV_PRIORS)
        if self.iov_initial is not None:
            if self.iov is None:
                fail("'iov_initial' needs 'iov' (a prior on the IOV variance)", f"{key}.iov_initial", ("iov",))
            _set(self, "iov_initial", as_number(self.iov_initial, f"{key}.iov_initial", positive=True))

    @property
    def is_fixed(self) -> bool:
        """True when the parameter is fixed (no prior, no IIV)."""
        return self.fixed is not None

    @property
    def has_iov(self) -> bool:
        """True when the parameter has inter-occasion variability."""
        return self.iov is not None


@dataclass(frozen=True)
class Omega:
    """Between-subject covariance of the etas.

    Parameters
    ----------
    blocks : tuple of tuple of str
        The block structure, as parameter names. ``diagonal`` is one 1x1 block per
        IIV parameter; ``full`` is one block of all. :class:`ModelSpec` puts the
        names in declaration order (within and across blocks), so that
        ``names`` is the order of every matrix below.
    prior : Prior or None
        For ``diagonal``: an :class:`InverseGamma` applied to every variance, or an
        :class:`InverseWishart` whose diagonal gives each 1x1 block. For blocks: an
        :class:`InverseWishart` over all IIV parameters (the sub-matrix of its scale
        gives each block's scale; elements between blocks must be 0) or an
        :class:`LKJ`. ``None`` means the default weakly informative prior chosen by
        the builder.
    structure : str
        ``"diagonal"``, ``"full"`` or ``"block"`` (a list of blocks in the file).
    initial : tuple of tuple of float, optional
        Start value of the whole omega matrix (IIV parameters in declaration order)
        for the frequentist path; from ``[omega] initial`` (a diagonal list or a
        nested list). ``None``: the builder's default (0.1 on the diagonal).
    """

    blocks: tuple[tuple[str, ...], ...]
    prior: Prior | None = None
    structure: str = "diagonal"
    initial: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        if self.structure not in OMEGA_STRUCTURES:
            fail(f"unknown omega structure {self.structure!r}", "omega.structure", OMEGA_STRUCTURES)
        if isinstance(self.blocks, (str, bytes)) or not isinstance(self.blocks, Sequence):
            fail(f"expected a list of blocks, got {describe(self.blocks)}", "omega.structure")
        blocks = []
        for block in self.blocks:
            if isinstance(block, (str, bytes)) or not isinstance(block, Sequence) or not block:
                fail(f"each block must be a non-empty array of parameter names, got {block!r}", "omega.structure")
            blocks.append(tuple(as_string(n, "omega.structure") for n in block))
        _set(self, "blocks", tuple(blocks))
        names = self.names
        for n in names:
            if names.count(n) > 1:
                fail(f"parameter {n!r} appears more than once", "omega.structure")
        if self.structure == "diagonal" and any(len(b) != 1 for b in self.blocks):
            fail("a diagonal omega has one 1x1 block per parameter", "omega.structure")
        if self.structure == "full" and len(self.blocks) > 1:
            fail("a full omega has a single block", "omega.structure")
        if not names and (self.prior is not None or self.initial is not None):
            what = "prior" if self.prior is not None else "initial"
            fail("no parameter has IIV, so omega takes no prior or initial value", f"omega.{what}")
        if self.prior is not None:
            allowed = OMEGA_PRIORS[self.structure]
            _check_prior(self.prior, "omega.prior", allowed)
            if isinstance(self.prior, InverseWishart) and self.prior.dim != len(names):
                fail(
                    f"expected dimension {len(names)} (the parameters with IIV: "
                    f"{', '.join(names)}), got {self.prior.dim}",
                    "omega.prior.inverse_wishart.scale",
                )
        if self.initial is not None:
            initial = as_matrix(self.initial, "omega.initial", dim=len(names))
            check_symmetric_pd(initial, "omega.initial")
            _set(self, "initial", initial)

    @classmethod
    def from_structure(cls, structure, names, *, prior=None, initial=None) -> Omega:
        """An omega from the file's ``structure`` value.

        Parameters
        ----------
        structure : str or sequence of sequence of str
            ``"diagonal"``, ``"full"`` or a list of blocks of parameter names.
        names : sequence of str
            The parameters with IIV, in declaration order (for ``diagonal`` and
            ``full``).
        prior : Prior, optional
        initial : matrix or diagonal list, optional

        Returns
        -------
        Omega
        """
        if structure == "diagonal":
            return cls(tuple((n,) for n in names), prior, "diagonal", initial)
        if structure == "full":
            return cls((tuple(names),) if names else (), prior, "full", initial)
        if isinstance(structure, (str, bytes)) or not isinstance(structure, Sequence):
            fail(
                f"unknown omega structure {structure!r}",
                "omega.structure",
                ("diagonal", "full", "a list of blocks like [['CL', 'V'], ['ka']]"),
            )
        return cls(tuple(structure), prior, "block", initial)

    @property
    def names(self) -> tuple[str, ...]:
        """All IIV parameter names, in declaration order."""
        return tuple(name for block in self.blocks for name in block)

    @property
    def structure_value(self) -> str | list[list[str]]:
        """The file's ``structure`` value: a name, or the list of blocks."""
        if self.structure == "block":
            return [list(b) for b in self.blocks]
        return self.structure


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
        :class:`InverseGamma`; also :class:`HalfNormal` or :class:`LogNormal` on the
        variance). Only the variances of ``model`` may have one. The Bayesian path
        requires the ones its model uses.
    initial : dict
        Frequentist start values, ``{"add": 0.5}`` (keys of the model's variances),
        from ``[residual] initial = { add = 0.5 }``.
    blq : {"M3", "M4", "M1"}
        Likelihood of censored observations (``BLQ = 1``): M3 ``P(y < LLOQ)``, M4
        ``P(0 <= y < LLOQ) / P(y >= 0)`` (uncensored rows conditioned on ``y >= 0``),
        M1 dropped. Default ``"M3"``.
    """

    model: Literal["additive", "proportional", "combined", "exponential"]
    add: Prior | None = None
    prop: Prior | None = None
    exp: Prior | None = None
    initial: dict = field(default_factory=dict, hash=False, compare=True)
    blq: str = "M3"

    def __post_init__(self) -> None:
        if self.model not in RESIDUAL_MODELS:
            fail(f"unknown residual model {self.model!r}", "residual.model", RESIDUAL_MODELS)
        if self.blq not in BLQ_METHODS:
            fail(f"unknown BLQ method {self.blq!r}", "residual.blq", BLQ_METHODS)
        used = self.slots
        for slot in ("add", "prop", "exp"):
            prior = getattr(self, slot)
            if prior is None:
                continue
            if slot not in used:
                fail(f"the {self.model} model has no variance {slot!r}: remove this prior", f"residual.{slot}", used)
            _check_prior(prior, f"residual.{slot}", RESIDUAL_PRIORS)
        if not isinstance(self.initial, Mapping):
            fail(f"expected a table, got {describe(self.initial)}", "residual.initial")
        initial = {}
        for slot, value in self.initial.items():
            if slot not in used:
                fail(f"the {self.model} model has no variance {slot!r}", f"residual.initial.{slot}", used)
            initial[slot] = as_number(value, f"residual.initial.{slot}", positive=True)
        _set(self, "initial", initial)

    @property
    def slots(self) -> tuple[str, ...]:
        """Keys of the variances of this model: ``add``, ``prop``, ``exp``."""
        return RESIDUAL_VARIANCES[self.model]

    @property
    def variances(self) -> tuple[str, ...]:
        """Canonical names of the residual variances of this model."""
        return tuple(f"sigma2_{slot}" for slot in self.slots)


#: ``[sampling] init``: where NUTS chains start (:mod:`bayes_nlme.fit.init`).
SAMPLING_INITS = ("auto", "focei", "fo", "jitter")
#: ``[sampling] adaptation``: nutpie's mass-matrix adaptation.
SAMPLING_ADAPTATIONS = ("diag", "draw_diag", "low_rank")
#: ``[sampling] centered``: the parameterisation of the etas.
SAMPLING_CENTERED = ("auto", True, False)


@dataclass(frozen=True)
class Sampling:
    """Default sampling settings of the ``[sampling]`` table.

    Parameters
    ----------
    draws, chains : int
        >= 1.
    tune, seed : int
        >= 0.
    target_accept : float, optional
        NUTS target acceptance rate in (0, 1); None: 0.8 centred, 0.9 non-centred.
    centered : "auto", True, False or tuple of str
        Centred or non-centred etas, or the names of the centred parameters (see
        :func:`bayes_nlme.fit.sample`).
    init : {"auto", "focei", "fo", "jitter"}
        Where the chains start (:mod:`bayes_nlme.fit.init`).
    adaptation : {"diag", "draw_diag", "low_rank"}
        nutpie's mass-matrix adaptation.
    """

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int = 1
    target_accept: float | None = None
    centered: bool | str | tuple = "auto"
    init: str = "auto"
    adaptation: str = "diag"

    def __post_init__(self) -> None:
        for name, minimum in (("draws", 1), ("tune", 0), ("chains", 1), ("seed", 0)):
            _set(self, name, as_int(getattr(self, name), f"sampling.{name}", minimum=minimum))
        if self.target_accept is not None:
            value = as_number(self.target_accept, "sampling.target_accept", positive=True)
            if not value < 1.0:
                fail(f"expected a number in (0, 1), got {value!r}", "sampling.target_accept")
            _set(self, "target_accept", value)
        if isinstance(self.centered, (list, tuple)):
            if not self.centered or not all(isinstance(n, str) and n.isidentifier() for n in self.centered):
                fail(f"expected a non-empty list of parameter names, got {self.centered!r}", "sampling.centered")
            _set(self, "centered", tuple(self.centered))
        elif not isinstance(self.centered, bool) and self.centered != "auto":
            fail(
                f'expected "auto", true, false or a list of parameter names, got {describe(self.centered)} '
                f"({self.centered!r})",
                "sampling.centered",
                ["auto", "true", "false", '["CL", "V"]'],
            )
        for name, valid in (("init", SAMPLING_INITS), ("adaptation", SAMPLING_ADAPTATIONS)):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in valid:
                fail(f"unknown {name} {value!r}", f"sampling.{name}", valid)
