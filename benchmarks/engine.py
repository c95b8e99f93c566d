"""The model core's event engine: cost of predictions with their exact Jacobian.

Prints, for the 120-subject design of the scale study (one oral dose every 24 h, 39
observations per subject) with 1, 7 and 28 doses per subject, the time of one engine
evaluation (predictions and sensitivities), per observation and relative to 7 doses,
for the one- and two-compartment oral models. The cost is linear in records, so with
the observations fixed, 28 doses cost little more than 7.

Run: ``python benchmarks/engine.py`` (CPU time of this process, median of repeats).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from bayes_nlme.core import engine_design
from bayes_nlme.core.op import predict_numeric
from bayes_nlme.data import load_dataset

PARAMS = {
    "one_compartment_oral": {"ka": 1.0, "CL": 4.0, "V": 70.0},
    "two_compartment_oral": {"ka": 1.0, "CL": 4.0, "V1": 40.0, "Q": 3.0, "V2": 60.0},
}


def study(n_subjects: int = 120, doses: int = 7, n_obs: int = 39) -> pd.DataFrame:
    """One oral dose every 24 h (as ADDL), observations spread over the dosing period."""
    end = 24.0 * doses
    times = np.linspace(0.25, end - 0.5, n_obs)
    rows = []
    for i in range(n_subjects):
        ii = 24.0 if doses > 1 else 0.0
        rows.append({"ID": i + 1, "TIME": 0.0, "AMT": 100.0, "II": ii, "ADDL": doses - 1, "DV": np.nan})
        rows += [{"ID": i + 1, "TIME": t, "AMT": 0.0, "II": 0.0, "ADDL": 0, "DV": 1.0} for t in times]
    return pd.DataFrame(rows)


def seconds_per_call(design, params: dict, repeats: int = 7, calls: int = 20) -> float:
    """Median CPU seconds of one engine evaluation."""
    matrix = np.tile([params[c] for c in design.columns], (design.n_segments, 1))
    predict_numeric(design, matrix)  # compile / load from the cache
    out = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            predict_numeric(design, matrix)
        out.append((time.process_time() - start) / calls)
    return float(np.median(out))


def main() -> None:
    print(f"{'model':<22} {'doses':>5} {'records':>8} {'obs':>6} {'ms/eval':>9} {'ns/obs':>8} {'vs 7 doses':>10}")
    for model, params in PARAMS.items():
        times = {}
        for doses in (1, 7, 28):
            design = engine_design(load_dataset(study(doses=doses)), model, declared=tuple(params))
            times[doses] = seconds_per_call(design, params)
            records = len(design.recf)
            print(
                f"{model:<22} {doses:>5} {records:>8} {design.n_obs:>6} {times[doses] * 1e3:>9.3f} "
                f"{times[doses] / design.n_obs * 1e9:>8.0f} {times[doses] / times.get(7, times[doses]):>10.2f}"
            )
        print(f"{model}: 28 doses / 7 doses = {times[28] / times[7]:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
