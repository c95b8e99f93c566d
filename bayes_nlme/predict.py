"""Population predictions (all etas zero) from typical parameter values.

This is the numeric front end of the model core: ``bayes-nlme predict`` and
:func:`predict` evaluate the individual parameters (:mod:`bayes_nlme.individual`) and the
event engine (:mod:`bayes_nlme.core`) that NUTS and the frequentist path differentiate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ArgumentError, InputError
from .individual import estimated_coefficients, individual_parameters, segment_covariates
from .pk.models import model_of

__all__ = ["predict", "required_params", "read_params"]


def required_params(spec) -> list[str]:
    """Names that a parameter file for :func:`predict` must give.

    Every estimated (not fixed) structural parameter, by name (``ka``, ``CL`` ...), and
    every estimated covariate coefficient (``beta_<P>_<COLUMN>``).

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    list of str
    """
    return [p.name for p in spec.estimated] + list(estimated_coefficients(spec))


def read_params(path: str | Path) -> dict[str, float]:
    """Read a ``PARAMS.json`` file: an object mapping names to numbers.

    Parameters
    ----------
    path : path

    Returns
    -------
    dict of str to float

    Raises
    ------
    InputError
        When the file is missing, not JSON, or not an object of numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"parameter file '{path}' does not exist")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"parameter file '{path}' is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InputError(f'parameter file \'{path}\' must hold a JSON object such as {{"CL": 2.8, "V": 32}}')
    out = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise InputError(f"parameter file '{path}': key '{key}' must be a finite number, got {value!r}")
        out[str(key)] = float(value)
    return out


def _resolve(spec, params: Mapping[str, float], source: str) -> tuple[dict, dict]:
    needed = required_params(spec)
    lookup = {}
    for key, value in params.items():
        name = key[len("theta_") :] if key.startswith("theta_") else key
        lookup[name] = value
    missing = [n for n in needed if n not in lookup]
    unknown = [k for k in params if (k[len("theta_") :] if k.startswith("theta_") else k) not in needed]
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(repr(m) for m in missing))
        if unknown:
            parts.append("unknown " + ", ".join(repr(u) for u in unknown))
        raise ArgumentError(f"{source}: {'; '.join(parts)} (model '{spec.name}' needs: {', '.join(needed)})")
    bad = [n for n in needed if not n.startswith("beta_") and lookup[n] <= 0]
    if bad:
        raise ArgumentError(f"{source}: typical values must be > 0: {', '.join(bad)}")
    theta = {p.name: lookup[p.name] for p in spec.estimated}
    coefficients = {n: lookup[n] for n in estimated_coefficients(spec)}
    return theta, coefficients


def predict(spec, data, params: Mapping[str, float], *, source: str = "params") -> pd.DataFrame:
    """Population predictions (all etas zero) at every record of a dataset.

    Parameters
    ----------
    spec : ModelSpec
        The model (its fixed parameters and covariate effects apply).
    data : Dataset, DataFrame, path or bundled name
    params : mapping of str to float
        Typical value of every estimated parameter by name (``"CL"``; ``"theta_CL"`` is
        accepted too) and every estimated covariate coefficient (``"beta_CL_WT"``).
    source : str
        Name used in error messages.

    Returns
    -------
    pandas.DataFrame
        Every input column, plus ``PRED``: the central concentration at each row's time,
        or, for a model with several outputs, the prediction of each observation row's own
        output (its ``DVID``, or ``CMT`` without ``DVID``; CONTRACT 5.4). Other rows get
        the output their ``DVID``/``CMT`` selects, else the first output.

    Raises
    ------
    ArgumentError
        When a parameter is missing, unknown or not positive.
    """
    from .core import engine_design
    from .core.op import predict_numeric
    from .data import check_for_model, load_dataset

    dataset = data if hasattr(data, "table") else load_dataset(data, columns=spec.columns or None)
    check_for_model(dataset, model_of(spec), spec.covariate_columns, spec=spec)
    theta, coefficients = _resolve(spec, params, source)
    design = engine_design(
        dataset,
        model_of(spec),
        declared=spec.parameter_names,
        covariates=spec.covariate_columns,
        time_varying=spec.time_varying,
        points="all",
    )
    covariates = segment_covariates(spec, dataset, design)
    individual = individual_parameters(spec, theta, None, covariates, coefficients, index=design.seg_subject, xp=np)
    values, _ = predict_numeric(design, individual)
    pred = np.full(len(dataset.table), np.nan)
    pred[np.asarray(design.obs_row)] = values
    frame = dataset.original.copy() if getattr(dataset, "original", None) is not None else dataset.table.copy()
    frame["PRED"] = pred
    return frame
