"""Write model specs as model-file mappings and TOML text (no dependency).

:func:`model_to_dict` is the inverse of :func:`bayes_nlme.spec.parse_model`;
:func:`to_toml` renders it with a small TOML emitter (priors as inline tables),
:func:`dump_model` writes it to a file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from numbers import Integral, Real
from os import PathLike
from pathlib import Path

import numpy as np

from .model import ModelSpec, Omega, Parameter, Residual, Sampling

__all__ = ["model_to_dict", "to_toml", "dump_model"]


def model_to_dict(spec: ModelSpec) -> dict:
    """The model-file mapping of a spec (the inverse of :func:`parse_model`).

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    dict
        Plain dicts, lists, strings, numbers and booleans, in file order.
    """
    doc: dict = {"name": spec.name, "structural": spec.structural}
    if spec.flip_flop_guard is not None:
        doc["flip_flop_guard"] = bool(spec.flip_flop_guard)
    if spec.time_varying != "locf":
        doc["time_varying"] = spec.time_varying
    if spec.columns:
        doc["columns"] = dict(spec.columns)
    if spec.ode is not None:
        doc["ode"] = _ode_dict(spec.ode)
    if spec.outputs:
        doc["outputs"] = {
            o.name: {"expression": o.expression, **({"id": o.id} if o.id is not None else {})} for o in spec.outputs
        }
    doc["parameters"] = {p.name: _parameter_dict(p) for p in spec.parameters}
    if spec.omega != Omega(()):
        doc["omega"] = _omega_dict(spec.omega)
    if hasattr(spec.residual, "tables"):  # one [residual.<output>] table per output
        doc["residual"] = {name: _residual_dict(res) for name, res in spec.residual.tables}
    else:
        doc["residual"] = _residual_dict(spec.residual)
    s = spec.sampling
    doc["sampling"] = {"draws": s.draws, "tune": s.tune, "chains": s.chains, "seed": s.seed}
    defaults = Sampling()
    for name in ("target_accept", "centered", "init", "adaptation"):
        value = getattr(s, name)
        if value != getattr(defaults, name):
            doc["sampling"][name] = list(value) if isinstance(value, tuple) else value
    if getattr(spec, "saem", None):
        doc["saem"] = {k: list(v) if isinstance(v, tuple) else v for k, v in spec.saem.items()}
    return doc


def _ode_dict(ode) -> dict:
    out: dict = {"compartments": list(ode.compartments), "equations": ode.equations}
    for name in ("initial", "bioavailability", "lag"):
        if getattr(ode, name):
            out[name] = dict(getattr(ode, name))
    out["solver"] = ode.solver
    out["rtol"] = ode.rtol
    out["atol"] = ode.atol
    return out


def _parameter_dict(p: Parameter) -> dict:
    out: dict = {}
    if p.is_fixed:
        out["fixed"] = p.fixed
    else:
        out["typical"] = p.typical.to_dict()
        out["iiv"] = p.iiv
    if p.initial is not None:
        out["initial"] = p.initial
    if getattr(p, "iov", None) is not None:
        out["iov"] = p.iov.to_dict()
        if p.iov_initial is not None:
            out["iov_initial"] = p.iov_initial
    if p.covariates:
        out["covariates"] = [
            {
                "column": c.column,
                "effect": c.effect,
                "reference": c.reference,
                c.coefficient_key: c.coefficient.to_dict() if c.estimated else c.coefficient,
            }
            for c in p.covariates
        ]
    return out


def _matrix_value(matrix) -> list:
    array = np.asarray(matrix, dtype=float)
    if not np.any(array - np.diag(np.diag(array))):
        return [float(v) for v in np.diag(array)]
    return [[float(v) for v in row] for row in array]


def _omega_dict(omega: Omega) -> dict:
    out: dict = {"structure": omega.structure_value}
    if omega.prior is not None:
        out["prior"] = omega.prior.to_dict()
    if omega.initial is not None:
        out["initial"] = _matrix_value(omega.initial)
    return out


def _residual_dict(residual: Residual) -> dict:
    out: dict = {"model": residual.model}
    for slot in ("add", "prop", "exp"):
        prior = getattr(residual, slot)
        if prior is not None:
            out[slot] = prior.to_dict()
    if residual.initial:
        out["initial"] = dict(residual.initial)
    if residual.blq != "M3":
        out["blq"] = residual.blq
    return out


def to_toml(spec: ModelSpec) -> str:
    """The TOML text of a spec, readable by :func:`load_model`.

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    str
        A model file: top-level keys, then ``[columns]``, ``[parameters.<P>]`` (with
        ``[[parameters.<P>.covariates]]``), ``[omega]``, ``[residual]`` and
        ``[sampling]``; priors as inline tables.
    """
    doc = model_to_dict(spec)
    lines = ["# bayes_nlme model file (written by bayes_nlme.spec.to_toml)"]
    for key, value in doc.items():
        if not isinstance(value, Mapping):
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for section, table in doc.items():
        if not isinstance(table, Mapping):
            continue
        if section == "residual" and all(isinstance(v, Mapping) for v in table.values()):
            for name, sub in table.items():
                _emit_table(lines, f"residual.{_toml_key(name)}", sub)
            continue
        if section != "parameters":
            _emit_table(lines, _toml_key(section), table)
            continue
        for name, param in table.items():
            header = f"parameters.{_toml_key(name)}"
            _emit_table(lines, header, {k: v for k, v in param.items() if k != "covariates"})
            for cov in param.get("covariates", []):
                _emit_table(lines, f"{header}.covariates", cov, array=True)
    return "\n".join(lines) + "\n"


def dump_model(spec: ModelSpec, path: str | PathLike) -> None:
    """Write a spec as a TOML model file (UTF-8).

    Parameters
    ----------
    spec : ModelSpec
    path : str or path-like
    """
    Path(path).write_text(to_toml(spec), encoding="utf-8")


def _emit_table(lines: list[str], header: str, table: Mapping, array: bool = False) -> None:
    lines.append("")
    lines.append(f"[[{header}]]" if array else f"[{header}]")
    for key, value in table.items():
        lines.append(f"{_toml_key(key)} = {_toml_value(value)}")


def _toml_key(key: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return key
    return _toml_string(key)


def _toml_string(text: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    out = []
    for ch in text:
        if ch in escapes:
            out.append(escapes[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"cannot write the non-finite number {number!r} to TOML")
        return repr(number)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
