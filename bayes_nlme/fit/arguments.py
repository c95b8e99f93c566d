"""Arguments shared by :func:`~.sampling.sample` and :func:`~.prior_sampling.sample_prior`:
the model (a spec or a TOML path) and the run lengths over the spec's ``[sampling]`` table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ArgumentError


def _load_spec(spec):
    if isinstance(spec, (str, Path)):
        from ..spec import load_model

        return load_model(spec)
    return spec


def _positive(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _settings(spec, draws, tune, chains, seed) -> tuple:
    s = spec.sampling
    draws = _positive("draws", s.draws if draws is None else draws)
    tune = _positive("tune", s.tune if tune is None else tune, minimum=0)
    chains = _positive("chains", s.chains if chains is None else chains)
    seed = s.seed if seed is None else seed
    if seed is not None:
        seed = _positive("seed", seed, minimum=0)
    return draws, tune, chains, seed
