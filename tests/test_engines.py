"""The engine seam: every method through one interface."""

from __future__ import annotations

import pytest

from bayes_nlme import estimate, load_model
from bayes_nlme.engines import engine, engines, fit_model
from bayes_nlme.errors import ArgumentError
from bayes_nlme.estimation.problem import METHODS

THEO = "models/theophylline.toml"


def test_registry_has_every_method():
    names = engines()
    assert {"nuts", "prior", *METHODS} <= set(names)
    assert names["nuts"].kind == "bayesian" and names["focei"].kind == "frequentist"
    assert "sampler" in names["nuts"].settings and "covariance" in names["focei"].settings
    with pytest.raises(ArgumentError, match="unknown method 'mcmc'.*valid: nuts"):
        engine("mcmc")
    with pytest.raises(ArgumentError, match="method 'focei' has no setting 'draws'"):
        fit_model(load_model(THEO), "theophylline", method="focei", draws=10)


def test_fit_model_is_the_method_itself():
    spec = load_model(THEO)
    via_seam = fit_model(spec, "theophylline", method="foce", covariance=None)
    direct = estimate(spec, "theophylline", method="foce", covariance=None)
    assert via_seam.method == "foce" and via_seam.ofv == pytest.approx(direct.ofv, abs=1e-9)


def test_cli_methods_are_the_registered_engines():
    from bayes_nlme.cli import METHODS as CLI_METHODS

    assert set(CLI_METHODS) == set(engines())
