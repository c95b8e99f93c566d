"""Flip-flop diagnostic: do the chains agree on which rate is absorption?

Without the flip-flop guard (:mod:`bayes_nlme.build.flipflop`) an oral model's
posterior can have two modes, one with ``ka > k`` and one with the rates swapped;
different chains can settle in different modes. With the guard the modes are
excluded, but chains can still disagree when the data cannot place ``ka`` at all.

:func:`flip_flop_check` compares the per-chain medians of ``log(theta_ka / k)``
(``k`` the terminal elimination rate of the typical values): the chains are said to
be in different flip-flop modes only when ``theta_ka / k`` is above 1 in some chains
and below 1 in others, i.e. when ka and k swap between chains. Chains that disagree
on ``theta_ka`` without swapping are in separate modes of another kind (often stuck
chains), which :mod:`bayes_nlme.fit.convergence` names with the parameters that
differ.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..build.flipflop import ABSORPTION, terminal_rate
from ..spec.structural_names import ORAL_MODELS

__all__ = ["flip_flop_check"]


def _typical(spec, posterior: xr.Dataset) -> dict | None:
    out = {}
    for p in spec.parameters:
        name = f"theta_{p.name}"
        if name in posterior:
            out[p.name] = np.asarray(posterior[name].transpose("chain", "draw").values, dtype=float)
        elif p.is_fixed:
            out[p.name] = float(p.fixed)
        else:
            return None
    return out


def flip_flop_check(spec, posterior: xr.Dataset) -> str | None:
    """A message when the chains sit in different absorption/elimination modes.

    Parameters
    ----------
    spec : ModelSpec
    posterior : xarray.Dataset
        Draws with dims ``chain`` and ``draw``.

    Returns
    -------
    str or None
        The message (with what to do), or None when the chains agree or the check
        does not apply (IV model, fixed ``ka``, a single chain).
    """
    if spec.structural not in ORAL_MODELS or f"theta_{ABSORPTION}" not in posterior:
        return None
    if int(posterior.sizes.get("chain", 1)) < 2:
        return None
    typical = _typical(spec, posterior)
    if typical is None:
        return None
    log_ka = np.log(typical[ABSORPTION])
    log_ratio = log_ka - np.log(terminal_rate(typical, np) * np.ones_like(log_ka))
    ratio_medians = np.median(log_ratio, axis=1)
    ka_medians = np.median(log_ka, axis=1)
    if not ((ratio_medians > 0).any() and (ratio_medians < 0).any()):
        return None
    ka_text = ", ".join(f"{v:.3g}" for v in np.exp(ka_medians))
    k_text = ", ".join(f"{v:.3g}" for v in np.exp(ka_medians - ratio_medians))
    advice = (
        "turn the flip-flop guard on (flip_flop_guard = true in the model file)"
        if spec.flip_flop_guard is False
        else "give ka a more informative prior, or check the absorption-phase data"
    )
    swapped = np.flatnonzero(ratio_medians < 0)
    return (
        f"chains disagree on the absorption rate (per-chain medians of theta_ka: {ka_text}; of the "
        f"elimination rate k: {k_text}): ka and k swap between chains (ka < k in chain"
        f"{'s' if swapped.size > 1 else ''} {', '.join(str(c) for c in swapped)}), "
        f"so the chains are in different flip-flop modes and cannot be pooled. To fix it, {advice}, then refit"
    )
