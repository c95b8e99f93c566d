"""Where NUTS chains start, and how the verdict names chains that went wrong (issue 17).

The default suite fits a 40-subject version of the simulated benchmark study
(:func:`bayes_nlme.data.simulated.simulate_oral_study`, one-compartment oral, full
omega with an LKJ prior) with short chains and two seeds that, started from the
jittered prior point (``init="jitter"``, the behaviour before issue 17), leave chains
stuck in separate modes; started from the FOCE-I estimates they must agree.
"""

from __future__ import annotations

import json
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from bayes_nlme.cli import main
from bayes_nlme.data.simulated import STUDY_TRUTH, simulate_oral_study
from bayes_nlme.errors import ArgumentError, SpecError
from bayes_nlme.fit import ConvergenceWarning, sample
from bayes_nlme.fit.convergence import assess, disagreeing_chains, stuck_chains
from bayes_nlme.fit.flipflop import flip_flop_check
from bayes_nlme.spec import load_model, parse_model

STUDY_MODEL = "models/oral1_lkj.toml"
POPULATION = ("theta_CL", "theta_V", "theta_ka", "sigma2_prop")


@pytest.fixture(scope="module")
def study40():
    return simulate_oral_study(40)


def chain_spread(fit, name: str) -> float:
    """Range of the per-chain means of ``name`` in pooled posterior sds."""
    x = np.asarray(fit.tree["posterior"][name].transpose("chain", "draw").values)
    return float(np.ptp(x.mean(axis=1)) / x.std())


@pytest.mark.parametrize("seed", [1, 2])
def test_chains_start_in_one_mode(study40, seed, tmp_path):
    """With init="jitter" these seeds leave chains stuck at their start (measured: R-hat
    6.0 and 5.5, chains 0 and 3, and 0, 1 and 2 stuck)."""
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", ConvergenceWarning)
        fit = sample(STUDY_MODEL, study40, draws=200, tune=200, chains=4, seed=seed, quiet=True)
    assert fit.details["init"]["method"] == "focei"
    verdict = fit.convergence
    assert verdict.stuck_chains == [] and verdict.disagreeing_chains == {}
    assert verdict.divergences == 0
    assert verdict.max_r_hat < 1.05
    for name in POPULATION:
        assert chain_spread(fit, name) < 1.0, name
    table = fit.summary().set_index("parameter")
    assert abs(np.log(table.loc["theta_V", "mean"] / STUDY_TRUTH["V"])) < 0.15
    assert abs(np.log(table.loc["sigma2_prop", "mean"] / STUDY_TRUTH["prop_sd"] ** 2)) < 0.3
    if seed == 1:
        info = json.loads((fit.save(tmp_path / "fit") / "fit.json").read_text(encoding="utf-8"))
        assert info["init"]["method"] == "focei" and info["init"]["jitter"] == 0.1
        assert info["convergence"]["stuck_chains"] == [] and info["convergence"]["disagreeing_chains"] == {}


def test_simulated_study_design():
    single = simulate_oral_study()
    assert (single["EVID"] == 0).sum() == 1800 and single["ID"].nunique() == 120
    multiple = simulate_oral_study(doses=3)
    assert (multiple["EVID"] == 0).sum() == 4680 and (multiple["EVID"] == 1).sum() == 360
    two = simulate_oral_study(10, structural="two_compartment_oral")
    assert np.all(two.loc[two["EVID"] == 0, "DV"] > 0)


# ----------------------------------------------------------------- verdict (no sampling)


def _posterior(means, n=400, seed=0, frozen=()):
    rng = np.random.default_rng(seed)
    x = np.stack([m + rng.normal(0.0, 1.0, n) for m in means])
    y = rng.normal(size=x.shape)
    for c in frozen:
        x[c], y[c] = means[c], 0.0
    return xr.Dataset({"theta_V": (("chain", "draw"), x), "theta_CL": (("chain", "draw"), y)})


def _stats(steps, n=400):
    chains = len(steps)
    return xr.Dataset(
        {
            "diverging": (("chain", "draw"), np.zeros((chains, n), dtype=bool)),
            "energy": (("chain", "draw"), np.random.default_rng(1).normal(size=(chains, n))),
            "step_size": (("chain", "draw"), np.tile(np.asarray(steps, dtype=float)[:, None], (1, n))),
            "depth": (("chain", "draw"), np.full((chains, n), 3)),
        }
    )


def test_verdict_names_stuck_chains():
    draws = _posterior([70.0, 70.0, 110.0, 70.0], frozen=(2,))
    stats = _stats([0.3, 0.3, 1e-11, 0.3])
    stuck, info = stuck_chains(draws, stats)
    assert stuck == [2] and info["repeat_fraction"][2] == 1.0
    verdict = assess(draws, stats, max_treedepth=10, init="jitter")
    assert not verdict.ok and verdict.stuck_chains == [2]
    text = " ".join(verdict.messages)
    assert "stuck chain: chain 2 (step size 1e-11)" in text and "--init focei" in text
    assert json.loads(json.dumps(verdict.to_dict()))["stuck_chains"] == [2]


def test_verdict_names_chains_in_separate_modes():
    draws = _posterior([70.0, 70.0, 70.0, 100.0])
    assert disagreeing_chains(draws) == {"3": ["theta_V"]}
    verdict = assess(draws, _stats([0.3] * 4), max_treedepth=10, init="focei")
    assert verdict.stuck_chains == [] and verdict.disagreeing_chains == {"3": ["theta_V"]}
    assert any("separate modes: chain 3: theta_V" in m for m in verdict.messages)
    assert not any("flip-flop" in m for m in verdict.messages)


def test_flip_flop_only_when_ka_and_k_swap():
    spec = load_model(STUDY_MODEL)
    n = 300
    rng = np.random.default_rng(3)

    def posterior(ka_medians):
        c = len(ka_medians)
        ka = np.stack([m * np.exp(rng.normal(0, 0.05, n)) for m in ka_medians])
        return xr.Dataset(
            {
                "theta_ka": (("chain", "draw"), ka),
                "theta_CL": (("chain", "draw"), 4.0 * np.exp(rng.normal(0, 0.05, (c, n)))),
                "theta_V": (("chain", "draw"), 70.0 * np.exp(rng.normal(0, 0.05, (c, n)))),
            }
        )

    # ka differs between chains (15 to 60 times k everywhere): not flip-flop
    assert flip_flop_check(spec, posterior([1.0, 1.0, 3.4, 0.9])) is None
    message = flip_flop_check(spec, posterior([1.0, 1.0, 0.02, 1.0]))  # k = 0.057: chain 2 swapped
    assert message is not None and "flip-flop" in message and "ka < k in chain 2" in message


def test_divergence_advice_fits_the_parameterisation():
    draws = _posterior([70.0, 70.0])
    stats = _stats([0.3, 0.3])
    stats["diverging"][0, :5] = True
    centred = " ".join(assess(draws, stats, centered=True).messages)
    assert "--centered false" in centred and "--target-accept" in centred and "centered=True" not in centred
    noncentred = " ".join(assess(draws, stats, centered=False).messages)
    assert "--centered true" in noncentred


# ------------------------------------------------------------------ settings


def test_sampling_table_options():
    text = Path(STUDY_MODEL).read_text(encoding="utf-8")
    extra = 'target_accept = 0.95\ncentered = false\ninit = "fo"\nadaptation = "low_rank"\n'
    spec = parse_model(tomllib.loads(text + extra))
    s = spec.sampling
    assert (s.target_accept, s.centered, s.init, s.adaptation) == (0.95, False, "fo", "low_rank")
    from bayes_nlme.spec import model_to_dict

    assert model_to_dict(spec)["sampling"]["init"] == "fo"
    for bad, key in (
        ("target_accept = 1.5", "sampling.target_accept"),
        ('centered = "yes"', "sampling.centered"),
        ('init = "pathfinder"', "sampling.init"),
        ('adaptation = "full"', "sampling.adaptation"),
    ):
        with pytest.raises(SpecError, match=key):
            parse_model(tomllib.loads(text + bad + "\n"))


def test_sample_rejects_bad_options(study40):
    with pytest.raises(ArgumentError, match="init"):
        sample(STUDY_MODEL, study40, init="pathfinder", quiet=True)
    with pytest.raises(ArgumentError, match="adaptation"):
        sample(STUDY_MODEL, study40, adaptation="full", quiet=True)
    with pytest.raises(ArgumentError, match="nutpie"):
        sample(STUDY_MODEL, study40, adaptation="low_rank", sampler="pymc", quiet=True)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--init", "pathfinder"], ["--init", "invalid choice"]),
        (["--target-accept", "1.2"], ["--target-accept", "(0, 1)"]),
        (["--centered", "CL;V"], ["--centered", "invalid choice"]),
    ],
)
def test_cli_rejects_bad_nuts_options(tmp_path, capsys, args, words):
    out = tmp_path / "fit"
    code = main(["fit", STUDY_MODEL, "--data", "theophylline", "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert all(w in err for w in words), err


def test_cli_centred_parameters_must_have_iiv(tmp_path, capsys):
    out = tmp_path / "fit"
    code = main(["fit", "models/theophylline.toml", "--data", "theophylline", "--out", str(out), "--centered", "CL,Q"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "centered" in err and "Q have no IIV" in err and "ka, CL, V" in err, err
    assert "Traceback" not in err


def test_sampling_table_takes_centred_parameter_names():
    doc = tomllib.loads(Path("models/theophylline.toml").read_text(encoding="utf-8"))
    doc["sampling"]["centered"] = ["V", "CL"]
    assert parse_model(doc).sampling.centered == ("V", "CL")
    doc["sampling"]["centered"] = ["CL", "Q"]
    with pytest.raises(SpecError, match="sampling.centered"):
        parse_model(doc)


# ----------------------------------------------------------- start point mapping


def _spec(omega: dict, **extra):
    doc = tomllib.loads(Path("models/theophylline.toml").read_text(encoding="utf-8"))
    doc["omega"] = omega
    doc.update(extra)
    return parse_model(doc)


@pytest.mark.filterwarnings("ignore:PyTensor could not link to a BLAS:UserWarning")
@pytest.mark.parametrize("centered", [True, False, ("CL", "V"), ("ka",)], ids=["c", "nc", "mixed-ka-nc", "mixed-ka-c"])
@pytest.mark.parametrize(
    "omega",
    [
        {"structure": "full", "prior": {"inverse_wishart": {"df": 4, "scale": [0.4, 0.4, 0.4]}}},
        {"structure": "full", "prior": {"lkj": {"eta": 2.0, "sd": {"half_normal": {"sigma": 1.0}}}}},
        pytest.param(
            {"structure": [["ka", "V"], ["CL"]], "prior": {"inverse_wishart": {"df": 4, "scale": [0.4, 0.4, 0.4]}}},
            marks=pytest.mark.slow,
        ),
        pytest.param(
            {"structure": "diagonal", "prior": {"inverse_gamma": {"alpha": 2.0, "beta": 0.1}}}, marks=pytest.mark.slow
        ),
    ],
    ids=["iw", "lkj", "iw-blocks", "diagonal"],
)
def test_start_point_reproduces_the_estimates(omega, centered):
    """At the start point the model's omega, etas and individual parameters are the
    FOCE-I estimates and EBEs (omega floored at its eigenvalue floor)."""
    from bayes_nlme.build.model import build
    from bayes_nlme.estimation import estimate
    from bayes_nlme.fit.init import OMEGA_FLOOR, _estimate_map, _omega_matrix, flat_point, start_values

    spec = _spec(omega)
    built = build(spec, "theophylline", centered=centered)
    result = estimate(spec, "theophylline", method="focei", covariance=None)
    x0 = flat_point(built.model, start_values(built, result))
    model = built.model
    point, i = {}, 0
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        size = int(np.prod(model.initial_point()[value.name].shape))
        point[value.name] = x0[i : i + size].reshape(model.initial_point()[value.name].shape)
        i += size
    assert i == x0.size
    import pytensor

    outs = model.replace_rvs_by_values([model["omega"], model["eta"], model["individual"], model["theta_ka"]])
    fn = pytensor.function(model.value_vars, outs, on_unused_input="ignore", mode="FAST_COMPILE")
    omega_at, eta_at, individual_at, ka_at = fn(*[point[v.name] for v in model.value_vars])
    expected = _omega_matrix(spec, _estimate_map(result))
    assert np.all(np.linalg.eigvalsh(expected) >= OMEGA_FLOOR * (1 - 1e-9))
    np.testing.assert_allclose(omega_at, expected, rtol=1e-6, atol=1e-9)
    ebe = result.ebe.set_index("ID").loc[list(built.dataset.subject_ids)]
    np.testing.assert_allclose(eta_at, ebe[[f"ETA_{n}" for n in spec.iiv_names]].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(individual_at, ebe[list(spec.parameter_names)].to_numpy(), rtol=1e-6)
    theta_ka = result.estimates.set_index("parameter").loc["theta_ka", "estimate"]
    np.testing.assert_allclose(ka_at, theta_ka, rtol=1e-6)


def test_start_fit_that_does_not_converge_is_recorded_not_announced(caplog):
    """The FOCE-I start of the full-omega Theophylline model ends on the omega boundary:
    the NUTS fit records that in its init record, without the frequentist engine's
    'NOT CONVERGED' line (which concerns a FOCE-I fit the user did not ask for)."""
    import logging

    from bayes_nlme.data import load_dataset
    from bayes_nlme.fit.init import frequentist_fit

    with caplog.at_level(logging.INFO, logger="bayes_nlme"):
        result, info = frequentist_fit(load_model("models/theophylline.toml"), load_dataset("theophylline"), "auto")
    assert result is not None and info["method"] == "focei" and info["converged"] is False
    assert not [r for r in caplog.records if "NOT CONVERGED" in r.getMessage()], caplog.text
    assert logging.getLogger("bayes_nlme.estimation").level == logging.NOTSET
