"""Public entry points of the frequentist path: :func:`estimate` and :func:`objective`."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import ArgumentError, DataError, InputError, format_rows
from ..pk.models import model_of
from .covariance import COVARIANCE_METHODS, covariance_step, nan_covariance
from .diagnostics import ebe_table, eta_shrinkage, kappa_shrinkage, observation_table
from .importance import importance_sampling_ofv
from .multistart import ADVICE, multistart_optimise  # noqa: F401 (ADVICE: re-exported)
from .outer import Evaluator
from .parameters import start_values
from .problem import METHODS, problem_from_design
from .result import _Z95, EstimationResult
from .saem import replicate, saem_settings
from .saem_fit import run_saem_fit

__all__ = ["estimate", "objective", "build_problem", "check_estimation_inputs", "ALL_METHODS", "OFV_METHODS"]

#: Every frequentist method of :func:`estimate`.
ALL_METHODS = (*METHODS, "saem")
#: Valid ``ofv`` arguments of :func:`estimate`.
OFV_METHODS = ("importance_sampling",)

#: Progress of the estimation (``verbose=True`` logs at INFO; the CLI shows it).
_LOG = logging.getLogger("bayes_nlme.estimation")


def _check_choice(value, valid, name: str) -> None:
    if value not in valid:
        shown = ", ".join(repr(v) for v in valid)
        raise ArgumentError(f"{name} must be one of {shown}; got {value!r}")


def build_problem(spec, data):
    """The :class:`~.problem.Problem` of a spec and a dataset, with its observation frame.

    Observations are the records with ``EVID == 0`` and ``MDV == 0``. Rows flagged
    ``BLQ = 1`` are left out of the likelihood (NONMEM's M1 method).

    Parameters
    ----------
    spec : ModelSpec
    data : Dataset, pandas.DataFrame, path or bundled name

    Returns
    -------
    problem : Problem
    dataset : Dataset
    frame : pandas.DataFrame
        ``ROW, ID, TIME, DV`` of each observation used.
    n_dropped : int
        Number of BLQ rows left out (M1).
    """
    from ..build.residual import censoring_limits, check_observations
    from ..core import engine_design, zero_observations
    from ..data import check_for_model, load_dataset
    from ..individual import segment_covariates

    dataset = data if hasattr(data, "table") else load_dataset(data, columns=spec.columns or None)
    check_for_model(dataset, model_of(spec), spec.covariate_columns, spec=spec)
    design = engine_design(
        dataset,
        model_of(spec),
        declared=spec.parameter_names,
        covariates=spec.covariate_columns,
        time_varying=spec.time_varying,
        occasions=bool(spec.iov_names),
    )
    table = dataset.table
    rows = np.asarray(design.obs_row)
    obs_table = table.iloc[rows]
    limits = censoring_limits(obs_table)
    blq = np.isfinite(limits) if limits is not None else np.zeros(len(rows), dtype=bool)
    method, exponential = _row_residuals(spec, design.obs_output)
    drop = blq & (method == "M1")
    keep = ~drop
    censored = blq[keep]
    y = table["DV"].to_numpy(dtype=float)[rows][keep]
    y = np.where(censored, limits[keep] if limits is not None else y, y)
    if np.any(exponential[keep] & (y <= 0)):
        bad = table["ROW"].to_numpy()[rows][keep][exponential[keep] & (y <= 0)]
        raise DataError(f"Dataset '{dataset.source}': the exponential error model needs DV > 0 ({format_rows(bad)})")
    frame = pd.DataFrame(
        {
            "ROW": table["ROW"].to_numpy()[rows][keep],
            "ID": _whole(table["ID"].to_numpy()[rows][keep]),
            "TIME": table["TIME"].to_numpy(dtype=float)[rows][keep],
            "DV": y,
        }
    )
    observed = ~censored
    zero = zero_observations(design)[keep]
    output = np.asarray(design.obs_output)[keep]
    check_observations(
        spec,
        y[observed],
        frame["ROW"].to_numpy()[observed],
        str(dataset.source),
        zero[observed],
        output=output[observed],
    )
    problem = problem_from_design(
        spec,
        y,
        design,
        keep,
        segment_covariates(spec, dataset, design),
        censored=censored,
        limit=np.where(censored, y, np.nan),
        positive=(method == "M4")[keep],
    )
    return problem, dataset, frame, int(drop.sum())


def _row_residuals(spec, output) -> tuple[np.ndarray, np.ndarray]:
    """The BLQ method and whether the error model is exponential, for each observation
    (from its output's residual table, CONTRACT 5.4)."""
    from ..spec.outputs import residual_parts

    output = np.asarray(output)
    method = np.empty(len(output), dtype=object)
    exponential = np.zeros(len(output), dtype=bool)
    for part in residual_parts(spec):
        rows = output == part.index
        method[rows] = part.residual.blq
        exponential[rows] = part.residual.model == "exponential"
    return method, exponential


def _whole(values: np.ndarray) -> np.ndarray:
    """Subject IDs as integers when every one is a whole number."""
    values = np.asarray(values)
    if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        return values.astype(np.int64)
    return values


def _natural_table(problem, psi: np.ndarray, cov) -> pd.DataFrame:
    est = problem.pmap.natural(psi)
    se = cov.se
    with np.errstate(invalid="ignore", divide="ignore"):
        rse = 100.0 * se / np.abs(est)
    return pd.DataFrame(
        {
            "parameter": problem.pmap.names,
            "estimate": est,
            "se": se,
            "rse_pct": rse,
            "ci_low": est - _Z95 * se,
            "ci_high": est + _Z95 * se,
        }
    )


def estimate(
    spec,
    data,
    *,
    method: str = "focei",
    covariance: str | None = "sandwich",
    tol: float = 1e-3,
    maxiter: int = 500,
    verbose: bool = False,
    starts: int | None = None,
    seed: int = 0,
    ofv: str | None = None,
    saem: dict | None = None,
) -> EstimationResult:
    """Maximum-likelihood estimation by FO, FOCE, FOCE-I, Laplace or SAEM (NONMEM conventions).

    Priors are ignored: this is maximum likelihood. Start values: each parameter's
    ``initial``, else the median of its typical-value prior; covariate coefficients at
    their prior median; omega from ``[omega] initial``, else 0.1 on the diagonal;
    residual variances from ``[residual] initial``, else 10% of the variance of the
    observations (``sigma2_add``) or 0.1 (``sigma2_prop``, ``sigma2_exp``). Fixed
    parameters stay fixed.

    The inner step finds every subject's EBE (conditional mode) with a batched Newton
    method; the outer step minimises the OFV over log typical values, covariate
    coefficients, the Cholesky factor of omega (log diagonal) and log residual
    variances with BFGS on exact gradients (implicit differentiation through the
    EBEs), started from the finite-difference Hessian of the exact gradient, then
    polishes with Newton steps on that Hessian.

    Parameters
    ----------
    spec : ModelSpec
    data : Dataset, pandas.DataFrame, path or bundled name
    method : {"focei", "foce", "fo", "laplace", "saem"}
        ``laplace`` uses the exact Hessian of the conditional objective; ``saem`` is
        stochastic approximation EM (:mod:`.saem`), whose OFV is by importance
        sampling and whose SEs come from the linearised (FOCE-I) Fisher information
        at its estimates.
    covariance : {"sandwich", "r", "s"} or None
        Covariance step: ``R^-1 S R^-1`` (default), ``R^-1`` or ``S^-1``; None skips
        it (standard errors NaN).
    tol : float
        Convergence: the largest absolute component of the OFV gradient (with respect
        to the unconstrained parameters) is below ``tol``.
    maxiter : int
        Most quasi-Newton iterations.
    verbose : bool
        Print the OFV at each iteration.
    starts : int, optional
        Number of outer optimisations. None (default): one from the start values, and
        when it does not pass the convergence test (gradient, positive definite Hessian
        and a short Newton step, :func:`~.outer.convergence_check`) four more from
        screened start points (:func:`~.starts.screened_starts`), unless it
        ended with omega tending to a singular matrix (correlations near +-1,
        :func:`~.starts.omega_boundary`), which no start fixes. An integer ``N``:
        the start values and ``N - 1`` screened points, always. The reported run is
        the converged one with the lowest OFV (else the lowest OFV); ``fit.json``
        lists every run under ``starts``.
    seed : int
        Seed of the screen of start points, of SAEM and of the importance sampling.
    ofv : {"importance_sampling"} or None
        ``"importance_sampling"``: the reported OFV (and AIC, BIC) is computed by
        importance sampling around the conditional modes (:mod:`.importance`), with
        its Monte-Carlo standard error ``ofv_mcse``, so it compares across methods;
        the method's own OFV stays in ``fit.json`` as ``ofv_<method>``. Always so
        for SAEM.
    saem : dict, optional
        SAEM settings over the model's ``[saem]`` table (:class:`.saem.SaemSettings`).

    Returns
    -------
    EstimationResult

    Raises
    ------
    ArgumentError
        For an unknown method or covariance option.
    InputError
        When the objective cannot be evaluated at the start values.

    Warns
    -----
    CovarianceWarning
        When the covariance step fails; standard errors are then NaN.

    Notes
    -----
    - Objectives follow NONMEM (Wang 2007): FOCE evaluates the residual variance at
      the population prediction, FOCE-I at the individual prediction (with the
      variance term of the expected information), Laplace uses the exact Hessian of
      the conditional objective, FO linearises at eta = 0.
    - The flip-flop guard of the spec (population ``ka`` above the terminal
      elimination rate, the rule of the Bayesian path) is checked at the optimum; a
      flip-flop optimum is re-fitted from its mirror image (``ka`` and the terminal
      rate swapped), and when that fails too the fit is not converged
      (``fit.json`` ``flip_flop``).
    - A fit that does not pass the convergence test says why
      (``convergence_reason``) and what to try (``advice``), logged as a warning.
    - Observations flagged ``BLQ = 1`` follow ``[residual] blq``: M3 (default) adds
      ``-2 log P(y < LLOQ)`` to the objective (FOCE-I and Laplace; FO and FOCE refuse
      censored rows), M1 leaves them out. ``fit.json`` has ``blq_method`` and ``n_blq``
      (the censored rows in the likelihood).
    - Covariates are those of each record (time-varying covariates per parameter
      segment, ``time_varying`` as in the Bayesian path).
    """
    settings = _check_arguments(spec, method, covariance, ofv, starts, saem)
    building = time.perf_counter()
    problem, dataset, frame, n_dropped = build_problem(spec, data)
    _check_censoring(spec, method, problem)
    core = "focei" if method == "saem" else method  # SAEM's final objective pieces: FOCE-I's
    psi0, evaluator = _start(spec, problem, core)
    seconds_compile = time.perf_counter() - building
    started = time.perf_counter()
    _check_start_objective(spec, method, problem, evaluator, psi0, verbose)
    if method == "saem":
        outer, search = run_saem_fit(spec, dataset, problem, psi0, evaluator, settings, seed, verbose)
    else:
        outer, evaluator, search = multistart_optimise(
            problem, method, psi0, evaluator, tol, maxiter, verbose, starts, seed
        )
    psi, ev = outer.psi, outer.evaluation
    tables = {"saem_trajectory.csv": search.pop("trajectory")} if "trajectory" in search else {}
    ofv_value, ofv_info = float(ev.ofv), {"ofv_method": method, "ofv_mcse": 0.0}
    if method == "saem" or ofv == "importance_sampling":
        ofv_value, ofv_info = _importance_ofv(spec, dataset, problem, evaluator, psi, ev, settings, seed, core)
        if verbose:
            _LOG.info(f"{method}: importance-sampling OFV {ofv_value:.3f} (Monte-Carlo SE {ofv_info['ofv_mcse']:.3f})")
    cov = _covariance(problem, outer, search, covariance)
    eta = _final_etas(problem, evaluator, outer)
    result = _result(
        spec,
        method,
        problem,
        dataset,
        frame,
        n_dropped=n_dropped,
        core=core,
        psi0=psi0,
        outer=outer,
        search=search,
        covariance=covariance,
        cov=cov,
        eta=eta,
        ofv=(ofv_value, ofv_info),
        tol=tol,
        tables=tables,
        seconds_compile=seconds_compile,
    )
    result.seconds_fit = time.perf_counter() - started
    result.seconds = result.seconds_fit + seconds_compile
    _log_outcome(result, method, search, verbose, seconds_compile)
    return result


def _check_arguments(spec, method, covariance, ofv, starts, saem):
    """Refuse unknown method, covariance or ofv options and a bad ``starts``; the SAEM settings."""
    _check_choice(method, ALL_METHODS, "method")
    if covariance is not None:
        _check_choice(covariance, COVARIANCE_METHODS, "covariance")
    if ofv is not None:
        _check_choice(ofv, OFV_METHODS, "ofv")
    settings = saem_settings(getattr(spec, "saem", None), **(saem or {}))
    if starts is not None and (not isinstance(starts, (int, np.integer)) or starts < 1):
        raise ArgumentError(f"starts must be a whole number >= 1 (or None for automatic); got {starts!r}")
    return settings


def _start(spec, problem, core):
    """The packed start values and the evaluator of ``core``'s objective, its kernel compiled."""
    start = start_values(spec, problem.y, problem.output)
    psi0 = problem.pmap.pack(start["theta"], start["betas"], start["omega"], start["sigma2"], start["iov"])
    evaluator = Evaluator(problem, core)
    u0, _ = problem.log_parameters(psi0, None)
    problem.kernel.warm_up(u0)
    return psi0, evaluator


def _check_start_objective(spec, method, problem, evaluator, psi0, verbose) -> None:
    """Refuse start values where the objective is not finite (InputError)."""
    first = evaluator.evaluate(psi0)
    if not np.isfinite(first.ofv):
        raise InputError(
            f"the objective of model '{spec.name}' is not finite at the start values "
            "(for example a proportional error with a zero prediction, such as an observation "
            "at the time of an oral dose); change the start values or the residual model"
        )
    if verbose:
        _LOG.info(f"{method}: start OFV {first.ofv:.6f} ({problem.size} parameters)")


def _covariance(problem, outer, search, covariance):
    """The covariance step at the estimates (NaN when ``covariance`` is None)."""
    if covariance is None:
        return nan_covariance(problem.size, None)
    # on the well-scaled parameters z (log values, correlations), by the delta method
    psi, ev = outer.psi, outer.evaluation
    dpsi_dz = outer.dpsi_dz
    jac = problem.pmap.jacobian(psi) @ dpsi_dz
    cov = covariance_step(outer.scaled_hessian, ev.per_subject @ dpsi_dz, jac, covariance)
    if not cov.ok and search["convergence_reason"]:
        cov.message = f"{cov.message}; the fit did not converge: {search['convergence_reason'].split(' (')[0]}"
    return cov


def _final_etas(problem, evaluator, outer):
    """The subjects' etas at the estimates: the EBEs, or for FO post-hoc conditional modes."""
    psi, ev = outer.psi, outer.evaluation
    if evaluator.has_inner or problem.d == 0:
        return ev.eta
    # FO: post-hoc conditional modes (without interaction)
    return evaluator.ebe(psi, np.zeros_like(ev.eta), method="foce").eta


def _result(
    spec,
    method,
    problem,
    dataset,
    frame,
    *,
    n_dropped,
    core,
    psi0,
    outer,
    search,
    covariance,
    cov,
    eta,
    ofv,
    tol,
    tables,
    seconds_compile,
):
    """The :class:`EstimationResult` of a finished fit (``ofv``: the reported value and its ``fit.json`` entries)."""
    psi, ev = outer.psi, outer.evaluation
    ofv_value, ofv_info = ofv
    ids = _whole(dataset.table.groupby("SUBJECT", sort=True)["ID"].first().to_numpy())
    estimates = _natural_table(problem, psi, cov)
    n_obs = problem.n_obs + n_dropped
    minus2ll = ofv_value + (problem.n_obs - problem.n_censored) * np.log(2.0 * np.pi)
    k = problem.size
    names = problem.pmap.names
    return EstimationResult(
        method=method,
        spec=spec,
        dataset=dataset,
        ofv=float(ofv_value),
        minus2ll=float(minus2ll),
        aic=float(minus2ll + 2 * k),
        bic=float(minus2ll + k * np.log(problem.n_subjects)),
        n_parameters=k,
        converged=outer.converged,
        estimates=estimates,
        covariance=None if covariance is None else pd.DataFrame(cov.covariance, index=names, columns=names),
        correlation=None if covariance is None else pd.DataFrame(cov.correlation, index=names, columns=names),
        ebe=ebe_table(problem, psi, eta, ids),
        predictions=observation_table(problem, core, psi, eta, frame),
        eta_shrinkage_sd=eta_shrinkage(problem, psi, eta),
        n_subjects=problem.n_subjects,
        n_obs=n_obs,
        seconds=0.0,
        seconds_compile=float(seconds_compile),
        n_iterations=outer.n_iterations,
        info={
            "covariance": covariance,
            "covariance_ok": bool(cov.ok),
            "covariance_message": cov.message,
            "optimizer_message": outer.message,
            "n_evaluations": search["n_evaluations"],
            "max_abs_gradient": float(np.max(np.abs(ev.gradient))) if k else 0.0,
            "tol": tol,
            "blq_method": _blq_method(spec),
            "n_blq": problem.n_censored,
            "n_blq_omitted": n_dropped,
            "start": dict(zip(names, problem.pmap.natural(psi0).tolist())),
            **{k: v for k, v in search.items() if k != "n_evaluations"},
            **ofv_info,
            **({"kappa_shrinkage_sd": kappa_shrinkage(problem, psi, eta)} if problem.pmap.n_iov else {}),
        },
        tables=tables,
    )


def _log_outcome(result, method, search, verbose, seconds_compile) -> None:
    """Warn about a fit that did not converge; with ``verbose``, log its OFV and times."""
    if not result.converged:
        _LOG.warning(f"{method}: NOT CONVERGED: {search['convergence_reason']}. {search['advice']}")
    if verbose:
        _LOG.info(
            f"{method}: OFV {result.ofv:.6f} converged={result.converged} in {result.seconds_fit:.2f} s "
            f"(compile {seconds_compile:.2f} s)"
        )


def _importance_ofv(spec, dataset, problem, evaluator, psi, ev, settings, seed, core):
    """The OFV by importance sampling at ``psi`` and the ``fit.json`` entries that say so.

    The draws of ``copies`` subjects' worth run in one call of the model core (the dataset
    repeated, :func:`.saem.replicate`).
    """
    mode = evaluator.ebe(psi, ev.eta, method="focei")
    copies = max(1, min(settings.is_samples, 600 // max(problem.n_subjects, 1)))
    batch = build_problem(spec, replicate(dataset, copies))[0] if copies > 1 else problem
    value, mcse, _ = importance_sampling_ofv(batch, psi, mode.eta, mode.hessian, samples=settings.is_samples, seed=seed)
    return value, {"ofv_method": "importance_sampling", "ofv_mcse": mcse, f"ofv_{core}": float(ev.ofv)}


def check_estimation_inputs(spec, data, method: str) -> None:
    """Every check ``estimate(spec, data, method=method)`` makes before fitting (``check``
    runs it): the dataset against the model, the observations against the residual
    model, and censored rows against the method.

    Parameters
    ----------
    spec : ModelSpec
    data : Dataset, pandas.DataFrame, path or bundled name
    method : str
    """
    _check_choice(method, ALL_METHODS, "method")
    problem = build_problem(spec, data)[0]
    _check_censoring(spec, method, problem)
    if method == "saem":
        saem_settings(getattr(spec, "saem", None))


def _check_censoring(spec, method: str, problem) -> None:
    """Methods that cannot take the censored rows in the objective say so (exit 2); SAEM
    needs a parameter with IIV."""
    if method == "saem" and problem.pmap.n_iiv == 0:
        raise ArgumentError(
            f"method 'saem' needs at least one parameter with IIV (iiv = true); model '{spec.name}' has none: use focei"
        )
    m4 = np.any(problem.positive)
    if problem.n_censored == 0 and not m4:
        return
    if problem.n_censored == problem.n_obs:
        raise InputError(
            f"every observation is censored (BLQ = 1): nothing is observed, so model '{spec.name}' cannot be fitted"
        )
    blq = _blq_method(spec)
    if method in ("fo", "foce"):
        what = (
            f"censored observations ({problem.n_censored} rows with BLQ = 1 under "
            if problem.n_censored
            else "the M4 condition y >= 0 on every row ("
        )
        raise ArgumentError(
            f"method '{method}' does not handle {what}"
            f'[residual] blq = "{blq}"): use focei, laplace, saem or nuts, or blq = "M1" to drop censored rows'
        )


def _blq_method(spec) -> str:
    """``[residual] blq``; with several outputs their methods, comma-separated when they differ."""
    from ..spec.outputs import residual_parts

    return ",".join(dict.fromkeys(part.residual.blq for part in residual_parts(spec)))


def _as_omega(omega, d: int) -> np.ndarray:
    arr = np.asarray(omega, dtype=float)
    if arr.ndim == 0:
        arr = np.full(d, float(arr)) if d == 1 else arr.reshape(1)
    if arr.ndim == 1:
        arr = np.diag(arr)
    if arr.shape != (d, d):
        raise ArgumentError(f"omega must be a {d}x{d} matrix (or its diagonal), got shape {arr.shape}")
    return arr


def objective(
    spec,
    data,
    *,
    method: str = "focei",
    theta: Mapping[str, float],
    omega,
    sigma2,
    omega_iov: Mapping[str, float] | None = None,
) -> float:
    """The OFV at fixed parameter values (EBEs solved for).

    Parameters
    ----------
    spec : ModelSpec
    data : Dataset, pandas.DataFrame, path or bundled name
    method : {"focei", "foce", "fo", "laplace"}
    theta : mapping
        Typical value of every estimated parameter by name (``"CL"`` or
        ``"theta_CL"``), and every estimated covariate coefficient (``beta_<P>_<COL>``).
    omega : float, sequence or matrix
        Omega (IIV parameters in declaration order): the full matrix, its diagonal, or
        a number for a single IIV parameter.
    sigma2 : float or mapping
        Residual variance(s): a number for single-variance models, or a mapping by
        ``sigma2_add``/``sigma2_prop``/``sigma2_exp`` (or ``add``/``prop``/``exp``).
    omega_iov : mapping, optional
        IOV variances by parameter name (``"CL"`` or ``"omega_iov_CL"``); needed when
        the model has inter-occasion variability.

    Returns
    -------
    float
        -2 log-likelihood without ``n_obs * log(2 pi)``.
    """
    _check_choice(method, METHODS, "method")
    problem, *_ = build_problem(spec, data)
    pm = problem.pmap
    lookup = {(k[len("theta_") :] if k.startswith("theta_") else k): float(v) for k, v in theta.items()}
    missing = [n for n in pm.theta_names + pm.beta_names if n not in lookup]
    if missing:
        raise ArgumentError(
            f"theta: missing {', '.join(missing)} (model '{spec.name}' needs "
            f"{', '.join(pm.theta_names + pm.beta_names)})"
        )
    if isinstance(sigma2, Mapping):
        sig = {(k if k.startswith("sigma2_") else f"sigma2_{k}"): float(v) for k, v in sigma2.items()}
    elif len(pm.sigma_names) == 1:
        sig = {pm.sigma_names[0]: float(sigma2)}
    else:
        raise ArgumentError(f"sigma2 must be a mapping with {', '.join(pm.sigma_names)}")
    absent = [n for n in pm.sigma_names if n not in sig]
    if absent:
        raise ArgumentError(f"sigma2: missing {', '.join(absent)}")
    iov = {k.removeprefix("omega_iov_"): float(v) for k, v in (omega_iov or {}).items()}
    lacking = [n for n in pm.iov if n not in iov]
    if lacking:
        raise ArgumentError(f"omega_iov: missing {', '.join(lacking)} (model '{spec.name}' has IOV on them)")
    psi = pm.pack(lookup, lookup, _as_omega(omega, pm.n_iiv), sig, iov)
    return float(Evaluator(problem, method).evaluate(psi).ofv)
