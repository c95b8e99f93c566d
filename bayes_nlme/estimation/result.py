"""The result of a frequentist fit, and its fit directory (CONTRACT section 3)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..data.dataset import id_array

__all__ = ["EstimationResult"]

_Z95 = 1.959963984540054


@dataclass
class EstimationResult:
    """A maximum-likelihood fit by FO, FOCE, FOCE-I or Laplace.

    Attributes
    ----------
    method : str
        ``fo``, ``foce``, ``focei`` or ``laplace``.
    spec : ModelSpec
    dataset : Dataset
    ofv : float
        -2 log-likelihood without ``n_obs * log(2 pi)`` (NONMEM's OFV).
    minus2ll : float
        The full -2 log-likelihood.
    aic, bic : float
        From ``minus2ll``; BIC with ``log(n_subjects)``.
    n_parameters : int
        Number of estimated population parameters.
    converged : bool
    estimates : pandas.DataFrame
        ``parameter, estimate, se, rse_pct, ci_low, ci_high``: canonical names, natural
        scale; the CI is the 95% Wald interval ``estimate -/+ 1.96 se``.
    covariance : pandas.DataFrame or None
        Covariance matrix of the estimates (canonical names), None if not computed.
    correlation : pandas.DataFrame or None
    ebe : pandas.DataFrame
        Per subject: ``ID``, ``ETA_<P>`` and the individual parameters.
    predictions : pandas.DataFrame
        Per observation used: ``ROW, ID, TIME, DV, PRED, IPRED, IWRES, CWRES``.
    eta_shrinkage_sd : dict
        SD-based shrinkage per IIV parameter.
    n_subjects, n_obs : int
    seconds : float
        Wall time of the whole fit (``seconds_compile + seconds_fit``).
    seconds_compile : float
        Wall time of reading the data, building the problem and compiling (or reusing)
        the prediction kernel.
    n_iterations : int
        Outer iterations (quasi-Newton plus Newton polish steps).
    seconds_fit : float
        Wall time from the start values to the result, after compilation
        (optimisation, covariance step and diagnostics).
    info : dict
        Everything else written to ``fit.json`` (covariance method, messages ...).
    tables : dict of str to pandas.DataFrame
        Extra CSV files of the fit directory (SAEM: ``saem_trajectory.csv``).
    """

    method: str
    spec: Any
    dataset: Any
    ofv: float
    minus2ll: float
    aic: float
    bic: float
    n_parameters: int
    converged: bool
    estimates: pd.DataFrame
    covariance: pd.DataFrame | None
    correlation: pd.DataFrame | None
    ebe: pd.DataFrame
    predictions: pd.DataFrame
    eta_shrinkage_sd: dict
    n_subjects: int
    n_obs: int
    seconds: float
    seconds_compile: float
    n_iterations: int
    seconds_fit: float = 0.0
    info: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """The estimates table (as written to ``summary.csv``)."""
        return self.estimates.copy()

    @property
    def theta(self) -> dict:
        """Typical values by parameter name."""
        rows = self.estimates[self.estimates["parameter"].str.startswith("theta_")]
        return {p[len("theta_") :]: float(v) for p, v in zip(rows["parameter"], rows["estimate"])}

    @property
    def value(self) -> dict:
        """Every estimate by canonical name."""
        return dict(zip(self.estimates["parameter"], self.estimates["estimate"].astype(float)))

    def fit_info(self) -> dict:
        """The contents of ``fit.json``."""
        info = {
            "method": self.method,
            "n_subjects": self.n_subjects,
            "n_obs": self.n_obs,
            "seconds": self.seconds,
            "ofv": self.ofv,
            "minus2ll": self.minus2ll,
            "aic": self.aic,
            "bic": self.bic,
            "n_parameters": self.n_parameters,
            "converged": self.converged,
            "eta_shrinkage_sd": dict(self.eta_shrinkage_sd),
            "seconds_compile": self.seconds_compile,
            "seconds_fit": self.seconds_fit,
            "n_iterations": self.n_iterations,
        }
        from datetime import datetime

        from .. import __version__

        # set once per result, so that every save of this fit records the same provenance
        self.info.setdefault("created", datetime.now(UTC).isoformat(timespec="seconds"))
        self.info.setdefault("bayes_nlme_version", __version__)
        info.update(self.info)
        if self.correlation is not None:
            info["correlation"] = {
                row: {col: float(v) for col, v in self.correlation.loc[row].items()} for row in self.correlation.index
            }
        return info

    def to_datatree(self) -> xr.DataTree:
        """The fit as a DataTree with the spec and the dataset embedded (``fit.nc``)."""
        from ..fitdir import embed_inputs

        est = self.estimates
        names = list(est["parameter"])
        estimates = xr.Dataset({n: float(v) for n, v in zip(names, est["estimate"])})
        table = xr.Dataset(
            {c: ("parameter", est[c].to_numpy(dtype=float)) for c in est.columns if c != "parameter"},
            coords={"parameter": np.array(names, dtype=object)},
        )
        iiv = [c[len("ETA_") :] for c in self.ebe.columns if c.startswith("ETA_")]
        ebe_vars = {"eta": (("subject", "eta_parameter"), self.ebe[[f"ETA_{n}" for n in iiv]].to_numpy(float))}
        for name in self.spec.parameter_names:
            ebe_vars[name] = ("subject", self.ebe[name].to_numpy(float))
        ebe = xr.Dataset(
            ebe_vars,
            coords={
                "subject": np.arange(len(self.ebe)),
                "ID": ("subject", id_array(self.ebe["ID"])),
                "eta_parameter": np.array(iiv, dtype=object),
            },
        )
        pred = self.predictions
        obs = {"observation": np.arange(len(pred))}
        predictions = xr.Dataset(
            {c: ("observation", pred[c].to_numpy(float)) for c in ("PRED", "IPRED", "IWRES", "CWRES")}, coords=obs
        )
        observed = xr.Dataset({"DV": ("observation", pred["DV"].to_numpy(float))}, coords=obs)
        constant = xr.Dataset(
            {
                "ROW": ("observation", pred["ROW"].to_numpy(float)),
                "ID": ("observation", id_array(pred["ID"])),
                "TIME": ("observation", pred["TIME"].to_numpy(float)),
            },
            coords=obs,
        )
        nodes = {
            "estimates": estimates,
            "estimates_table": table,
            "ebe": ebe,
            "predictions": predictions,
            "observed_data": observed,
            "constant_data": constant,
        }
        if self.covariance is not None:
            nodes["covariance"] = xr.Dataset(
                {
                    "covariance": (("parameter", "parameter_2"), self.covariance.to_numpy(float)),
                    "correlation": (("parameter", "parameter_2"), self.correlation.to_numpy(float)),
                },
                coords={"parameter": np.array(names, dtype=object), "parameter_2": np.array(names, dtype=object)},
            )
        root = xr.Dataset(attrs={k: v for k, v in _flat_attrs(self.fit_info()).items()})
        tree = xr.DataTree.from_dict({"/": root, **{f"/{k}": v for k, v in nodes.items()}})
        return embed_inputs(tree, self.spec, self.dataset, self.method)

    def save(self, out: str | Path) -> Path:
        """Write the fit directory: ``summary.csv``, ``fit.json``, ``ebe.csv``, ``fit.nc``.

        Parameters
        ----------
        out : path
            The directory (created; existing fit files replaced; written atomically).

        Returns
        -------
        pathlib.Path
        """
        from ..fitdir import write_fit_dir

        return write_fit_dir(
            out,
            tree=self.to_datatree(),
            summary=self.summary(),
            info=self.fit_info(),
            tables={"ebe.csv": self.ebe, **self.tables},
        )

    @classmethod
    def load(cls, path: str | Path) -> EstimationResult:
        """Read a fit directory written by :meth:`save`.

        Parameters
        ----------
        path : path

        Returns
        -------
        EstimationResult
        """
        from ..fitdir import load_fit_dir

        fd = load_fit_dir(path)
        info = dict(fd.info)
        tree = fd.tree
        pred_ds = tree["predictions"].to_dataset()
        const = tree["constant_data"].to_dataset()
        predictions = pd.DataFrame(
            {
                "ROW": const["ROW"].values,
                "ID": const["ID"].values,
                "TIME": const["TIME"].values,
                "DV": tree["observed_data"].to_dataset()["DV"].values,
                **{c: pred_ds[c].values for c in ("PRED", "IPRED", "IWRES", "CWRES")},
            }
        )
        covariance = correlation = None
        if "covariance" in tree.children:
            cov = tree["covariance"].to_dataset()
            names = [str(n) for n in cov["parameter"].values]
            covariance = pd.DataFrame(cov["covariance"].values, index=names, columns=names)
            correlation = pd.DataFrame(cov["correlation"].values, index=names, columns=names)
        known = {
            "method",
            "n_subjects",
            "n_obs",
            "seconds",
            "ofv",
            "minus2ll",
            "aic",
            "bic",
            "n_parameters",
            "converged",
            "eta_shrinkage_sd",
            "seconds_compile",
            "seconds_fit",
            "n_iterations",
            "correlation",
        }
        return cls(
            method=info["method"],
            spec=fd.spec,
            dataset=fd.dataset,
            ofv=_num(info["ofv"]),
            minus2ll=_num(info["minus2ll"]),
            aic=_num(info["aic"]),
            bic=_num(info["bic"]),
            n_parameters=int(info.get("n_parameters", len(fd.summary))),
            converged=bool(info["converged"]),
            estimates=fd.summary,
            covariance=covariance,
            correlation=correlation,
            ebe=fd.ebe,
            predictions=predictions,
            eta_shrinkage_sd={k: _num(v) for k, v in info["eta_shrinkage_sd"].items()},
            n_subjects=int(info["n_subjects"]),
            n_obs=int(info["n_obs"]),
            seconds=_num(info["seconds"]),
            seconds_compile=_num(info.get("seconds_compile")),
            n_iterations=int(info.get("n_iterations", 0)),
            seconds_fit=_num(info.get("seconds_fit")),
            info={k: v for k, v in info.items() if k not in known},
        )

    def __repr__(self) -> str:
        return (
            f"EstimationResult(method={self.method!r}, ofv={self.ofv:.4f}, converged={self.converged}, "
            f"subjects={self.n_subjects}, observations={self.n_obs})"
        )


def _num(value) -> float:
    return float("nan") if value is None else float(value)


def _flat_attrs(info: dict) -> dict:
    """NetCDF-safe attributes: numbers and strings as is, the rest as JSON."""
    out = {}
    for key, value in info.items():
        if isinstance(value, bool):
            out[key] = int(value)
        elif isinstance(value, (int, float, str, np.integer, np.floating)):
            out[key] = value
        else:
            out[key] = json.dumps(value, default=lambda v: None if v is None else float(v))
    return out
