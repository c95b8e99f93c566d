"""The estimated population parameters of the frequentist path and their scales.

The optimiser works on an unconstrained vector ``psi``:

- ``log(theta_P)`` for each estimated (not fixed) structural parameter;
- ``beta_<P>_<COL>`` as is, for each estimated covariate coefficient;
- for each omega block, its lower Cholesky factor ``L`` (``omega_block = L L'``), row
  by row, with the diagonal on the log scale;
- ``log(omega_iov_<P>)`` for each parameter with inter-occasion variability;
- ``log(sigma2_*)`` for each residual variance.

Random effects of a subject (``d`` of them): its etas (IIV parameters in declaration
order), then for each parameter with IOV its kappas, one per occasion slot (``n_slots``,
the most occasions of a subject; slots beyond a subject's occasions have no data).
Their covariance :meth:`ParameterMap.omega_matrix` is block-diagonal: omega, then
``omega_iov_<P> * I`` for each IOV parameter (NONMEM's ``BLOCK(1) SAME``).

Results are reported on the natural scale under the canonical names of the CONTRACT:
``theta_<P>``, ``beta_<P>_<COL>``, ``omega_<P>_<Q>`` (upper triangle, row-major over
the IIV parameters in declaration order, within blocks only), ``omega_iov_<P>`` and
``sigma2_*``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import ArgumentError
from ..individual import estimated_coefficients
from ..spec.priors import LogNormal

__all__ = ["ParameterMap", "start_values"]

_RESIDUAL_KEYS = {"sigma2_add": "add", "sigma2_prop": "prop", "sigma2_exp": "exp"}
#: Default start of an IOV variance (about 22% CV).
IOV_START = 0.05


class ParameterMap:
    """Layout of the estimated population parameters of a model.

    Parameters
    ----------
    spec : ModelSpec
    n_slots : int
        Occasion slots per subject (the most occasions of a subject) when the spec has
        inter-occasion variability.
    """

    def __init__(self, spec, n_slots: int = 0) -> None:
        self.spec = spec
        self.iov = list(getattr(spec, "iov_names", ()))
        self.n_slots = int(n_slots) if self.iov else 0
        self.theta_names = [p.name for p in spec.estimated]
        self.beta_names = list(estimated_coefficients(spec))
        self.iiv = list(spec.iiv_names)
        self.blocks = []
        for block in spec.omega.blocks:
            idx = sorted(self.iiv.index(name) for name in block if name in self.iiv)
            if idx:
                self.blocks.append(idx)
        self.sigma_names = list(spec.residual.variances)
        # offsets into psi
        self.n_theta = len(self.theta_names)
        self.n_beta = len(self.beta_names)
        self.n_omega = sum(len(b) * (len(b) + 1) // 2 for b in self.blocks)
        self.n_sigma = len(self.sigma_names)
        self.n_iov = len(self.iov)
        self.size = self.n_theta + self.n_beta + self.n_omega + self.n_iov + self.n_sigma
        self._omega_at = self.n_theta + self.n_beta
        self._iov_at = self._omega_at + self.n_omega
        self._sigma_at = self._iov_at + self.n_iov
        self.names = (
            [f"theta_{n}" for n in self.theta_names]
            + list(self.beta_names)
            + self._omega_names()
            + [f"omega_iov_{n}" for n in self.iov]
            + list(self.sigma_names)
        )

    @property
    def d(self) -> int:
        """Number of random effects of a subject: the etas, then the kappa slots."""
        return len(self.iiv) + self.n_iov * self.n_slots

    @property
    def n_iiv(self) -> int:
        """Number of etas (IIV parameters)."""
        return len(self.iiv)

    def kappa_index(self, parameter: str, slot: int) -> int:
        """Position among the random effects of the kappa of ``parameter`` in ``slot``."""
        return self.n_iiv + self.iov.index(parameter) * self.n_slots + slot

    def _omega_names(self) -> list[str]:
        same = {(i, j) for b in self.blocks for i in b for j in b}
        return [f"omega_{self.iiv[i]}_{self.iiv[j]}" for i in range(self.d) for j in range(i, self.d) if (i, j) in same]

    def _omega_pairs(self) -> list[tuple[int, int]]:
        same = {(i, j) for b in self.blocks for i in b for j in b}
        return [(i, j) for i in range(self.d) for j in range(i, self.d) if (i, j) in same]

    def kinds(self) -> list[str]:
        """Kind of each natural parameter: theta, beta, omega_var, omega_cov or sigma2."""
        out = ["theta"] * self.n_theta + ["beta"] * self.n_beta
        out += ["omega_var" if i == j else "omega_cov" for i, j in self._omega_pairs()]
        return out + ["omega_var"] * self.n_iov + ["sigma2"] * self.n_sigma

    # ------------------------------------------------------------------ numeric maps
    def omega_matrix(self, psi) -> np.ndarray:
        """The covariance of the random effects (d x d) of ``psi`` (complex input allowed).

        Omega of the etas (IIV order), then ``omega_iov_<P>`` on the diagonal of each
        parameter's kappa slots.
        """
        psi = np.asarray(psi)
        omega = np.zeros((self.d, self.d), dtype=psi.dtype)
        for k in range(self.n_iov):
            at = self.n_iiv + k * self.n_slots
            idx = np.arange(at, at + self.n_slots)
            omega[idx, idx] = np.exp(psi[self._iov_at + k])
        at = self._omega_at
        for idx in self.blocks:
            m = len(idx)
            low = np.zeros((m, m), dtype=psi.dtype)
            for i in range(m):
                for j in range(i + 1):
                    low[i, j] = np.exp(psi[at]) if i == j else psi[at]
                    at += 1
            omega[np.ix_(idx, idx)] = low @ low.T
        return omega

    def natural(self, psi) -> np.ndarray:
        """Natural-scale values in canonical order (complex input allowed)."""
        psi = np.asarray(psi)
        theta = np.exp(psi[: self.n_theta])
        beta = psi[self.n_theta : self._omega_at]
        omega = self.omega_matrix(psi)
        om = np.array([omega[i, j] for i, j in self._omega_pairs()], dtype=psi.dtype)
        iov = np.exp(psi[self._iov_at : self._sigma_at])
        sigma = np.exp(psi[self._sigma_at :])
        return np.concatenate([theta, beta, om, iov, sigma])

    def jacobian(self, psi) -> np.ndarray:
        """``d natural / d psi`` (exact, by complex step)."""
        psi = np.asarray(psi, dtype=float)
        jac = np.empty((self.size, self.size))
        h = 1e-30
        for k in range(self.size):
            z = psi.astype(complex)
            z[k] += 1j * h
            jac[:, k] = self.natural(z).imag / h
        return jac

    def pack(self, theta: Mapping, betas: Mapping, omega, sigma2: Mapping, iov: Mapping | None = None) -> np.ndarray:
        """``psi`` from natural values.

        Parameters
        ----------
        theta : mapping
            Parameter name -> typical value (> 0).
        betas : mapping
            Canonical coefficient name -> value.
        omega : array-like (d, d)
            Omega in IIV order (only the blocks are read).
        sigma2 : mapping
            Canonical residual name (``sigma2_add`` ...) -> variance.
        iov : mapping, optional
            Parameter name -> IOV variance ``omega_iov_<P>`` (needed with IOV).

        Returns
        -------
        numpy.ndarray
        """
        psi = np.empty(self.size)
        for k, name in enumerate(self.theta_names):
            psi[k] = np.log(float(theta[name]))
        for k, name in enumerate(self.beta_names):
            psi[self.n_theta + k] = float(betas[name])
        omega = np.asarray(omega, dtype=float).reshape(self.n_iiv, self.n_iiv)
        at = self._omega_at
        for idx in self.blocks:
            try:
                low = np.linalg.cholesky(omega[np.ix_(idx, idx)])
            except np.linalg.LinAlgError as exc:
                names = [self.iiv[i] for i in idx]
                raise ArgumentError(f"omega block {names} is not positive definite") from exc
            for i in range(len(idx)):
                for j in range(i + 1):
                    psi[at] = np.log(low[i, j]) if i == j else low[i, j]
                    at += 1
        for k, name in enumerate(self.iov):
            value = float((iov or {})[name])
            if not value > 0:
                raise ArgumentError(f"omega_iov_{name} must be positive, got {value!r}")
            psi[self._iov_at + k] = np.log(value)
        for k, name in enumerate(self.sigma_names):
            psi[self._sigma_at + k] = np.log(float(sigma2[name]))
        return psi

    def _is_log_diag(self, k: int) -> bool:
        at = self._omega_at
        for idx in self.blocks:
            for i in range(len(idx)):
                for j in range(i + 1):
                    if at == k:
                        return i == j
                    at += 1
        return False

    def is_log_scale(self, k: int) -> bool:
        """True when ``psi[k]`` is a logarithm (typical value, residual variance or a
        diagonal element of omega's Cholesky factor), so a step in it is relative."""
        if k < self.n_theta or k >= self._sigma_at:
            return True
        return k >= self._omega_at and self._is_log_diag(k)

    # ----------------------------------------------- the well-scaled parameterisation
    def scaled(self, psi) -> np.ndarray:
        """``z``: the parameterisation of the covariance step and of the curvature test.

        Log typical values, coefficients as they are, per omega element the log variance
        (diagonal) or the correlation (off-diagonal), log IOV variances, log residual
        variances. Unlike the
        Cholesky elements of ``psi``, these keep their curvature when a correlation nears
        one (complex input allowed).
        """
        psi = np.asarray(psi)
        omega = self.omega_matrix(psi)
        parts = []
        for i, j in self._omega_pairs():
            if i == j:
                parts.append(np.log(omega[i, i]))
            else:
                parts.append(omega[i, j] / np.sqrt(omega[i, i] * omega[j, j]))
        om = np.array(parts, dtype=psi.dtype)
        return np.concatenate([psi[: self._omega_at], om, psi[self._iov_at :]])  # log omega_iov as in psi

    def from_scaled(self, z) -> np.ndarray:
        """``psi`` of a point ``z`` of :meth:`scaled` (raises ArgumentError when its omega
        is not positive definite)."""
        z = np.asarray(z, dtype=float)
        at = self._omega_at
        sd = np.ones(self.d)
        pairs = self._omega_pairs()
        for k, (i, j) in enumerate(pairs):
            if i == j:
                sd[i] = np.exp(0.5 * z[at + k])
        omega = np.diag(sd**2)
        for k, (i, j) in enumerate(pairs):
            if i != j:
                omega[i, j] = omega[j, i] = z[at + k] * sd[i] * sd[j]
        out = np.empty(self.size)
        out[:at] = z[:at]
        out[self._iov_at :] = z[self._iov_at :]
        low_at = at
        for idx in self.blocks:
            try:
                low = np.linalg.cholesky(omega[np.ix_(idx, idx)])
            except np.linalg.LinAlgError as exc:
                raise ArgumentError("omega is not positive definite") from exc
            for i in range(len(idx)):
                for j in range(i + 1):
                    out[low_at] = np.log(low[i, j]) if i == j else low[i, j]
                    low_at += 1
        return out

    def scaled_jacobian(self, psi) -> np.ndarray:
        """``d z / d psi`` (exact, by complex step) of :meth:`scaled`."""
        psi = np.asarray(psi, dtype=float)
        jac = np.empty((self.size, self.size))
        h = 1e-30
        for k in range(self.size):
            w = psi.astype(complex)
            w[k] += 1j * h
            jac[:, k] = self.scaled(w).imag / h
        return jac

    # ------------------------------------------------------------- omega pieces
    def omega_parts(self, psi: np.ndarray):
        """Omega's inverse and log determinant with their derivatives.

        Returns
        -------
        inv : numpy.ndarray (d, d)
        dinv : numpy.ndarray (size, d, d)
            ``d omega^-1 / d psi_q`` (exact, by complex step; zero outside omega).
        logdet : float
        dlogdet : numpy.ndarray (size,)
        """
        psi = np.asarray(psi, dtype=float)
        d = self.d
        inv = np.linalg.inv(self.omega_matrix(psi)) if d else np.zeros((0, 0))
        dinv = np.zeros((self.size, d, d))
        dlogdet = np.zeros(self.size)
        h = 1e-30
        for k in range(self._omega_at, self._sigma_at):
            z = psi.astype(complex)
            z[k] += 1j * h
            dinv[k] = np.linalg.inv(self.omega_matrix(z)).imag / h
            if k >= self._iov_at:  # log|omega| has n_slots * log(omega_iov)
                dlogdet[k] = float(self.n_slots)
            elif self._is_log_diag(k):
                dlogdet[k] = 2.0
        logdet = float(np.linalg.slogdet(self.omega_matrix(psi))[1]) if d else 0.0
        return inv, dinv, logdet, dlogdet

    def index(self, name: str) -> int:
        """Position in ``psi`` of a theta (by parameter name), beta or sigma2 name."""
        if name in self.theta_names:
            return self.theta_names.index(name)
        if name in self.beta_names:
            return self.n_theta + self.beta_names.index(name)
        return self._sigma_at + self.sigma_names.index(name)


def start_values(spec, y: np.ndarray, output=None) -> dict:
    """Start values of the optimisation, on the natural scale.

    - ``theta_P``: the parameter's ``initial``, else the median of its typical-value
      prior (``LogNormal.median``; the scipy median for other priors).
    - ``beta_*``: the median of the coefficient's prior.
    - omega: ``spec.omega.initial``, else 0.1 on the diagonal (about 32% CV).
    - ``omega_iov_<P>``: the parameter's ``iov_initial``, else :data:`IOV_START`.
    - ``sigma2_add``: ``[residual] initial.add``, else 10% of the variance of the
      observations; ``sigma2_prop`` and ``sigma2_exp``: ``initial``, else 0.1.

    Parameters
    ----------
    spec : ModelSpec
    y : numpy.ndarray
        The observations.
    output : numpy.ndarray of int, optional
        The output of each observation (several outputs: each ``sigma2_<output>_add``
        starts at 10% of the variance of its own output's observations).

    Returns
    -------
    dict
        Keys ``theta``, ``betas``, ``omega`` (matrix), ``sigma2`` and ``iov``
        (parameter name -> IOV variance).
    """
    theta = {}
    for p in spec.estimated:
        if p.initial is not None:
            theta[p.name] = float(p.initial)
        elif isinstance(p.typical, LogNormal):
            theta[p.name] = float(p.typical.median)
        else:
            theta[p.name] = float(p.typical.scipy().median())
    betas = {}
    for name, prior in estimated_coefficients(spec).items():
        betas[name] = (
            float(prior.mean) if hasattr(prior, "mean") and not callable(prior.mean) else float(prior.scipy().median())
        )
    d = len(spec.iiv_names)
    if spec.omega.initial is not None:
        omega = np.asarray(spec.omega.initial, dtype=float)
        if omega.ndim == 1:
            omega = np.diag(omega)
    else:
        omega = 0.1 * np.eye(d)
    iov = {}
    for name in getattr(spec, "iov_names", ()):
        value = spec.parameter(name).iov_initial
        iov[name] = IOV_START if value is None else float(value)
    from ..spec.outputs import residual_parts

    y = np.asarray(y, dtype=float)
    sigma2 = {}
    for part in residual_parts(spec):
        initial = dict(part.residual.initial or {})
        mine = y if output is None or part.output is None else y[np.asarray(output) == part.index]
        spread = float(np.var(mine)) if mine.size > 1 else 1.0
        defaults = {"add": 0.1 * spread if spread > 0 else 1.0, "prop": 0.1, "exp": 0.1}
        for key, name in part.names.items():
            sigma2[name] = float(initial.get(key, initial.get(name, defaults[key])))
    return {"theta": theta, "betas": betas, "omega": omega, "sigma2": sigma2, "iov": iov}
