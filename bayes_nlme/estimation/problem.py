"""The compiled objective functions of the frequentist path (one PyTensor graph).

Notation, per subject ``i`` with observations ``y_i`` (on the log scale for the
exponential error model), prediction ``f_i(eta)``, residual variances
``R_i = diag(r_ij)`` and ``G_i = d f_i / d eta`` (n_i x d):

- Conditional objective (the EBE minimises it)::

      O_i(eta) = sum_j [log r_ij + (y_ij - f_ij)^2 / r_ij] + eta' Omega^-1 eta

  With interaction (FOCE-I, Laplace) ``r_ij`` is evaluated at ``f_ij(eta)``; without
  (FOCE) at the population prediction ``f_ij(0)``, as in NONMEM.
- FOCE / FOCE-I (Wang 2007; NONMEM)::

      L_i = O_i(eta_hat) + log|Omega| + log|A_i|,
      A_i = Omega^-1 + sum_j [g_j g_j' / r_j + 1/2 dr_j dr_j' / r_j^2]

  with ``g_j = d f_ij / d eta`` and ``dr_j = d r_ij / d eta`` (zero without
  interaction). At the exact mode this equals the linearised
  ``log|C_i| + e_i' C_i^-1 e_i`` with ``C_i = G Omega G' + R`` and
  ``e_i = y_i - f_i + G eta_hat``.
- Laplace: ``L_i = O_i(eta_hat) + log|Omega| + log|H_i / 2|`` with the exact
  Hessian ``H_i`` of ``O_i`` at the mode.
- FO: ``L_i = log|C_i| + e_i' C_i^-1 e_i`` at ``eta = 0``.

``OFV = sum_i L_i`` is ``-2 log L`` without ``n_obs log(2 pi)``.

Gradients with respect to the population parameters are exact: implicit
differentiation through the mode, ``dL/dpsi = dL/dpsi|_eta - v' dg/dpsi`` with
``g = dO/deta`` and ``v = H^-1 dL/deta``, obtained in one reverse pass by holding
``v`` constant. Every population parameter enters as one row per subject (a matrix
``phi``), so the same pass gives per-subject gradients for the sandwich covariance.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import disconnected_grad, pushforward

from ..individual import individual_parameters
from ._linalg import cho_solve, cholesky, logdet_from_cholesky, quad_form_inv
from .parameters import ParameterMap

__all__ = ["Problem", "METHODS", "INTERACTION"]

#: The estimation methods.
METHODS = ("fo", "foce", "focei", "laplace")
#: Methods whose residual variance is evaluated at the individual prediction.
INTERACTION = {"fo": False, "foce": False, "focei": True, "laplace": True}


class Problem:
    """Compiled objective, gradients and diagnostics of one model on one dataset.

    Parameters
    ----------
    spec : ModelSpec
    y : numpy.ndarray
        Observations (natural scale), one per prediction point.
    subject : numpy.ndarray of int
        0-based subject of each observation.
    n_subjects : int
    predictor : callable
        ``predictor(params) -> tensor (n_obs,)``: the prediction at every observation
        from a dict of individual parameter vectors (n_subjects,).
    covariates : dict of str to numpy.ndarray
        Per-subject covariate values used by the spec.
    """

    def __init__(
        self,
        spec,
        y: np.ndarray,
        subject: np.ndarray,
        n_subjects: int,
        predictor: Callable,
        covariates: dict | None = None,
    ) -> None:
        self.spec = spec
        self.pmap = ParameterMap(spec)
        self.y = np.asarray(y, dtype=float)
        self.subject = np.asarray(subject, dtype=np.int64)
        self.n_subjects = int(n_subjects)
        self.n_obs = len(self.y)
        self.predictor = predictor
        self.covariates = dict(covariates or {})
        self.error = spec.residual.model
        self.y_t = np.log(self.y) if self.error == "exponential" else self.y
        self._cache: dict = {}
        self.seconds_compile = 0.0

    @property
    def d(self) -> int:
        """Number of random effects."""
        return self.pmap.d

    # ------------------------------------------------------------------ graph
    def _segsum(self, x):
        return pt.inc_subtensor(pt.zeros((self.n_subjects,))[self.subject], x)

    def _prediction(self, par, eta):
        ind = individual_parameters(
            self.spec, par.theta, eta, self.covariates, par.betas, n_subjects=self.n_subjects
        )
        f = pt.as_tensor_variable(self.predictor(ind))
        return pt.log(f) if self.error == "exponential" else f

    def _variance(self, par, f):
        """Residual variance per observation and its derivative with respect to f."""
        s = {k: v[self.subject] for k, v in par.sigma2.items()}
        if self.error == "additive":
            return s["sigma2_add"] * pt.ones_like(f), None
        if self.error == "exponential":
            return s["sigma2_exp"] * pt.ones_like(f), None
        if self.error == "proportional":
            return s["sigma2_prop"] * f**2, 2.0 * s["sigma2_prop"] * f
        return s["sigma2_add"] + s["sigma2_prop"] * f**2, 2.0 * s["sigma2_prop"] * f

    def _graph(self, method: str) -> dict:
        """Symbolic pieces shared by the compiled functions of ``method``."""
        phi = pt.matrix("phi")
        eta = pt.matrix("eta")
        par = self.pmap.symbolic(phi)
        d = self.d
        y = pt.as_tensor_variable(self.y_t)
        f = self._prediction(par, eta if d else None)
        if INTERACTION[method] or d == 0:
            r, drdf = self._variance(par, f)
        else:
            f0 = self._prediction(par, None)
            r, drdf = self._variance(par, f0)
            drdf = None
        resid = y - f
        obs_term = self._segsum(pt.log(r) + resid**2 / r)
        quad = par.eta_quad(eta) if d else 0.0
        objective = obs_term + quad
        out = dict(phi=phi, eta=eta, par=par, f=f, r=r, drdf=drdf, objective=objective)
        if d:
            out["g"] = pt.grad(objective.sum(), eta)
            out["hess"] = [pt.grad(out["g"][:, k].sum(), eta) for k in range(d)]
        return out

    def _jacobian(self, f, eta) -> list:
        """Columns ``d f / d eta_k`` at each observation (forward mode, one per k)."""
        cols = []
        for k in range(self.d):
            tangent = np.zeros((self.n_subjects, self.d))
            tangent[:, k] = 1.0
            cols.append(pushforward(f, eta, pt.as_tensor_variable(tangent)))
        return cols

    def _information(self, par, jac, r, drdf) -> list:
        """``Omega^-1 + sum_j [g g'/r + 1/2 dr dr'/r^2]`` per subject (nested lists)."""
        d = self.d
        a: list = [[None] * d for _ in range(d)]
        for k in range(d):
            for m in range(k + 1):
                term = jac[k] * jac[m] / r
                if drdf is not None:
                    term = term + 0.5 * drdf**2 * jac[k] * jac[m] / r**2
                a[k][m] = par.omega_inv[k][m] + self._segsum(term)
                a[m][k] = a[k][m]
        return a

    def _contribution(self, method: str, gr: dict):
        """``L_i`` per subject (the OFV contribution) for ``method``."""
        par, eta, f, r = gr["par"], gr["eta"], gr["f"], gr["r"]
        d = self.d
        if d == 0:
            return gr["objective"]
        if method == "laplace":
            half = [[0.5 * gr["hess"][k][:, m] for m in range(d)] for k in range(d)]
            return gr["objective"] + par.logdet_omega + logdet_from_cholesky(cholesky(half))
        jac = self._jacobian(f, eta)
        if method == "fo":
            y = pt.as_tensor_variable(self.y_t)
            resid = y - f + sum(jac[k] * eta[:, k][self.subject] for k in range(d))
            a = self._information(par, jac, r, None)
            low = cholesky(a)
            b = [self._segsum(jac[k] * resid / r) for k in range(d)]
            return (
                self._segsum(pt.log(r) + resid**2 / r)
                + par.logdet_omega
                + logdet_from_cholesky(low)
                - quad_form_inv(low, b)
            )
        a = self._information(par, jac, r, gr["drdf"])
        return gr["objective"] + par.logdet_omega + logdet_from_cholesky(cholesky(a))

    def _compile(self, inputs, outputs):
        import time

        start = time.perf_counter()
        fn = pytensor.function(inputs, outputs, on_unused_input="ignore", trust_input=True)
        self.seconds_compile += time.perf_counter() - start
        return fn

    def functions(self, method: str) -> dict:
        """The compiled functions of ``method`` (compiled once, then cached).

        Returns
        -------
        dict
            ``inner(phi, eta) -> (O, g, H)``, ``inner_value(phi, eta) -> O`` (absent
            for FO and models without IIV) and ``outer(phi, eta) -> (L, grad)``, where
            ``grad`` holds the per-subject total gradients of ``L_i`` (n_subjects x size).
        """
        if method in self._cache:
            return self._cache[method]
        gr = self._graph(method)
        phi, eta = gr["phi"], gr["eta"]
        fns: dict = {}
        contribution = self._contribution(method, gr)
        d = self.d
        if d and method != "fo":
            hess = pt.stack(gr["hess"], axis=2)
            fns["inner"] = self._compile([phi, eta], [gr["objective"], gr["g"], hess])
            fns["inner_value"] = self._compile([phi, eta], gr["objective"])
            dl_deta = pt.grad(contribution.sum(), eta)
            low = cholesky([[gr["hess"][k][:, m] for m in range(d)] for k in range(d)])
            v = pt.stack(cho_solve(low, [dl_deta[:, k] for k in range(d)]), axis=1)
            v = disconnected_grad(v)
            total = contribution.sum() - (v * gr["g"]).sum()
        else:
            total = contribution.sum()
        grad = pt.grad(total, phi)
        fns["outer"] = self._compile([phi, eta], [contribution, grad])
        fns["value"] = self._compile([phi, eta], contribution)
        self._cache[method] = fns
        return fns

    def diagnostics_function(self, method: str):
        """``fn(phi, eta) -> (f, r, G, f0, r_lin)`` for residual diagnostics.

        ``f``/``r``: the prediction and residual variance at ``eta`` (with
        interaction); ``G``: ``d f / d eta`` (n_obs x d); ``f0``: the population
        prediction; ``r_lin``: the variance used in the linearisation of ``method``.
        All on the transformed scale (log for the exponential error model).
        """
        key = ("diagnostics", method)
        if key in self._cache:
            return self._cache[key]
        phi = pt.matrix("phi")
        eta = pt.matrix("eta")
        par = self.pmap.symbolic(phi)
        d = self.d
        f = self._prediction(par, eta if d else None)
        f0 = self._prediction(par, None)
        r, _ = self._variance(par, f)
        r0, _ = self._variance(par, f0)
        r_lin = r if INTERACTION[method] else r0
        jac = self._jacobian(f, eta) if d else []
        g = pt.stack(jac, axis=1) if d else pt.zeros((self.n_obs, 0))
        fn = self._compile([phi, eta], [f, r, g, f0, r_lin])
        self._cache[key] = fn
        return fn

    def tile(self, psi: np.ndarray) -> np.ndarray:
        """One copy of ``psi`` per subject (the ``phi`` input of the compiled functions)."""
        return np.ascontiguousarray(np.broadcast_to(np.asarray(psi, dtype=float), (self.n_subjects, len(psi))))
