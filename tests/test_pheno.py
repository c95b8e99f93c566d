"""The bundled phenobarbital data (pheno) and ``models/pheno.toml`` against NONMEM (issue 14).

Reference numbers: NONMEM 7 FOCE-I (``METHOD=1 INTERACTION``) of ``pheno_real``, the final
line of ``pheno.ext`` (estimates) and its ``-1000000001`` line (standard errors), in
``pharmpy/internals/example_models/`` of the ``pharmpy-core`` 2.2.0 wheel (see
``bayes_nlme/data/datasets/PHENO_SOURCE.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bayes_nlme.cli import main
from bayes_nlme.data import describe, load_dataset
from bayes_nlme.estimation import estimate
from bayes_nlme.spec import load_model

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "pheno.toml"
#: NONMEM FOCE-I estimates (pheno.ext, final line).
NONMEM_THETA = {"theta_CL": 0.00469555, "theta_V": 0.984258, "beta_V_APGRLT5": 0.158920}
NONMEM_OMEGA = {"omega_CL_CL": 0.0293508, "omega_V_V": 0.0279060, "sigma2_prop": 0.0132410}
NONMEM_OFV = 586.27605628520962
#: NONMEM's standard error of OMEGA(1,1) (pheno.ext, line -1000000001): RSE 46%.
NONMEM_SE_OMEGA_CL = 0.0134156


def test_pheno_is_bundled(capsys):
    ds = load_dataset("pheno")
    assert ds.n_subjects == 59 and ds.n_observations == 155
    table = ds.table
    doses = table[table["EVID"] == 1]
    assert len(doses) == 589 and (doses["AMT"] > 0).all()
    first = table[table["ID"] == 1].iloc[:2]
    assert first["AMT"].tolist() == [25.0, 0.0] and first["DV"].iloc[1] == 17.3 and first["WGT"].iloc[0] == 1.4
    np.testing.assert_array_equal(table["APGRLT5"], (table["APGR"] < 5).astype(float))
    info = describe("pheno")
    assert info["structural"] == "one_compartment_iv" and "Grasela" in info["reference"]
    assert (Path(info["path"]).parent / "PHENO_SOURCE.md").is_file()
    assert main(["check", str(MODEL), "--data", "pheno"]) == 0
    out = capsys.readouterr().out
    assert "subjects     59" in out and "observations 155" in out


def test_focei_on_pheno_matches_nonmem():
    """The same objective as NONMEM (OFV without ``n log 2 pi``): OFV within 0.5 (it is
    586.276 to the third decimal), thetas within 3% and omegas within 15%."""
    fit = estimate(load_model(MODEL), "pheno", method="focei", covariance=None)
    assert fit.converged
    assert fit.ofv == pytest.approx(NONMEM_OFV, abs=0.5)
    for name, ref in NONMEM_THETA.items():
        assert fit.value[name] == pytest.approx(ref, rel=0.03), name
    for name, ref in NONMEM_OMEGA.items():
        assert fit.value[name] == pytest.approx(ref, rel=0.15), name


def test_saem_on_pheno_within_5_percent_of_nonmem_focei_thetas():
    """Issue 14's acceptance: SAEM's thetas within 5% of NONMEM's FOCE-I thetas.

    With seed 1 SAEM's omega_CL is 0.040 against FOCE-I's 0.0294 (+37%); seeds 2 and 3 give
    0.0314 and 0.0308 (+7%, +5%). It is not that SAEM finds a better exact likelihood: by
    importance sampling (20000 draws per subject, MCSE 0.04) the exact OFV is 586.26 at
    FOCE-I's point and 586.37 at SAEM's (seed 1), slightly worse. The exact likelihood is
    flat along omega_CL (59 neonates with 1 to 6 samples each; with pheno's size SAEM runs
    one chain per subject, saemix's rule): moving FOCE-I's omega_CL to 0.035 / 0.040 / 0.050
    raises the exact OFV by only 0.21 / 0.56 / 1.48, and NONMEM's standard error of
    OMEGA(1,1) is 0.0134 (46%). So +37% is SAEM's Monte-Carlo error on a poorly determined
    variance, within 1 SE; the two points are equivalent in exact likelihood (checked here
    with the default 3000 draws).
    """
    spec = load_model(MODEL)
    saem = estimate(spec, "pheno", method="saem", seed=1, covariance=None)
    for name, ref in NONMEM_THETA.items():
        assert saem.value[name] == pytest.approx(ref, rel=0.05), name
    for name in ("omega_V_V", "sigma2_prop"):
        assert saem.value[name] == pytest.approx(NONMEM_OMEGA[name], rel=0.15), name
    assert abs(saem.value["omega_CL_CL"] - NONMEM_OMEGA["omega_CL_CL"]) < 1.5 * NONMEM_SE_OMEGA_CL
    focei = estimate(spec, "pheno", method="focei", covariance=None, ofv="importance_sampling", seed=1)
    assert saem.info["ofv_method"] == focei.info["ofv_method"] == "importance_sampling"
    assert max(saem.info["ofv_mcse"], focei.info["ofv_mcse"]) < 0.3
    assert abs(saem.ofv - focei.ofv) < 1.0  # far inside the 3.84 of a 95% likelihood interval
