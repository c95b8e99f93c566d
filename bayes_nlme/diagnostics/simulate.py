"""Simulation from a fit: replicates of the dataset for VPC and NPDE, smooth curves.

* :func:`simulate_replicates` simulates ``n`` replicates of the observed design with
  **new subjects** (new etas from omega, new kappas per occasion from the IOV variances,
  new residual errors): from the estimates for
  a frequentist fit; for a Bayesian fit replicate ``k`` uses posterior draw ``k``
  (evenly spaced through the chains), i.e. the posterior predictive distribution of
  new subjects. With the flip-flop guard, etas that give ``ka <= CL/V`` are drawn
  again (the guarded model's population distribution).
* :func:`individual_curves` evaluates each subject's concentration on a fine time grid
  for a set of individual-parameter draws (credible bands) or the EBEs.

Fixed seeds make every result deterministic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..build.flipflop import individual_guard, terminal_rate
from ..build.residual import predictive_draws
from ..pk.models import model_of
from .fitdata import FitData, individual_values

__all__ = ["simulate_replicates", "grid_design", "individual_curves", "population_curve"]


def _draw_etas(fd: FitData, omega: np.ndarray, rng, theta, coefficients) -> np.ndarray:
    p = omega.shape[0]
    n = fd.n_subjects
    if p == 0:
        return np.zeros((n, 0))
    chol = np.linalg.cholesky(omega + 1e-12 * np.eye(p))
    eta = rng.standard_normal((n, p)) @ chol.T
    spec = fd.spec
    if individual_guard(spec):
        for _ in range(20):
            ind = individual_values(spec, theta, coefficients, eta, fd.covariates, n)
            bad = ind["ka"] <= terminal_rate(ind, np)
            if not bad.any():
                break
            eta[bad] = rng.standard_normal((int(bad.sum()), p)) @ chol.T
    return eta


def _draw_kappas(fd: FitData, pop, k: int, rng) -> dict | None:
    """New kappas per subject-occasion from the IOV variances of draw ``k`` (None without IOV)."""
    names = list(getattr(fd.spec, "iov_names", ()))
    if not names:
        return None
    n = fd.design.n_occasions
    return {name: rng.normal(0.0, np.sqrt(pop.iov[name][k]), n) for name in names}


def simulate_replicates(fd: FitData, n: int = 500, *, seed: int = 20240601) -> np.ndarray:
    """Replicates of the observations with new subjects.

    Parameters
    ----------
    fd : FitData
    n : int
        Number of replicates.
    seed : int
        Seed of the random generator.

    Returns
    -------
    numpy.ndarray (n, n_obs)
        Simulated observations, in the order of ``fd.obs``.
    """
    rng = np.random.default_rng(seed)
    pop = fd.population.take(fd.draw_index(n))
    out = np.empty((n, len(fd.obs)))
    for k in range(n):
        theta = {a: v[k] for a, v in pop.theta.items()}
        coefficients = {a: v[k] for a, v in pop.coefficients.items()}
        eta = _draw_etas(fd, pop.omega[k], rng, theta, coefficients)
        kappa = _draw_kappas(fd, pop, k, rng)
        f = fd.predictions(pop, eta, s=k, kappa=kappa)
        sigma2 = {a: v[k] for a, v in pop.sigma2.items()}
        out[k] = predictive_draws(fd.spec, f, sigma2, rng, fd.lower, fd.output)
    return out


def grid_design(fd: FitData, n_points: int = 80, output: int = 0):
    """The records of the fit with ``n_points`` extra times per subject, from 0 to its
    last record, as a model-core design.

    Parameters
    ----------
    fd : FitData
    n_points : int
    output : int
        The output predicted at the grid points (position in ``spec.output_names``).

    Returns
    -------
    tuple of (EngineDesign, numpy.ndarray of bool, dict, pandas.DataFrame)
        The design (every record a prediction point), which points are grid points,
        the covariates per parameter segment, and the grid points (``SUBJECT``, ``ID``,
        ``TIME``) in design order.
    """
    from types import SimpleNamespace

    from ..core import engine_design
    from ..individual import segment_covariates

    table = fd.dataset.table
    records = table.copy()
    records["_order"] = 0
    pieces = [records]
    for s, group in table.groupby("SUBJECT", sort=True):
        t0 = min(0.0, float(group["TIME"].min()))
        times = np.linspace(t0, float(group["TIME"].max()), n_points)
        grid = pd.DataFrame(
            {"ID": group["ID"].iloc[0], "TIME": times, "EVID": 2.0, "MDV": 1.0, "SUBJECT": s, "_order": 1}
        )
        if len(fd.spec.outputs) > 1:  # the grid points are of the output asked for
            from ..data.outputs import output_selector

            grid[output_selector(table)] = float(fd.spec.outputs[output].id)
        pieces.append(grid)
    merged = pd.concat(pieces, ignore_index=True, sort=False)
    merged = merged.sort_values(["SUBJECT", "TIME", "_order"], kind="stable").reset_index(drop=True)
    merged["ROW"] = np.arange(1, len(merged) + 1)
    for column in ("AMT", "RATE", "II", "ADDL", "SS", "BLQ"):
        merged[column] = merged[column].fillna(0.0) if column in merged else 0.0
    if "CMT" not in merged:
        merged["CMT"] = np.nan
    used = [c for c in fd.spec.covariate_columns if c in merged.columns]
    iov = bool(getattr(fd.spec, "iov_names", ()))
    if iov:
        used = [*used, "OCC"]
    if used:
        filled = merged.groupby("SUBJECT", sort=False)[used]
        merged[used] = filled.ffill().groupby(merged["SUBJECT"], sort=False).bfill()
    data = SimpleNamespace(
        table=merged, n_subjects=fd.n_subjects, source=fd.dataset.source, covariates=fd.dataset.covariates
    )
    spec = fd.spec
    design = engine_design(
        data,
        model_of(spec),
        declared=spec.parameter_names,
        covariates=spec.covariate_columns,
        time_varying=spec.time_varying,
        points="all",
        occasions=iov,
    )
    points = merged.iloc[np.asarray(design.obs_row, dtype=int)]
    keep = (points["_order"] == 1).to_numpy()
    covariates = segment_covariates(spec, data, design)
    return design, keep, covariates, points.loc[keep, ["SUBJECT", "ID", "TIME"]].reset_index(drop=True)


def individual_curves(
    fd: FitData, *, n_draws: int = 200, n_points: int = 80, probs=(0.05, 0.5, 0.95), output: int = 0
) -> pd.DataFrame:
    """Individual concentration curves on a grid, with quantiles over posterior draws.

    Parameters
    ----------
    fd : FitData
    n_draws : int
        Posterior draws used (Bayesian fits); frequentist fits use the EBEs.
    n_points : int
        Grid points per subject.
    probs : tuple of float
        Quantiles of the individual prediction across draws.
    output : int
        Which output (position in ``spec.output_names``).

    Returns
    -------
    pandas.DataFrame
        ``SUBJECT, ID, TIME``, one column ``q<100 p>`` per quantile (``q5, q50, q95``),
        and ``PRED`` (the population prediction at the typical values).
    """
    design, keep, covariates, points = grid_design(fd, n_points, output)
    etas = fd.eta_draws
    if fd.bayesian:
        index = fd.draw_index(min(n_draws, etas.shape[0]))
        pop, etas = fd.population.take(index), etas[index]
    else:
        pop = fd.typical
    kappas = _grid_kappas(fd, design, index if fd.bayesian else [0])
    curves = np.empty((etas.shape[0], int(keep.sum())))
    for k in range(etas.shape[0]):
        kappa = {name: values[k] for name, values in kappas.items()}
        curves[k] = fd.predictions(
            pop, etas[k], s=k if pop.n > 1 else 0, design=design, covariates=covariates, kappa=kappa
        )[keep]
    out = points.copy()
    for q in probs:
        out[f"q{round(100 * q)}"] = np.quantile(curves, q, axis=0)
    out["PRED"] = fd.predictions(fd.typical, None, design=design, covariates=covariates)[keep]
    return out


def _grid_kappas(fd: FitData, design, index) -> dict:
    """The fit's kappa draws ``index`` on the subject-occasions of another design of the
    same subjects (matched by subject and ``OCC`` value)."""
    draws = fd.kappa_draws
    if not draws or getattr(design, "seg_occasion", None) is None:
        return {}
    fit = fd.design
    where = {(int(s), int(o)): i for i, (s, o) in enumerate(zip(fit.occasion_subject, fit.occasion_label))}
    pick = np.array([where.get((int(s), int(o)), -1) for s, o in zip(design.occasion_subject, design.occasion_label)])
    out = {}
    for name, values in draws.items():
        chosen = values[np.asarray(index, dtype=int)]
        out[name] = np.where(pick >= 0, chosen[:, np.maximum(pick, 0)], 0.0)
    return out


def population_curve(fd: FitData, *, n_points: int = 80, output: int = 0) -> pd.DataFrame:
    """Population predictions (etas zero) of every subject on a time grid.

    Parameters
    ----------
    fd : FitData
    n_points : int
    output : int
        Which output (position in ``spec.output_names``).

    Returns
    -------
    pandas.DataFrame
        ``SUBJECT, ID, TIME, PRED``.
    """
    design, keep, covariates, points = grid_design(fd, n_points, output)
    points["PRED"] = fd.predictions(fd.typical, None, design=design, covariates=covariates)[keep]
    return points
