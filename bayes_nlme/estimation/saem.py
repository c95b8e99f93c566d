"""SAEM: stochastic approximation EM (Delyon, Lavielle and Moulines 1999; Kuhn and
Lavielle 2005) on the model core.

The complete-data objective of subject ``i`` is the conditional objective of the other
frequentist methods (:meth:`~.problem.Problem.inner_value` with interaction):
``O_i(eta) = sum_j l_ij(f_ij(eta)) + eta' Omega^-1 eta``, where ``l`` is the loss of
:mod:`.loss` (M3 censored rows included) and the predictions come from the model core
(:class:`.kernel.EngineKernel`). No second copy of the model is written here.

Each iteration:

1. **Simulation** (E-step): Metropolis-Hastings on the etas of every subject and chain,
   as saemix and nlmixr2 do it: ``kernel_steps[0]`` steps proposing from the prior
   ``N(0, Omega)``, ``kernel_steps[1]`` random-walk steps of the whole vector
   ``N(eta, s^2 Omega)`` and ``kernel_steps[2]`` sweeps of component-wise random walks,
   whose scales adapt toward an acceptance rate of 0.4 (saemix's rule).
2. **Stochastic approximation** of the sufficient statistics with step ``gamma_k``:
   1 during the first ``n_burn`` iterations (exploration), then ``1 / (k - n_burn)``
   (smoothing, the average of the later iterations).
3. **M-step**: in closed form for the typical values of the parameters with IIV
   (``log theta`` is the mean of the individual ``log theta + eta``: mu-referencing) and
   for omega (the averaged ``sum_i phi_i phi_i'`` minus the mean, restricted to the omega
   blocks); for the residual variance in closed form when there is one variance and no
   censored row (the mean squared residual on the scale of the error model), else
   numerically on the losses of the censored and uncensored rows alike (so BLQ rows are
   not treated as observed, unlike nlmixr2's M-step). Typical values without IIV and
   covariate coefficients are maximised numerically given the simulated etas.
   During the exploration phase omega's diagonal and the residual variances decrease
   by at most 5% per iteration (simulated annealing, as saemix).

With inter-occasion variability the kappas (one per occasion slot of each IOV parameter,
:mod:`.parameters`) are random effects of the subject after its etas: the same kernels
sample them (each kappa shifts its occasion's parameter segments only), a slot a subject
lacks is held at 0 (no data, nothing to simulate), and the M-step of each IOV variance is
the closed form ``sum kappa^2 / (number of subject-occasions)``, one variance shared by
every occasion (NONMEM's ``$OMEGA BLOCK(1) SAME``); it is annealed like omega.

Defaults follow nlmixr2's ``saemControl`` (``nBurn = 200``, ``nEm = 300``, kernel steps
``nu = c(2, 2, 2)``, ``nmc = 3`` chains), with fewer chains when fewer give 50 simulated
subjects (saemix's rule, ``ceil(50 / n_subjects)``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from scipy import optimize

from ..errors import SpecError
from .loss import observation_loss_value

__all__ = ["SaemSettings", "saem_settings", "run_saem", "replicate", "default_chains"]

_LOG = logging.getLogger("bayes_nlme.estimation")

#: Target acceptance rate of the random-walk kernels (saemix).
_ACCEPT = 0.4
#: Largest decrease per iteration of omega's diagonal and of the residual variances in
#: the exploration phase (simulated annealing).
_ANNEAL = 0.95


@dataclass(frozen=True)
class SaemSettings:
    """Settings of SAEM (the ``[saem]`` table of a model file and the CLI flags).

    Attributes
    ----------
    n_burn : int
        Iterations of the exploration phase (step 1); nlmixr2's ``nBurn``.
    n_em : int
        Iterations of the smoothing phase (step ``1/k``); nlmixr2's ``nEm``.
    chains : int or None
        Chains per subject; None: ``min(3, ceil(50 / n_subjects))`` (nlmixr2's ``nmc = 3``,
        saemix's 50 simulated subjects).
    kernel_steps : tuple of int
        Steps of the prior, full-vector and component-wise kernels per iteration.
    is_samples : int
        Importance samples per subject for the OFV.
    """

    n_burn: int = 200
    n_em: int = 300
    chains: int | None = None
    kernel_steps: tuple = (2, 2, 2)
    is_samples: int = 3000


def saem_settings(table: dict | None = None, **overrides) -> SaemSettings:
    """Settings from a ``[saem]`` table and overrides (None values are ignored).

    Parameters
    ----------
    table : dict, optional
        Keys ``n_burn``, ``n_em``, ``chains``, ``kernel_steps``, ``is_samples``.
    **overrides
        The same keys (e.g. from the command line).

    Returns
    -------
    SaemSettings

    Raises
    ------
    SpecError
        For an unknown key or a value that is not a whole number of the valid range.
    """
    valid = {f.name for f in fields(SaemSettings)}
    values = dict(table or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - valid)
    if unknown:
        raise SpecError(f"unknown key '{unknown[0]}' in [saem]", f"saem.{unknown[0]}", sorted(valid))
    for key, value in values.items():
        items = value if key == "kernel_steps" else [value]
        if key == "kernel_steps" and (not isinstance(value, (list, tuple)) or len(value) != 3):
            raise SpecError("[saem] kernel_steps must be three whole numbers", "saem.kernel_steps", ["[2, 2, 2]"])
        least = 0 if key in ("n_burn", "kernel_steps") else 1
        if any(isinstance(v, bool) or not isinstance(v, int) or v < least for v in items):
            raise SpecError(
                f"[saem] {key} must be a whole number >= {least}, got {value!r}", f"saem.{key}", [f">= {least}"]
            )
    if "kernel_steps" in values:
        values["kernel_steps"] = tuple(values["kernel_steps"])
    return SaemSettings(**values)


def default_chains(settings: SaemSettings, n_subjects: int) -> int:
    """Chains per subject: the setting, else nlmixr2's 3 (``nmc``), fewer when fewer
    suffice for 50 simulated subjects (saemix's rule)."""
    return settings.chains or max(1, min(3, math.ceil(50 / n_subjects)))


def present_effects(problem) -> np.ndarray:
    """Which random effects of each subject exist (n_subjects, d): every eta, and the
    kappas of the occasion slots the subject has (a missing slot has no data; SAEM holds
    its kappa at 0 so it contributes nothing)."""
    pm = problem.pmap
    present = np.ones((problem.n_subjects, pm.d), dtype=bool)
    if pm.n_iov:
        has = ~np.isnan(problem.slot_label)
        for name in pm.iov:
            at = pm.kappa_index(name, 0)
            present[:, at : at + pm.n_slots] = has
    return present


class _Target:
    """The complete-data objective per subject at fixed population parameters."""

    def __init__(self, problem) -> None:
        self.problem = problem
        self.cols = problem.cols
        self.present = present_effects(problem)

    def set(self, psi: np.ndarray) -> None:
        """Fix the population parameters ``psi``."""
        pm = self.problem.pmap
        self.psi = psi
        self.base, _ = self.problem.log_parameters(psi, None)
        self.omega = pm.omega_matrix(psi)
        self.chol = np.linalg.cholesky(self.omega)
        self.omega_inv = np.linalg.inv(self.omega)

    def predictions(self, eta: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
        """Predictions (error-model scale) at the etas."""
        problem = self.problem
        u = (self.base if base is None else base).copy()
        if problem.re_seg is None:
            u[:, self.cols] += eta[problem.seg_subject]
        else:  # etas on every segment, each kappa on its occasion's segments only
            u += (eta[problem.seg_subject] * problem.re_seg) @ problem._re_to_col
        kernel = self.problem.kernel
        predict = getattr(kernel, "predict", kernel.value)
        return predict(u)

    def losses(self, f: np.ndarray, psi: np.ndarray | None = None) -> np.ndarray:
        """Per-observation losses ``l`` at predictions ``f``."""
        problem = self.problem
        psi = self.psi if psi is None else psi
        with np.errstate(all="ignore"):
            r = problem.variance(psi, f)
            loss = observation_loss_value(problem.y_t, f, r, problem.censored, problem.limit_t, problem.positive)
        return np.where(np.isfinite(loss), loss, np.inf)

    def data_part(self, eta: np.ndarray) -> np.ndarray:
        """``sum_j l_ij`` per subject."""
        return self.problem.segsum(self.losses(self.predictions(eta)))

    def prior_part(self, eta: np.ndarray) -> np.ndarray:
        """``eta' Omega^-1 eta`` per subject."""
        return np.einsum("si,ij,sj->s", eta, self.omega_inv, eta)


def _accept(rng, new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Metropolis acceptance on ``-2 log`` densities (NaN and inf rejected)."""
    with np.errstate(invalid="ignore", over="ignore"):
        ratio = -0.5 * (new - old)
    return np.isfinite(new) & (np.log(rng.uniform(size=len(new))) < ratio)


def _simulate(target: _Target, state: dict, rng, steps) -> None:
    """One E-step of every chain: the three MH kernels. ``state`` holds ``eta``, ``data``
    (data part per subject), ``f`` (predictions) and ``scales`` (d + 1,), updated in place."""
    eta, data, f, scales = state["eta"], state["data"], state["f"], state["scales"]
    n, d = eta.shape
    obs = target.problem.subject
    present = target.present

    def propose(prop, with_prior, current):
        pred = target.predictions(prop)
        new_data = target.problem.segsum(target.losses(pred))
        new = new_data + target.prior_part(prop) if with_prior else new_data
        ok = _accept(rng, new, current)
        eta[ok], data[ok] = prop[ok], new_data[ok]
        f[ok[obs]] = pred[ok[obs]]
        return ok, new

    for _ in range(steps[0]):  # independent proposals from the prior
        propose(present * (rng.standard_normal((n, d)) @ target.chol.T), False, data)
    current = data + target.prior_part(eta)
    for _ in range(steps[1]):  # random walk on the whole vector
        ok, new = propose(eta + present * (scales[d] * rng.standard_normal((n, d)) @ target.chol.T), True, current)
        current[ok] = new[ok]
        scales[d] *= 1.0 + 0.4 * (ok.mean() - _ACCEPT)
    sd = np.sqrt(np.diag(target.omega))
    for _ in range(steps[2]):  # component-wise random walks
        for k in range(d):
            prop = eta.copy()
            prop[:, k] += present[:, k] * scales[k] * sd[k] * rng.standard_normal(n)
            ok, new = propose(prop, True, current)
            current[ok] = new[ok]
            if present[:, k].any():
                scales[k] *= 1.0 + 0.4 * (ok[present[:, k]].mean() - _ACCEPT)


class _Layout:
    """Which coordinates of ``psi`` each M-step updates."""

    def __init__(self, problem) -> None:
        pm = problem.pmap
        spec = problem.spec
        self.regression = _Regression(problem)
        self.numeric = [pm.index(p.name) for p in spec.estimated if p.name not in pm.iiv]
        self.numeric += [pm.n_theta + k for k in range(pm.n_beta) if pm.n_theta + k not in self.regression.handled]
        self.omega = list(range(pm.n_theta + pm.n_beta, pm.n_theta + pm.n_beta + pm.n_omega))
        self.iov = list(range(pm.n_theta + pm.n_beta + pm.n_omega, pm.size - pm.n_sigma))
        self.sigma = list(range(pm.size - pm.n_sigma, pm.size))
        self.mask = np.zeros((pm.n_iiv, pm.n_iiv), dtype=bool)
        for block in pm.blocks:
            self.mask[np.ix_(block, block)] = True
        present = present_effects(problem)
        self.kappa_slots = [slice(pm.kappa_index(name, 0), pm.kappa_index(name, 0) + pm.n_slots) for name in pm.iov]
        self.kappa_count = np.array([present[:, at].sum() for at in self.kappa_slots], dtype=float)
        single = pm.n_sigma == 1 and problem.censored is None
        self.closed_sigma = single and (problem.ia is not None or problem.ib is not None)


class _Regression:
    """Closed-form M-step of the typical values of the IIV parameters and of their
    covariate coefficients that are linear on the log scale (mu-referencing).

    For IIV parameter ``P`` of subject ``i``, ``phi_iP = z_iP' g_P + eta_iP`` (fixed
    covariate terms aside), where ``z_iP`` is 1 and, per estimated coefficient, ``log(x /
    reference)`` (power), ``x - reference`` (exponential) or the indicator of ``x !=
    reference`` (linear effect of a covariate with two values, ``g = log(1 + beta a)``).
    Time-varying covariates and other linear effects are left to the numeric M-step.
    """

    def __init__(self, problem) -> None:
        pm, spec = problem.pmap, problem.spec
        first = problem.first_segment
        columns, self.terms, self.rows, self.handled = [], [], [], set()
        for name in pm.iiv:
            rows = [len(columns)]
            columns.append(np.ones(problem.n_subjects))
            self.terms.append((pm.index(name), "raw", 1.0))
            for c in spec.parameter(name).covariates:
                if not c.estimated:
                    continue
                seg = np.asarray(problem.covariates[c.column], dtype=float)
                x = seg[first]
                if not np.allclose(seg, x[problem.seg_subject]):
                    continue
                kind, a = "raw", 1.0
                if c.effect == "power":
                    z = np.log(x / c.reference)
                elif c.effect == "exponential":
                    z = x - c.reference
                else:
                    dx = x - c.reference
                    values = np.unique(dx[dx != 0])
                    if len(values) != 1:
                        continue
                    kind, a, z = "linear", float(values[0]), (dx != 0).astype(float)
                k = pm.index(f"beta_{name}_{c.column}")
                rows.append(len(columns))
                columns.append(z)
                self.terms.append((k, kind, a))
                self.handled.add(k)
            self.rows.append(rows)
        self.z = np.column_stack(columns)
        self.gram = self.z.T @ self.z
        # index pairs of the blocks of the Gram matrix (np.ix_ per iteration is costly)
        self.blocks = {(p, q): np.ix_(rp, rq) for p, rp in enumerate(self.rows) for q, rq in enumerate(self.rows)}

    def coefficients(self, psi: np.ndarray) -> np.ndarray:
        """The regression coefficients ``g`` of ``psi``."""
        return np.array([psi[k] if kind == "raw" else np.log1p(psi[k] * a) for k, kind, a in self.terms])

    def set(self, psi: np.ndarray, g: np.ndarray) -> None:
        """Write the coefficients ``g`` into ``psi``."""
        for (k, kind, a), value in zip(self.terms, g):
            psi[k] = value if kind == "raw" else np.expm1(value) / a

    def mean(self, g: np.ndarray) -> np.ndarray:
        """``z_iP' g_P`` (n_subjects, d)."""
        return np.column_stack([self.z[:, rows] @ g[rows] for rows in self.rows])

    def solve(self, t: np.ndarray, s2: np.ndarray, n_copies: int):
        """``g`` and omega from the averaged ``Z' phi`` (K, d) and ``phi' phi`` (d, d)."""
        gram = self.gram / n_copies
        g = np.zeros(len(self.terms))
        for p, rows in enumerate(self.rows):
            g[rows] = np.linalg.solve(gram[self.blocks[p, p]], t[rows, p])
        d = len(self.rows)
        omega = np.empty((d, d))
        for p, rp in enumerate(self.rows):
            for q, rq in enumerate(self.rows):
                omega[p, q] = s2[p, q] - g[rp] @ t[rp, q] - g[rq] @ t[rq, p] + g[rp] @ gram[self.blocks[p, q]] @ g[rq]
        return g, omega


def _numeric_step(target: _Target, psi: np.ndarray, eta: np.ndarray, index: list) -> np.ndarray:
    """Maximise the data part over ``psi[index]`` given the simulated etas (all chains)."""
    structural = index[0] < target.problem.pmap.size - target.problem.pmap.n_sigma
    fixed = None if structural else target.predictions(eta)  # residual variances only

    def objective(x):
        trial = psi.copy()
        trial[index] = x
        f = target.predictions(eta, target.problem.log_parameters(trial, None)[0]) if structural else fixed
        total = float(np.sum(target.losses(f, trial)))
        return total if np.isfinite(total) else 1e300

    start = objective(psi[index])
    if len(index) == 1:  # Brent on the one coordinate
        x0 = float(psi[index][0])
        res = optimize.minimize_scalar(
            lambda v: objective(np.array([v])), bounds=(x0 - 3.0, x0 + 3.0), method="bounded"
        )
        x, fun = np.array([res.x]), res.fun
    else:
        res = optimize.minimize(objective, psi[index], method="L-BFGS-B", options={"maxiter": 50})
        x, fun = res.x, res.fun
    return x if np.isfinite(fun) and fun < start else psi[index]


def _sigma_statistic(problem, f: np.ndarray) -> float:
    """Summed squared residuals on the scale of the error model (all chains)."""
    e = problem.y_t - f
    return float(np.sum((e / f) ** 2 if problem.ia is None else e**2))


def _m_step(target, layout, psi, stats, eta, gamma, exploring, n):
    """New ``psi`` (and the etas re-centred on it) from the averaged statistics; the
    numeric parts by stochastic approximation on the parameter."""
    problem = target.problem
    pm = problem.pmap
    reg = layout.regression
    new = psi.copy()
    g_old = reg.coefficients(psi)
    g, omega = reg.solve(stats["t"], stats["s2"], problem.n_subjects // n)
    reg.set(new, g)
    omega = np.where(layout.mask, omega / n, 0.0)
    if exploring:
        floor = _ANNEAL * np.diag(pm.omega_matrix(psi))[: pm.n_iiv]
        scale = np.sqrt(np.maximum(np.diag(omega), floor) / np.maximum(np.diag(omega), 1e-300))
        omega = omega * np.outer(scale, scale)
    new[layout.omega] = _pack_omega(pm, omega + 1e-10 * np.eye(pm.n_iiv))
    if layout.iov:
        new[layout.iov] = _iov_step(layout, psi, stats["k2"], exploring)
    eta = eta.copy()
    eta[:, : pm.n_iiv] += reg.mean(g_old) - reg.mean(g)  # the individual log parameters stay put
    target.set(new)
    if layout.numeric:
        x = _numeric_step(target, new, eta, layout.numeric)
        new[layout.numeric] = psi[layout.numeric] + gamma * (x - psi[layout.numeric])
        target.set(new)
    if layout.sigma:
        if layout.closed_sigma:
            value = np.array([np.log(max(stats["sr"] * (problem.n_subjects / n) / problem.n_obs, 1e-300))])
        else:
            x = _numeric_step(target, new, eta, layout.sigma)
            value = psi[layout.sigma] + gamma * (x - psi[layout.sigma])
        if exploring:
            value = np.maximum(value, psi[layout.sigma] + np.log(_ANNEAL))
        new[layout.sigma] = value
        target.set(new)
    return new, eta


def _kappa_squares(layout, eta: np.ndarray) -> np.ndarray:
    """Per IOV parameter, the summed squared kappas of every subject-occasion (a missing
    occasion's kappa is held at 0)."""
    return np.array([np.sum(eta[:, slots] ** 2) for slots in layout.kappa_slots])


def _iov_step(layout, psi: np.ndarray, k2: np.ndarray, exploring: bool) -> np.ndarray:
    """The M-step of the IOV variances (log scale): the averaged ``sum kappa^2`` over the
    subject-occasions that exist, one variance shared by every occasion (NONMEM's
    ``BLOCK(1) SAME``); in the exploration phase it decreases by at most 5% per iteration."""
    value = np.log(np.maximum(k2 / layout.kappa_count, 1e-10))
    if exploring:
        value = np.maximum(value, psi[layout.iov] + np.log(_ANNEAL))
    return value


def _pack_omega(pm, omega: np.ndarray) -> np.ndarray:
    """The Cholesky coordinates of ``psi`` for an omega matrix."""
    out = []
    for idx in pm.blocks:
        low = np.linalg.cholesky(omega[np.ix_(idx, idx)])
        for i in range(len(idx)):
            for j in range(i + 1):
                out.append(np.log(low[i, j]) if i == j else low[i, j])
    return np.array(out)


def run_saem(problem, psi0: np.ndarray, settings: SaemSettings, *, chains: int, seed: int = 0, verbose: bool = False):
    """Run SAEM from ``psi0``.

    Parameters
    ----------
    problem : Problem
        Of the dataset with every subject repeated ``chains`` times
        (:func:`replicate`): one call of the model core simulates every chain.
    psi0 : numpy.ndarray
        Start (unconstrained scale).
    settings : SaemSettings
    chains : int
    seed : int
    verbose : bool
        Log progress every 50 iterations.

    Returns
    -------
    psi : numpy.ndarray
        The estimates.
    trajectory : pandas.DataFrame
        ``iteration``, ``phase`` and every natural-scale parameter per iteration.
    """
    rng = np.random.default_rng(seed)
    pm = problem.pmap
    if pm.n_iiv == 0:
        raise SpecError("method saem needs at least one parameter with IIV", "parameters.*.iiv", ["iiv = true"])
    layout = _Layout(problem)
    n = problem.n_subjects // chains
    target = _Target(problem)
    psi = np.array(psi0, dtype=float)
    target.set(psi)
    eta = np.zeros((problem.n_subjects, pm.d))
    f = target.predictions(eta)
    state = {"eta": eta, "f": f, "data": problem.segsum(target.losses(f)), "scales": np.full(pm.d + 1, 0.5)}
    reg = layout.regression
    stats = {"t": np.zeros((len(reg.terms), pm.n_iiv)), "s2": np.zeros((pm.n_iiv, pm.n_iiv)), "sr": 0.0}
    stats["k2"] = np.zeros(pm.n_iov)
    rows = []
    total = settings.n_burn + settings.n_em
    for k in range(1, total + 1):
        exploring = k <= settings.n_burn
        gamma = 1.0 if exploring else 1.0 / (k - settings.n_burn)
        _simulate(target, state, rng, settings.kernel_steps)
        phi = reg.mean(reg.coefficients(psi)) + state["eta"][:, : pm.n_iiv]
        stats["k2"] += gamma * (_kappa_squares(layout, state["eta"]) - stats["k2"])
        stats["t"] += gamma * (reg.z.T @ phi / chains - stats["t"])
        stats["s2"] += gamma * (phi.T @ phi / chains - stats["s2"])
        if layout.closed_sigma:
            stats["sr"] += gamma * (_sigma_statistic(problem, state["f"]) / chains - stats["sr"])
        psi, state["eta"] = _m_step(target, layout, psi, stats, state["eta"], gamma, exploring, n)
        state["f"] = target.predictions(state["eta"])
        state["data"] = problem.segsum(target.losses(state["f"]))
        rows.append([k, "exploration" if exploring else "smoothing", *pm.natural(psi)])
        if verbose and (k % 50 == 0 or k == total):
            _LOG.info(f"  saem {k:4d}/{total}  " + "  ".join(f"{v:.4g}" for v in pm.natural(psi)))
    return psi, pd.DataFrame(rows, columns=["iteration", "phase", *pm.names])


def replicate(dataset, chains: int) -> pd.DataFrame:
    """The records of ``dataset`` with every subject repeated ``chains`` times (chain ``c``
    of subject ``i`` is subject ``c * n + i``, in file order)."""
    table = dataset.table.drop(columns=[c for c in ("ROW", "SUBJECT") if c in dataset.table.columns])
    subject = dataset.table["SUBJECT"].to_numpy()
    parts = []
    for c in range(chains):
        part = table.copy()
        part["ID"] = subject + 1 + c * dataset.n_subjects
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
