"""Where NUTS chains start: from a fast frequentist fit, or from the jittered prior point.

Started from the prior support point plus ``Uniform(-1, 1)`` jitter on the
unconstrained scale (``init="jitter"``, the behaviour before issue 17), chains of a
large study can be trapped where they start: far from the posterior mass, the step
size collapses during early warm-up (to ~1e-11), every draw repeats the start and no
divergence is reported (120 subjects, one-compartment oral: two of four chains
stuck in two of three seeds).

``init="focei"`` (or ``"fo"``) first fits the model by maximum likelihood
(:func:`bayes_nlme.estimation.estimate`, no covariance step) and starts every chain at
its estimates and EBEs, mapped onto the model's free variables
(:func:`start_values`), with a small seeded jitter (:data:`JITTER`) on the
unconstrained scale so that chains differ. ``init="auto"`` (the default) takes
FOCE-I, then FO when FOCE-I fails, then the jittered prior point; what was used is
recorded in ``fit.json`` (key ``init``).
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings

import numpy as np

from ..build import flipflop
from ..build.omega import _blocks, _ordered, block_name, variance_name
from ..errors import ArgumentError
from ..spec.components import SAMPLING_INITS
from ..spec.priors import LKJ, InverseGamma, InverseWishart

__all__ = [
    "INIT_METHODS",
    "JITTER",
    "check_init",
    "frequentist_fit",
    "start_point",
    "start_values",
    "flat_point",
    "with_start",
]

logger = logging.getLogger(__name__)

#: Valid ``init`` choices of :func:`bayes_nlme.fit.sample`.
INIT_METHODS = SAMPLING_INITS
#: Half-width of the uniform jitter around the frequentist start (unconstrained scale).
JITTER = 0.1
#: Floor on the eigenvalues of the estimated omega used as a start: a variance
#: estimated at zero would start the chains in the neck of a funnel.
OMEGA_FLOOR = 0.01


def check_init(init) -> str:
    """Validate an ``init`` choice.

    Parameters
    ----------
    init : str

    Returns
    -------
    str

    Raises
    ------
    ArgumentError
        Not one of :data:`INIT_METHODS`.
    """
    if init not in INIT_METHODS:
        raise ArgumentError(f"unknown init {init!r} (valid: {', '.join(INIT_METHODS)})")
    return init


def _estimate_map(result) -> dict:
    table = result.estimates
    return {str(k): float(v) for k, v in zip(table["parameter"], table["estimate"], strict=True)}


def _omega_matrix(spec, est: dict) -> np.ndarray:
    names = list(spec.iiv_names)
    p = len(names)
    omega = np.zeros((p, p))
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            value = est.get(f"omega_{a}_{b}", est.get(f"omega_{b}_{a}"))
            if value is None:
                value = 0.1 if i == j else 0.0
            omega[i, j] = value
    omega = 0.5 * (omega + omega.T)
    w, v = np.linalg.eigh(omega)
    return (v * np.maximum(w, OMEGA_FLOOR)) @ v.T


def _log_softplus_inverse(x: np.ndarray) -> np.ndarray:
    """``y`` with ``softplus(y) = x`` (``x > 0``), stable for large ``x``."""
    x = np.maximum(np.asarray(x, dtype=float), 0.05)
    return x + np.log(-np.expm1(-x))


def _omega_values(spec, omega: np.ndarray, first) -> tuple[dict, np.ndarray]:
    """Start values of omega's free variables, and the factor ``F`` the model builds."""
    prior = spec.omega.prior
    names = list(spec.iiv_names)
    p = len(names)
    out: dict = {}
    factor = np.zeros((p, p))
    for b, idx in enumerate(_blocks(spec)):
        if len(idx) == 1:
            (i,) = idx
            factor[i, i] = np.sqrt(omega[i, i])
            if isinstance(prior, (InverseWishart, InverseGamma)):
                out[variance_name(names[i])] = omega[i, i]
            else:
                out[f"omega_sd_{names[i]}"] = np.sqrt(omega[i, i])
            continue
        last = isinstance(prior, LKJ)
        order = list(_ordered(spec, idx, first, last=last))
        sub = omega[np.ix_(order, order)]
        if last:
            block = np.linalg.cholesky(sub)
            sd = np.sqrt(np.diag(sub))
            out[f"{block_name(b)}_sd"] = sd
            out[f"{block_name(b)}_corr"] = block / sd[:, None]
        else:
            scale = prior.scale_matrix[np.ix_(order, order)]
            chol_inv = np.linalg.cholesky(np.linalg.inv(scale))
            la = np.linalg.cholesky(np.linalg.inv(sub))
            a = np.linalg.solve(chol_inv, la)
            out[f"{block_name(b)}_chi2"] = np.diag(a) ** 2
            out[f"{block_name(b)}_normal"] = a[np.tril_indices(len(order), -1)]
            block = np.linalg.inv(la).T
        factor[np.ix_(order, order)] = block
    return out, factor


def _subject_log_params(spec, result, dataset) -> dict:
    """Log individual parameters (EBEs) per IIV parameter, in the dataset's subject order."""
    ebe = result.ebe.set_index("ID")
    ids = list(dataset.subject_ids)
    return {name: np.log(ebe.loc[ids, name].to_numpy(dtype=float)) for name in spec.parameter_names if name in ebe}


def start_values(built, result) -> dict:
    """Start values of a built model's free variables from a frequentist fit.

    Parameters
    ----------
    built : BuiltModel
    result : EstimationResult
        Its estimates (typical values, covariate coefficients, omega, residual
        variances) and EBEs.

    Returns
    -------
    dict of str to numpy.ndarray
        Free-variable name to value on the natural (constrained) scale, for
        :func:`pymc.initial_point.make_initial_point_fn` overrides. Variables it cannot
        place keep their default start.
    """
    spec, model = built.spec, built.model
    est = _estimate_map(result)
    typical = {p.name: est.get(f"theta_{p.name}", p.fixed) for p in spec.parameters}
    out: dict = {}
    for name, value in est.items():
        if name.startswith(("theta_", "beta_", "sigma2_")) and name in model.named_vars:
            out[name] = value
    ka = flipflop.ABSORPTION
    if built.guard and f"theta_{ka}_raw" in model.named_vars and typical.get(ka) is not None:
        c = np.log(flipflop.terminal_rate({k: v for k, v in typical.items() if k != ka}, np))
        out[f"theta_{ka}_raw"] = float(np.exp(c + _log_softplus_inverse(np.log(typical[ka]) - c)))
    out.update(_iov_start(built, result, est))
    if not spec.iiv_names:
        return out
    first = ka if built.guard and flipflop.individual_guard(spec) else None
    omega = _omega_matrix(spec, est)
    omega_values, factor = _omega_values(spec, omega, first)
    out.update(omega_values)
    logs = _subject_log_params(spec, result, built.dataset)
    names = list(spec.iiv_names)
    if any(n not in logs for n in names):
        return out
    if isinstance(built.centered, tuple):
        out.update(_mixed_start(spec, built.centered, factor, result, built.dataset, logs, first))
    elif built.centered:
        cols = [logs[n].copy() for n in names]
        if first is not None:
            k = names.index(first)
            bound = np.log(flipflop.terminal_rate({n: np.exp(v) for n, v in logs.items() if n != first}, np))
            cols[k] = bound + _log_softplus_inverse(cols[k] - bound)
        out["log_individual"] = np.stack(cols, axis=1)
    else:
        eta = result.ebe.set_index("ID").loc[list(built.dataset.subject_ids), [f"ETA_{n}" for n in names]]
        eta = eta.to_numpy(dtype=float)
        z = np.linalg.solve(factor, eta.T).T
        if first is not None:
            k = names.index(first)
            z[:, k] = _bounded_z(spec, factor, eta, z, k, logs)
        out["eta_z"] = z
    return out


def _mixed_start(spec, centred, factor, result, dataset, logs, first) -> dict:
    """``eta_z`` and ``log_individual`` of the mixed parameterisation
    (:func:`bayes_nlme.build.etas.random_effects`): ``z_N = L_NN^-1 eta_N`` with ``L``
    the Cholesky factor of Omega in the order (non-centred, centred), the guarded
    absorption rate last among the non-centred ones."""
    names = list(spec.iiv_names)
    k = names.index(first) if first is not None else None
    c_idx = [j for j, n in enumerate(names) if n in centred]
    n_idx = [j for j, n in enumerate(names) if n not in centred and j != k]
    n_idx += [k] if k is not None and names[k] not in centred else []
    m, order = len(n_idx), n_idx + c_idx
    chol = np.linalg.cholesky((factor @ factor.T)[np.ix_(order, order)])
    eta = result.ebe.set_index("ID").loc[list(dataset.subject_ids), [f"ETA_{n}" for n in names]]
    eta = eta.to_numpy(dtype=float)
    z = np.linalg.solve(chol[:m, :m], eta[:, n_idx].T).T
    cols = {j: logs[names[j]].copy() for j in c_idx}
    if k is not None:
        others = {n: np.exp(v) for n, v in logs.items() if n != first}
        bound = np.log(flipflop.terminal_rate(others, np))
        if k in cols:
            cols[k] = bound + _log_softplus_inverse(cols[k] - bound)
        else:
            lkk = chol[m - 1, m - 1]
            rest = eta[:, k] - lkk * z[:, m - 1]
            t = (bound - (logs[first] - eta[:, k]) - rest) / lkk
            z[:, m - 1] = t + _log_softplus_inverse(z[:, m - 1] - t)
    return {"eta_z": z, "log_individual": np.stack([cols[j] for j in c_idx], axis=1)}


def _iov_start(built, result, est: dict) -> dict:
    """IOV variances (floored at :data:`OMEGA_FLOOR`) and kappas from the frequentist fit:
    ``omega_iov_<P>`` (or its SD ``omega_iov_sd_<P>`` under a half-normal prior), and
    ``kappa_z = kappa / sqrt(omega_iov)`` (non-centred) or ``kappa_c = kappa`` (centred)
    from the ``kappa_<P>_<OCC>`` columns of the EBEs."""
    spec, model, design = built.spec, built.model, built.design
    names = list(getattr(spec, "iov_names", ()))
    out: dict = {}
    if not names or any(f"omega_iov_{n}" not in est for n in names):
        return out
    variances = {n: max(est[f"omega_iov_{n}"], OMEGA_FLOOR) for n in names}
    for n in names:
        if f"omega_iov_sd_{n}" in model.named_vars:
            out[f"omega_iov_sd_{n}"] = float(np.sqrt(variances[n]))
        elif f"omega_iov_{n}" in model.named_vars:
            out[f"omega_iov_{n}"] = float(variances[n])
    ebe = result.ebe.set_index("ID")
    ids = built.dataset.subject_ids
    kappa = np.zeros((design.n_occasions, len(names)))
    for j, n in enumerate(names):
        for o, (s, label) in enumerate(zip(design.occasion_subject, design.occasion_label)):
            column = f"kappa_{n}_{label}"
            value = ebe.at[ids[s], column] if column in ebe.columns else np.nan
            kappa[o, j] = value if np.isfinite(value) else 0.0
    if "log_occasion" in model.named_vars:  # occasion-centred (build/iov.py)
        logs = _subject_log_params(spec, result, built.dataset)
        level = [n for n in names if n in spec.iiv_names]
        subject = np.asarray(design.occasion_subject, dtype=np.int64)
        out["log_occasion"] = np.stack([logs[n][subject] + kappa[:, names.index(n)] for n in level], axis=1)
        for j, n in enumerate(names):
            if n not in level:
                out[f"kappa_c_{n}"] = kappa[:, j]
    elif "kappa_c" in model.named_vars:
        out["kappa_c"] = kappa
    elif "kappa_z" in model.named_vars:
        out["kappa_z"] = kappa / np.sqrt([variances[n] for n in names])[None, :]
    return out


def _bounded_z(spec, factor, eta, z, k, logs) -> np.ndarray:
    """The free ``eta_z`` column of the guarded absorption rate (inverse of
    :func:`bayes_nlme.build.etas._bounded`): ``z_free = t + softplus^-1(z_k - t)`` with
    ``t`` the bound on ``z_k``, from ``ka_i > k_i`` (:func:`~bayes_nlme.build.flipflop.eta_lower_bound`)."""
    ka = flipflop.ABSORPTION
    rate = flipflop.terminal_rate({n: np.exp(v) for n, v in logs.items() if n != ka}, np)
    bound_eta = np.log(rate) - (logs[ka] - eta[:, k])  # log k_i - log ka_i(eta_ka = 0)
    rest = eta[:, k] - factor[k, k] * z[:, k]
    t = (bound_eta - rest) / factor[k, k]
    return t + _log_softplus_inverse(z[:, k] - t)


def flat_point(model, overrides: dict) -> np.ndarray:
    """The unconstrained point of ``model`` in nutpie's layout (``model.free_RVs`` order).

    Parameters
    ----------
    model : pymc.Model
    overrides : dict
        Free-variable name to natural-scale value; the others take their support point.

    Returns
    -------
    numpy.ndarray
    """
    from pymc.initial_point import make_initial_point_fn

    named = {model[name]: np.asarray(value, dtype=float) for name, value in overrides.items()}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)
        fn = make_initial_point_fn(
            model=model, overrides=named, jitter_rvs=set(), return_transformed=True, default_strategy="support_point"
        )
        point = fn(0)
    return np.concatenate(
        [np.asarray(point[model.rvs_to_values[rv].name], dtype=float).ravel() for rv in model.free_RVs]
    )


def jittered(x0: np.ndarray, width: float):
    """``f(seed) -> x0 + Uniform(-width, width)`` jitter (nutpie's initial-point function).

    Parameters
    ----------
    x0 : numpy.ndarray
    width : float

    Returns
    -------
    callable
    """
    x0 = np.array(x0, dtype=np.float64, copy=True)

    def initial_point(seed=None):
        rng = np.random.default_rng(seed)
        return np.ascontiguousarray(x0 + rng.uniform(-width, width, size=x0.shape))

    return initial_point


def with_start(compiled, x0):
    """A nutpie compiled model whose chains start around ``x0`` (None: unchanged).

    Parameters
    ----------
    compiled : nutpie CompiledModel
    x0 : numpy.ndarray or None
        Unconstrained start point (:func:`start_point`).

    Returns
    -------
    nutpie CompiledModel
        With :func:`jittered` ``(x0, JITTER)`` as its initial-point function.
    """
    import dataclasses

    if x0 is None:
        return compiled
    fields = {f.name for f in dataclasses.fields(compiled)}
    name = "initial_point_func" if "initial_point_func" in fields else "_make_initial_points"
    return dataclasses.replace(compiled, **{name: jittered(x0, JITTER)})


def frequentist_fit(spec, dataset, init: str) -> tuple:
    """The maximum-likelihood fit the chains start from (FOCE-I, else FO), if any.

    Parameters
    ----------
    spec : ModelSpec
    dataset : Dataset
    init : {"auto", "focei", "fo", "jitter"}

    Returns
    -------
    tuple (EstimationResult or None, dict)
        The fit (None for ``"jitter"`` or when every method failed) and the record
        for ``fit.json``: ``requested``, ``method`` (``"focei"``, ``"fo"`` or
        ``"jitter"``), ``seconds``, ``ofv`` and ``converged`` of the fit, ``jitter``
        (the half-width of the uniform jitter on the unconstrained scale) and
        ``reason`` when a requested method failed.
    """
    from ..estimation import estimate

    start = time.perf_counter()
    info: dict = {"requested": init}
    methods = {"auto": ("focei", "fo"), "focei": ("focei",), "fo": ("fo",), "jitter": ()}[check_init(init)]
    reasons = []
    for method in methods:
        try:
            with warnings.catch_warnings(), _quiet_estimation():
                # the start only needs finite estimates; the frequentist fit's own
                # warnings and log lines (e.g. about its convergence) do not concern the
                # NUTS fit: fit.json's init record says whether it converged
                warnings.simplefilter("ignore")
                result = estimate(spec, dataset, method=method, covariance=None, starts=1)
        except Exception as exc:  # noqa: BLE001 - any failure falls back to the next start
            reasons.append(f"{method}: {type(exc).__name__}: {exc}")
            continue
        if not np.isfinite(result.ofv):
            reasons.append(f"{method}: non-finite objective function")
            continue
        info.update(method=method, ofv=float(result.ofv), converged=bool(result.converged), jitter=JITTER)
        info["seconds"] = time.perf_counter() - start
        logger.info("%s fit for the chains' start: %.1f s", method.upper(), info["seconds"])
        return result, info
    _fallback(info, reasons)
    info["seconds"] = time.perf_counter() - start
    return None, info


@contextlib.contextmanager
def _quiet_estimation():
    """Hold back the frequentist engines' log lines below ERROR for the duration."""
    log = logging.getLogger("bayes_nlme.estimation")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _fallback(info: dict, reasons: list) -> None:
    info.update(method="jitter", jitter=1.0)
    for key in ("ofv", "converged"):
        info.pop(key, None)
    if reasons:
        info["reason"] = "; ".join(reasons)
        logger.warning("chains start from the jittered prior point: %s", info["reason"])


def start_point(built, result, info: dict) -> tuple:
    """The chains' start point in a built model from a frequentist fit.

    Parameters
    ----------
    built : BuiltModel
    result : EstimationResult or None
        From :func:`frequentist_fit` (None: no start point).
    info : dict
        The record of :func:`frequentist_fit`, updated in place when the estimates
        cannot be mapped onto the model (the chains then start from the jittered prior
        point, and ``reason`` says why).

    Returns
    -------
    tuple (numpy.ndarray or None, dict or None)
        The unconstrained start point in nutpie's layout and the same values on the
        natural scale (:func:`start_values`); None, None for the jittered prior point.
    """
    if result is None:
        return None, None
    start = time.perf_counter()
    try:
        values = start_values(built, result)
        x0 = flat_point(built.model, values)
    except Exception as exc:  # noqa: BLE001 - a start that cannot be mapped falls back
        _fallback(info, [f"{info.get('method')} start: {type(exc).__name__}: {exc}"])
        return None, None
    finally:
        info["seconds"] = info.get("seconds", 0.0) + time.perf_counter() - start
    if not np.all(np.isfinite(x0)):
        _fallback(info, [f"{info.get('method')} start: non-finite values"])
        return None, None
    return x0, values
