"""K-fold cross-validation by subject: what to use when subject-level PSIS-LOO is unreliable.

Leaving out a whole subject changes the posterior too much for importance sampling when
subjects are few and informative (Theophylline: every Pareto k above 0.7). K-fold
cross-validation refits the model K times, each time without one fold of subjects, and
scores the left-out subjects by their log predictive density as *new* subjects:

``elpd_i = log p(y_i | y_-i) = log E_{theta ~ p(theta | y_-i)} [ integral p(y_i | eta, theta) N(eta; 0, Omega) d eta ]``

The inner integral over the left-out subject's random effects is estimated by importance
sampling in two stages, per posterior draw: first with etas from ``N(0, Omega)``, then
with a multivariate-t proposal (4 degrees of freedom) fitted to the first stage's
weighted etas of that subject. The Monte-Carlo standard error of each ``elpd_i``
comes from the spread of the importance weights (delta method on the log).

Predictions and the likelihood are the model core's (:func:`bayes_nlme.core.op.predict_numeric`,
:func:`bayes_nlme.build.residual.observation_loglik`, censoring included); the left-out
subjects are replicated in one design, so each posterior draw costs one call of the
event engine.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import gammaln, logsumexp

from ..errors import ArgumentError
from .fitdata import as_fit_data, individual_values

__all__ = ["KFoldResult", "kfold_subject", "read_kfold", "subject_folds", "subject_log_predictive", "write_kfold"]

_T_DF = 4.0


@dataclass(frozen=True)
class KFoldResult:
    """K-fold cross-validation by subject.

    Attributes
    ----------
    elpd, se : float
        Summed expected log predictive density of the left-out subjects, and its standard
        error (``sqrt(n) sd(elpd_i)``, as for PSIS-LOO).
    pointwise : pandas.DataFrame
        Per subject: ``ID, fold, elpd, mcse, ess`` (the importance-sampling effective
        sample size of its inner integral).
    folds : pandas.DataFrame
        Per fold: ``fold, n_subjects, max_r_hat, divergences`` of its refit.
    k : int
    """

    elpd: float
    se: float
    pointwise: pd.DataFrame
    folds: pd.DataFrame
    k: int

    def table(self) -> pd.DataFrame:
        """One row ``criterion, elpd, se, n_data_points, k, max_mcse`` (as ``kfold.csv``)."""
        return pd.DataFrame(
            [
                {
                    "criterion": f"K-fold (subject, K = {self.k})",
                    "elpd": self.elpd,
                    "se": self.se,
                    "n_data_points": len(self.pointwise),
                    "k": self.k,
                    "max_mcse": float(self.pointwise["mcse"].max()),
                }
            ]
        )


def subject_folds(n_subjects: int, k: int, seed: int = 1) -> np.ndarray:
    """The fold (0 .. k-1) of each subject: a seeded random partition into near-equal folds.

    Parameters
    ----------
    n_subjects, k : int
    seed : int

    Returns
    -------
    numpy.ndarray of int
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= n_subjects:
        raise ArgumentError(f"folds must be an integer from 2 to the number of subjects ({n_subjects}), got {k!r}")
    order = np.random.default_rng(seed).permutation(n_subjects)
    folds = np.empty(n_subjects, dtype=int)
    folds[order] = np.arange(n_subjects) % k
    return folds


class _Replicated:
    """``copies`` copies of some subjects in one design of the model core."""

    def __init__(self, spec, dataset, subjects, copies: int):
        from ..build.residual import censoring_limits
        from ..core import engine_design
        from ..data import load_dataset
        from ..individual import segment_covariates
        from ..pk.models import model_of

        original = dataset.original
        id_col = dataset.columns.get("ID", "ID")
        keep = dataset.table["SUBJECT"].isin(subjects).to_numpy()
        part = original[keep]
        frames = [part.assign(**{id_col: part[id_col].astype(str) + f"#{c}"}) for c in range(copies)]
        rep = load_dataset(pd.concat(frames, ignore_index=True), columns=spec.columns or None)
        self.design = engine_design(
            rep,
            model_of(spec),
            declared=spec.parameter_names,
            covariates=spec.covariate_columns,
            time_varying=spec.time_varying,
        )
        self.covariates = segment_covariates(spec, rep, self.design)
        table = rep.table.iloc[np.asarray(self.design.obs_row, dtype=int)]
        self.y = table["DV"].to_numpy(dtype=float)
        self.lower = censoring_limits(table)
        self.subject = np.asarray(self.design.obs_subject, dtype=int)
        self.n = rep.n_subjects
        self.n_held = len(subjects)
        self.copies = copies

    def loglik(self, spec, theta, coefficients, sigma2, eta) -> np.ndarray:
        """``log p(y_i | eta)`` as (copies, n_held) for etas (copies * n_held, p)."""
        from ..build.residual import outputs_loglik
        from ..core.op import predict_numeric

        values = individual_values(spec, theta, coefficients, eta, self.covariates, self.n, self.design.seg_subject)
        f = predict_numeric(self.design, values)[0]
        with np.errstate(all="ignore"):
            ll = outputs_loglik(spec, self.y, f, sigma2, self.lower, self.design.obs_output, np)
        per = np.bincount(self.subject, weights=ll, minlength=self.n)
        per = np.where(np.isfinite(per), per, -np.inf)
        return per.reshape(self.copies, self.n_held)


def _mvn_logpdf(x, cov) -> np.ndarray:
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, x.T).T
    return -0.5 * np.sum(z**2, axis=-1) - np.sum(np.log(np.diag(chol))) - 0.5 * x.shape[-1] * np.log(2 * np.pi)


def _t_logpdf(x, mean, scale_chol) -> np.ndarray:
    p = x.shape[-1]
    z = np.linalg.solve(scale_chol, (x - mean).T).T
    q = np.sum(z**2, axis=-1)
    return (
        gammaln((_T_DF + p) / 2)
        - gammaln(_T_DF / 2)
        - 0.5 * p * np.log(_T_DF * np.pi)
        - np.sum(np.log(np.diag(scale_chol)))
        - 0.5 * (_T_DF + p) * np.log1p(q / _T_DF)
    )


def _t_draws(rng, mean, scale_chol, n) -> np.ndarray:
    p = len(mean)
    z = rng.standard_normal((n, p)) @ scale_chol.T
    w = rng.chisquare(_T_DF, size=(n, 1)) / _T_DF
    return mean + z / np.sqrt(w)


def _proposals(etas, logw, omega_mean):
    """A t proposal per subject from weighted etas (S*M, n_held, p) and log weights (S*M, n_held)."""
    p = etas.shape[-1]
    out = []
    for i in range(etas.shape[1]):
        w = np.exp(logw[:, i] - logsumexp(logw[:, i]))
        ess = 1.0 / np.sum(w**2)
        if not np.isfinite(ess) or ess < 2 * p + 2:  # too few effective draws: a wide proposal at the best one
            mean = etas[int(np.argmax(logw[:, i])), i]
            cov = omega_mean
        else:
            mean = w @ etas[:, i]
            centred = etas[:, i] - mean
            cov = (w[:, None] * centred).T @ centred + 1e-9 * np.eye(p)
        out.append((mean, np.linalg.cholesky(1.5**2 * cov)))
    return out


def subject_log_predictive(spec, dataset, subjects, pop, *, n_eta: int = 200, seed: int = 1) -> pd.DataFrame:
    """Log predictive density of ``subjects`` as new subjects, averaged over draws ``pop``.

    Parameters
    ----------
    spec : ModelSpec
    dataset : Dataset
        Holds the subjects (0-based indices ``subjects``).
    subjects : sequence of int
    pop : Population
        Posterior draws of the population parameters (of a fit without these subjects).
    n_eta : int
        Importance samples of the random effects per posterior draw and stage.
    seed : int

    Returns
    -------
    pandas.DataFrame
        ``SUBJECT, elpd, mcse, ess`` per subject.
    """
    rng = np.random.default_rng(seed)
    subjects = list(subjects)
    rep = _Replicated(spec, dataset, subjects, n_eta)
    n_held, p, n_draws = len(subjects), pop.omega.shape[1], pop.n
    stage = []
    for s in range(n_draws):
        theta = {k: v[s] for k, v in pop.theta.items()}
        coefficients = {k: v[s] for k, v in pop.coefficients.items()}
        sigma2 = {k: v[s] for k, v in pop.sigma2.items()}
        chol = np.linalg.cholesky(pop.omega[s] + 1e-12 * np.eye(p)) if p else np.zeros((0, 0))
        eta = (rng.standard_normal((n_eta * n_held, p)) @ chol.T) if p else np.zeros((n_eta * n_held, 0))
        stage.append((theta, coefficients, sigma2, eta, rep.loglik(spec, theta, coefficients, sigma2, eta)))
    if p == 0:
        logw = np.concatenate([ll for *_, ll in stage])
    else:
        etas = np.concatenate([e.reshape(n_eta, n_held, p) for *_, e, _ in stage])
        first = np.concatenate([ll for *_, ll in stage])
        proposals = _proposals(etas, first, np.mean(pop.omega, axis=0) + 1e-9 * np.eye(p))
        parts = []
        for s, (theta, coefficients, sigma2, _, _) in enumerate(stage):
            eta = np.stack([_t_draws(rng, m, c, n_eta) for m, c in proposals], axis=1)  # (n_eta, n_held, p)
            ll = rep.loglik(spec, theta, coefficients, sigma2, eta.reshape(-1, p))
            prior = _mvn_logpdf(eta.reshape(-1, p), pop.omega[s] + 1e-12 * np.eye(p)).reshape(n_eta, n_held)
            q = np.stack([_t_logpdf(eta[:, i], m, c) for i, (m, c) in enumerate(proposals)], axis=1)
            parts.append(ll + prior - q)
        logw = np.concatenate(parts)
    n = logw.shape[0]
    elpd = logsumexp(logw, axis=0) - np.log(n)
    w = np.exp(logw - logsumexp(logw, axis=0))
    ess = 1.0 / np.sum(w**2, axis=0)
    rel = np.sqrt(np.maximum(n * np.sum(w**2, axis=0) - 1.0, 0.0) / n)  # sd(w) / (mean(w) sqrt(n))
    return pd.DataFrame({"SUBJECT": subjects, "elpd": elpd, "mcse": rel, "ess": ess})


def _fold_fit(spec, dataset, train, settings):
    """NUTS on the training subjects; the posterior draws and the refit's diagnostics."""
    from ..fit import ConvergenceWarning, sample

    part = dataset.original[dataset.table["SUBJECT"].isin(train).to_numpy()].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = sample(spec, part, quiet=True, progressbar=False, **settings)
    with tempfile.TemporaryDirectory() as tmp:
        fd = as_fit_data(fit.save(f"{tmp}/fold"))
        pop = fd.population
        info = fd.info
    conv = info.get("convergence") or {}
    return pop, {"max_r_hat": conv.get("max_r_hat", np.nan), "divergences": conv.get("divergences", np.nan)}


def kfold_subject(
    fit,
    *,
    k: int = 5,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    seed: int = 1,
    n_draws: int = 100,
    n_eta: int = 200,
) -> KFoldResult:
    """K-fold cross-validation by subject of a Bayesian fit (K NUTS refits).

    Parameters
    ----------
    fit : path, FitDirectory or FitData
        A NUTS fit; its model and dataset are refitted.
    k : int
        Number of folds (2 .. number of subjects); subjects are assigned at random (``seed``).
    draws, tune, chains : int
        Settings of each refit.
    seed : int
    n_draws : int
        Posterior draws of each refit used to score its left-out subjects.
    n_eta : int
        Importance samples of a left-out subject's random effects per draw and stage.

    Returns
    -------
    KFoldResult
    """
    fd = as_fit_data(fit)
    if not fd.bayesian or fd.method != "nuts":
        raise ArgumentError(f"K-fold cross-validation refits a NUTS fit; {fd.fitdir.path} is a {fd.method} fit")
    spec, dataset = fd.spec, fd.dataset
    folds = subject_folds(dataset.n_subjects, k, seed)
    settings = {"draws": draws, "tune": tune, "chains": chains, "seed": seed}
    rows, fold_rows = [], []
    for j in range(k):
        held = np.flatnonzero(folds == j)
        pop, diag = _fold_fit(spec, dataset, np.flatnonzero(folds != j), settings)
        pop = pop.take(np.arange(n_draws) * pop.n // n_draws if n_draws <= pop.n else np.arange(pop.n))
        scored = subject_log_predictive(spec, dataset, held, pop, n_eta=n_eta, seed=seed + j)
        rows.append(scored.assign(fold=j))
        fold_rows.append({"fold": j, "n_subjects": len(held), **diag})
    pointwise = pd.concat(rows).sort_values("SUBJECT").reset_index(drop=True)
    ids = list(dataset.subject_ids)
    pointwise.insert(0, "ID", [ids[s] for s in pointwise["SUBJECT"]])
    pointwise = pointwise.drop(columns="SUBJECT")[["ID", "fold", "elpd", "mcse", "ess"]]
    elpd = pointwise["elpd"].to_numpy()
    return KFoldResult(
        elpd=float(elpd.sum()),
        se=float(np.sqrt(len(elpd)) * np.std(elpd, ddof=1)),
        pointwise=pointwise,
        folds=pd.DataFrame(fold_rows),
        k=int(k),
    )


KFOLD_FILES = ("kfold.csv", "kfold_subjects.csv")


def write_kfold(result: KFoldResult, directory) -> list:
    """Write ``kfold.csv`` (the summary row) and ``kfold_subjects.csv`` (per subject) into a
    fit directory, each atomically (a temporary file renamed into place).

    Parameters
    ----------
    result : KFoldResult
    directory : path

    Returns
    -------
    list of pathlib.Path
    """
    import os
    from pathlib import Path

    directory = Path(directory)
    written = []
    for name, frame in zip(KFOLD_FILES, (result.table(), result.pointwise)):
        target = directory / name
        with tempfile.NamedTemporaryFile("w", dir=directory, prefix=f".{name}.", suffix=".tmp", delete=False) as tmp:
            frame.to_csv(tmp, index=False)
        os.replace(tmp.name, target)
        written.append(target)
    return written


def read_kfold(directory) -> pd.DataFrame | None:
    """The ``kfold.csv`` of a fit directory, or None."""
    from pathlib import Path

    path = Path(directory) / KFOLD_FILES[0]
    return pd.read_csv(path) if path.is_file() else None
