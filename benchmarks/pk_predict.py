"""Benchmark of the PK library: compiled concentrations and their gradient.

1,000 subjects x 20 observations x 10 oral doses (``one_compartment_oral``; the doses
are one record per subject with ``ADDL = 9``, ``II = 12``). Times the compiled
PyTensor functions of

* the concentrations (values), and
* a Gaussian log-likelihood and its gradient with respect to the per-subject ``ka``,
  ``CL`` and ``V`` (value + gradient, what NUTS needs),

for PyTensor's default backend (Numba) and its C backend, next to a plain NumPy
implementation (classic closed form; gradient by analytic formulas). Each figure is
the median of ``--repeats`` runs after a warm-up. Run::

    .venv/bin/python benchmarks/pk_predict.py [--repeats 20] [--backends NUMBA,CVM]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from bayes_nlme.data.events import build_event_design
from bayes_nlme.pk import concentrations

N_SUBJECTS, N_OBS, N_DOSES, II, DOSE = 1000, 20, 10, 12.0, 320.0


def dataset(rng):
    """The benchmark table: per subject one dose record (ADDL) and 20 observations."""
    rows = []
    grid = np.linspace(0.5, N_DOSES * II + 24.0, N_OBS)
    for s in range(N_SUBJECTS):
        rows.append(dict(ID=s + 1, TIME=0.0, DV=np.nan, AMT=DOSE, EVID=1, MDV=1, ADDL=N_DOSES - 1, II=II))
        times = np.sort(grid + rng.uniform(-0.25, 0.25, N_OBS).clip(-0.4, None))
        for t in times:
            rows.append(dict(ID=s + 1, TIME=float(max(t, 0.1)), DV=1.0, AMT=0.0, EVID=0, MDV=0, ADDL=0, II=0.0))
    df = pd.DataFrame(rows).astype(float)
    df["CMT"], df["RATE"], df["SS"] = np.nan, 0.0, 0.0
    df["ROW"] = np.arange(1, len(df) + 1)
    df["SUBJECT"] = (df["ID"] - 1).astype(int)
    return df


def median_ms(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


class NumpyReference:
    """Plain NumPy: C = D ka / (V (ka - k)) (exp(-k t) - exp(-ka t)) summed over pairs."""

    def __init__(self, design):
        (group,) = design.groups
        self.s, self.p, self.t, self.d = group.subject, group.point, group.elapsed, group.amount
        self.n_points, self.n_subjects = design.n_points, design.n_subjects

    def values(self, ka, cl, v):
        s, t = self.s, self.t
        k = cl / v
        kap, kp, vp = ka[s], k[s], v[s]
        g = np.exp(-kp * t) - np.exp(-kap * t)
        return np.bincount(self.p, self.d * kap / (vp * (kap - kp)) * g, minlength=self.n_points)

    def loglik_and_grad(self, ka, cl, v, y, sigma):
        s, t = self.s, self.t
        k = cl / v
        kap, kp, vp = ka[s], k[s], v[s]
        ek, eka = np.exp(-kp * t), np.exp(-kap * t)
        g = ek - eka
        diff = kap - kp
        a = self.d * kap / (vp * diff)
        c_pair = a * g
        c = np.bincount(self.p, c_pair, minlength=self.n_points)
        resid = (y - c) / sigma**2
        w = resid[self.p]
        d_ka = -self.d * kp / (vp * diff**2) * g + a * t * eka
        d_k = a * (g / diff - t * ek)
        d_cl = d_k / vp
        d_v = -c_pair / vp - d_k * kp / vp
        n = self.n_subjects
        grads = [np.bincount(s, w * d, minlength=n) for d in (d_ka, d_cl, d_v)]
        return -0.5 * np.sum(((y - c) / sigma) ** 2), grads


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--backends", default="NUMBA,CVM", help="comma-separated PyTensor modes")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(1)

    start = time.perf_counter()
    df = dataset(rng)
    design = build_event_design(df, "one_compartment_oral")
    print(f"design: {design.n_subjects} subjects, {design.n_points} points, {design.n_pairs} (point, dose) pairs, "
          f"built in {1e3 * (time.perf_counter() - start):.0f} ms")

    ka = 1.5 * np.exp(0.3 * rng.standard_normal(N_SUBJECTS))
    cl = 2.8 * np.exp(0.3 * rng.standard_normal(N_SUBJECTS))
    v = 32.0 * np.exp(0.2 * rng.standard_normal(N_SUBJECTS))
    sigma = 0.5
    ref = NumpyReference(design)
    y = ref.values(ka, cl, v) * np.exp(0.1 * rng.standard_normal(design.n_points))

    np_values_ms = median_ms(lambda: ref.values(ka, cl, v), args.repeats)
    np_grad_ms = median_ms(lambda: ref.loglik_and_grad(ka, cl, v, y, sigma), args.repeats)

    ka_t, cl_t, v_t = pt.dvector("ka"), pt.dvector("CL"), pt.dvector("V")
    conc = concentrations(design, {"ka": ka_t, "CL": cl_t, "V": v_t})
    loglik = -0.5 * pt.sum(pt.sqr((y - conc) / sigma))
    grads = pytensor.grad(loglik, [ka_t, cl_t, v_t])

    rows = []
    for mode in args.backends.split(","):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the C backend's BLAS notice
            start = time.perf_counter()
            f_values = pytensor.function([ka_t, cl_t, v_t], conc, mode=mode)
            f_values(ka, cl, v)
            compile_values = time.perf_counter() - start
            start = time.perf_counter()
            f_grad = pytensor.function([ka_t, cl_t, v_t], [loglik, *grads], mode=mode)
            f_grad(ka, cl, v)
            compile_grad = time.perf_counter() - start
        got = f_values(ka, cl, v)
        lp, *g = f_grad(ka, cl, v)
        lp_ref, g_ref = ref.loglik_and_grad(ka, cl, v, y, sigma)
        err = max(np.max(np.abs(got - ref.values(ka, cl, v)) / np.abs(ref.values(ka, cl, v)).max()),
                  *(np.max(np.abs(a - b)) / np.abs(b).max() for a, b in zip(g, g_ref)))
        values_ms = median_ms(lambda: f_values(ka, cl, v), args.repeats)
        grad_ms = median_ms(lambda: f_grad(ka, cl, v), args.repeats)
        rows.append((mode, values_ms, grad_ms, compile_values, compile_grad, err))

    print(f"\nmedian of {args.repeats} runs after a warm-up (ms); targets: values <= 20, value+gradient <= 60")
    print(f"{'implementation':<34}{'values':>9}{'value+grad':>12}{'ratio v':>9}{'ratio g':>9}"
          f"{'compile (s)':>14}{'max rel diff':>14}")
    print(f"{'numpy (closed form, analytic grad)':<34}{np_values_ms:>9.2f}{np_grad_ms:>12.2f}{'1.00':>9}{'1.00':>9}")
    for mode, values_ms, grad_ms, cv, cg, err in rows:
        ok = "ok" if values_ms <= 20 and grad_ms <= 60 else "MISSES TARGET"
        print(f"{'pytensor ' + mode:<34}{values_ms:>9.2f}{grad_ms:>12.2f}{values_ms / np_values_ms:>9.2f}"
              f"{grad_ms / np_grad_ms:>9.2f}{f'{cv:.1f} + {cg:.1f}':>14}{err:>14.1e}  {ok}")


if __name__ == "__main__":
    main()
