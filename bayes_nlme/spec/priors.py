"""Prior distributions of a model spec, as frozen dataclasses.

Each class mirrors one prior table of the model-file schema (CONTRACT section 2),
e.g. ``typical = { lognormal = { median = 1.5, sigma = 0.5 } }`` is
``LogNormal(median=1.5, sigma=0.5)``. Each prior knows its scipy.stats equivalent
(:meth:`scipy`), which the tests use as the reference density, and how to scale
its spread (:meth:`scaled`) for prior sensitivity studies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from scipy import stats

from ._validate import as_matrix, as_number, check_symmetric_pd, describe, fail

__all__ = [
    "Prior",
    "LogNormal",
    "Normal",
    "HalfNormal",
    "InverseGamma",
    "InverseWishart",
    "LKJ",
    "PRIOR_KINDS",
    "LKJ_SD_PRIORS",
]

#: Prior kinds allowed for the standard deviations of an :class:`LKJ` prior.
LKJ_SD_PRIORS = ("half_normal", "lognormal")


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class Prior(ABC):
    """Base class of the prior tables."""

    kind: ClassVar[str] = ""

    @abstractmethod
    def to_dict(self) -> dict:
        """The model-file table of this prior, e.g. ``{"lognormal": {...}}``."""

    @abstractmethod
    def scaled(self, factor: float) -> Prior:
        """The same prior with its spread multiplied by ``factor``."""


@dataclass(frozen=True)
class LogNormal(Prior):
    """Log-normal prior: ``log(x) ~ Normal(log(median), sigma)``.

    Parameters
    ----------
    median : float
        Median on the natural scale (> 0).
    sigma : float
        Standard deviation on the log scale (> 0).
    """

    median: float
    sigma: float
    kind: ClassVar[str] = "lognormal"

    def __post_init__(self) -> None:
        _set(self, "median", as_number(self.median, "lognormal.median", positive=True))
        _set(self, "sigma", as_number(self.sigma, "lognormal.sigma", positive=True))

    def scipy(self):
        """The equal ``scipy.stats.lognorm`` distribution."""
        return stats.lognorm(s=self.sigma, scale=self.median)

    def to_dict(self) -> dict:
        return {"lognormal": {"median": self.median, "sigma": self.sigma}}

    def scaled(self, factor: float) -> LogNormal:
        return replace(self, sigma=self.sigma * factor)


@dataclass(frozen=True)
class Normal(Prior):
    """Normal prior, for covariate coefficients and estimated exponents.

    Parameters
    ----------
    mean : float
        Mean (finite).
    sd : float
        Standard deviation (> 0).
    """

    mean: float
    sd: float
    kind: ClassVar[str] = "normal"

    def __post_init__(self) -> None:
        _set(self, "mean", as_number(self.mean, "normal.mean"))
        _set(self, "sd", as_number(self.sd, "normal.sd", positive=True))

    def scipy(self):
        """The equal ``scipy.stats.norm`` distribution."""
        return stats.norm(loc=self.mean, scale=self.sd)

    def to_dict(self) -> dict:
        return {"normal": {"mean": self.mean, "sd": self.sd}}

    def scaled(self, factor: float) -> Normal:
        return replace(self, sd=self.sd * factor)


@dataclass(frozen=True)
class HalfNormal(Prior):
    """Half-normal prior on a positive quantity (e.g. an LKJ standard deviation).

    Parameters
    ----------
    sigma : float
        Scale of the underlying normal (> 0).
    """

    sigma: float
    kind: ClassVar[str] = "half_normal"

    def __post_init__(self) -> None:
        _set(self, "sigma", as_number(self.sigma, "half_normal.sigma", positive=True))

    def scipy(self):
        """The equal ``scipy.stats.halfnorm`` distribution."""
        return stats.halfnorm(scale=self.sigma)

    def to_dict(self) -> dict:
        return {"half_normal": {"sigma": self.sigma}}

    def scaled(self, factor: float) -> HalfNormal:
        return replace(self, sigma=self.sigma * factor)


@dataclass(frozen=True)
class InverseGamma(Prior):
    """Inverse-gamma prior on a variance.

    Density ``beta**alpha / Gamma(alpha) * x**(-alpha-1) * exp(-beta/x)``, i.e.
    ``scipy.stats.invgamma(a=alpha, scale=beta)``.

    Parameters
    ----------
    alpha : float
        Shape (> 0).
    beta : float
        Scale (> 0).
    """

    alpha: float
    beta: float
    kind: ClassVar[str] = "inverse_gamma"

    def __post_init__(self) -> None:
        _set(self, "alpha", as_number(self.alpha, "inverse_gamma.alpha", positive=True))
        _set(self, "beta", as_number(self.beta, "inverse_gamma.beta", positive=True))

    def scipy(self):
        """The equal ``scipy.stats.invgamma`` distribution."""
        return stats.invgamma(a=self.alpha, scale=self.beta)

    def to_dict(self) -> dict:
        return {"inverse_gamma": {"alpha": self.alpha, "beta": self.beta}}

    def scaled(self, factor: float) -> InverseGamma:
        """Scale the spread while keeping the prior mode ``beta/(alpha+1)``.

        The coefficient of variation of an inverse gamma is ``1/sqrt(alpha-2)``; a
        factor ``f`` multiplies the log-scale spread, approximately ``1/sqrt(alpha)``,
        so ``alpha' = alpha / f**2`` and ``beta`` moves to keep the mode.
        """
        alpha = self.alpha / factor**2
        mode = self.beta / (self.alpha + 1.0)
        return replace(self, alpha=alpha, beta=mode * (alpha + 1.0))


@dataclass(frozen=True)
class InverseWishart(Prior):
    """Inverse-Wishart prior on an omega block, ``scipy.stats.invwishart(df, scale)``.

    Parameters
    ----------
    df : float
        Degrees of freedom (> dimension - 1).
    scale : tuple of tuple of float
        The full scale matrix, symmetric positive definite. A diagonal list (in the
        file or in Python) becomes a diagonal matrix.
    """

    df: float
    scale: tuple[tuple[float, ...], ...]
    kind: ClassVar[str] = "inverse_wishart"

    def __post_init__(self) -> None:
        scale = as_matrix(self.scale, "inverse_wishart.scale")
        check_symmetric_pd(scale, "inverse_wishart.scale")
        _set(self, "scale", scale)
        df = as_number(self.df, "inverse_wishart.df")
        if df <= len(scale) - 1:
            fail(f"must be > dimension - 1 = {len(scale) - 1}, got {df!r}", "inverse_wishart.df")
        _set(self, "df", df)

    @property
    def dim(self) -> int:
        """Dimension of the block."""
        return len(self.scale)

    @property
    def scale_matrix(self) -> np.ndarray:
        """The scale matrix as an array."""
        return np.asarray(self.scale, dtype=float)

    def scipy(self):
        """The equal ``scipy.stats.invwishart`` (or ``invgamma`` for a 1x1 block)."""
        if self.dim == 1:
            return stats.invgamma(a=self.df / 2.0, scale=self.scale[0][0] / 2.0)
        return stats.invwishart(df=self.df, scale=self.scale_matrix)

    def to_dict(self) -> dict:
        matrix = self.scale_matrix
        if not np.any(matrix - np.diag(np.diag(matrix))):
            scale: list = [float(v) for v in np.diag(matrix)]
        else:
            scale = [[float(v) for v in row] for row in matrix]
        return {"inverse_wishart": {"df": self.df, "scale": scale}}

    def scaled(self, factor: float) -> InverseWishart:
        """Scale the spread, keeping the mode ``scale / (df + p + 1)``.

        ``df`` plays the role of a prior sample size, so the spread of the
        log-variances goes as ``1/sqrt(df)``: ``df' - p - 1 = (df - p - 1) / f**2``
        (kept above ``p - 1``), with the scale moved to keep the mode.
        """
        p = self.dim
        excess = max((self.df - p + 1.0) / factor**2, 1e-3)
        df = p - 1.0 + excess
        matrix = self.scale_matrix * (df + p + 1.0) / (self.df + p + 1.0)
        return replace(self, df=df, scale=tuple(tuple(float(v) for v in row) for row in matrix))


@dataclass(frozen=True)
class LKJ(Prior):
    """LKJ prior on the correlation of an omega block, with a prior on each sd.

    ``omega = diag(sd) @ R @ diag(sd)`` with ``R ~ LKJCorr(eta)`` and each
    ``sd ~ sd_prior`` (a :class:`HalfNormal` or :class:`LogNormal`).

    Parameters
    ----------
    eta : float
        LKJ shape (> 0; 1 is uniform over correlation matrices).
    sd : HalfNormal or LogNormal
        Prior on each standard deviation of the block.
    """

    eta: float
    sd: Prior
    kind: ClassVar[str] = "lkj"

    def __post_init__(self) -> None:
        _set(self, "eta", as_number(self.eta, "lkj.eta", positive=True))
        if not isinstance(self.sd, Prior) or self.sd.kind not in LKJ_SD_PRIORS:
            got = self.sd.kind if isinstance(self.sd, Prior) else describe(self.sd)
            fail(f"prior kind {got!r} is not allowed here", "lkj.sd", LKJ_SD_PRIORS)

    def to_dict(self) -> dict:
        return {"lkj": {"eta": self.eta, "sd": self.sd.to_dict()}}

    def scaled(self, factor: float) -> LKJ:
        return replace(self, sd=self.sd.scaled(factor))


PRIOR_KINDS: dict[str, type[Prior]] = {
    cls.kind: cls for cls in (LogNormal, Normal, HalfNormal, InverseGamma, InverseWishart, LKJ)
}
