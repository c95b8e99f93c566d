"""Per-observation residuals, EBE tables and eta shrinkage of a frequentist fit.

- ``PRED``: population prediction (all etas zero); ``IPRED``: individual prediction
  at the EBEs (natural scale).
- ``IWRES = (y - IPRED) / sqrt(r)`` with ``r`` the residual variance at ``IPRED``
  (on the log scale for the exponential error model).
- ``CWRES`` (Hooker et al. 2007, as NONMEM): per subject,
  ``C_i^{-1/2} (y_i - f_i(eta_hat) + G_i eta_hat)`` with ``C_i = G_i Omega G_i' + R_i``,
  the FOCE linearisation at the EBEs (``R_i`` at the individual prediction with
  interaction, at the population prediction without) and the symmetric inverse
  square root. For FO fits the EBEs are post-hoc conditional modes (without
  interaction).
- SD-based eta shrinkage: ``1 - sd(eta_hat_P) / sqrt(omega_PP)`` (``sd`` with
  ``n - 1`` in the denominator).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .problem import INTERACTION, Problem

__all__ = ["observation_table", "ebe_table", "eta_shrinkage", "kappa_shrinkage", "kappa_columns", "cwres"]


def cwres(problem: Problem, e: np.ndarray, g: np.ndarray, r_lin: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """Conditional weighted residuals, all subjects at once (padded batches).

    Parameters
    ----------
    problem : Problem
    e : numpy.ndarray (n_obs,)
        ``y - f(eta_hat) + G eta_hat``.
    g : numpy.ndarray (n_obs, d)
    r_lin : numpy.ndarray (n_obs,)
    omega : numpy.ndarray (d, d)

    Returns
    -------
    numpy.ndarray (n_obs,)
    """
    n_sub = problem.n_subjects
    counts = problem.n_per_subject
    width = int(counts.max()) if len(counts) else 0
    order = np.argsort(problem.subject, kind="stable")
    sub = problem.subject[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(order)) - starts[sub]
    gp = np.zeros((n_sub, width, g.shape[1]))
    gp[sub, pos] = g[order]
    cov = gp @ omega @ np.swapaxes(gp, 1, 2)
    diag = np.ones((n_sub, width))
    diag[sub, pos] = r_lin[order]
    cov[:, np.arange(width), np.arange(width)] += diag
    ep = np.zeros((n_sub, width))
    ep[sub, pos] = e[order]
    w, vec = np.linalg.eigh(cov)
    with np.errstate(invalid="ignore", divide="ignore"):
        root = (vec / np.sqrt(w)[:, None, :]) @ np.swapaxes(vec, 1, 2)
    res = np.einsum("sab,sb->sa", root, ep)
    out = np.empty(len(order))
    out[order] = res[sub, pos]
    return out


def observation_table(problem: Problem, method: str, psi: np.ndarray, eta: np.ndarray, frame: pd.DataFrame):
    """PRED, IPRED, IWRES and CWRES at every observation used by the fit.

    Parameters
    ----------
    problem : Problem
    method : str
    psi : numpy.ndarray
    eta : numpy.ndarray (n_subjects, d)
        The EBEs.
    frame : pandas.DataFrame
        ``ROW, ID, TIME, DV`` of each observation (the rows of the fit).

    Returns
    -------
    pandas.DataFrame
        ``frame`` plus ``PRED, IPRED, IWRES, CWRES``.
    """
    u, _ = problem.log_parameters(psi, eta)
    f, jac = problem.kernel.jacobian(u)
    u0, _ = problem.log_parameters(psi, None)
    f0 = problem.kernel.value(u0)
    res = problem.residual(psi, f, True)
    res0 = problem.residual(psi, f, False, f0)
    r_lin = res.r if INTERACTION[method] else res0.r
    g = problem.re_sum(jac)
    with np.errstate(invalid="ignore", divide="ignore"):
        iwres = (problem.y_t - f) / np.sqrt(res.r)
        lin = problem.y_t - f + np.einsum("ja,ja->j", g, eta[problem.subject]) if problem.d else problem.y_t - f
        cw = cwres(problem, lin, g, r_lin, problem.pmap.omega_matrix(psi))
    if problem.censored is not None:  # residuals are not defined for censored rows
        iwres = np.where(problem.censored, np.nan, iwres)
        cw = np.where(problem.censored, np.nan, cw)

    def back(x):
        if not problem.log_rows.any():
            return x
        with np.errstate(over="ignore"):
            return np.where(problem.log_rows, np.exp(np.where(problem.log_rows, x, 0.0)), x)

    out = frame.reset_index(drop=True).copy()
    out["PRED"] = back(f0)
    out["IPRED"] = back(f)
    out["IWRES"] = iwres
    out["CWRES"] = cw
    return out


def ebe_table(problem: Problem, psi: np.ndarray, eta: np.ndarray, ids) -> pd.DataFrame:
    """``ID``, ``ETA_<P>`` for each IIV parameter, every individual parameter value (at the
    subject's first record, without the kappas) and, with IOV, ``kappa_<P>_<OCC>`` per occasion (CONTRACT 5.3;
    empty where the subject has no such occasion)."""
    table = pd.DataFrame({"ID": list(ids)})
    for k, name in enumerate(problem.pmap.iiv):
        table[f"ETA_{name}"] = eta[:, k]
    for name, values in problem.individual_values(psi, eta).items():
        table[name] = values
    for name, values in kappa_columns(problem, eta).items():
        table[name] = values
    return table


def kappa_columns(problem: Problem, eta: np.ndarray) -> dict:
    """The kappas per occasion: ``kappa_<P>_<OCC>`` -> values per subject (NaN where absent).

    Parameters
    ----------
    problem : Problem
    eta : numpy.ndarray (n_subjects, d)
        The random effects (etas, then the kappa slots).

    Returns
    -------
    dict of str to numpy.ndarray
        Columns ordered by parameter, then occasion value.
    """
    pm = problem.pmap
    out: dict = {}
    if not pm.n_iov:
        return out
    labels = problem.slot_label
    values = sorted({int(v) for v in labels[np.isfinite(labels)]})
    for name in pm.iov:
        for occ in values:
            column = np.full(problem.n_subjects, np.nan)
            for k in range(pm.n_slots):
                here = labels[:, k] == occ
                column[here] = eta[here, pm.kappa_index(name, k)]
            out[f"kappa_{name}_{occ}"] = column
    return out


def kappa_shrinkage(problem: Problem, psi: np.ndarray, eta: np.ndarray) -> dict:
    """SD-based shrinkage of the kappas per IOV parameter, over every subject-occasion:
    ``1 - sd(kappa_hat) / sqrt(omega_iov_P)``."""
    pm = problem.pmap
    out = {}
    if not pm.n_iov:
        return out
    natural = dict(zip(pm.names, pm.natural(psi)))
    present = np.isfinite(problem.slot_label)
    for name in pm.iov:
        idx = [pm.kappa_index(name, k) for k in range(pm.n_slots)]
        kappas = eta[:, idx][present]
        sd = float(np.std(kappas, ddof=1)) if kappas.size > 1 else float("nan")
        out[name] = 1.0 - sd / float(np.sqrt(natural[f"omega_iov_{name}"]))
    return out


def eta_shrinkage(problem: Problem, psi: np.ndarray, eta: np.ndarray) -> dict:
    """SD-based shrinkage per IIV parameter: ``1 - sd(eta_hat) / sqrt(omega_PP)``."""
    omega = problem.pmap.omega_matrix(psi)
    out = {}
    for k, name in enumerate(problem.pmap.iiv):
        sd = float(np.std(eta[:, k], ddof=1)) if len(eta) > 1 else float("nan")
        out[name] = 1.0 - sd / float(np.sqrt(omega[k, k]))
    return out
