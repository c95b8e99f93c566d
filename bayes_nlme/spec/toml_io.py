"""Read, validate and write TOML model files (CONTRACT section 2).

:func:`load_model` reads a file, :func:`parse_model` turns the parsed mapping into a
:class:`~bayes_nlme.spec.model.ModelSpec`; :func:`model_to_dict`, :func:`to_toml` and
:func:`dump_model` go back (they live in :mod:`bayes_nlme.spec.toml_write` and are
re-exported here). ``parse_model(tomllib.loads(to_toml(spec))) == spec``.

Every problem raises :class:`~bayes_nlme.errors.SpecError` with the file, the dotted key
(``parameters.CL.typical``) and the valid choices. Unknown keys are errors, so typos
such as ``typcial`` do not pass silently.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path

from ..errors import SpecError
from ._validate import as_string, describe, fail, join_key, rekey, spec_error
from .components import IOV_PRIORS
from .model import (
    COEFFICIENT_PRIORS,
    COVARIATE_EFFECTS,
    OMEGA_PRIORS,
    RESIDUAL_MODELS,
    RESIDUAL_PRIORS,
    RESIDUAL_VARIANCES,
    TYPICAL_PRIORS,
    CovariateEffect,
    ModelSpec,
    Omega,
    Parameter,
    Residual,
    Sampling,
)
from .priors import LKJ_SD_PRIORS, PRIOR_KINDS, Prior
from .structural_names import STRUCTURAL_PARAMETERS, valid_parameter_names
from .toml_write import dump_model, model_to_dict, to_toml

__all__ = [
    "load_model",
    "parse_model",
    "parse_prior",
    "model_to_dict",
    "to_toml",
    "dump_model",
    "TOP_KEYS",
    "PARAMETER_KEYS",
    "COVARIATE_KEYS",
    "OMEGA_KEYS",
    "RESIDUAL_KEYS",
    "SAMPLING_KEYS",
    "PRIOR_FIELDS",
]

TOP_KEYS = (
    "name",
    "structural",
    "columns",
    "parameters",
    "omega",
    "residual",
    "sampling",
    "flip_flop_guard",
    "time_varying",
    "saem",
    "ode",
    "outputs",
)
PARAMETER_KEYS = ("typical", "fixed", "iiv", "initial", "covariates", "iov", "iov_initial")
COVARIATE_KEYS = ("column", "effect", "reference", "exponent", "beta")
OMEGA_KEYS = ("structure", "prior", "initial")
RESIDUAL_KEYS = ("model", "add", "prop", "exp", "initial", "blq")
SAMPLING_KEYS = ("draws", "tune", "chains", "seed", "target_accept", "centered", "init", "adaptation")
#: Keys of the optional ``[saem]`` table (values checked by ``estimation.saem.saem_settings``).
SAEM_KEYS = ("n_burn", "n_em", "chains", "kernel_steps", "is_samples")
#: Prior kind -> its keys (all required).
PRIOR_FIELDS = {
    "lognormal": ("median", "sigma"),
    "normal": ("mean", "sd"),
    "half_normal": ("sigma",),
    "inverse_gamma": ("alpha", "beta"),
    "inverse_wishart": ("df", "scale"),
    "lkj": ("eta", "sd"),
}
_STRUCTURE_CHOICES = ("diagonal", "full", "a list of blocks like [['CL', 'V'], ['ka']]")


# ----------------------------------------------------------------------------- reading
def load_model(path: str | PathLike) -> ModelSpec:
    """Read and validate a TOML model file.

    Parameters
    ----------
    path : str or path-like
        The model file.

    Returns
    -------
    ModelSpec

    Raises
    ------
    SpecError
        If the file cannot be read, is not valid TOML (the message gives the line)
        or does not follow the schema. The message names the file.
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise spec_error("model file not found", source=source) from None
    except OSError as exc:
        raise spec_error(f"cannot read the model file: {exc.strerror or exc}", source=source) from None
    try:
        mapping = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise spec_error(f"the model file is not UTF-8 text (byte {exc.start})", source=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise spec_error(_toml_message(exc), source=source) from None
    return parse_model(mapping, source=source)


def _toml_message(exc: tomllib.TOMLDecodeError) -> str:
    text = str(exc)
    match = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", text, flags=re.S)
    if match:
        return f"invalid TOML at line {match[2]}, column {match[3]}: {match[1]}"
    match = re.fullmatch(r"(.*) \(at end of document\)", text, flags=re.S)
    if match:
        return f"invalid TOML at the end of the file (line {text.count(chr(10)) + 1}): {match[1]}"
    return f"invalid TOML: {text}"


def parse_model(mapping: Mapping, *, source: str | None = None) -> ModelSpec:
    """Validate a parsed model file and build its :class:`ModelSpec`.

    Parameters
    ----------
    mapping : Mapping
        The TOML document, e.g. from ``tomllib.load`` or :func:`model_to_dict`.
    source : str, optional
        The file name, used in error messages.

    Returns
    -------
    ModelSpec

    Raises
    ------
    SpecError
        On the first problem found, naming the key and the valid choices.
    """
    try:
        return _parse(mapping)
    except SpecError as err:
        raise rekey(err, None, source) from None


def _table(value, key: str | None, what: str = "a table") -> Mapping:
    if not isinstance(value, Mapping):
        fail(f"expected {what}, got {describe(value)} ({value!r})", key)
    return value


def _check_keys(table: Mapping, key: str | None, allowed: Sequence[str], required: Sequence[str] = ()) -> None:
    for name in table:
        if name not in allowed:
            fail(f"unknown key {name!r}", join_key(key, name), allowed)
    for name in required:
        if name not in table:
            fail(f"missing required key {name!r}", join_key(key, name))


def _build(factory: Callable, prefix: str | None = None):
    """Call ``factory`` and prefix the key of a SpecError it raises."""
    try:
        return factory()
    except SpecError as err:
        raise rekey(err, prefix) from None


def _parse(mapping: Mapping) -> ModelSpec:
    doc = _table(mapping, None, "a TOML document (a table)")
    _check_keys(doc, None, TOP_KEYS, required=("name", "structural"))
    as_string(doc["name"], "name")
    structural = doc["structural"]
    if structural == "ode":
        return _parse_ode_model(doc)
    if "ode" in doc:
        fail("[ode] is for models with structural = 'ode'", "ode")
    if not isinstance(structural, str) or structural not in STRUCTURAL_PARAMETERS:
        fail(f"unknown structural model {structural!r}", "structural", tuple(STRUCTURAL_PARAMETERS))
    if "parameters" not in doc:
        fail("missing the [parameters.<P>] tables", "parameters", STRUCTURAL_PARAMETERS[structural])
    tables = _table(doc["parameters"], "parameters", "a table of [parameters.<P>] tables")
    valid = valid_parameter_names(structural)
    outputs = _outputs(doc) if "outputs" in doc else ()
    extra = set()
    if outputs:
        from .expression import names_in
        from .outputs import builtin_output_trees

        trees = builtin_output_trees(outputs, tuple(tables), ("depot", "central", "peripheral"))
        extra = set().union(*(names_in(tree) for _, tree in trees))
    for name in tables:
        if name not in valid and name not in extra:
            why = " (and no output uses it)" if outputs else ""
            fail(f"unknown parameter {name!r} for the {structural} model{why}", f"parameters.{name}", valid)
    parameters = tuple(_parameter(name, value) for name, value in tables.items())
    return _model_spec(doc, structural, parameters, **({"outputs": outputs} if outputs else {}))


def _outputs(doc: Mapping) -> tuple:
    """The ``[outputs]`` table: name -> ``{ expression = "...", id = N }``."""
    from .ode import OUTPUT_KEYS, Output

    outputs_table = _table(doc.get("outputs"), "outputs", "an [outputs] table (name = { expression = ... })")
    outputs = []
    for name, value in outputs_table.items():
        entry = _table(value, f"outputs.{name}", "a table { expression = ..., id = N }")
        _check_keys(entry, f"outputs.{name}", OUTPUT_KEYS, required=("expression",))
        outputs.append(Output(name=name, **entry))
    # names checked before the residual tables that refer to them
    params = tuple(doc.get("parameters", {})) if isinstance(doc.get("parameters"), Mapping) else ()
    ode = doc.get("ode") if isinstance(doc.get("ode"), Mapping) else {}
    compartments = ode.get("compartments", ("depot", "central", "peripheral", "C"))
    taken = set(params) | {str(c) for c in compartments if isinstance(c, str)}
    for o in outputs:
        if o.name in taken:
            fail(
                f"output name {o.name!r} is already a parameter, compartment or intermediate: output names must differ",
                f"outputs.{o.name}",
                sorted(params),
            )
    return tuple(outputs)


def _model_spec(doc: Mapping, structural: str, parameters: tuple, **extra) -> ModelSpec:
    """The tables every model file shares (omega, residual, columns, sampling, saem) around
    its parsed parameters; ``extra`` holds the ODE tables."""
    iiv = tuple(p.name for p in parameters if p.iiv and not p.is_fixed)
    if "residual" not in doc:
        fail("missing the [residual] table (with its 'model')", "residual", RESIDUAL_KEYS)
    sampling = _table(doc.get("sampling", {}), "sampling")
    _check_keys(sampling, "sampling", SAMPLING_KEYS)
    saem = _table(doc.get("saem", {}), "saem")
    _check_keys(saem, "saem", SAEM_KEYS)
    return ModelSpec(
        name=doc["name"],
        structural=structural,
        parameters=parameters,
        omega=_omega(doc.get("omega"), iiv),
        residual=_residuals(doc["residual"], extra.get("outputs", ())),
        columns=dict(_table(doc.get("columns", {}), "columns")),
        sampling=Sampling(**sampling),
        flip_flop_guard=doc.get("flip_flop_guard"),
        **({"time_varying": doc["time_varying"]} if "time_varying" in doc else {}),
        **({"saem": dict(saem)} if saem else {}),
        **extra,
    )


def _parse_ode_model(doc: Mapping) -> ModelSpec:
    """The model of a file with ``structural = "ode"`` (CONTRACT 5.4)."""
    from .ode import ODE_KEYS, OdeSpec

    ode = _table(doc.get("ode"), "ode", "an [ode] table with 'compartments' and 'equations'")
    _check_keys(ode, "ode", ODE_KEYS, required=("compartments", "equations"))
    ode_spec = _build(lambda: OdeSpec(**ode), "ode")
    outputs = _outputs(doc)
    if "parameters" not in doc:
        fail("missing the [parameters.<P>] tables", "parameters")
    tables = _table(doc["parameters"], "parameters", "a table of [parameters.<P>] tables")
    parameters = tuple(_parameter(name, value) for name, value in tables.items())
    return _model_spec(doc, "ode", parameters, ode=ode_spec, outputs=tuple(outputs))


def parse_prior(value, key: str | None = None, allowed: Sequence[str] | None = None, where: str = "here") -> Prior:
    """Build a prior from its one-key table, e.g. ``{"lognormal": {...}}``.

    Parameters
    ----------
    value : Mapping
        The prior table.
    key : str, optional
        Its dotted key, for messages.
    allowed : sequence of str, optional
        The prior kinds allowed at this place (default: every kind).
    where : str
        Phrase for the message when the kind is not allowed.

    Returns
    -------
    Prior
    """
    allowed = tuple(PRIOR_KINDS) if allowed is None else tuple(allowed)
    table = _table(value, key, "a prior table like { lognormal = { median = 1.0, sigma = 1.0 } }")
    if len(table) != 1:
        fail(
            f"a prior table has exactly one key naming the distribution, got "
            f"{len(table)}: {', '.join(map(repr, table)) or 'none'}",
            key,
            allowed,
        )
    kind, fields = next(iter(table.items()))
    if kind not in PRIOR_KINDS:
        fail(f"unknown prior kind {kind!r}", key, allowed)
    if kind not in allowed:
        fail(f"prior kind {kind!r} is not allowed {where}", key, allowed)
    inner = join_key(key, kind)
    fields = _table(fields, inner)
    _check_keys(fields, inner, PRIOR_FIELDS[kind], required=PRIOR_FIELDS[kind])
    fields = dict(fields)
    if kind == "lkj":
        fields["sd"] = parse_prior(
            fields["sd"], f"{inner}.sd", LKJ_SD_PRIORS, "for the standard deviations of an lkj prior"
        )
    cls = PRIOR_KINDS[kind]
    return _build(lambda: cls(**fields), key)


def _parameter(name: str, value) -> Parameter:
    key = f"parameters.{name}"
    table = _table(value, key)
    _check_keys(table, key, PARAMETER_KEYS)
    if "typical" in table and "fixed" in table:
        fail("'typical' and 'fixed' exclude each other: give one", key, ("typical", "fixed"))
    if "fixed" in table and table.get("iiv") is True:
        fail("a fixed parameter has no IIV: remove 'iiv = true'", f"{key}.iiv", ("false",))
    typical = None
    if "typical" in table:
        typical = parse_prior(table["typical"], f"{key}.typical", TYPICAL_PRIORS, "for a typical value")
    iov = None
    if "iov" in table:
        if "fixed" in table:
            fail("a fixed parameter has no inter-occasion variability: remove 'iov'", f"{key}.iov")
        iov = parse_prior(table["iov"], f"{key}.iov", IOV_PRIORS, "for an IOV variance")
    raw = table.get("covariates", [])
    if not isinstance(raw, list):
        fail(f"expected an array of tables ([[{key}.covariates]]), got {describe(raw)}", f"{key}.covariates")
    covariates = tuple(_covariate(c, f"{key}.covariates[{i}]") for i, c in enumerate(raw))
    return Parameter(
        name=name,
        typical=typical,
        fixed=table.get("fixed"),
        iiv=table.get("iiv", "fixed" not in table),
        initial=table.get("initial"),
        covariates=covariates,
        iov=iov,
        iov_initial=table.get("iov_initial"),
    )


def _covariate(value, key: str) -> CovariateEffect:
    table = _table(value, key)
    _check_keys(table, key, COVARIATE_KEYS, required=("column", "effect", "reference"))
    effect = table["effect"]
    if not isinstance(effect, str) or effect not in COVARIATE_EFFECTS:
        fail(f"unknown covariate effect {effect!r}", f"{key}.effect", COVARIATE_EFFECTS)
    wanted, other = ("exponent", "beta") if effect == "power" else ("beta", "exponent")
    if other in table:
        fail(f"a {effect} effect takes '{wanted}', not '{other}'", f"{key}.{other}", (wanted,))
    if wanted not in table:
        fail(f"missing required key {wanted!r}: a number fixes it, a prior table estimates it", f"{key}.{wanted}")
    coefficient = table[wanted]
    if isinstance(coefficient, Mapping):
        coefficient = parse_prior(coefficient, f"{key}.{wanted}", COEFFICIENT_PRIORS, "for a covariate coefficient")
    return _build(lambda: CovariateEffect(table["column"], effect, table["reference"], coefficient), key)


def _omega(value, iiv: tuple[str, ...]) -> Omega:
    if value is None:
        return Omega.from_structure("diagonal", iiv)
    table = _table(value, "omega")
    _check_keys(table, "omega", OMEGA_KEYS)
    structure = table.get("structure", "diagonal")
    if isinstance(structure, str):
        if structure not in ("diagonal", "full"):
            fail(f"unknown omega structure {structure!r}", "omega.structure", _STRUCTURE_CHOICES)
        kind = structure
    elif isinstance(structure, list):
        kind = "block"
    else:
        fail(f"expected a string or a list of blocks, got {describe(structure)}", "omega.structure", _STRUCTURE_CHOICES)
    prior = None
    if "prior" in table:
        prior = parse_prior(table["prior"], "omega.prior", OMEGA_PRIORS[kind], f"for a {kind} omega")
    return Omega.from_structure(structure, iiv, prior=prior, initial=table.get("initial"))


def _residuals(value, outputs: tuple):
    """``[residual]``, or one ``[residual.<output>]`` table per output (CONTRACT 5.4)."""
    from .outputs import OutputResiduals

    table = _table(value, "residual")
    names = tuple(o.name for o in outputs)
    if len(names) < 2:
        nested = [k for k, v in table.items() if isinstance(v, Mapping) and k not in RESIDUAL_KEYS]
        if nested:
            fail(
                "a model with one output keeps a single [residual] table (model = ...), not [residual.<output>]",
                f"residual.{nested[0]}",
                RESIDUAL_KEYS,
            )
        return _residual(table)
    for key in table:
        if key not in names:
            fail(
                f"a model with several outputs has one [residual.<output>] table per output; {key!r} is not an output",
                f"residual.{key}",
                tuple(f"residual.{n}" for n in names),
            )
    for name in names:
        if name not in table:
            fail(f"missing the [residual.{name}] table of output {name!r}", f"residual.{name}", RESIDUAL_KEYS)
    return OutputResiduals(tuple((n, _output_residual(table[n], n)) for n in names))


def _output_residual(value, output: str) -> Residual:
    key = f"residual.{output}"
    try:
        return _residual(value, key)
    except SpecError as err:
        detail, old = getattr(err, "detail", None), err.key or ""
        if detail is None or old.startswith(key) or not old.startswith("residual"):
            raise
        raise spec_error(detail, key=key + old[len("residual") :], valid=err.valid) from None


def _residual(value, key: str = "residual") -> Residual:
    table = _table(value, key)
    _check_keys(table, key, RESIDUAL_KEYS)
    model = table.get("model")
    if not isinstance(model, str) or model not in RESIDUAL_MODELS:
        what = "missing residual model" if model is None else f"unknown residual model {model!r}"
        fail(what, f"{key}.model", RESIDUAL_MODELS)
    used = RESIDUAL_VARIANCES[model]
    priors = {}
    for slot in ("add", "prop", "exp"):
        if slot not in table:
            continue
        if slot not in used:
            fail(f"the {model} model has no variance {slot!r}: remove this prior", f"{key}.{slot}", used)
        priors[slot] = parse_prior(table[slot], f"{key}.{slot}", RESIDUAL_PRIORS, "for a residual variance")
    initial = _table(table.get("initial", {}), f"{key}.initial")
    extra = {"blq": table["blq"]} if "blq" in table else {}
    return Residual(model=model, initial=dict(initial), **priors, **extra)
