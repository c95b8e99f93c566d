"""One model on one dataset: individual parameters, residual model and the inner objective.

Notation, per subject ``i`` with observations ``y_ij`` (log scale for the exponential
error model), predictions ``f_ij(eta)`` and residual variances ``r_ij``:

- Conditional objective, whose minimum over eta is the EBE::

      O_i(eta) = sum_j [log r_ij + (y_ij - f_ij)^2 / r_ij] + eta' Omega^-1 eta

  With interaction (FOCE-I, Laplace) ``r_ij = a + b f_ij(eta)^2``; without (FO, FOCE)
  ``r_ij`` is evaluated at the population prediction ``f_ij(0)``, as in NONMEM.
  ``a`` is ``sigma2_add`` (or ``sigma2_exp``), ``b`` is ``sigma2_prop``.

Population parameters enter as ``psi`` (see :mod:`.parameters`). The individual
parameters are those of :mod:`bayes_nlme.individual` per parameter segment (so
time-varying covariates apply), and the predictions come from the model core
(:class:`.kernel.EngineKernel`). Everything is vectorised over observations and
subjects; per-subject sums are sparse products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ..individual import estimated_coefficients, individual_parameters
from .kernel import H_STEP, EngineKernel
from .loss import observation_loss, total_partials
from .parameters import ParameterMap

__all__ = ["Problem", "Residual", "METHODS", "INTERACTION", "problem_from_design"]

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
    """Data, parameter layout and predictions of one estimation problem.

    Parameters
    ----------
    spec : ModelSpec
    y : numpy.ndarray
        Observations (natural scale) that enter the objective.
    subject : numpy.ndarray of int
        0-based subject of each observation.
    n_subjects : int
    kernel_factory : callable
        ``kernel_factory(names, constants, log_transform)`` -> a kernel with the
        interface of :class:`.kernel.EngineKernel` (see :func:`problem_from_design`).
    covariates : dict of str to numpy.ndarray, optional
        Values per parameter segment of the covariates the spec uses.
    seg_subject : numpy.ndarray of int, optional
        Subject of each parameter segment (default: one segment per subject).
    jac_index : numpy.ndarray of int (n_obs, max_seg), optional
        Segment of each Jacobian block of each observation (default: its subject).
    censored : numpy.ndarray of bool, optional
        Rows censored below their limit (M3).
    limit : numpy.ndarray, optional
        Limits of the censored rows (natural scale).
    positive : bool
        M4: every row is conditioned on ``y >= 0`` (contract 5.2); ignored under the
        exponential error model, where ``y > 0`` always.
    occasions : tuple of numpy.ndarray, optional
        With inter-occasion variability: ``(seg_occasion, occasion_subject,
        occasion_label, occasion_slot)`` of the design
        (:class:`~bayes_nlme.core.EngineDesign`). The kappas are then random effects of
        the subject after its etas, one per occasion slot (see :mod:`.parameters`).
    output : numpy.ndarray of int, optional
        The output of each observation (CONTRACT 5.4): each row takes its output's
        residual model (variances, exponential transform, M4 conditioning). ``positive``
        may then be a mask of rows.
    """

    def __init__(
        self,
        spec,
        y,
        subject,
        n_subjects: int,
        kernel_factory,
        covariates: dict | None = None,
        seg_subject=None,
        jac_index=None,
        censored=None,
        limit=None,
        positive=False,
        occasions=None,
        output=None,
    ):
        self.spec = spec
        n_slots = 0
        if occasions is not None and getattr(spec, "iov_names", ()):
            n_slots = int(np.max(occasions[3])) + 1 if len(occasions[3]) else 1
        self.pmap = ParameterMap(spec, n_slots)
        self.y = np.asarray(y, dtype=float)
        self.subject = np.asarray(subject, dtype=np.int64)
        self.n_subjects = int(n_subjects)
        self.n_obs = len(self.y)
        self.seg_subject = np.arange(self.n_subjects) if seg_subject is None else np.asarray(seg_subject, np.int64)
        self.jac_index = self.subject[:, None] if jac_index is None else np.asarray(jac_index, dtype=np.int64)
        self.first_segment = np.searchsorted(self.seg_subject, np.arange(self.n_subjects))
        self.covariates = dict(covariates or {})
        self._residual_layout(spec, output)
        self.censored = None if censored is None or not np.any(censored) else np.asarray(censored, dtype=bool)
        positive = np.broadcast_to(np.asarray(positive, dtype=bool), (self.n_obs,)) & ~self.log_rows
        self.positive = bool(positive.all()) if positive.all() or not positive.any() else positive.copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            self.y_t = np.where(self.log_rows, np.log(self.y), self.y)
            self.limit_t = (
                None
                if self.censored is None
                else np.where(
                    self.log_rows, np.log(np.where(self.censored, limit, 1.0)), np.where(self.censored, limit, 1.0)
                )
            )
        self.free = [p.name for p in spec.parameters if not p.is_fixed or any(c.estimated for c in p.covariates)]
        self.fixed_values: dict = {}
        log_transform = bool(self.log_rows.all()) if self.log_rows.all() or not self.log_rows.any() else self.log_rows
        self.kernel = kernel_factory(self.free, self._constants(spec), log_transform)
        self.cols = [self.free.index(name) for name in self.pmap.iiv]
        self._random_effects(occasions)
        self.seg = sparse.csr_matrix(
            (np.ones(self.n_obs), (self.subject, np.arange(self.n_obs))), shape=(self.n_subjects, self.n_obs)
        )
        self.n_per_subject = np.bincount(self.subject, minlength=self.n_subjects)

    def _residual_layout(self, spec, output) -> None:
        """Per output: its rows, and the psi positions of its ``a`` (add or exp) and ``b``
        (prop) variances; ``log_rows`` marks the rows of exponential outputs."""
        from ..spec.outputs import residual_parts

        parts = residual_parts(spec)
        output = np.zeros(self.n_obs, dtype=np.int64) if output is None else np.asarray(output, dtype=np.int64)
        self.output = output
        if len(parts) > 1 and len(output) != self.n_obs:
            raise ValueError("a model with several outputs needs the output of each observation")
        self.error = parts[0].residual.model if len(parts) == 1 else "several"
        self.log_rows = np.zeros(self.n_obs, dtype=bool)
        self.residual_groups = []
        for part in parts:
            rows = output == part.index if len(parts) > 1 else np.ones(self.n_obs, dtype=bool)
            names = part.names
            ia = self.pmap.index(names["add"]) if "add" in names else None
            if "exp" in names:
                ia = self.pmap.index(names["exp"])
                self.log_rows |= rows
            ib = self.pmap.index(names["prop"]) if "prop" in names else None
            self.residual_groups.append((rows, ia, ib))
        self.ia, self.ib = self.residual_groups[0][1:] if len(parts) == 1 else (None, None)

    def _random_effects(self, occasions) -> None:
        """The layout of the random effects: etas, then kappas (one per occasion slot).

        ``re_cols[r]``: the free parameter column random effect ``r`` shifts;
        ``re_seg`` (n_segments, d): 1 where it shifts a segment (None without IOV: every
        effect shifts every segment of its subject); ``slot_label`` (n_subjects,
        n_slots): the ``OCC`` value of each subject's slot (NaN: no such occasion).
        """
        pm = self.pmap
        self.re_cols = list(self.cols)
        self.re_seg = None
        self.re_obs = None
        self.slot_label = None
        self.occasion_subject = self.occasion_slot = self.seg_occasion = None
        if not pm.n_iov:
            return
        seg_occasion, occ_subject, occ_label, occ_slot = (np.asarray(a, dtype=np.int64) for a in occasions)
        self.seg_occasion, self.occasion_subject, self.occasion_slot = seg_occasion, occ_subject, occ_slot
        seg_slot = occ_slot[seg_occasion]
        re_seg = np.zeros((len(self.seg_subject), pm.d))
        re_seg[:, : pm.n_iiv] = 1.0
        for name in pm.iov:
            for k in range(pm.n_slots):
                r = pm.kappa_index(name, k)
                re_seg[:, r] = seg_slot == k
        self.re_cols += [self.free.index(name) for name in pm.iov for _ in range(pm.n_slots)]
        self.re_seg = re_seg
        self.re_obs = re_seg[self.jac_index]
        self._slot_obs = (seg_slot[self.jac_index][:, :, None] == np.arange(pm.n_slots)).astype(float)
        self._iov_cols = [self.free.index(name) for name in pm.iov]
        self.slot_label = np.full((self.n_subjects, pm.n_slots), np.nan)
        self.slot_label[occ_subject, occ_slot] = occ_label
        to_col = np.zeros((pm.d, len(self.free)))
        to_col[np.arange(pm.d), self.re_cols] = 1.0
        self._re_to_col = to_col

    def re_sum(self, jac: np.ndarray) -> np.ndarray:
        """Derivatives along the random effects from per-segment ones: (n_obs, d).

        Parameters
        ----------
        jac : numpy.ndarray (n_obs, max_seg, M)
            Derivatives with respect to each segment's log parameters.
        """
        base = jac.sum(axis=1)[:, self.cols]
        if self.re_obs is None:
            return base
        slots = [np.einsum("js,jsk->jk", jac[:, :, c], self._slot_obs) for c in self._iov_cols]
        return np.concatenate([base, *slots], axis=1)

    def re_step(self, r: int):
        """The direction of random effect ``r`` in ``U``: its column (an eta), or an
        (n_segments, M) array (a kappa: its occasion's segments only)."""
        if self.re_seg is None or r < self.pmap.n_iiv:
            return self.re_cols[r]
        direction = np.zeros((len(self.seg_subject), len(self.free)))
        direction[:, self.re_cols[r]] = self.re_seg[:, r]
        return direction

    def re_basis(self) -> tuple[list, list]:
        """Directions whose derivatives are computed, and how each random effect sums them.

        Returns ``(steps, combos)``: ``steps`` are directions for the kernel
        (:meth:`re_step`), ``combos[r]`` the indices of the steps whose sum is random
        effect ``r``. The eta of a parameter with IOV shifts every segment, which is the
        sum of its kappa slots' directions (every segment is in exactly one slot), so its
        derivatives are sums of the kappas' and cost no engine call of their own.
        """
        cached = self.__dict__.get("_basis")
        if cached is not None:
            return cached
        pm = self.pmap
        steps: list = []
        combos: list = [None] * pm.d
        for r in range(pm.d):
            if r < pm.n_iiv and pm.iiv[r] in pm.iov:
                continue
            combos[r] = [len(steps)]
            steps.append(self.re_step(r))
        for r in range(pm.n_iiv):
            if pm.iiv[r] in pm.iov:
                combos[r] = [combos[pm.kappa_index(pm.iiv[r], k)][0] for k in range(pm.n_slots)]
        self._basis = (steps, combos)
        return self._basis

    def _constants(self, spec) -> dict:
        """Per-segment values of the parameters that nothing estimated changes."""
        if len(self.free) == len(spec.parameters):
            return {}
        theta = {q.name: 1.0 for q in spec.estimated}
        betas = dict.fromkeys(estimated_coefficients(spec), 0.0)
        values = individual_parameters(spec, theta, None, self.covariates, betas, index=self.seg_subject, xp=np)
        self.fixed_values = {
            name: np.asarray(value, dtype=float) for name, value in values.items() if name not in self.free
        }
        return self.fixed_values

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
        """Log individual parameters of every parameter segment, and their psi-derivatives.

        ``log P = log theta_P + sum_c log(factor_c) + eta_P`` (CONTRACT section 2), with the
        covariates of the segment and the eta of its subject.

        Returns
        -------
        U : numpy.ndarray (n_segments, M)
        B : numpy.ndarray (n_segments, M, size)
            ``d log P / d psi`` (typical values and covariate coefficients).
        """
        pm = self.pmap
        n_seg = len(self.seg_subject)
        base = np.zeros((n_seg, len(self.free)))
        dbase = np.zeros((n_seg, len(self.free), pm.size))
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
            if self.re_seg is None:
                base[:, self.cols] += np.asarray(eta)[self.seg_subject]
            else:
                base += (np.asarray(eta)[self.seg_subject] * self.re_seg) @ self._re_to_col
        return base, dbase

    def individual_values(self, psi: np.ndarray, eta: np.ndarray | None = None) -> dict:
        """Individual parameter values per subject (at its first segment, without the
        kappas of inter-occasion variability), by name."""
        if eta is not None and self.pmap.n_iov:
            eta = np.array(eta, dtype=float, copy=True)
            eta[:, self.pmap.n_iiv :] = 0.0
        base, _ = self.log_parameters(psi, eta)
        first = self.first_segment
        out = {name: np.exp(base[first, m]) for m, name in enumerate(self.free)}
        out.update({name: values[first] for name, values in self.fixed_values.items()})
        return {name: out[name] for name in self.spec.parameter_names}

    def f_psi(self, jac: np.ndarray, dbase: np.ndarray) -> np.ndarray:
        """``d f / d psi`` (n_obs, size) from the per-segment Jacobian."""
        return np.einsum("jsm,jsmp->jp", jac, dbase[self.jac_index])

    def variance(self, psi: np.ndarray, f: np.ndarray) -> np.ndarray:
        """The residual variance ``r = a + b f^2`` of every row at predictions ``f`` (any
        leading axes), with each row's output's ``a`` and ``b``."""
        n = self.n_obs
        a, b = np.zeros(n), np.zeros(n)
        for rows, ia, ib in self.residual_groups:
            if ia is not None:
                a[rows] = np.exp(psi[ia])
            if ib is not None:
                b[rows] = np.exp(psi[ib])
        return a + b * f**2

    def residual(self, psi: np.ndarray, f: np.ndarray, interaction: bool, f0=None, f0_psi=None) -> Residual:
        """Residual variances ``r = a + b * f^2`` and derivatives (``a``, ``b`` those of
        each row's output).

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
        a, b = np.zeros(n), np.zeros(n)
        for rows, ia, ib in self.residual_groups:
            if ia is not None:
                a[rows] = np.exp(psi[ia])
            if ib is not None:
                b[rows] = np.exp(psi[ib])
        r_psi = np.zeros((n, size))
        r_fpsi = np.zeros((n, size))
        r_ffpsi = np.zeros((n, size))
        zero = np.zeros(n)
        base = f if interaction else f0
        if interaction:
            r, r_f, r_ff = a + b * f**2, 2.0 * b * f, 2.0 * b
        else:
            r, r_f, r_ff = a + b * f0**2, zero, zero
        for rows, ia, ib in self.residual_groups:
            if ib is not None:
                r_psi[rows, ib] = b[rows] * base[rows] ** 2
                if interaction:
                    r_fpsi[rows, ib] = 2.0 * b[rows] * f[rows]
                    r_ffpsi[rows, ib] = 2.0 * b[rows]
            if ia is not None:
                r_psi[rows, ia] = a[rows]
        if not interaction and f0_psi is not None:
            r_psi += (2.0 * b * f0)[:, None] * f0_psi
        return Residual(r, r_f, r_ff, r_psi, r_fpsi, r_ffpsi)

    # ----------------------------------------------------------- inner objective
    def population(self, psi: np.ndarray):
        """Population predictions (eta = 0) and their psi-derivatives: ``(f0, f0_psi)``."""
        u0, dbase = self.log_parameters(psi, None)
        f0, jac0 = self.kernel.jacobian(u0)
        return f0, self.f_psi(jac0, dbase)

    def eta_derivatives(self, u: np.ndarray, one_sided: bool = False):
        """Predictions, ``G = df/deta`` (n_obs, d) and ``d G / d eta`` (n_obs, d, d) at ``U``.

        ``one_sided``: ``d G / d eta`` by forward differences of the exact Jacobian (one
        engine call per direction instead of two, relative error about 1e-5). Used for
        the Hessian of the inner Newton steps with IOV, where it only changes the rate of
        convergence (the mode itself is where the exact gradient vanishes); the OFV and
        its gradient always use central differences.
        """
        f, jac = self.kernel.jacobian(u)
        g = self.re_sum(jac)
        steps, combos = self.re_basis()
        if one_sided:
            h, move = H_STEP, EngineKernel.move
            basis = [self.re_sum((self.kernel.jacobian(move(u, [(step, h)]))[1] - jac) / h) for step in steps]
        else:
            basis = [self.re_sum(self.kernel.first_difference(u, step)) for step in steps]
        g_eta = np.zeros((self.n_obs, self.d, self.d))
        for b in range(self.d):
            g_eta[:, :, b] = sum(basis[i] for i in combos[b])
        return f, g, 0.5 * (g_eta + np.swapaxes(g_eta, 1, 2))

    def inner_value(self, psi: np.ndarray, eta: np.ndarray, method: str, omega_inv: np.ndarray) -> np.ndarray:
        """``O_i(eta)`` for every subject."""
        u, _ = self.log_parameters(psi, eta)
        f = self.kernel.value(u)
        f0 = None if INTERACTION[method] else self.population(psi)[0]
        res = self.residual(psi, f, INTERACTION[method], f0)
        obs = self.segsum(self.loss(f, res)["l"])
        return obs + np.einsum("si,ij,sj->s", eta, omega_inv, eta)

    @property
    def n_censored(self) -> int:
        """Number of censored rows in the objective."""
        return 0 if self.censored is None else int(self.censored.sum())

    def loss(self, f: np.ndarray, res: Residual) -> dict:
        """Per-observation loss and its partials in ``(f, r)`` (:func:`.loss.observation_loss`)."""
        return observation_loss(self.y_t, f, res.r, self.censored, self.limit_t, self.positive)

    @property
    def nongaussian(self):
        """Rows whose loss is not a Gaussian density (censored, or every row under M4), or None."""
        if isinstance(self.positive, np.ndarray):
            return self.positive | (self.censored if self.censored is not None else False)
        if self.positive:
            return np.ones(self.n_obs, dtype=bool)
        return self.censored

    def loss_partials(self, f: np.ndarray, res: Residual, third: bool = False) -> dict:
        """``l`` and its total derivatives (:func:`.loss.total_partials`)."""
        lp = self.loss(f, res)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            out = total_partials(lp, res, third)
        out["l"] = lp["l"]
        return out

    def inner(self, psi: np.ndarray, eta: np.ndarray, method: str, omega_inv: np.ndarray):
        """``O_i``, its gradient (n_subjects, d) and exact Hessian (n_subjects, d, d)."""
        u, _ = self.log_parameters(psi, eta)
        f, g_eta, h_eta = self.eta_derivatives(u, one_sided=self.pmap.n_iov > 0)
        f0 = None if INTERACTION[method] else self.population(psi)[0]
        res = self.residual(psi, f, INTERACTION[method], f0)
        lp = self.loss_partials(f, res)
        with np.errstate(invalid="ignore", divide="ignore"):
            obj = self.segsum(lp["l"]) + np.einsum("si,ij,sj->s", eta, omega_inv, eta)
            grad = self.segsum(lp["l_f"][:, None] * g_eta) + 2.0 * eta @ omega_inv
            outer = g_eta[:, :, None] * g_eta[:, None, :]
            hessian = self.segsum(lp["l_ff"][:, None, None] * outer + lp["l_f"][:, None, None] * h_eta)
        return obj, grad, hessian + 2.0 * omega_inv


def problem_from_design(
    spec, y, design, keep, covariates: dict | None = None, censored=None, limit=None, positive=False
) -> Problem:
    """The :class:`Problem` of the observations ``keep`` of a model-core design.

    Parameters
    ----------
    spec : ModelSpec
    y : numpy.ndarray
        The kept observations.
    design : EngineDesign
    keep : numpy.ndarray of bool
    covariates : dict, optional
        Covariate values per parameter segment.
    censored, limit : numpy.ndarray, optional
        Censored rows among the kept ones, and their limits (M3, M4).
    positive : bool or numpy.ndarray of bool
        M4: condition every row (or the rows marked) on ``y >= 0``.

    Returns
    -------
    Problem
    """
    keep = np.asarray(keep, dtype=bool)

    def factory(names, constants, log_transform):
        return EngineKernel(design, names, constants, keep=keep, log_transform=log_transform)

    return Problem(
        spec,
        y,
        np.asarray(design.obs_subject)[keep],
        design.n_subjects,
        factory,
        covariates,
        seg_subject=design.seg_subject,
        jac_index=np.asarray(design.jac_index)[keep],
        censored=censored,
        limit=limit,
        positive=positive,
        occasions=None
        if getattr(design, "seg_occasion", None) is None
        else (design.seg_occasion, design.occasion_subject, design.occasion_label, design.occasion_slot),
        output=None if getattr(design, "obs_output", None) is None else np.asarray(design.obs_output)[keep],
    )
