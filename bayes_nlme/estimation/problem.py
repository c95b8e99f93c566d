"""One model on one dataset: individual parameters, residual model and the inner objective.

Notation, per subject ``i`` with observations ``y_ij`` (log scale for the exponential
error model), predictions ``f_ij(eta)`` and residual variances ``r_ij``:

- Conditional objective, whose minimum over eta is the EBE::

      O_i(eta) = sum_j [log r_ij + (y_ij - f_ij)^2 / r_ij] + eta' Omega^-1 eta

  With interaction (FOCE-I, Laplace) ``r_ij = a + b f_ij(eta)^2``; without (FO, FOCE)
  ``r_ij`` is evaluated at the population prediction ``f_ij(0)``, as in NONMEM.
  ``a`` is ``sigma2_add`` (or ``sigma2_exp``), ``b`` is ``sigma2_prop``.

Population parameters enter as ``psi`` (see :mod:`.parameters`). Everything is
vectorised over observations and subjects; per-subject sums are sparse products.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ..individual import estimated_coefficients, individual_parameters
from .kernel import PredictionKernel
from .parameters import ParameterMap

__all__ = ["Problem", "Residual", "METHODS", "INTERACTION"]

#: The estimation methods.
METHODS = ("fo", "foce", "focei", "laplace")
#: Methods whose residual variance is evaluated at the individual prediction.
INTERACTION = {"fo": False, "foce": False, "focei": True, "laplace": True}


@dataclass
class Residual:
    """Residual variances per observation and their derivatives.

    ``r_f``, ``r_ff``: derivatives with respect to the prediction (zero without
    interaction); ``r_psi``, ``r_fpsi``, ``r_ffpsi`` (n_obs x size): derivatives
    with respect to ``psi`` at fixed individual prediction.
    """

    r: np.ndarray
    r_f: np.ndarray
    r_ff: np.ndarray
    r_psi: np.ndarray
    r_fpsi: np.ndarray
    r_ffpsi: np.ndarray


class Problem:
    """Data, parameter layout and prediction kernel of one estimation problem.

    Parameters
    ----------
    spec : ModelSpec
    y : numpy.ndarray
        Observations (natural scale), one per prediction point.
    subject : numpy.ndarray of int
        0-based subject of each observation.
    n_subjects : int
    predictor : callable
        ``predictor(params) -> tensor (n_obs,)``: predictions at every observation from
        a dict of PyTensor vectors of individual parameters given *per observation*.
    covariates : dict of str to numpy.ndarray, optional
        Per-subject values of the covariates the spec uses.
    kernel_cache : dict, optional
        Compiled kernels by key, reused when ``kernel_key`` (a digest of what the
        predictor computes) and the constant parameters match.
    kernel_key : str, optional
    """

    def __init__(
        self,
        spec,
        y,
        subject,
        n_subjects: int,
        predictor: Callable,
        covariates: dict | None = None,
        kernel_cache: dict | None = None,
        kernel_key: str | None = None,
    ):
        self.spec = spec
        self.pmap = ParameterMap(spec)
        self.y = np.asarray(y, dtype=float)
        self.subject = np.asarray(subject, dtype=np.int64)
        self.n_subjects = int(n_subjects)
        self.n_obs = len(self.y)
        self.covariates = dict(covariates or {})
        self.error = spec.residual.model
        self.y_t = np.log(self.y) if self.error == "exponential" else self.y
        self.free = [p.name for p in spec.parameters if not p.is_fixed or any(c.estimated for c in p.covariates)]
        self.fixed_values: dict = {}
        constants = self._constants(spec)
        log_transform = self.error == "exponential"
        key = None
        if kernel_cache is not None and kernel_key is not None:
            digest = hashlib.sha1(kernel_key.encode())
            for name in sorted(constants):
                digest.update(name.encode() + constants[name].tobytes())
            key = (digest.hexdigest(), tuple(self.free), log_transform)
        if key is not None and key in kernel_cache:
            self.kernel = kernel_cache[key]
        else:
            self.kernel = PredictionKernel(predictor, self.free, constants, log_transform=log_transform)
            if key is not None:
                kernel_cache[key] = self.kernel
                while len(kernel_cache) > 8:
                    kernel_cache.pop(next(iter(kernel_cache)))
        self.cols = [self.free.index(name) for name in self.pmap.iiv]
        self.seg = sparse.csr_matrix(
            (np.ones(self.n_obs), (self.subject, np.arange(self.n_obs))), shape=(self.n_subjects, self.n_obs)
        )
        self.n_per_subject = np.bincount(self.subject, minlength=self.n_subjects)
        names = self.pmap.sigma_names
        self.ia = self.pmap.index("sigma2_add") if "sigma2_add" in names else None
        if "sigma2_exp" in names:
            self.ia = self.pmap.index("sigma2_exp")
        self.ib = self.pmap.index("sigma2_prop") if "sigma2_prop" in names else None

    def _constants(self, spec) -> dict:
        """Per-observation values of the parameters that nothing estimated changes."""
        if len(self.free) == len(spec.parameters):
            return {}
        theta = {q.name: 1.0 for q in spec.estimated}
        betas = dict.fromkeys(estimated_coefficients(spec), 0.0)
        values = individual_parameters(spec, theta, None, self.covariates, betas, n_subjects=self.n_subjects)
        self.fixed_values = {
            name: np.asarray(value.eval(mode="FAST_COMPILE"), dtype=float)
            for name, value in values.items()
            if name not in self.free
        }
        return {name: value[self.subject] for name, value in self.fixed_values.items()}

    @property
    def d(self) -> int:
        """Number of random effects."""
        return self.pmap.d

    @property
    def size(self) -> int:
        """Number of estimated population parameters."""
        return self.pmap.size

    def segsum(self, x: np.ndarray) -> np.ndarray:
        """Sum over each subject's observations (first axis: observations)."""
        flat = np.asarray(x).reshape(self.n_obs, -1)
        return np.asarray(self.seg @ flat).reshape((self.n_subjects, *np.shape(x)[1:]))

    def tile(self, psi: np.ndarray) -> np.ndarray:
        """One copy of ``psi`` per subject."""
        return np.broadcast_to(np.asarray(psi, dtype=float), (self.n_subjects, len(psi)))

    # ----------------------------------------------------------- parameters
    def log_parameters(self, psi: np.ndarray, eta: np.ndarray | None = None):
        """Log individual parameters at each observation, and their psi-derivatives.

        ``log P = log theta_P + sum_c log(factor_c) + eta_P`` (CONTRACT section 2).

        Returns
        -------
        U : numpy.ndarray (n_obs, M)
        B : numpy.ndarray (n_subjects, M, size)
            ``d log P / d psi`` per subject (theta and covariate coefficients).
        """
        base, dbase = self.subject_log_parameters(psi, eta)
        return base[self.subject], dbase

    def individual_values(self, psi: np.ndarray, eta: np.ndarray | None = None) -> dict:
        """Individual parameter values per subject, every parameter of the spec, by name."""
        base, _ = self.subject_log_parameters(psi, eta)
        out = {name: np.exp(base[:, m]) for m, name in enumerate(self.free)}
        out.update(self.fixed_values)
        return {name: out[name] for name in self.spec.parameter_names}

    def subject_log_parameters(self, psi: np.ndarray, eta: np.ndarray | None = None):
        """Per-subject log individual parameters (n_subjects, M) and their psi-derivatives."""
        pm = self.pmap
        base = np.zeros((self.n_subjects, len(self.free)))
        dbase = np.zeros((self.n_subjects, len(self.free), pm.size))
        with np.errstate(invalid="ignore", divide="ignore"):
            for m, name in enumerate(self.free):
                p = self.spec.parameter(name)
                if p.is_fixed:
                    base[:, m] = np.log(float(p.fixed))
                else:
                    k = pm.index(name)
                    base[:, m] = psi[k]
                    dbase[:, m, k] = 1.0
                for c in p.covariates:
                    x = np.asarray(self.covariates[c.column], dtype=float)
                    if c.estimated:
                        kb = pm.index(f"beta_{name}_{c.column}")
                        coef = psi[kb]
                    else:
                        coef = float(c.coefficient)
                    if c.effect == "power":
                        value, slope = coef * np.log(x / c.reference), np.log(x / c.reference)
                    elif c.effect == "linear":
                        arg = 1.0 + coef * (x - c.reference)
                        value, slope = np.log(arg), (x - c.reference) / arg
                    else:
                        value, slope = coef * (x - c.reference), x - c.reference
                    base[:, m] += value
                    if c.estimated:
                        dbase[:, m, kb] += slope
        if eta is not None and self.d:
            base[:, self.cols] += eta
        return base, dbase

    def residual(self, psi: np.ndarray, f: np.ndarray, interaction: bool, f0=None, f0_psi=None) -> Residual:
        """Residual variances ``r = a + b * f^2`` and derivatives.

        Parameters
        ----------
        psi : numpy.ndarray
        f : numpy.ndarray
            Individual predictions (used with interaction).
        interaction : bool
        f0, f0_psi : numpy.ndarray, optional
            Population predictions and their psi-derivatives (without interaction).
        """
        n, size = self.n_obs, self.size
        a = float(np.exp(psi[self.ia])) if self.ia is not None else 0.0
        b = float(np.exp(psi[self.ib])) if self.ib is not None else 0.0
        r_psi = np.zeros((n, size))
        r_fpsi = np.zeros((n, size))
        r_ffpsi = np.zeros((n, size))
        zero = np.zeros(n)
        if interaction:
            r, r_f, r_ff = a + b * f**2, 2.0 * b * f, np.full(n, 2.0 * b)
            if self.ib is not None:
                r_psi[:, self.ib] = b * f**2
                r_fpsi[:, self.ib] = 2.0 * b * f
                r_ffpsi[:, self.ib] = 2.0 * b
        else:
            r, r_f, r_ff = a + b * f0**2, zero, zero
            if self.ib is not None:
                r_psi[:, self.ib] = b * f0**2
                if f0_psi is not None:
                    r_psi += 2.0 * b * f0[:, None] * f0_psi
        if self.ia is not None:
            r_psi[:, self.ia] = a
        return Residual(r, r_f, r_ff, r_psi, r_fpsi, r_ffpsi)

    # ----------------------------------------------------------- inner objective
    def population(self, psi: np.ndarray, order: int = 1):
        """Population predictions (eta = 0): ``(f0, J0, B)``."""
        u0, dbase = self.log_parameters(psi, None)
        f0, j0 = self.kernel(u0, 1)[:2] if order else (self.kernel.value(u0), None)
        return f0, j0, dbase

    def inner_value(self, psi: np.ndarray, eta: np.ndarray, method: str, omega_inv: np.ndarray) -> np.ndarray:
        """``O_i(eta)`` for every subject."""
        u, _ = self.log_parameters(psi, eta)
        f = self.kernel.value(u)
        f0 = None if INTERACTION[method] else self.population(psi)[0]
        res = self.residual(psi, f, INTERACTION[method], f0)
        with np.errstate(invalid="ignore", divide="ignore"):
            e = self.y_t - f
            obs = self.segsum(np.log(res.r) + e**2 / res.r)
        return obs + np.einsum("si,ij,sj->s", eta, omega_inv, eta)

    def inner(self, psi: np.ndarray, eta: np.ndarray, method: str, omega_inv: np.ndarray):
        """``O_i``, its gradient (n_subjects, d) and exact Hessian (n_subjects, d, d)."""
        u, _ = self.log_parameters(psi, eta)
        f, jac, hess = self.kernel(u, 2, self.cols)
        f0 = None if INTERACTION[method] else self.population(psi)[0]
        res = self.residual(psi, f, INTERACTION[method], f0)
        with np.errstate(invalid="ignore", divide="ignore"):
            e = self.y_t - f
            lp = loss_partials(e, res)
            obj = self.segsum(np.log(res.r) + e**2 / res.r) + np.einsum("si,ij,sj->s", eta, omega_inv, eta)
            g_eta = jac[:, self.cols]
            h_eta = hess[:, self.cols][:, :, self.cols]
            grad = self.segsum(lp["l_f"][:, None] * g_eta) + 2.0 * eta @ omega_inv
            outer = g_eta[:, :, None] * g_eta[:, None, :]
            hessian = self.segsum(lp["l_ff"][:, None, None] * outer + lp["l_f"][:, None, None] * h_eta)
        return obj, grad, hessian + 2.0 * omega_inv


def loss_partials(e: np.ndarray, res: Residual, third: bool = False) -> dict:
    """Derivatives of ``l = log r + e^2 / r`` (``e = y - f``) for each observation.

    ``l_f``, ``l_ff`` (and ``l_fff``): total derivatives with respect to the prediction
    ``f`` (through ``e`` and, with interaction, ``r(f)``); ``l_r``: with respect to
    ``r``; ``l_psi``, ``l_fpsi``, ``l_ffpsi`` (n_obs x size): with respect to psi at
    fixed ``f`` (through ``r``, ``r_f``, ``r_ff``).
    """
    r, r_f, r_ff = res.r, res.r_f, res.r_ff
    l_e, l_r = 2.0 * e / r, 1.0 / r - e**2 / r**2
    l_ee, l_er, l_rr = 2.0 / r, -2.0 * e / r**2, -1.0 / r**2 + 2.0 * e**2 / r**3
    out = {
        "l_r": l_r,
        "l_f": -l_e + r_f * l_r,
        "l_ff": l_ee - 2.0 * r_f * l_er + r_f**2 * l_rr + r_ff * l_r,
    }
    out["l_psi"] = l_r[:, None] * res.r_psi
    out["l_fpsi"] = (-l_er + r_f * l_rr)[:, None] * res.r_psi + l_r[:, None] * res.r_fpsi
    if third:
        l_eer, l_err, l_rrr = -2.0 / r**2, 4.0 * e / r**3, 2.0 / r**3 - 6.0 * e**2 / r**4
        out["l_fff"] = (
            3.0 * r_f * l_eer - 3.0 * r_f**2 * l_err + r_f**3 * l_rrr - 3.0 * r_ff * l_er + 3.0 * r_f * r_ff * l_rr
        )
        out["l_ffpsi"] = (
            (l_eer - 2.0 * r_f * l_err + r_f**2 * l_rrr + r_ff * l_rr)[:, None] * res.r_psi
            + (-2.0 * l_er + 2.0 * r_f * l_rr)[:, None] * res.r_fpsi
            + l_r[:, None] * res.r_ffpsi
        )
    return out
