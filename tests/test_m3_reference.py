"""BLQ M3 (and M1) against a published NONMEM 7.6 run (issue 11's acceptance).

Reference: K.-S. Bae, *Pharmacometrics with NONMEM and R*, companion repository
github.com/AMC-CPT/PMx at commit 7dd0b717591ef8de28c0b8180874d89e3a3b35eb (GPL-3.0-or-later):
``data/iov-blq.csv`` (60 subjects, three oral occasions, 1260 observations of which 164 are
below the LLOQ of 0.5 mg/L) fitted by ``nm/120m3.ctl`` (M3: ``F_FLAG=1``,
``Y=PHI((LLOQ-IPRE)/W)``, ``METHOD=COND LAPLACE INTER``) and ``nm/120m1.ctl`` (M1: the BLQ
rows ignored, ``METHOD=COND INTER``). The figures below are copied from the run artefacts
``nm/120m3.R76/120m3.{ext,lst,phi}`` and ``nm/120m1.R76/120m1.ext``; the data (in a compact
wide layout) and the per-subject ``.phi`` values are in ``tests/data`` (see its README).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_nlme import estimate
from bayes_nlme.estimation.estimator import objective
from bayes_nlme.spec import parse_model

DATA = Path(__file__).parent / "data"
MODEL = Path(__file__).parents[1] / "models" / "pmx_iov_blq_m3.toml"
LLOQ = 0.5
OFFSETS = (0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0)

# 120m3.ext, iteration -1000000000 (final) and -1000000001 (standard errors, $COV UNCOND).
# THETA(4) and THETA(5) are the additive SD and the proportional CV: sigma2 = THETA^2.
M3_OFV = -1732.4443113734153
M3_OFV_WITH_CONSTANT = 281.86895341122727  # 120m3.lst, 1096 normally distributed points
M3_N_NORMAL = 1096
M3_ESTIMATES = {
    "theta_ka": 1.10843,
    "theta_CL": 3.12935,
    "theta_V": 49.4344,
    "omega_ka_ka": 0.181192,
    "omega_CL_CL": 0.332342,
    "omega_V_V": 0.0350523,
    "sigma2_add": 0.139757**2,
    "sigma2_prop": 0.120119**2,
}
M3_SE = {
    "theta_ka": 0.0664099,
    "theta_CL": 0.243559,
    "theta_V": 1.34975,
    "omega_ka_ka": 0.0399901,
    "omega_CL_CL": 0.0641060,
    "omega_V_V": 0.00806007,
    # delta method from the SEs of the SDs THETA(4), THETA(5): se(s^2) = 2 s se(s)
    "sigma2_add": 2 * 0.139757 * 0.0112266,
    "sigma2_prop": 2 * 0.120119 * 0.00713083,
}
# 120m1.ext (FOCE-I, BLQ rows ignored)
M1_OFV = -1970.2831081290847
M1_ESTIMATES = {
    "theta_ka": 1.24833,
    "theta_CL": 2.87749,
    "theta_V": 52.4340,
    "omega_ka_ka": 0.142121,
    "omega_CL_CL": 0.307886,
    "omega_V_V": 0.0390084,
    "sigma2_add": 0.0703280**2,
    "sigma2_prop": 0.149514**2,
}


def pmx_iov_blq() -> pd.DataFrame:
    """``iov-blq.csv`` in long (NONMEM) layout: a dose of 100 mg at 0, 168 and 336 h and
    seven samples after each. A BLQ row carries ``BLQ = 1`` and ``DV = LLOQ`` (the source file
    holds LLOQ/2 = 0.25 there, which neither M3 nor M1 reads)."""
    wide = pd.read_csv(DATA / "pmx_iov_blq.csv")
    rows = []
    for r in wide.itertuples(index=False):
        start = 168.0 * (r.OCC - 1)
        rows.append({"ID": r.ID, "TIME": start, "AMT": 100.0, "DV": np.nan, "EVID": 1, "MDV": 1, "BLQ": 0})
        for offset, dv in zip(OFFSETS, r[3:]):
            blq = int(dv < LLOQ)
            rows.append(
                {
                    "ID": r.ID,
                    "TIME": start + offset,
                    "AMT": 0.0,
                    "DV": LLOQ if blq else float(dv),
                    "EVID": 0,
                    "MDV": 0,
                    "BLQ": blq,
                }
            )
    return pd.DataFrame(rows)


def _spec(blq: str = "M3"):
    text = MODEL.read_text()
    if blq != "M3":
        text = text.replace('blq = "M3"', f'blq = "{blq}"')
    return parse_model(tomllib.loads(text))


def _objective(spec, data, method, value):
    return objective(
        spec,
        data,
        method=method,
        theta={k: v for k, v in value.items() if k.startswith("theta_")},
        omega=[value["omega_ka_ka"], value["omega_CL_CL"], value["omega_V_V"]],
        sigma2={"add": value["sigma2_add"], "prop": value["sigma2_prop"]},
    )


@pytest.fixture(scope="module")
def data():
    return pmx_iov_blq()


def test_dataset_matches_the_nonmem_run(data):
    """The layout NONMEM read: 1440 records, 60 subjects, 1260 observations, 164 of them BLQ
    (so 1096 normally distributed points, as 120m3.lst reports)."""
    obs = data["EVID"] == 0
    assert len(data) == 1440 and data["ID"].nunique() == 60
    assert int(obs.sum()) == 1260 and int(data["BLQ"].sum()) == 1260 - M3_N_NORMAL


def test_laplace_m3_objective_at_nonmem_estimates(data):
    """The Laplace M3 OFV at NONMEM's final estimates is NONMEM's, in total and per subject
    (the OBJ column of 120m3.phi). Differences come from the estimates' 6 printed digits."""
    spec = _spec()
    assert _objective(spec, data, "laplace", M3_ESTIMATES) == pytest.approx(M3_OFV, abs=0.01)
    # the source's own coding: DV = LLOQ/2 on BLQ rows, the limit in an LLOQ column
    source = data.assign(LLOQ=LLOQ, DV=data["DV"].where(data["BLQ"] == 0, LLOQ / 2))
    assert _objective(spec, source, "laplace", M3_ESTIMATES) == pytest.approx(M3_OFV, abs=0.01)
    phi = pd.read_csv(DATA / "pmx_120m3_phi.csv")
    assert phi["OBJ"].sum() == pytest.approx(M3_OFV, abs=1e-6)
    ours = [_objective(spec, data[data["ID"] == i], "laplace", M3_ESTIMATES) for i in phi["ID"]]
    np.testing.assert_allclose(ours, phi["OBJ"], atol=2e-3)


def test_laplace_m3_estimates_match_nonmem(data):
    """Estimated by Laplace: NONMEM's OFV, estimates, EBEs (120m3.phi) and sandwich standard
    errors ($COV UNCOND); the OFV omits log(2 pi) for the 1096 uncensored rows only."""
    fit = estimate(_spec(), data, method="laplace", covariance="sandwich")
    assert fit.converged and fit.fit_info()["blq_method"] == "M3" and fit.fit_info()["n_blq"] == 164
    assert fit.ofv == pytest.approx(M3_OFV, abs=0.01)
    assert fit.minus2ll - fit.ofv == pytest.approx(M3_N_NORMAL * np.log(2.0 * np.pi), rel=1e-12)
    assert fit.minus2ll == pytest.approx(M3_OFV_WITH_CONSTANT, abs=0.01)
    table = fit.summary().set_index("parameter")
    for name, value in M3_ESTIMATES.items():
        assert table.loc[name, "estimate"] == pytest.approx(value, rel=2e-3), name
        assert table.loc[name, "se"] == pytest.approx(M3_SE[name], rel=0.01), name
    phi = pd.read_csv(DATA / "pmx_120m3_phi.csv").set_index("ID")
    ebe = fit.ebe.set_index("ID").loc[phi.index]
    for column, eta in (("ETA1", "ETA_ka"), ("ETA2", "ETA_CL"), ("ETA3", "ETA_V")):
        np.testing.assert_allclose(ebe[eta], phi[column], atol=1e-3, err_msg=eta)


def test_focei_m1_matches_nonmem(data):
    """M1 drops the BLQ rows exactly as NONMEM's IGNORE=(BLQ.EQ.1): the FOCE-I OFV at NONMEM's
    estimates and after estimation is 120m1's; M3 at the same values is a different likelihood."""
    spec = _spec("M1")
    assert _objective(spec, data, "focei", M1_ESTIMATES) == pytest.approx(M1_OFV, abs=0.01)
    assert abs(_objective(_spec(), data, "laplace", M1_ESTIMATES) - M1_OFV) > 100.0
    fit = estimate(spec, data, method="focei", covariance=None)
    assert fit.converged and fit.fit_info()["n_blq"] == 0
    assert fit.ofv == pytest.approx(M1_OFV, abs=0.01)
    for name, value in M1_ESTIMATES.items():
        assert fit.value[name] == pytest.approx(value, rel=5e-3), name


@pytest.mark.slow
def test_nuts_m3_posterior_covers_nonmem_estimates(data):
    """NUTS with the M3 likelihood (weak priors): every NONMEM Laplace estimate lies in the 90%
    posterior interval and the posterior medians of the typical values are within 5% of it."""
    import warnings

    from bayes_nlme import sample
    from bayes_nlme.fit import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = sample(_spec(), data, draws=300, tune=300, chains=2, seed=1, quiet=True)
    assert fit.info()["blq_method"] == "M3" and fit.info()["n_blq"] == 164
    table = fit.summary().set_index("parameter")
    for name, value in M3_ESTIMATES.items():
        assert table.loc[name, "q5"] < value < table.loc[name, "q95"], (name, table.loc[name].to_dict())
        if name.startswith("theta_"):
            assert table.loc[name, "median"] == pytest.approx(value, rel=0.05), name
