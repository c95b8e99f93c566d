"""Exponential integrals of one interval and their divided differences (Numba, inlined).

``int_0^dt exp(-k s) ds`` and ``int_0^dt exp(-a s) exp(-b (dt - s)) ds`` with their
derivatives, evaluated stably near ``k == 0`` and ``a == b`` (series below 0.1). Used by
the one-compartment closed forms (:mod:`.kinetics`) and the Daleckii-Krein divided
differences (:mod:`.eigen`).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy", inline="always")
def _g(x):
    """``int_0^1 exp(-x u) du`` for ``x >= 0``."""
    if x < 0.1:
        return 1.0 + x * (
            -0.5
            + x
            * (
                0.16666666666666666
                + x
                * (
                    -0.041666666666666664
                    + x
                    * (
                        0.008333333333333333
                        + x
                        * (
                            -0.001388888888888889
                            + x
                            * (
                                0.0001984126984126984
                                + x
                                * (
                                    -2.48015873015873e-05
                                    + x
                                    * (
                                        2.7557319223985893e-06
                                        + x
                                        * (
                                            -2.7557319223985894e-07
                                            + x * (2.5052108385441717e-08 + x * -2.08767569878681e-09)
                                        )
                                    )
                                )
                            )
                        )
                    )
                )
            )
        )
    return -np.expm1(-x) / x


@njit(cache=True, error_model="numpy", inline="always")
def _q(x):
    """``int_0^1 u exp(-x u) du`` for ``x >= 0``."""
    if x < 0.1:
        return 0.5 + x * (
            -0.3333333333333333
            + x
            * (
                0.125
                + x
                * (
                    -0.03333333333333333
                    + x
                    * (
                        0.006944444444444444
                        + x
                        * (
                            -0.0011904761904761904
                            + x
                            * (
                                0.00017361111111111112
                                + x
                                * (
                                    -2.2045855379188714e-05
                                    + x
                                    * (
                                        2.48015873015873e-06
                                        + x
                                        * (
                                            -2.5052108385441723e-07
                                            + x * (2.2964432686654907e-08 + x * -1.9270852604185937e-09)
                                        )
                                    )
                                )
                            )
                        )
                    )
                )
            )
        )
    return (1.0 - np.exp(-x) * (1.0 + x)) / (x * x)


@njit(cache=True, error_model="numpy", inline="always")
def _r(x):
    """``int_0^1 (1 - u) exp(-x u) du`` for ``x >= 0``."""
    if x < 0.1:
        return 0.5 + x * (
            -0.16666666666666666
            + x
            * (
                0.041666666666666664
                + x
                * (
                    -0.008333333333333333
                    + x
                    * (
                        0.0013888888888888887
                        + x
                        * (
                            -0.0001984126984126984
                            + x
                            * (
                                2.48015873015873e-05
                                + x
                                * (
                                    -2.7557319223985893e-06
                                    + x
                                    * (
                                        2.755731922398589e-07
                                        + x
                                        * (
                                            -2.505210838544172e-08
                                            + x * (2.0876756987868096e-09 + x * -1.6059043836821616e-10)
                                        )
                                    )
                                )
                            )
                        )
                    )
                )
            )
        )
    return (x + np.expm1(-x)) / (x * x)


@njit(cache=True, error_model="numpy", inline="always")
def _gamma(k, dt):
    """``Gamma = int_0^dt exp(-k s) ds`` and ``dGamma/dk``."""
    x = k * dt
    if x >= 0.0:
        return dt * _g(x), -dt * dt * _q(x)
    e = np.exp(-x)  # k < 0 only for invalid parameters; keep it finite where possible
    return dt * e * _g(-x), -dt * dt * e * _r(-x)


@njit(cache=True, error_model="numpy", inline="always")
def _gqr(x):
    """``_g(x), _q(x), _r(x)`` together, with one ``expm1`` (``x >= 0``)."""
    if x < 0.1:
        return _g(x), _q(x), _r(x)
    em1 = np.expm1(-x)
    x2 = x * x
    return -em1 / x, -(x + em1 + x * em1) / x2, (x + em1) / x2


@njit(cache=True, error_model="numpy", inline="always")
def _divided_known(a, b, dt, ea, eb):
    """``E = int_0^dt exp(-a s) exp(-b (dt - s)) ds`` with ``dE/da`` and ``dE/db``, from
    the known ``ea = exp(-a dt)`` and ``eb = exp(-b dt)``."""
    if a >= b:
        g, q, r = _gqr((a - b) * dt)
        return eb * dt * g, -eb * dt * dt * q, -eb * dt * dt * r
    g, q, r = _gqr((b - a) * dt)
    return ea * dt * g, -ea * dt * dt * r, -ea * dt * dt * q
