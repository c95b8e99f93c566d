"""Alternative priors for a sensitivity study.

Variants, in order:

* ``base``: the spec as given;
* ``scale_<f>``: every prior's spread multiplied by ``f`` (:meth:`Prior.scaled`);
* ``lkj``: for a full or block omega with an inverse-Wishart prior, an LKJ prior
  (eta 2) on the correlations with a half-normal(1) prior on each standard deviation
  of the log-parameters;
* ``residual_halfnormal``: each residual variance given a half-normal prior whose
  scale is twice the base prior's typical value (its mean, or its mode when the mean
  does not exist), so that the base prior's typical variance is well inside it;
* one per user model file (variant name: the file's stem): it must have the same
  structure (structural model, parameters, covariates, omega blocks, residual model),
  differing in prior values only.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import ArgumentError, SpecError
from ..spec.outputs import map_residuals, residual_models
from ..spec.priors import LKJ, HalfNormal, InverseGamma, InverseWishart, LogNormal, Prior

__all__ = ["prior_variants", "scale_name", "scaled_spec", "check_same_structure"]

#: The LKJ variant: shape of the correlation prior and scale of the sd prior.
LKJ_ETA = 2.0
LKJ_SD_SIGMA = 1.0


def scale_name(factor: float) -> str:
    """``scale_<factor>``, e.g. ``scale_0.5`` and ``scale_2``."""
    return f"scale_{float(factor):g}"


def _scaled(prior, factor: float):
    return prior.scaled(factor) if isinstance(prior, Prior) else prior


def scaled_spec(spec, factor: float):
    """The spec with every prior's spread multiplied by ``factor``.

    Parameters
    ----------
    spec : ModelSpec
    factor : float
        > 0; < 1 tightens, > 1 widens.

    Returns
    -------
    ModelSpec
    """
    params = []
    for p in spec.parameters:
        covs = tuple(replace(c, coefficient=_scaled(c.coefficient, factor)) for c in p.covariates)
        params.append(replace(p, typical=_scaled(p.typical, factor), covariates=covs))
    omega = replace(spec.omega, prior=_scaled(spec.omega.prior, factor))
    residual = map_residuals(
        spec.residual, lambda res: replace(res, **{s: _scaled(getattr(res, s), factor) for s in ("add", "prop", "exp")})
    )
    return replace(spec, parameters=tuple(params), omega=omega, residual=residual)


def _lkj_spec(spec):
    prior = spec.omega.prior
    if not isinstance(prior, InverseWishart) or all(len(b) == 1 for b in spec.omega.blocks):
        return None
    lkj = LKJ(eta=LKJ_ETA, sd=HalfNormal(sigma=LKJ_SD_SIGMA))
    return replace(spec, omega=replace(spec.omega, prior=lkj))


def _typical_variance(prior) -> float | None:
    if isinstance(prior, InverseGamma):
        if prior.alpha > 1.0:
            return prior.beta / (prior.alpha - 1.0)
        return prior.beta / (prior.alpha + 1.0)
    if isinstance(prior, LogNormal):
        return prior.median
    return None


def _residual_halfnormal_spec(spec):
    changed = []

    def change(residual):
        changes = {}
        for slot in ("add", "prop", "exp"):
            typical = _typical_variance(getattr(residual, slot))
            if typical is not None:
                changes[slot] = HalfNormal(sigma=2.0 * typical)
        changed.append(bool(changes))
        return replace(residual, **changes)

    residual = map_residuals(spec.residual, change)
    if not any(changed):
        return None
    return replace(spec, residual=residual)


def _structure(spec) -> tuple:
    params = tuple(
        (
            p.name,
            p.fixed,
            p.iiv,
            tuple((c.column, c.effect, c.reference, c.estimated) for c in p.covariates),
        )
        for p in spec.parameters
    )
    return (spec.structural, params, spec.omega.blocks, residual_models(spec))


def check_same_structure(base, other, source: str) -> None:
    """Raise :class:`SpecError` unless ``other`` differs from ``base`` in priors only.

    Parameters
    ----------
    base, other : ModelSpec
    source : str
        The file of ``other``, for the message.
    """
    checks = (
        ("structural", base.structural, other.structural),
        ("parameters", base.parameter_names, other.parameter_names),
        ("omega.structure", base.omega.blocks, other.omega.blocks),
        ("residual.model", residual_models(base), residual_models(other)),
    )
    for key, a, b in checks:
        if a != b:
            raise SpecError(
                f"a prior variant must have the same {key} as the base model: expected {a!r}, got {b!r}",
                key=key,
                source=source,
            )
    if _structure(base) != _structure(other):
        raise SpecError(
            "a prior variant must have the same parameters (fixed values, IIV, covariate "
            "effects) as the base model; only prior values may differ",
            key="parameters",
            source=source,
        )


def prior_variants(spec, scales=(0.5, 2.0), variants=()) -> list[tuple[str, object]]:
    """The named specs of a sensitivity study, ``base`` first.

    Parameters
    ----------
    spec : ModelSpec
    scales : sequence of float
        Spread factors (each > 0).
    variants : sequence of path
        Alternative model files of the same structure.

    Returns
    -------
    list of (str, ModelSpec)

    Raises
    ------
    ArgumentError
        A non-positive scale, or a variant file that does not exist.
    SpecError
        A variant file that is invalid or of another structure.
    """
    from ..spec import load_model

    out = [("base", spec)]
    for f in scales or ():
        try:
            f = float(f)
        except (TypeError, ValueError):
            raise ArgumentError(f"scales: expected numbers > 0, got {f!r}") from None
        if not f > 0 or f != f or f == float("inf"):
            raise ArgumentError(f"scales: expected numbers > 0, got {f!r}")
        out.append((scale_name(f), scaled_spec(spec, f)))
    for name, make in (("lkj", _lkj_spec), ("residual_halfnormal", _residual_halfnormal_spec)):
        alt = make(spec)
        if alt is not None:
            out.append((name, alt))
    for path in variants or ():
        path = Path(path)
        if not path.is_file():
            raise ArgumentError(f"variants: model file {str(path)!r} does not exist")
        other = load_model(path)
        check_same_structure(spec, other, str(path))
        out.append((path.stem, other))
    names = [n for n, _ in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ArgumentError(f"variants: duplicate variant names {', '.join(dup)}; rename the files")
    return out
