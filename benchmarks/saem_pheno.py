"""SAEM (and FOCE-I) on the Grasela phenobarbital data against NONMEM's FOCE-I thetas.

Run with ``python benchmarks/saem_pheno.py --data PATH/pheno.dta`` where ``pheno.dta`` is
the NONMEM dataset of Pharmpy's tests (``tests/testdata/nonmem/pheno.dta``, columns
``ID TIME AMT WGT APGR DV FA1 FA2``; 59 neonates, 155 observations). The data are not
bundled; the file is read and converted in memory (dose rows get ``EVID = 1``,
``MDV = 1``; ``APGRLT5 = APGR < 5``).

The model is ``pheno_real.mod``: ``CL = THETA1 * WGT * exp(ETA1)``,
``V = THETA2 * WGT * (1 + THETA3 [APGR < 5]) * exp(ETA2)``, proportional error, FOCE-I
(``METHOD=1 INTERACTION``). NONMEM's estimates (``pheno_real.ext``): THETA 0.00469555,
0.984258, 0.158920; OMEGA 0.0293508, 0.0279060; SIGMA 0.0132410; OFV 586.276.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bayes_nlme.estimation import estimate  # noqa: E402
from bayes_nlme.spec import parse_model  # noqa: E402

NONMEM = {"theta_CL": 0.00469555, "theta_V": 0.984258, "beta_V_APGRLT5": 0.158920}
NONMEM_OMEGA = {"omega_CL_CL": 0.0293508, "omega_V_V": 0.0279060, "sigma2_prop": 0.0132410}

MODEL = """
name = "pheno"
structural = "one_compartment_iv"
[parameters.CL]
typical = { lognormal = { median = 0.005, sigma = 1.0 } }
iiv = true
initial = 0.005
covariates = [{ column = "WGT", effect = "power", reference = 1.0, exponent = 1.0 }]
[parameters.V]
typical = { lognormal = { median = 1.0, sigma = 1.0 } }
iiv = true
initial = 1.0
covariates = [
  { column = "WGT", effect = "power", reference = 1.0, exponent = 1.0 },
  { column = "APGRLT5", effect = "linear", reference = 0.0, beta = { normal = { mean = 0.0, sd = 1.0 } } },
]
[omega]
structure = "diagonal"
prior = { inverse_gamma = { alpha = 2.0, beta = 0.1 } }
initial = [0.03, 0.03]
[residual]
model = "proportional"
prop = { inverse_gamma = { alpha = 2.0, beta = 0.05 } }
initial = { prop = 0.013 }
"""


def pheno_frame(path: Path) -> pd.DataFrame:
    """The NONMEM pheno dataset as a bayes_nlme table."""
    raw = pd.read_csv(path, sep=r"\s+")
    dose = raw["AMT"] > 0
    return pd.DataFrame(
        {
            "ID": raw["ID"],
            "TIME": raw["TIME"],
            "AMT": raw["AMT"],
            "DV": np.where(dose, np.nan, raw["DV"]),
            "EVID": dose.astype(int),
            "MDV": dose.astype(int),
            "WGT": raw["WGT"],
            "APGRLT5": (raw["APGR"] < 5).astype(float),
        }
    )


def main() -> None:
    """Fit by SAEM and FOCE-I and print both against NONMEM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    spec = parse_model(tomllib.loads(MODEL))
    data = pheno_frame(args.data)
    for method in ("saem", "focei"):
        started = time.perf_counter()
        fit = estimate(spec, data, method=method, seed=args.seed, covariance=None)
        value = fit.value
        print(
            f"{method}: {time.perf_counter() - started:.1f} s, OFV {fit.ofv:.3f} ({fit.info['ofv_method']}), "
            f"converged {fit.converged}"
        )
        for name, ref in {**NONMEM, **NONMEM_OMEGA}.items():
            print(f"  {name:16s} {value[name]:.6g}  NONMEM {ref:.6g}  ({100 * (value[name] / ref - 1):+.1f}%)")


if __name__ == "__main__":
    main()
