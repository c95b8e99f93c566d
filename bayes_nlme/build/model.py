"""The Bayesian model builder: a :class:`~bayes_nlme.spec.ModelSpec` and a dataset
become a :class:`pymc.Model`.

Variables (canonical names as in the fit directory)
---------------------------------------------------
* ``theta_<P>``: typical values, with their stated priors (normally log-normal). With
  the flip-flop guard ``theta_ka`` is a deterministic of ``theta_ka_raw``
  (:mod:`bayes_nlme.build.flipflop`).
* ``beta_<P>_<COL>``: estimated covariate coefficients (fixed ones are constants).
* ``omega`` (``parameter x parameter2``) and its free variables
  (:mod:`bayes_nlme.build.omega`); ``eta`` (``subject x parameter``,
  :mod:`bayes_nlme.build.etas`).
* ``individual`` (``subject x structural_parameter``): every parameter of every
  subject, ``theta * covariate factors * exp(eta)``
  (:func:`bayes_nlme.individual.individual_parameters`), at the subject's first record
  and without the kappas.
* ``omega_iov_<P>`` and ``kappa`` (``occasion x iov_parameter``): inter-occasion
  variability (:mod:`bayes_nlme.build.iov`).
* ``ipred`` (``observation``): individual predictions (central concentrations).
* ``sigma2_add``, ``sigma2_prop``, ``sigma2_exp``: residual variances, and the observed
  ``y`` (``observation``) (:mod:`bayes_nlme.build.residual`).

Coordinates: ``subject`` (the dataset's subject IDs), ``observation`` (the data rows of
the observations, 1-based), ``parameter`` (the parameters with IIV, in declaration
order), ``parameter2`` (the same, for the columns of omega) and
``structural_parameter`` (every parameter).

Every prior hyperparameter is a :func:`pymc.Data` container (see
:mod:`bayes_nlme.build.priors`), and the observations are the container ``dv``:
:func:`prior_data` gives the values for another spec of the same shape, to re-use a
compiled model without recompiling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from ..individual import coefficient_name, individual_parameters, segment_covariates
from ..pk.models import model_of
from ..spec.priors import HalfNormal, LogNormal, Normal
from . import flipflop
from .etas import centring, random_effects
from .iov import iov_coords, iov_hyperparameters, occasion_effects
from .omega import omega_factor, omega_hyperparameters
from .priors import POSITIVE, check_prior, hyperparameters, prior_variable
from .residual import (
    check_observations,
    likelihood,
    residual_hyperparameters,
    residual_variances,
)

__all__ = ["BuiltModel", "build", "build_model", "check_model_data", "prior_data", "resolve_dataset", "theta_name"]

_COEFFICIENT_PRIORS = (Normal, LogNormal, HalfNormal)


def theta_name(parameter: str) -> str:
    """Canonical name of a typical value: ``theta_<P>``."""
    return f"theta_{parameter}"


@dataclass(frozen=True, eq=False)
class BuiltModel:
    """A PyMC model with what was needed to build it.

    Attributes
    ----------
    model : pymc.Model
    spec : ModelSpec
    dataset : Dataset
    design : EngineDesign
        The record layout of the event engine (:func:`bayes_nlme.core.engine_design`).
    observations : pandas.DataFrame
        The observation records in model order (``ROW, SUBJECT, ID, TIME, DV, BLQ``).
    lower : numpy.ndarray or None
        Censoring limits per observation (``-inf`` where not censored); None without BLQ.
    guard : bool
        Whether the flip-flop guard is on.
    centered : bool or tuple of str
        Whether the etas are centred, or the names of the centred ones (mixed).
    """

    model: pm.Model
    spec: object
    dataset: object
    design: object
    observations: pd.DataFrame
    lower: np.ndarray | None
    guard: bool
    centered: bool | tuple

    @property
    def dv(self) -> np.ndarray:
        """The observations."""
        return self.observations["DV"].to_numpy(dtype=float)


def resolve_dataset(spec, data):
    """A validated :class:`~bayes_nlme.data.Dataset` for the spec.

    Parameters
    ----------
    spec : ModelSpec
    data : Dataset, path, bundled name or pandas.DataFrame

    Returns
    -------
    Dataset
    """
    from ..data import Dataset, check_for_model, load_dataset

    if not isinstance(data, Dataset):
        data = load_dataset(data, columns=spec.columns or None)
    check_for_model(data, model_of(spec), spec.covariate_columns, spec=spec)
    return data


def _typical_prior(p):
    return check_prior(p.typical, f"parameters.{p.name}.typical", POSITIVE)


def _coefficients(spec):
    out = {}
    for p in spec.parameters:
        for i, c in enumerate(p.covariates):
            if c.estimated:
                field = "exponent" if c.effect == "power" else "beta"
                key = f"parameters.{p.name}.covariates[{i}].{field}"
                out[coefficient_name(p.name, c.column)] = check_prior(c.coefficient, key, _COEFFICIENT_PRIORS)
    return out


def prior_data(spec) -> dict[str, np.ndarray]:
    """Values of every prior-hyperparameter data container of the model of ``spec``.

    Two specs that differ only in prior values (e.g. ``Prior.scaled`` variants) give
    the same keys, so a compiled model can be re-used:
    ``compiled.with_data(**prior_data(other_spec))``.

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    dict of str to numpy.ndarray
    """
    out: dict[str, np.ndarray] = {}
    for p in spec.estimated:
        out.update(hyperparameters(theta_name(p.name), _typical_prior(p)))
    for name, prior in _coefficients(spec).items():
        out.update(hyperparameters(name, prior))
    first = flipflop.ABSORPTION if flipflop.individual_guard(spec) else None
    out.update(omega_hyperparameters(spec, first=first))
    out.update(iov_hyperparameters(spec))
    out.update(residual_hyperparameters(spec))
    return out


def _observations(dataset, design) -> tuple[pd.DataFrame, np.ndarray | None]:
    from .residual import censoring_limits

    table = dataset.table.iloc[np.asarray(design.obs_row, dtype=int)]
    obs = table[["ROW", "SUBJECT", "ID", "TIME", "DV", "BLQ"]].reset_index(drop=True)
    return obs, censoring_limits(table)


def _coords(spec, dataset, obs) -> dict:
    return {
        "subject": list(dataset.subject_ids),
        "observation": obs["ROW"].astype(int).tolist(),
        "parameter": list(spec.iiv_names),
        "parameter2": list(spec.iiv_names),
        "structural_parameter": list(spec.parameter_names),
    }


def _thetas(spec, guard: bool) -> dict:
    theta = {}
    for p in spec.estimated:
        if guard and p.name == flipflop.ABSORPTION:
            continue
        prior = _typical_prior(p)
        initval = prior.median if isinstance(prior, LogNormal) else None
        theta[p.name] = prior_variable(theta_name(p.name), prior, initval=initval)
    if guard:
        typical = {p.name: theta.get(p.name, p.fixed) for p in spec.parameters if p.name != flipflop.ABSORPTION}
        prior = _typical_prior(spec.parameter(flipflop.ABSORPTION))
        theta[flipflop.ABSORPTION] = flipflop.guarded_theta_ka(prior, flipflop.terminal_rate(typical))
    return theta


def _initial_log_parameters(spec) -> np.ndarray:
    """Log of each IIV parameter's initial value (its ``initial``, else its prior median)."""
    out = []
    for name in spec.iiv_names:
        p = spec.parameter(name)
        value = getattr(p, "initial", None)
        if value is None:
            prior = p.typical
            value = prior.median if isinstance(prior, LogNormal) else 1.0
        out.append(np.log(float(value)))
    return np.asarray(out)


def check_model_data(spec, dataset):
    """Every check the Bayesian path makes on a model-data pair before building.

    The priors (:func:`prior_data`), the record layout of the model core, and the
    observations against the residual model (DV <= 0 under exponential error; an
    observation where no dose acts yet under proportional or exponential error). ``check``
    runs the same function.

    Parameters
    ----------
    spec : ModelSpec
    dataset : Dataset
        Already checked with :func:`~bayes_nlme.data.check_for_model`.

    Returns
    -------
    design : EngineDesign
    observations : pandas.DataFrame
    lower : numpy.ndarray or None
        Censoring limits.
    """
    from ..core import engine_design, zero_observations

    prior_data(spec)  # validates every prior before anything is built
    design = engine_design(
        dataset,
        model_of(spec),
        declared=spec.parameter_names,
        covariates=spec.covariate_columns,
        time_varying=spec.time_varying,
        occasions=bool(spec.iov_names),
    )
    obs, lower = _observations(dataset, design)
    dv = obs["DV"].to_numpy(dtype=float)
    check_observations(
        spec, dv, obs["ROW"].to_numpy(), str(dataset.source), zero_observations(design), lower, design.obs_output
    )
    return design, obs, lower


def _segment_parameters(spec, theta, eta, log_individual, segment_cov, coefficients, design, covariates, kappa=None):
    """Individual parameters per parameter segment (time-varying covariates, occasions).

    Non-centred: ``theta * factors(segment covariates) * exp(eta[subject])``. Centred:
    the free log individual parameters are those of each subject's first segment, and
    other segments scale them by the ratio of typical values. Either way, times
    ``exp(kappa[occasion of the segment])`` for the parameters with IOV.
    """
    index = design.seg_subject
    occasion = design.seg_occasion
    params = individual_parameters(
        spec, theta, eta, segment_cov, coefficients, index=index, kappa=kappa, occasion=occasion
    )
    if log_individual:
        typical_seg = individual_parameters(spec, theta, None, segment_cov, coefficients, index=index)
        typical_first = individual_parameters(spec, theta, None, covariates, coefficients, n_subjects=design.n_subjects)
        for name, value in log_individual.items():
            params[name] = pt.exp(value[index]) * typical_seg[name] / typical_first[name][index]
            if kappa and name in kappa:
                params[name] = params[name] * pt.exp(kappa[name][occasion])
    return params


def _subject_effects(spec, theta, covariates, coefficients, n, *, centered, individual_guard):
    """The between-subject random effects, in the current model: omega (and its ``omega``
    deterministic) and the etas, non-centred (``eta = F z``) or centred on the log
    individual parameters (:func:`.etas.random_effects`).

    Returns
    -------
    eta : list or None
        The eta columns (None without IIV).
    log_individual : dict
        Log individual parameters of the centred form, by name (empty otherwise).
    """
    eta = None
    log_individual: dict = {}
    if spec.iiv_names:
        bounded = flipflop.ABSORPTION if individual_guard else None
        omega = omega_factor(spec, first=bounded)
        pm.Deterministic("omega", omega.omega, dims=("parameter", "parameter2"))
        mean = initial = bound = None
        if centered is not False:
            typical = individual_parameters(spec, theta, None, covariates, coefficients, n_subjects=n)
            log_typical = {name: pt.log(value) for name, value in typical.items()}
            mean = [log_typical[name] for name in spec.iiv_names]
            initial = _initial_log_parameters(spec)
            if bounded:

                def bound(log_params, _typ=log_typical):
                    merged = {name: log_params.get(name, _typ[name]) for name in _typ}
                    return flipflop.log_terminal_rate(merged)

        elif bounded:
            bound = flipflop.eta_lower_bound(spec, theta, covariates, coefficients, n)
        eta = []
        random_effects(
            spec,
            omega,
            centered=centered,
            bounded=bounded,
            lower_bound=bound,
            mean=mean,
            initial=initial,
            log_individual=log_individual,
            columns=eta,
        )
    return eta, log_individual


def _kappas(spec, design, centered, log_individual: dict) -> dict:
    """The IOV variances and kappas (:func:`.iov.occasion_effects`); with centred etas the
    kappas' free variable is the log occasion parameter, centred on ``log_individual``."""
    return occasion_effects(
        spec,
        design.n_occasions,
        centered=centered is True,
        log_subject=log_individual,
        subject=design.occasion_subject,
        initial=dict(zip(spec.iiv_names, _initial_log_parameters(spec))),
    )


def build(spec, data, *, centered: bool | tuple = False, guard: bool | None = None) -> BuiltModel:
    """Build the PyMC model of a spec and a dataset.

    Parameters
    ----------
    spec : ModelSpec
    data : Dataset, path, bundled name or pandas.DataFrame
    centered : bool or tuple of str
        Centred etas (default False: non-centred, ``eta = F z``), or the names of the
        centred IIV parameters (the others non-centred; :func:`~bayes_nlme.build.etas.random_effects`).
    guard : bool, optional
        Override the flip-flop guard (default: ``spec.flip_flop_guard``, on for oral
        models with an estimated ``ka``). Forward prior sampling builds without it.

    Returns
    -------
    BuiltModel

    Raises
    ------
    SpecError
        A prior the Bayesian path needs is missing or of the wrong kind (the error names
        the key, e.g. ``omega.prior`` or ``residual.add``).
    DataError
        The dataset does not suit the model.
    """
    from ..core.op import structural_predictions

    dataset = resolve_dataset(spec, data)
    centered = centring(spec, centered)
    if guard is None:
        guard = flipflop.guard_enabled(spec)
    guard = bool(guard) and flipflop.guard_enabled(spec)
    individual_guard = guard and flipflop.individual_guard(spec)
    design, obs, lower = check_model_data(spec, dataset)
    dv = obs["DV"].to_numpy(dtype=float)
    segment_cov = segment_covariates(spec, dataset, design)
    first = np.asarray(design.subj[:-1, 1], dtype=np.int64)
    covariates = {name: values[first] for name, values in segment_cov.items()}
    varying = not design.constant_within_subject or bool(spec.iov_names)
    n = dataset.n_subjects
    coords = _coords(spec, dataset, obs)
    if spec.iov_names:
        coords.update(iov_coords(dataset, design), iov_parameter=list(spec.iov_names))
    with pm.Model(coords=coords) as model:
        theta = _thetas(spec, guard)
        coefficients = {name: prior_variable(name, prior) for name, prior in _coefficients(spec).items()}
        eta, log_individual = _subject_effects(
            spec, theta, covariates, coefficients, n, centered=centered, individual_guard=individual_guard
        )
        params = individual_parameters(spec, theta, eta, covariates, coefficients, n_subjects=n)
        params.update({name: pt.exp(value) for name, value in log_individual.items()})
        pm.Deterministic(
            "individual",
            pt.stack([params[name] for name in spec.parameter_names], axis=1),
            dims=("subject", "structural_parameter"),
        )
        kappa = _kappas(spec, design, centered, log_individual) if spec.iov_names else None
        if varying:
            params = _segment_parameters(
                spec, theta, eta, log_individual, segment_cov, coefficients, design, covariates, kappa
            )
        engine_data = {name: pm.Data(f"engine_{name}", value) for name, value in design.engine_inputs.items()}
        f = pm.Deterministic("ipred", structural_predictions(design, params, engine_data), dims="observation")
        if design.engine_key:  # ODE: a failed integration (NaN predictions) is log density -inf
            solved = pt.isfinite(f)
            pm.Potential("ode_solver_failed", pt.switch(pt.all(solved), 0.0, -np.inf))
            f = pt.switch(solved, f, 1.0)
        sigma2 = residual_variances(spec)
        dv_data = pm.Data("dv", dv, dims="observation")
        likelihood(spec, f, dv_data, sigma2, lower, design.obs_output)
    return BuiltModel(
        model=model,
        spec=spec,
        dataset=dataset,
        design=design,
        observations=obs,
        lower=lower,
        guard=guard,
        centered=centered,
    )


def build_model(spec, data, *, centered: bool = False, guard: bool | None = None) -> pm.Model:
    """Build the PyMC model of a spec and a dataset (see :func:`build`).

    Parameters
    ----------
    spec : ModelSpec
    data : Dataset, path, bundled name or pandas.DataFrame
    centered : bool
        Centred etas (default False).
    guard : bool, optional
        Override the flip-flop guard.

    Returns
    -------
    pymc.Model
    """
    return build(spec, data, centered=centered, guard=guard).model
