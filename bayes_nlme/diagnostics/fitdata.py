"""A read-only view of a fit directory for diagnostics, plots and the report.

:class:`FitData` wraps a :class:`~bayes_nlme.fitdir.FitDirectory` and gives the same
quantities for both paths: population parameters (posterior draws, or the estimates
as a single "draw"), per-subject etas and individual parameters (posterior draws, or
the EBEs), observations in model order, population (PRED) and individual (IPRED)
predictions, and units. Everything is read from the fit directory, so a report built
from a reloaded ``fit.nc`` is the one built from the live fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..individual import estimated_coefficients, individual_parameters, segment_covariates
from ..pk.models import model_of
from .units import Units, dataset_units

__all__ = ["FitData", "Population", "as_fit_data", "individual_values"]


@dataclass(frozen=True)
class Population:
    """Population parameters, one row per draw (a single row for point estimates).

    Attributes
    ----------
    theta : dict of str to numpy.ndarray (S,)
        Typical values of the estimated structural parameters, by parameter name.
    coefficients : dict of str to numpy.ndarray (S,)
        Estimated covariate coefficients, by canonical name ``beta_<P>_<COL>``.
    omega : numpy.ndarray (S, p, p)
        Omega in ``spec.iiv_names`` order.
    sigma2 : dict of str to numpy.ndarray (S,)
        Residual variances, by canonical name (``sigma2_add`` ...).
    iov : dict of str to numpy.ndarray (S,)
        IOV variances ``omega_iov_<P>`` by parameter name (empty without IOV).
    """

    theta: dict
    coefficients: dict
    omega: np.ndarray
    sigma2: dict
    iov: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of draws."""
        return int(self.omega.shape[0])

    def take(self, index) -> Population:
        """The draws at ``index`` (an integer array)."""
        index = np.asarray(index, dtype=int)
        return Population(
            theta={k: v[index] for k, v in self.theta.items()},
            coefficients={k: v[index] for k, v in self.coefficients.items()},
            omega=self.omega[index],
            sigma2={k: v[index] for k, v in self.sigma2.items()},
            iov={k: v[index] for k, v in self.iov.items()},
        )


def individual_values(
    spec, theta: dict, coefficients: dict, eta, covariates: dict, n_subjects: int, index=None
) -> dict:
    """Individual parameters ``theta * covariate factors * exp(eta)``, evaluated in numpy.

    A thin wrapper of :func:`bayes_nlme.individual.individual_parameters` (the only
    definition), for one draw of the population parameters.

    Parameters
    ----------
    spec : ModelSpec
    theta : dict of str to float
    coefficients : dict of str to float
    eta : numpy.ndarray (n_subjects, p) or None
    covariates : dict of str to numpy.ndarray
        Values per row of the result (subjects, or segments with ``index``).
    n_subjects : int
        Number of rows when ``index`` is None.
    index : numpy.ndarray of int, optional
        Subject of each row (parameter segments).

    Returns
    -------
    dict of str to numpy.ndarray
    """
    theta = {k: float(v) for k, v in theta.items()}
    coefficients = {k: float(v) for k, v in coefficients.items()}
    return individual_parameters(spec, theta, eta, covariates, coefficients, n_subjects=n_subjects, index=index, xp=np)


def _stack(da) -> np.ndarray:
    """A posterior variable as (chain*draw, ...) numpy."""
    dims = [d for d in ("chain", "draw") if d in da.dims]
    rest = [d for d in da.dims if d not in dims]
    values = da.transpose(*dims, *rest).values
    return values.reshape((-1, *values.shape[len(dims) :]))


class FitData:
    """Diagnostic view of a fit directory (see the module docstring).

    Parameters
    ----------
    fitdir : FitDirectory
    """

    def __init__(self, fitdir) -> None:
        self.fitdir = fitdir
        self.tree = fitdir.tree
        self.spec = fitdir.spec
        self.dataset = fitdir.dataset
        self.summary = fitdir.summary
        self.info = fitdir.info

    # --- identity --------------------------------------------------------------------
    @property
    def method(self) -> str:
        """``nuts``, ``prior``, ``laplace``, ``focei``, ``foce`` or ``fo``."""
        return self.fitdir.method

    @property
    def bayesian(self) -> bool:
        """True for NUTS and prior fits."""
        return self.fitdir.bayesian

    @property
    def label(self) -> str:
        """A short label: the method in upper case (``NUTS``, ``FOCEI``)."""
        return self.method.upper() if self.method else Path(self.fitdir.path).name

    @cached_property
    def units(self) -> Units:
        """Units of the dataset (bundled metadata) or empty ones."""
        return dataset_units(self.dataset)

    @property
    def draws_group(self) -> str | None:
        """The group of parameter draws: ``posterior``, or ``prior`` for prior fits (None: none)."""
        if not self.bayesian:
            return None
        for name in ("posterior", "prior"):
            if self.has_group(name):
                return name
        return None

    def has_group(self, name: str) -> bool:
        """Whether the tree has a group ``name`` with at least one variable."""
        return name in self.tree.children and len(self.tree[name].data_vars) > 0

    def group(self, name: str):
        """The dataset of a group (``posterior``, ``predictions`` ...)."""
        return self.tree[name].to_dataset()

    # --- data ------------------------------------------------------------------------
    @cached_property
    def design(self):
        """The model core's record layout of the observations (model order)."""
        from ..core import engine_design

        spec = self.spec
        return engine_design(
            self.dataset,
            model_of(spec),
            declared=spec.parameter_names,
            covariates=spec.covariate_columns,
            time_varying=spec.time_varying,
            occasions=bool(spec.iov_names),
        )

    @cached_property
    def obs(self) -> pd.DataFrame:
        """Observations in model order: ``ROW, SUBJECT, ID, TIME, DV, BLQ, OUTPUT`` (the
        name of each row's output, CONTRACT 5.4)."""
        table = self.dataset.table.iloc[np.asarray(self.design.obs_row, dtype=int)]
        out = table[["ROW", "SUBJECT", "ID", "TIME", "DV", "BLQ"]].reset_index(drop=True)
        out["OUTPUT"] = np.asarray(self.spec.output_names, dtype=object)[self.output]
        return out

    @property
    def output(self) -> np.ndarray:
        """The output (position in ``spec.output_names``) of each observation."""
        return np.asarray(self.design.obs_output, dtype=int)

    @property
    def output_names(self) -> tuple:
        """The model's output names (``("C",)`` without ``[outputs]``)."""
        return self.spec.output_names

    @cached_property
    def lower(self) -> np.ndarray | None:
        """Censoring limits (``-inf`` where not censored), None without BLQ data."""
        from ..build.residual import censoring_limits

        return censoring_limits(self.dataset.table.iloc[np.asarray(self.design.obs_row, dtype=int)])

    @cached_property
    def segment_covariates(self) -> dict:
        """Values of the covariates the model uses, per parameter segment of :attr:`design`."""
        return segment_covariates(self.spec, self.dataset, self.design)

    @cached_property
    def covariates(self) -> dict:
        """Values of the covariates the model uses at each subject's first record."""
        first = np.asarray(self.design.subj[:-1, 1], dtype=int)
        return {name: values[first] for name, values in self.segment_covariates.items()}

    @cached_property
    def subject_covariates(self) -> pd.DataFrame:
        """Every covariate of the dataset per subject (first record), indexed by subject."""
        return self.dataset.subject_covariates()

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        return self.dataset.n_subjects

    # --- population parameters ----------------------------------------------------------
    def _estimate_table(self) -> pd.Series:
        frame = self.summary.set_index("parameter")
        column = "estimate" if "estimate" in frame.columns else "median"
        return frame[column].astype(float)

    def _population_from_values(self, values) -> Population:
        spec = self.spec
        iiv = list(spec.iiv_names)
        p = len(iiv)
        omega = np.zeros((1, p, p))
        for i, a in enumerate(iiv):
            for j, b in enumerate(iiv):
                for key in (f"omega_{a}_{b}", f"omega_{b}_{a}"):
                    if key in values.index:
                        omega[0, i, j] = float(values[key])
        return Population(
            theta={q.name: np.array([float(values[f"theta_{q.name}"])]) for q in spec.estimated},
            coefficients={k: np.array([float(values[k])]) for k in estimated_coefficients(spec)},
            omega=omega,
            sigma2={k: np.array([float(values[k])]) for k in spec.residual.variances if k in values.index},
            iov={q: np.array([float(values[f"omega_iov_{q}"])]) for q in spec.iov_names},
        )

    @cached_property
    def population(self) -> Population:
        """Population parameters: every posterior draw, or the estimates (one row)."""
        if self.draws_group is None:
            return self._population_from_values(self._estimate_table())
        post = self.tree[self.draws_group]
        spec = self.spec
        p = len(spec.iiv_names)
        theta = {q.name: _stack(post[f"theta_{q.name}"]) for q in spec.estimated}
        n = len(next(iter(theta.values()))) if theta else _stack(post["omega"]).shape[0]
        omega = _stack(post["omega"]).reshape(n, p, p) if "omega" in post.data_vars else np.zeros((n, p, p))
        return Population(
            theta=theta,
            coefficients={k: _stack(post[k]) for k in estimated_coefficients(spec)},
            omega=omega,
            sigma2={k: _stack(post[k]) for k in spec.residual.variances if k in post.data_vars},
            iov={q: _stack(post[f"omega_iov_{q}"]) for q in spec.iov_names if f"omega_iov_{q}" in post.data_vars},
        )

    @cached_property
    def typical(self) -> Population:
        """Point estimates (posterior medians for Bayesian fits), one row."""
        if not self.bayesian:
            return self.population
        pop = self.population
        med = lambda d: {k: np.array([np.median(v)]) for k, v in d.items()}  # noqa: E731
        return Population(
            theta=med(pop.theta),
            coefficients=med(pop.coefficients),
            omega=np.median(pop.omega, axis=0)[None],
            sigma2=med(pop.sigma2),
            iov=med(pop.iov),
        )

    def draw_index(self, n: int) -> np.ndarray:
        """``n`` evenly spaced draw indices (deterministic; repeats when ``n`` > draws)."""
        total = self.population.n
        return (np.arange(n) * total // n) if n <= total else np.arange(n) % total

    # --- subjects ----------------------------------------------------------------------
    @cached_property
    def eta_draws(self) -> np.ndarray:
        """Etas (S, n_subjects, p): posterior draws, or the EBEs (S = 1)."""
        spec = self.spec
        p = len(spec.iiv_names)
        group = self.draws_group
        if group is not None and "eta" in self.tree[group].data_vars:
            da = self.tree[group]["eta"]
            values = _stack(da.transpose(..., "subject", "parameter") if "subject" in da.dims else da)
            return values.reshape(values.shape[0], self.n_subjects, p)
        return self._ebe_etas()[None]

    def _ebe_etas(self) -> np.ndarray:
        """EBE etas from ``ebe.csv`` (or an ``ebe`` group): columns ``eta_<P>`` (any case)."""
        names = list(self.spec.iiv_names)
        out = np.zeros((self.n_subjects, len(names)))
        ebe = self.fitdir.ebe
        if ebe is None and self.has_group("ebe"):
            ebe = self.group("ebe").to_dataframe().reset_index()
        if ebe is None or len(ebe) != self.n_subjects:
            return out
        lower = {str(c).lower(): c for c in ebe.columns}
        for j, name in enumerate(names):
            column = lower.get(f"eta_{name}".lower())
            if column is not None:
                out[:, j] = ebe[column].to_numpy(float)
        return out

    @cached_property
    def kappa_draws(self) -> dict:
        """Kappas per IOV parameter, (S, subject-occasions of :attr:`design`): posterior
        draws of ``kappa``, or the EBEs (``kappa_<P>_<OCC>`` of ``ebe.csv``, S = 1).
        Empty without IOV."""
        names = list(getattr(self.spec, "iov_names", ()))
        if not names:
            return {}
        design = self.design
        group = self.draws_group
        if group is not None and "kappa" in self.tree[group].data_vars:
            values = _stack(self.tree[group]["kappa"].transpose(..., "occasion", "iov_parameter"))
            return {name: values[:, :, j] for j, name in enumerate(names)}
        out = {name: np.zeros((1, design.n_occasions)) for name in names}
        ebe = self.fitdir.ebe
        if ebe is None or len(ebe) != self.n_subjects:
            return out
        for name in names:
            for o, (sub, label) in enumerate(zip(design.occasion_subject, design.occasion_label)):
                column = f"kappa_{name}_{label}"
                if column in ebe.columns:
                    out[name][0, o] = float(ebe[column].iloc[sub])
        return out

    @cached_property
    def eta_mean(self) -> pd.DataFrame:
        """Per-subject etas: posterior means or EBEs; index ``ID``, columns parameters."""
        values = self.eta_draws.mean(axis=0)
        return pd.DataFrame(
            values, columns=list(self.spec.iiv_names), index=pd.Index(self.dataset.subject_ids, name="ID")
        )

    def individual(self, pop: Population, eta: np.ndarray | None, s: int = 0) -> dict:
        """Individual parameters (at each subject's first record) from draw ``s`` of ``pop``
        and etas (n_subjects, p)."""
        return individual_values(
            self.spec,
            {k: v[s] for k, v in pop.theta.items()},
            {k: v[s] for k, v in pop.coefficients.items()},
            eta,
            self.covariates,
            self.n_subjects,
        )

    def predictions(
        self,
        pop: Population,
        eta: np.ndarray | None,
        s: int = 0,
        design=None,
        covariates: dict | None = None,
        kappa: dict | None = None,
    ) -> np.ndarray:
        """Predictions of the model core at the points of ``design`` (default: the
        observations) for draw ``s`` of ``pop``, etas (n_subjects, p) and, with IOV,
        kappas (parameter name -> values per subject-occasion of ``design``; None: 0)."""
        from ..core.op import predict_numeric

        design = self.design if design is None else design
        covariates = self.segment_covariates if covariates is None else covariates
        values = individual_values(
            self.spec,
            {k: v[s] for k, v in pop.theta.items()},
            {k: v[s] for k, v in pop.coefficients.items()},
            eta,
            covariates,
            self.n_subjects,
            index=design.seg_subject,
        )
        if kappa and getattr(design, "seg_occasion", None) is not None:
            occasion = np.asarray(design.seg_occasion, dtype=np.int64)
            for name, k in kappa.items():
                values[name] = values[name] * np.exp(np.asarray(k, dtype=float)[occasion])
        return predict_numeric(design, values)[0]

    # --- predictions -------------------------------------------------------------------
    @cached_property
    def pred(self) -> np.ndarray:
        """Population predictions (etas zero) at the typical values, per observation."""
        frame = self._predictions()
        if frame is not None and "PRED" in frame.columns:
            return frame["PRED"].to_numpy(float)
        return self.predictions(self.typical, None)

    @cached_property
    def ipred_draws(self) -> np.ndarray:
        """Individual predictions (S, n_obs): posterior draws of ``ipred``, or IPRED."""
        group = self.draws_group
        if group is not None and "ipred" in self.tree[group].data_vars:
            return _stack(self.tree[group]["ipred"])
        frame = self._predictions()
        if frame is not None and "IPRED" in frame.columns:
            return frame["IPRED"].to_numpy(float)[None]
        return self.predictions(self.typical, self.eta_draws[0])[None]

    @property
    def ipred(self) -> np.ndarray:
        """Individual predictions per observation (posterior median, or at the EBEs)."""
        return np.median(self.ipred_draws, axis=0)

    def _predictions(self) -> pd.DataFrame | None:
        """The ``predictions`` group of a frequentist fit, in the order of :attr:`obs`."""
        if self.bayesian or not self.has_group("predictions"):
            return None
        frame = self.group("predictions").to_dataframe().reset_index(drop=True)
        if self.has_group("constant_data") and "ROW" in self.tree["constant_data"].data_vars:
            rows = self.tree["constant_data"]["ROW"].values.astype(int)
            if len(rows) == len(frame):
                frame = frame.set_index(pd.Index(rows)).reindex(self.obs["ROW"].to_numpy(int))
                frame = frame.reset_index(drop=True)
        return frame if len(frame) == len(self.obs) else None

    @property
    def cwres(self) -> np.ndarray | None:
        """CWRES per observation (frequentist fits that store them), else None."""
        frame = self._predictions()
        if frame is None or "CWRES" not in frame.columns:
            return None
        return frame["CWRES"].to_numpy(float)


def as_fit_data(fit) -> FitData:
    """A :class:`FitData` from a fit directory path, FitDirectory or FitData.

    Parameters
    ----------
    fit : path, FitDirectory or FitData

    Returns
    -------
    FitData
    """
    from ..fitdir import FitDirectory, load_fit_dir

    if isinstance(fit, FitData):
        return fit
    if isinstance(fit, FitDirectory):
        return FitData(fit)
    return FitData(load_fit_dir(fit))
