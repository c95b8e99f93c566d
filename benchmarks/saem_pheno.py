"""SAEM (and FOCE-I) on the bundled phenobarbital data against NONMEM's FOCE-I results.

Run with ``python benchmarks/saem_pheno.py [--seed N]``.

The model is ``models/pheno.toml`` (NONMEM's ``pheno_real``: ``CL = THETA1 * WGT *
exp(ETA1)``, ``V = THETA2 * WGT * (1 + THETA3 [APGR < 5]) * exp(ETA2)``, proportional
error) on the bundled ``pheno`` data (59 neonates, 155 observations). The reference
numbers are NONMEM's FOCE-I (``METHOD=1 INTERACTION``) results, the final line of
``pheno.ext`` in the ``pharmpy-core`` 2.2.0 wheel (``pharmpy/internals/example_models``);
see ``bayes_nlme/data/datasets/PHENO_SOURCE.md``. For each method it prints the seconds,
the OFV (the method's own and, for both, the importance-sampling OFV with its MCSE, so
that the two points compare on the exact likelihood) and the estimates against NONMEM.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bayes_nlme.estimation import estimate  # noqa: E402
from bayes_nlme.spec import load_model  # noqa: E402

MODEL = ROOT / "models" / "pheno.toml"
#: NONMEM 7 FOCE-I, final line of pheno.ext (Pharmpy 2.2.0 example_models).
NONMEM = {"theta_CL": 0.00469555, "theta_V": 0.984258, "beta_V_APGRLT5": 0.158920}
NONMEM_OMEGA = {"omega_CL_CL": 0.0293508, "omega_V_V": 0.0279060, "sigma2_prop": 0.0132410}
NONMEM_OFV = 586.27605628520962


def main() -> None:
    """Fit by SAEM and FOCE-I and print both against NONMEM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    spec = load_model(MODEL)
    print(f"NONMEM FOCE-I OFV {NONMEM_OFV:.3f}")
    for method in ("saem", "focei"):
        started, cpu = time.perf_counter(), time.process_time()
        fit = estimate(spec, "pheno", method=method, seed=args.seed, covariance=None)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        is_fit = fit if method == "saem" else None
        if is_fit is None:
            is_fit = estimate(spec, "pheno", method="focei", seed=args.seed, covariance=None, ofv="importance_sampling")
        print(
            f"{method}: {wall:.1f} s (CPU {cpu:.1f} s), OFV {fit.ofv:.3f} ({fit.info['ofv_method']}), "
            f"IS OFV {is_fit.ofv:.3f} +- {is_fit.info['ofv_mcse']:.3f}, converged {fit.converged}"
        )
        for name, ref in {**NONMEM, **NONMEM_OMEGA}.items():
            print(f"  {name:16s} {fit.value[name]:.6g}  NONMEM {ref:.6g}  ({100 * (fit.value[name] / ref - 1):+.1f}%)")


if __name__ == "__main__":
    main()
