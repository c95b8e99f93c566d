"""The omega prior: the between-subject covariance of the etas, block by block.

Omega is block diagonal (``spec.omega.blocks``); each block gets its prior from
``spec.omega.prior``:

* ``InverseWishart(df, S)``: a block ``b`` with indices ``I_b`` is
  ``IW(df, S[I_b, I_b])`` (``scipy.stats.invwishart``); a 1x1 block is
  ``InverseGamma(df/2, S_ii/2)`` on the variance. Blocks of dimension > 1 use the
  **Bartlett decomposition**: with ``L = chol(S^-1)`` and ``A`` lower triangular,
  ``A_ii = sqrt(c_i)``, ``c_i ~ chi2(df - i)`` (0-based ``i``), ``A_ij ~ N(0, 1)``
  below the diagonal, ``W = (L A)(L A)^T ~ Wishart(df, S^-1)``, so
  ``Omega = W^-1 ~ IW(df, S)``, and ``B = (L A)^-T`` satisfies ``B B^T = Omega``.
  The free variables ``c`` and the ``A_ij`` have their own standard densities, so no
  Jacobian is needed and the density is exact.
* ``InverseGamma(alpha, beta)`` (diagonal omega only): on every variance.
* ``LKJ(eta, sd)``: ``pm.LKJCholeskyCov`` with the sd prior on each standard
  deviation (a 1x1 block: the sd prior alone).

:func:`omega_factor` returns ``F`` (``p x p``, block diagonal, ``F F^T = Omega``) so
that ``eta_i = F z_i`` with ``z_i ~ N(0, I)``. Within a block, the order is chosen so
that one designated parameter (``first``, the absorption rate for the flip-flop guard)
owns a column of ``F`` with a single non-zero entry, on its own row: ``z_i[first]``
then moves ``eta_i[first]`` only (upper-triangular ``B`` with ``first`` first for
Bartlett blocks, lower-triangular Cholesky with ``first`` last for LKJ blocks; both
orderings leave the prior unchanged, as IW and LKJ are permutation-equivariant).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..errors import SpecError
from ..spec.priors import LKJ, HalfNormal, InverseGamma, InverseWishart, LogNormal
from . import smallmatrix as sm
from .priors import check_prior, hyper_data, hyper_name, hyperparameters, prior_variable

__all__ = ["OmegaFactor", "omega_hyperparameters", "omega_factor", "variance_name", "block_name"]

_KEY = "omega.prior"


def variance_name(parameter: str) -> str:
    """Canonical name of a variance: ``omega_<P>_<P>``."""
    return f"omega_{parameter}_{parameter}"


def block_name(index: int) -> str:
    """Prefix of the free variables of block ``index``: ``omega_block<index>``."""
    return f"omega_block{index}"


@dataclass(frozen=True)
class OmegaFactor:
    """The omega matrix of a model and its square-root factor.

    Matrices are nested lists of scalar tensors (``None`` for structural zeros, see
    :mod:`bayes_nlme.build.smallmatrix`), in ``spec.iiv_names`` order.

    Attributes
    ----------
    omega : tensor (p, p)
        Omega.
    factor : nested list (p x p)
        ``F`` with ``F F^T = Omega``; ``eta_i = F z_i``.
    inverse_factor : nested list (p x p)
        ``F^-1`` (for centred etas: ``z_i = F^-1 eta_i``).
    log_det_factor : tensor
        ``log |det F|``.
    """

    omega: pt.TensorVariable
    factor: list
    inverse_factor: list
    log_det_factor: pt.TensorVariable


def _blocks(spec) -> list[tuple[int, ...]]:
    names = list(spec.iiv_names)
    out = []
    for block in spec.omega.blocks:
        idx = tuple(names.index(n) for n in block if n in names)
        if idx:
            out.append(idx)
    return out


def _ordered(spec, idx: tuple[int, ...], first: str | None, last: bool) -> tuple[int, ...]:
    """Block indices with ``first`` moved to the front (or the back when ``last``)."""
    names = list(spec.iiv_names)
    if first is None or first not in names or names.index(first) not in idx:
        return idx
    k = names.index(first)
    rest = tuple(i for i in idx if i != k)
    return rest + (k,) if last else (k,) + rest


def _check(spec):
    prior = spec.omega.prior
    allowed = (InverseWishart, InverseGamma, LKJ)
    prior = check_prior(prior, _KEY, allowed)
    p = len(spec.iiv_names)
    if isinstance(prior, InverseWishart) and prior.dim != p:
        raise SpecError(
            f"the inverse_wishart scale has dimension {prior.dim}, but {p} parameters have IIV "
            f"({', '.join(spec.iiv_names)})",
            key=_KEY,
        )
    if isinstance(prior, InverseGamma) and any(len(b) > 1 for b in _blocks(spec)):
        raise SpecError(
            "an inverse_gamma prior applies to a diagonal omega only; use inverse_wishart or lkj for blocks",
            key=_KEY,
            valid=["inverse_wishart", "lkj"],
        )
    if isinstance(prior, LKJ):
        check_prior(prior.sd, _KEY + ".lkj.sd", (HalfNormal, LogNormal))
    return prior


def _one_by_one(prior: InverseWishart, i: int) -> InverseGamma:
    """The inverse-gamma equal to a 1x1 inverse-Wishart block."""
    return InverseGamma(alpha=prior.df / 2.0, beta=float(prior.scale_matrix[i, i]) / 2.0)


def _submatrix(prior: InverseWishart, idx) -> np.ndarray:
    return prior.scale_matrix[np.ix_(idx, idx)]


def omega_hyperparameters(spec, first: str | None = None) -> dict[str, np.ndarray]:
    """The hyperparameter data of the omega prior, keyed by data-container name.

    Parameters
    ----------
    spec : ModelSpec
    first : str, optional
        The designated parameter (see the module docstring); it changes the block
        order, hence the Bartlett data.

    Returns
    -------
    dict of str to numpy.ndarray
    """
    if not spec.iiv_names:
        return {}
    prior = _check(spec)
    names = spec.iiv_names
    out: dict[str, np.ndarray] = {}
    for b, idx in enumerate(_blocks(spec)):
        if len(idx) == 1:
            name = variance_name(names[idx[0]])
            if isinstance(prior, InverseWishart):
                out.update(hyperparameters(name, _one_by_one(prior, idx[0])))
            elif isinstance(prior, InverseGamma):
                out.update(hyperparameters(name, prior))
            else:
                out.update(hyperparameters(f"omega_sd_{names[idx[0]]}", prior.sd))
            continue
        if isinstance(prior, InverseWishart):
            order = _ordered(spec, idx, first, last=False)
            scale = _submatrix(prior, order)
            chol_inv = np.linalg.cholesky(np.linalg.inv(scale))
            out[hyper_name(block_name(b), "df")] = np.asarray(float(prior.df))
            out[hyper_name(block_name(b), "chol_inv_scale")] = chol_inv
        else:
            out[hyper_name(block_name(b), "eta")] = np.asarray(float(prior.eta))
            out.update(hyperparameters(f"{block_name(b)}_sd", prior.sd))
    return out


def _bartlett(b: int, n: int, data) -> tuple:
    """Upper-triangular ``B`` (``B B^T = Omega_b``), ``B^-1`` and ``log|det B|``."""
    df = data[hyper_name(block_name(b), "df")]
    chol_inv = data[hyper_name(block_name(b), "chol_inv_scale")]
    c = pm.ChiSquared(f"{block_name(b)}_chi2", nu=df - np.arange(n, dtype=float), shape=(n,))
    rows, cols = np.tril_indices(n, -1)
    normal = pm.Normal(f"{block_name(b)}_normal", 0.0, 1.0, shape=(len(rows),))
    a = [[None] * n for _ in range(n)]
    for i in range(n):
        a[i][i] = pt.sqrt(c[i])
    for k, (i, j) in enumerate(zip(rows, cols)):
        a[i][j] = normal[k]
    la = sm.matmul(sm.entries(chol_inv, n, lower=True), a)  # W = la la^T
    upper = sm.transpose(sm.lower_inverse(la))  # B = (L A)^-T
    return upper, sm.transpose(la), -sm.log_diagonal_sum(la)


def _lkj(b: int, n: int, prior: LKJ, data) -> tuple:
    """Lower-triangular Cholesky factor of an LKJ block, its inverse and ``log|det|``."""
    eta = data[hyper_name(block_name(b), "eta")]
    sd = prior_variable(f"{block_name(b)}_sd", prior.sd, shape=(n,))
    corr = pm.LKJCorr(f"{block_name(b)}_corr", n=n, eta=eta)
    lower = sm.entries(sd[:, None] * corr, n, lower=True)
    return lower, sm.lower_inverse(lower), sm.log_diagonal_sum(lower)


def omega_factor(spec, first: str | None = None) -> OmegaFactor | None:
    """Create the omega prior in the current model and return Omega with its factor.

    Parameters
    ----------
    spec : ModelSpec
    first : str, optional
        A parameter whose eta should be moved by a single column of ``z`` (the
        absorption rate, for the flip-flop guard); see the module docstring.

    Returns
    -------
    OmegaFactor or None
        None when no parameter has IIV.

    Raises
    ------
    SpecError
        ``omega.prior`` missing (the Bayesian path needs it), of a kind that does not
        fit the structure, or of the wrong dimension.
    """
    names = spec.iiv_names
    if not names:
        return None
    prior = _check(spec)
    p = len(names)
    data = hyper_data(omega_hyperparameters(spec, first))
    factor: list = [[None] * p for _ in range(p)]
    inverse: list = [[None] * p for _ in range(p)]
    log_det = pt.as_tensor_variable(0.0)
    for b, idx in enumerate(_blocks(spec)):
        if len(idx) == 1:
            (i,) = idx
            if isinstance(prior, (InverseWishart, InverseGamma)):
                ig = prior if isinstance(prior, InverseGamma) else _one_by_one(prior, i)
                sd = pt.sqrt(prior_variable(variance_name(names[i]), ig))
            else:
                sd = prior_variable(f"omega_sd_{names[i]}", prior.sd)
            factor[i][i], inverse[i][i] = sd, 1.0 / sd
            log_det = log_det + pt.log(sd)
            continue
        if isinstance(prior, InverseWishart):
            order = _ordered(spec, idx, first, last=False)
            block, block_inv, block_log_det = _bartlett(b, len(order), data)
        else:
            order = _ordered(spec, idx, first, last=True)
            block, block_inv, block_log_det = _lkj(b, len(order), prior, data)
        for r, i in enumerate(order):
            for c, j in enumerate(order):
                factor[i][j], inverse[i][j] = block[r][c], block_inv[r][c]
        log_det = log_det + block_log_det
    omega = sm.to_tensor(sm.matmul(factor, sm.transpose(factor)))
    return OmegaFactor(omega=omega, factor=factor, inverse_factor=inverse, log_det_factor=log_det)
