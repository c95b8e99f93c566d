"""Power-scaling sensitivities with their Monte-Carlo error (block bootstrap over draws).

:func:`power_sensitivity` computes the same values as :func:`arviz_stats.psense`
(Pareto-smoothed importance weights of the prior or likelihood raised to the powers
0.99 and 1.01, then the cumulative Jensen-Shannon distance per unit of log-power),
on plain ``(chain, draw)`` arrays, so that it can be repeated cheaply on resampled
draws.

The Monte-Carlo error is the standard deviation of the estimate over a circular
block bootstrap: each chain is rebuilt from blocks of ``sqrt(draws)`` consecutive
draws starting at random positions (blocks keep the autocorrelation of the chain),
the same positions for the parameters and the log densities, and the whole
computation (importance weights included) is repeated. The error is that of the
estimate's spread only: with few draws an importance-sampling estimate can also be
biased, which no bootstrap measures, so a verdict near the threshold at a short run
should be read as "run longer" even when it is not flagged inconclusive.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["ALPHAS", "N_BOOT", "power_sensitivity", "sensitivity_with_error", "block_indices"]

#: Lower and upper powers of the finite-difference derivative (as in psense).
ALPHAS = (0.99, 1.01)

#: Bootstrap replicates of the Monte-Carlo error.
N_BOOT = 100


def _weights(log_density: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised PSIS weights of ``log_density`` raised to each power of :data:`ALPHAS`."""
    from arviz_stats.base import array_stats

    out = []
    for alpha in ALPHAS:
        lw = np.asarray(array_stats.power_scale_lw(log_density, alpha=alpha, axis=(0, 1)), dtype=float)
        w = np.exp(lw - lw.max())
        out.append(w / w.sum())
    return out[0], out[1]


def power_sensitivity(draws: dict, components: dict, component_of: dict) -> dict:
    """Power-scaling sensitivity of each parameter to its own density component.

    Parameters
    ----------
    draws : dict of str to ndarray
        Each parameter's draws, shape ``(chain, draw)``.
    components : dict of str to ndarray
        The log densities that are power-scaled, shape ``(chain, draw)`` (e.g. one
        prior component, or the summed log-likelihood).
    component_of : dict of str to str
        For each parameter, the name of its component in ``components``.

    Returns
    -------
    dict of str to float
        The sensitivity of each parameter, as :func:`arviz_stats.psense` computes it.
    """
    from arviz_stats.base import array_stats

    with warnings.catch_warnings():
        # PSIS warns about high Pareto k with short chains; the bootstrap error shows
        # how unstable the estimate is.
        warnings.simplefilter("ignore")
        weights = {name: _weights(ld) for name, ld in components.items()}
        out = {}
        for name, ary in draws.items():
            lower, upper = weights[component_of[name]]
            value = array_stats.power_scale_sense(
                ary, lower, upper, lower_alpha=ALPHAS[0], upper_alpha=ALPHAS[1], chain_axis=0, draw_axis=1
            )
            out[name] = float(value)
    return out


def block_indices(n_chains: int, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """Draw indices of one circular block-bootstrap replicate, shape ``(chain, draw)``.

    Parameters
    ----------
    n_chains, n_draws : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int
        Indices into the draw axis; chain ``c`` of the replicate takes
        ``ary[c, idx[c]]``.
    """
    block = max(1, int(round(np.sqrt(n_draws))))
    n_blocks = -(-n_draws // block)
    starts = rng.integers(0, n_draws, size=(n_chains, n_blocks, 1))
    idx = (starts + np.arange(block)) % n_draws
    return idx.reshape(n_chains, -1)[:, :n_draws]


def sensitivity_with_error(
    draws: dict, components: dict, component_of: dict, *, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[dict, dict]:
    """Power-scaling sensitivities and their Monte-Carlo standard errors.

    Parameters
    ----------
    draws, components, component_of
        As for :func:`power_sensitivity`.
    n_boot : int
        Bootstrap replicates (0: no error, reported as NaN).
    seed : int
        Seed of the bootstrap (the result is reproducible).

    Returns
    -------
    (dict, dict)
        The estimates (on all draws) and their standard errors, by parameter.
    """
    estimate = power_sensitivity(draws, components, component_of)
    if n_boot < 2:
        return estimate, {name: float("nan") for name in estimate}
    rng = np.random.default_rng(seed)
    n_chains, n_draws = next(iter(draws.values())).shape
    rows = np.arange(n_chains)[:, None]
    reps = {name: [] for name in estimate}
    for _ in range(n_boot):
        idx = block_indices(n_chains, n_draws, rng)
        value = power_sensitivity(
            {k: v[rows, idx] for k, v in draws.items()}, {k: v[rows, idx] for k, v in components.items()}, component_of
        )
        for name, v in value.items():
            reps[name].append(v)
    return estimate, {name: float(np.std(v, ddof=1)) for name, v in reps.items()}
