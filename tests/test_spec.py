"""Tests of bayes_nlme.spec: TOML model files, validation and round trips."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from bayes_nlme.errors import InputError, SpecError
from bayes_nlme.spec import (
    LKJ,
    STRUCTURAL_PARAMETERS,
    CovariateEffect,
    HalfNormal,
    InverseGamma,
    InverseWishart,
    LogNormal,
    ModelSpec,
    Normal,
    Omega,
    Parameter,
    Residual,
    Sampling,
    dump_model,
    load_model,
    model_to_dict,
    parse_model,
    to_toml,
)

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_EXAMPLE = ROOT / "tests" / "data" / "contract_example.toml"
THEOPHYLLINE = ROOT / "models" / "theophylline.toml"

BASE = """
name = "test"
structural = "one_compartment_oral"

[parameters.ka]
typical = { lognormal = { median = 1.5, sigma = 0.5 } }

[parameters.CL]
typical = { lognormal = { median = 3.0, sigma = 0.5 } }

[parameters.V]
typical = { lognormal = { median = 30.0, sigma = 0.5 } }
"""

RESIDUAL = """
[residual]
model = "additive"
add = { inverse_gamma = { alpha = 2.0, beta = 0.5 } }
"""


def write(tmp_path: Path, text: str, name: str = "model.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def roundtrip(spec: ModelSpec) -> None:
    text = to_toml(spec)
    assert parse_model(tomllib.loads(text)) == spec
    assert parse_model(model_to_dict(spec)) == spec


def lognormal(median: float) -> LogNormal:
    return LogNormal(median=median, sigma=0.5)


# --------------------------------------------------------------------------- good files
def test_contract_example_parses() -> None:
    spec = load_model(CONTRACT_EXAMPLE)
    assert spec.name == "theophylline-1cmt"
    assert spec.structural == "one_compartment_oral"
    assert spec.columns == {"ID": "Subject"}
    assert spec.parameter_names == ("ka", "CL", "V")
    assert spec.iiv_names == ("ka", "CL", "V")
    cl = spec.parameter("CL")
    assert cl.typical == LogNormal(median=3.0, sigma=0.5)
    assert cl.initial == 2.8
    assert cl.covariates == (CovariateEffect("WT", "power", 70.0, 0.75),)
    assert not cl.covariates[0].estimated
    assert spec.omega.structure == "full"
    assert spec.omega.blocks == (("ka", "CL", "V"),)
    assert spec.omega.prior == InverseWishart(df=5, scale=np.diag([0.2, 0.2, 0.2]).tolist())
    assert spec.residual.model == "combined"
    assert spec.residual.variances == ("sigma2_add", "sigma2_prop")
    assert spec.residual.add == InverseGamma(alpha=2.0, beta=0.5)
    assert spec.residual.prop == InverseGamma(alpha=2.0, beta=0.01)
    assert spec.sampling == Sampling(draws=1000, tune=1000, chains=4, seed=1)
    assert spec.flip_flop_guard is None and spec.uses_flip_flop_guard
    assert spec.covariate_columns == ("WT",)
    roundtrip(spec)


def test_contract_example_built_in_python_is_equal() -> None:
    spec = ModelSpec(
        name="theophylline-1cmt",
        structural="one_compartment_oral",
        parameters=(
            Parameter("ka", typical=LogNormal(1.5, 0.5)),
            Parameter(
                "CL", typical=LogNormal(3, 0.5), initial=2.8, covariates=(CovariateEffect("WT", "power", 70, 0.75),)
            ),
            Parameter("V", typical=LogNormal(30, 0.5)),
        ),
        omega=Omega.from_structure("full", ("ka", "CL", "V"), prior=InverseWishart(df=5, scale=[0.2, 0.2, 0.2])),
        residual=Residual("combined", add=InverseGamma(2, 0.5), prop=InverseGamma(2, 0.01)),
        columns={"ID": "Subject"},
    )
    assert spec == load_model(CONTRACT_EXAMPLE)
    assert hash(spec) == hash(load_model(CONTRACT_EXAMPLE))


def test_theophylline_model_loads() -> None:
    spec = load_model(THEOPHYLLINE)
    assert spec.structural == "one_compartment_oral"
    assert spec.iiv_names == ("ka", "CL", "V")
    assert [p.typical for p in spec.parameters] == [LogNormal(1.5, 1.0), LogNormal(3.0, 1.0), LogNormal(30.0, 1.0)]
    assert [p.initial for p in spec.parameters] == [1.5, 2.8, 32.0]
    assert spec.omega.structure == "full"
    prior = spec.omega.prior
    assert isinstance(prior, InverseWishart) and prior.df == 4 and prior.dim == 3
    # documented: each variance is marginally inverse-gamma(1, scale/2), mode 0.1
    mode = (prior.scale[0][0] / 2) / 2
    assert 0.05 <= mode <= 0.3
    assert spec.residual == Residual("additive", add=InverseGamma(2.0, 0.5))
    assert spec.sampling == Sampling(1000, 1000, 4, 1)
    roundtrip(spec)


def test_defaults_and_absent_tables(tmp_path: Path) -> None:
    spec = load_model(write(tmp_path, BASE + RESIDUAL))
    assert spec.omega == Omega((("ka",), ("CL",), ("V",)))
    assert spec.omega.structure == "diagonal" and spec.omega.prior is None
    assert spec.sampling == Sampling()
    assert spec.columns == {}
    assert spec.residual.initial == {}
    roundtrip(spec)


def test_no_iiv_needs_no_omega(tmp_path: Path) -> None:
    text = BASE.replace("sigma = 0.5 } }", "sigma = 0.5 } }\niiv = false") + RESIDUAL
    spec = load_model(write(tmp_path, text))
    assert spec.iiv_names == ()
    assert spec.omega.blocks == ()
    assert "[omega]" not in to_toml(spec)
    roundtrip(spec)


# --------------------------------------------------------------------------- round trips
def _params(*, iiv=(True, True, True)) -> tuple[Parameter, ...]:
    return (
        Parameter("ka", typical=lognormal(1.5), iiv=iiv[0]),
        Parameter("CL", typical=lognormal(3.0), iiv=iiv[1], initial=2.5),
        Parameter("V", typical=lognormal(30.0), iiv=iiv[2]),
    )


def _spec(omega: Omega, *, parameters=None, residual=None, structural="one_compartment_oral", **kwargs) -> ModelSpec:
    return ModelSpec(
        name=kwargs.pop("name", "variant"),
        structural=structural,
        parameters=parameters if parameters is not None else _params(),
        omega=omega,
        residual=residual if residual is not None else Residual("additive"),
        **kwargs,
    )


NAMES = ("ka", "CL", "V")
FULL_SCALE = ((0.3, 0.05, 0.0), (0.05, 0.2, 0.01), (0.0, 0.01, 0.4))

OMEGA_VARIANTS = {
    "diagonal-none": Omega.from_structure("diagonal", NAMES),
    "diagonal-ig": Omega.from_structure("diagonal", NAMES, prior=InverseGamma(2, 0.2)),
    "diagonal-iw": Omega.from_structure("diagonal", NAMES, prior=InverseWishart(3, [0.1, 0.2, 0.3])),
    "full-iw-diag": Omega.from_structure("full", NAMES, prior=InverseWishart(4, [0.4] * 3)),
    "full-iw-matrix": Omega.from_structure("full", NAMES, prior=InverseWishart(6, FULL_SCALE)),
    "full-lkj-halfnormal": Omega.from_structure("full", NAMES, prior=LKJ(2.0, HalfNormal(0.5))),
    "full-lkj-lognormal": Omega.from_structure("full", NAMES, prior=LKJ(1, LogNormal(0.3, 1))),
    "blocks-iw": Omega.from_structure(
        [["CL", "V"], ["ka"]], NAMES, prior=InverseWishart(5, [[0.1, 0, 0], [0, 0.2, 0.05], [0, 0.05, 0.3]])
    ),
    "blocks-lkj": Omega.from_structure([["ka"], ["V", "CL"]], NAMES, prior=LKJ(1.5, HalfNormal(1.0))),
    "diagonal-initial": Omega.from_structure("diagonal", NAMES, initial=[0.1, 0.2, 0.3]),
    "full-initial": Omega.from_structure("full", NAMES, prior=InverseWishart(4, [0.4] * 3), initial=FULL_SCALE),
}


@pytest.mark.parametrize("variant", sorted(OMEGA_VARIANTS))
def test_roundtrip_omega(variant: str, tmp_path: Path) -> None:
    spec = _spec(OMEGA_VARIANTS[variant])
    roundtrip(spec)
    path = tmp_path / "m.toml"
    dump_model(spec, path)
    assert load_model(path) == spec


def test_blocks_are_put_in_declaration_order() -> None:
    spec = _spec(OMEGA_VARIANTS["blocks-lkj"])
    assert spec.omega.blocks == (("ka",), ("CL", "V"))
    assert spec.omega.names == spec.iiv_names
    assert spec.omega.structure == "block"
    assert spec.omega.structure_value == [["ka"], ["CL", "V"]]


@pytest.mark.parametrize(
    "model,slots",
    [
        ("additive", ("add",)),
        ("proportional", ("prop",)),
        ("combined", ("add", "prop")),
        ("exponential", ("exp",)),
    ],
)
def test_roundtrip_residual_models(model: str, slots: tuple[str, ...]) -> None:
    kinds = [InverseGamma(2, 0.5), HalfNormal(0.3), LogNormal(0.1, 1)]
    priors = {slot: kinds[i] for i, slot in enumerate(slots)}
    initial = {slot: 0.1 * (i + 1) for i, slot in enumerate(slots)}
    residual = Residual(model, initial=initial, **priors)
    assert residual.variances == tuple(f"sigma2_{s}" for s in slots)
    roundtrip(_spec(OMEGA_VARIANTS["diagonal-ig"], residual=residual))
    roundtrip(_spec(OMEGA_VARIANTS["diagonal-ig"], residual=Residual(model)))


def test_roundtrip_fixed_parameters_and_covariates() -> None:
    params = (
        Parameter("ka", fixed=1.2),
        Parameter(
            "CL",
            typical=lognormal(3),
            covariates=(
                CovariateEffect("WT", "power", 70, Normal(0.75, 0.1)),
                CovariateEffect("CRCL", "linear", 100, 0.004),
                CovariateEffect("AGE", "exponential", 40, Normal(0, 0.05)),
            ),
        ),
        Parameter(
            "V",
            typical=lognormal(30),
            iiv=False,
            covariates=(
                CovariateEffect("WT", "power", 70, 1.0),
                CovariateEffect("SEX", "linear", 0, Normal(0.0, 0.2)),
            ),
        ),
        Parameter("tlag", typical=LogNormal(0.25, 0.5), iiv=False, initial=0.2),
        Parameter("F", fixed=0.9),
    )
    spec = _spec(Omega.from_structure("diagonal", ("CL",), prior=InverseGamma(2, 0.2)), parameters=params)
    assert spec.parameter("ka").iiv is False
    assert spec.iiv_names == ("CL",)
    assert [p.name for p in spec.estimated] == ["CL", "V", "tlag"]
    assert spec.covariate_columns == ("WT", "CRCL", "AGE", "SEX")
    assert spec.parameter("CL").covariates[0].canonical_name("CL") == "beta_CL_WT"
    roundtrip(spec)
    text = to_toml(spec)
    assert "exponent = { normal = { mean = 0.75, sd = 0.1 } }" in text
    assert "beta = 0.004" in text


@pytest.mark.parametrize("structural", sorted(STRUCTURAL_PARAMETERS))
def test_roundtrip_every_structural_model(structural: str) -> None:
    names = STRUCTURAL_PARAMETERS[structural]
    params = tuple(Parameter(n, typical=lognormal(1.0 + i)) for i, n in enumerate(names))
    spec = _spec(
        Omega.from_structure("full", names, prior=LKJ(2, HalfNormal(1))),
        parameters=params,
        structural=structural,
        flip_flop_guard=False if "iv" in structural else True,
        sampling=Sampling(draws=200, tune=300, chains=2, seed=0),
        columns={"ID": "Subject", "DV": "conc", "TIME": "Time"},
    )
    roundtrip(spec)


def test_roundtrip_odd_strings() -> None:
    spec = _spec(
        OMEGA_VARIANTS["diagonal-none"],
        name='odd "name" \\ é\ttab',
        columns={"ID": "subject id", "DV": "conc.mg/L"},
        parameters=(
            Parameter("ka", typical=lognormal(1)),
            Parameter("CL", typical=lognormal(3), covariates=(CovariateEffect("body weight (kg)", "power", 70, 0.75),)),
            Parameter("V", typical=LogNormal(1e-5, 1e-3)),
        ),
    )
    roundtrip(spec)


def test_python_and_toml_specs_agree(tmp_path: Path) -> None:
    text = (
        BASE.replace(
            "[parameters.V]",
            """[[parameters.CL.covariates]]
column = "WT"
effect = "linear"
reference = 70
beta = { normal = { mean = 0.01, sd = 0.01 } }

[parameters.V]""",
        )
        + """
[parameters.F]
fixed = 1
iiv = false

[omega]
structure = [["CL", "V"], ["ka"]]
prior = { lkj = { eta = 2, sd = { half_normal = { sigma = 1 } } } }
initial = [[0.2, 0, 0], [0, 0.1, 0.02], [0, 0.02, 0.1]]

[residual]
model = "exponential"
exp = { inverse_gamma = { alpha = 3, beta = 0.2 } }
initial = { exp = 0.04 }

[sampling]
draws = 500
seed = 42
"""
    )
    from_toml = load_model(write(tmp_path, text))
    built = ModelSpec(
        name="test",
        structural="one_compartment_oral",
        parameters=[
            Parameter("ka", LogNormal(1.5, 0.5)),
            Parameter("CL", LogNormal(3, 0.5), covariates=[CovariateEffect("WT", "linear", 70, Normal(0.01, 0.01))]),
            Parameter("V", LogNormal(30, 0.5)),
            Parameter("F", fixed=1),
        ],
        omega=Omega(
            (("ka",), ("V", "CL")),
            prior=LKJ(2, HalfNormal(1)),
            structure="block",
            initial=np.array([[0.2, 0, 0], [0, 0.1, 0.02], [0, 0.02, 0.1]]),
        ),
        residual=Residual("exponential", exp=InverseGamma(3, 0.2), initial={"exp": 0.04}),
        sampling=Sampling(draws=500, seed=42),
    )
    assert built == from_toml
    roundtrip(built)


def test_prior_scaling_keeps_valid_priors() -> None:
    iw = InverseWishart(4, [0.4] * 3)
    assert iw.scaled(2.0).df > iw.dim - 1
    assert InverseGamma(2, 0.5).scaled(0.5) == InverseGamma(8, 0.5 / 3 * 9)
    assert LKJ(1, HalfNormal(1)).scaled(2) == LKJ(1, HalfNormal(2))


# --------------------------------------------------------------------------- bad files
RES = RESIDUAL


def _replace(old: str, new: str, base: str = BASE + RESIDUAL) -> str:
    assert old in base
    return base.replace(old, new, 1)


CL_TYPICAL = "typical = { lognormal = { median = 3.0, sigma = 0.5 } }"
BAD_FILES = {
    "unknown structural": (
        _replace('"one_compartment_oral"', '"three_compartment"'),
        ["key 'structural'", "three_compartment", "'one_compartment_oral'", "'two_compartment_iv'"],
    ),
    "missing CL": (
        _replace("[parameters.CL]\n" + CL_TYPICAL + "\n", ""),
        ["key 'parameters.CL'", "missing parameter 'CL'", "'ka'", "'V'"],
    ),
    "typo key": (
        _replace("[parameters.CL]\ntypical", "[parameters.CL]\ntypcial"),
        ["key 'parameters.CL.typcial'", "unknown key 'typcial'", "'typical'", "'fixed'"],
    ),
    "unknown prior kind": (
        _replace(CL_TYPICAL, "typical = { gamma = { a = 1, b = 2 } }"),
        ["key 'parameters.CL.typical'", "unknown prior kind 'gamma'", "'lognormal'"],
    ),
    "prior kind not allowed": (
        _replace(CL_TYPICAL, "typical = { normal = { mean = 3, sd = 1 } }"),
        ["key 'parameters.CL.typical'", "'normal' is not allowed", "'lognormal'"],
    ),
    "two prior keys": (
        _replace(CL_TYPICAL, "typical = { lognormal = { median = 3.0, sigma = 0.5 }, normal = { mean = 3, sd = 1 } }"),
        ["key 'parameters.CL.typical'", "exactly one key", "'lognormal'"],
    ),
    "negative sigma": (
        _replace("median = 3.0, sigma = 0.5", "median = 3.0, sigma = -0.5"),
        ["key 'parameters.CL.typical.lognormal.sigma'", "> 0"],
    ),
    "string median": (
        _replace("median = 3.0", 'median = "3"'),
        ["key 'parameters.CL.typical.lognormal.median'", "expected a number", "a string"],
    ),
    "unknown prior field": (
        _replace("median = 3.0, sigma = 0.5", "median = 3.0, sd = 0.5"),
        ["key 'parameters.CL.typical.lognormal.sd'", "'median'", "'sigma'"],
    ),
    "missing prior field": (
        _replace("median = 3.0, sigma = 0.5", "median = 3.0"),
        ["key 'parameters.CL.typical.lognormal.sigma'", "missing"],
    ),
    "non-PD IW scale": (
        BASE + '[omega]\nstructure = "full"\nprior = { inverse_wishart = { df = 5, scale = '
        "[[1, 2, 0], [2, 1, 0], [0, 0, 1]] } }\n" + RES,
        ["key 'omega.prior.inverse_wishart.scale'", "positive definite"],
    ),
    "asymmetric IW scale": (
        BASE + '[omega]\nstructure = "full"\nprior = { inverse_wishart = { df = 5, scale = '
        "[[1, 0.1, 0], [0, 1, 0], [0, 0, 1]] } }\n" + RES,
        ["key 'omega.prior.inverse_wishart.scale'", "symmetric"],
    ),
    "wrong dim scale": (
        BASE + '[omega]\nstructure = "full"\nprior = { inverse_wishart = { df = 5, scale = [0.2, 0.2] } }\n' + RES,
        ["key 'omega.prior.inverse_wishart.scale'", "dimension 3", "ka, CL, V"],
    ),
    "IW df too small": (
        BASE + '[omega]\nstructure = "full"\nprior = { inverse_wishart = { df = 2, scale = [0.2, 0.2, 0.2] } }\n' + RES,
        ["key 'omega.prior.inverse_wishart.df'", "> dimension - 1 = 2"],
    ),
    "IW scale non-zero between blocks": (
        BASE + '[omega]\nstructure = [["ka"], ["CL", "V"]]\nprior = { inverse_wishart = '
        "{ df = 5, scale = [[1, 0.1, 0], [0.1, 1, 0], [0, 0, 1]] } }\n" + RES,
        ["key 'omega.prior.inverse_wishart.scale'", "(ka, CL) must be 0"],
    ),
    "block missing a parameter": (
        BASE + '[omega]\nstructure = [["CL", "V"]]\n' + RES,
        ["key 'omega.structure'", "missing: ka", "'ka'", "'CL'", "'V'"],
    ),
    "parameter in two blocks": (
        BASE + '[omega]\nstructure = [["CL", "V"], ["ka", "V"]]\n' + RES,
        ["key 'omega.structure'", "'V' appears more than once"],
    ),
    "block with a parameter without IIV": (
        _replace("sigma = 0.5 } }\n\n[parameters.V]", "sigma = 0.5 } }\niiv = false\n\n[parameters.V]", BASE)
        + '[omega]\nstructure = [["CL", "V"], ["ka"]]\n'
        + RES,
        ["key 'omega.structure'", "'CL' has no IIV", "'ka'", "'V'"],
    ),
    "unknown omega structure": (
        BASE + '[omega]\nstructure = "blocks"\n' + RES,
        ["key 'omega.structure'", "'blocks'", "'diagonal'", "'full'"],
    ),
    "lkj on diagonal omega": (
        BASE + "[omega]\nprior = { lkj = { eta = 1, sd = { half_normal = { sigma = 1 } } } }\n" + RES,
        ["key 'omega.prior'", "'lkj' is not allowed for a diagonal omega", "'inverse_gamma'", "'inverse_wishart'"],
    ),
    "inverse gamma on full omega": (
        BASE + '[omega]\nstructure = "full"\nprior = { inverse_gamma = { alpha = 1, beta = 1 } }\n' + RES,
        ["key 'omega.prior'", "'inverse_gamma' is not allowed", "'lkj'"],
    ),
    "bad lkj sd prior": (
        BASE + '[omega]\nstructure = "full"\nprior = { lkj = { eta = 1, sd = '
        "{ normal = { mean = 0, sd = 1 } } } }\n" + RES,
        ["key 'omega.prior.lkj.sd'", "'half_normal'", "'lognormal'"],
    ),
    "omega initial not PD": (
        BASE + "[omega]\ninitial = [0.1, -0.2, 0.1]\n" + RES,
        ["key 'omega.initial'", "positive definite"],
    ),
    "omega initial wrong dim": (
        BASE + "[omega]\ninitial = [[0.1, 0], [0, 0.1]]\n" + RES,
        ["key 'omega.initial'", "dimension 3"],
    ),
    "unknown effect": (
        _replace(
            CL_TYPICAL,
            CL_TYPICAL + '\n\n[[parameters.CL.covariates]]\ncolumn = "WT"\n'
            'effect = "allometric"\nreference = 70\nexponent = 0.75',
        ),
        ["key 'parameters.CL.covariates[0].effect'", "'allometric'", "'power'", "'linear'", "'exponential'"],
    ),
    "beta on a power effect": (
        _replace(
            CL_TYPICAL,
            CL_TYPICAL + '\n\n[[parameters.CL.covariates]]\ncolumn = "WT"\n'
            'effect = "power"\nreference = 70\nbeta = 0.75',
        ),
        ["key 'parameters.CL.covariates[0].beta'", "'exponent'"],
    ),
    "power effect with zero reference": (
        _replace(
            CL_TYPICAL,
            CL_TYPICAL + '\n\n[[parameters.CL.covariates]]\ncolumn = "WT"\n'
            'effect = "power"\nreference = 0\nexponent = 0.75',
        ),
        ["key 'parameters.CL.covariates[0].reference'", "> 0"],
    ),
    "covariate prior kind": (
        _replace(
            CL_TYPICAL,
            CL_TYPICAL + '\n\n[[parameters.CL.covariates]]\ncolumn = "WT"\n'
            'effect = "linear"\nreference = 70\n'
            "beta = { lognormal = { median = 1, sigma = 1 } }",
        ),
        ["key 'parameters.CL.covariates[0].beta'", "'normal'"],
    ),
    "fixed and typical": (
        _replace(CL_TYPICAL, CL_TYPICAL + "\nfixed = 3.0"),
        ["key 'parameters.CL'", "exclude each other", "'typical'", "'fixed'"],
    ),
    "neither fixed nor typical": (
        _replace(CL_TYPICAL, "initial = 3.0"),
        ["key 'parameters.CL'", "'typical'", "'fixed'"],
    ),
    "fixed with iiv": (
        _replace(CL_TYPICAL, "fixed = 3.0\niiv = true"),
        ["key 'parameters.CL.iiv'", "no IIV", "'false'"],
    ),
    "unknown parameter": (
        _replace("[parameters.V]", "[parameters.Vd]"),
        ["key 'parameters.Vd'", "'ka'", "'CL'", "'V'", "'tlag'", "'F'"],
    ),
    "unused residual variance": (
        BASE + RES + "prop = { inverse_gamma = { alpha = 2, beta = 0.01 } }\n",
        ["key 'residual.prop'", "additive model has no variance 'prop'", "'add'"],
    ),
    "unknown residual model": (
        _replace('model = "additive"', 'model = "log"'),
        ["key 'residual.model'", "'log'", "'additive'", "'proportional'", "'combined'", "'exponential'"],
    ),
    "residual initial for unused variance": (
        BASE + RES + "initial = { prop = 0.1 }\n",
        ["key 'residual.initial.prop'", "'add'"],
    ),
    "missing residual": (BASE, ["key 'residual'", "missing"]),
    "unknown top-level key": (
        "descripton = 'x'\n" + BASE + RES,
        ["key 'descripton'", "unknown key", "'name'", "'structural'", "'omega'"],
    ),
    "missing name": (_replace('name = "test"\n', ""), ["key 'name'", "missing"]),
    "unknown column role": (
        BASE + RES + '[columns]\nSUBJ = "Subject"\n',
        ["key 'columns.SUBJ'", "'ID'", "'TIME'", "'BLQ'"],
    ),
    "sampling not positive": (BASE + RES + "[sampling]\ndraws = 0\n", ["key 'sampling.draws'", ">= 1"]),
    "sampling float": (BASE + RES + "[sampling]\nchains = 2.5\n", ["key 'sampling.chains'", "expected an integer"]),
    "sampling typo": (BASE + RES + "[sampling]\nchain = 2\n", ["key 'sampling.chain'", "'chains'", "'draws'"]),
    "iiv not bool": (_replace(CL_TYPICAL, CL_TYPICAL + "\niiv = 1"), ["key 'parameters.CL.iiv'", "true or false"]),
    "flip-flop guard on iv model": (
        "flip_flop_guard = true\n"
        + BASE.replace("one_compartment_oral", "one_compartment_iv").replace(
            "[parameters.ka]\ntypical = { lognormal = { median = 1.5, sigma = 0.5 } }\n", ""
        )
        + RES,
        ["key 'flip_flop_guard'", "oral models"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files(case: str, tmp_path: Path) -> None:
    text, expected = BAD_FILES[case]
    path = write(tmp_path, text, "bad_model.toml")
    with pytest.raises(SpecError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(str(path) + ": "), message
    assert info.value.source == str(path)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert isinstance(info.value, InputError)


def test_error_attributes(tmp_path: Path) -> None:
    path = write(tmp_path, BAD_FILES["unknown structural"][0])
    with pytest.raises(SpecError) as info:
        load_model(path)
    assert info.value.key == "structural"
    assert info.value.valid == tuple(STRUCTURAL_PARAMETERS)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "x"\nstructural = \n', "broken.toml")
    with pytest.raises(SpecError) as info:
        load_model(path)
    message = str(info.value)
    assert "broken.toml" in message and "line 2" in message and "invalid TOML" in message
    path = write(tmp_path, 'name = "x', "unterminated.toml")
    with pytest.raises(SpecError, match=r"unterminated\.toml: invalid TOML .*line 1"):
        load_model(path)


def test_missing_file_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="nope.toml: model file not found"):
        load_model(tmp_path / "nope.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(SpecError, match="latin1.toml: .*not UTF-8"):
        load_model(path)


def test_parse_model_source_and_non_table() -> None:
    with pytest.raises(SpecError, match=r"^m\.toml: key 'structural'"):
        parse_model({"name": "x", "structural": 3}, source="m.toml")
    with pytest.raises(SpecError, match="expected a TOML document"):
        parse_model(["not", "a", "table"])


# --------------------------------------------------------------------------- Python-built
def test_python_built_specs_are_validated() -> None:
    with pytest.raises(SpecError, match=r"key 'lognormal\.sigma'.*> 0"):
        LogNormal(median=1.0, sigma=-1.0)
    with pytest.raises(SpecError, match=r"key 'inverse_wishart\.scale'.*positive definite"):
        InverseWishart(df=5, scale=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(SpecError, match=r"key 'parameters\.CL\.typical'.*'lognormal'"):
        Parameter("CL", typical=Normal(0, 1))
    with pytest.raises(SpecError, match=r"key 'effect'.*'power'"):
        CovariateEffect("WT", "allometric", 70, 0.75)
    with pytest.raises(SpecError, match=r"key 'residual\.exp'.*'add'"):
        Residual("additive", exp=InverseGamma(1, 1))
    with pytest.raises(SpecError, match=r"key 'sampling\.seed'"):
        Sampling(seed=-1)
    with pytest.raises(SpecError, match=r"key 'parameters\.CL\.initial'"):
        Parameter("CL", fixed=2.0, initial=2.0)
    with pytest.raises(SpecError, match=r"key 'omega\.structure'.*missing: V"):
        _spec(Omega((("ka",), ("CL",))))
    with pytest.raises(SpecError, match=r"key 'parameters\.V'.*'ka', 'CL', 'V'"):
        _spec(Omega((("ka",), ("CL",))), parameters=_params()[:2])
    with pytest.raises(SpecError, match=r"key 'structural'"):
        _spec(Omega(()), structural="one_compartment")


def test_python_built_spec_normalises() -> None:
    fixed = Parameter("F", fixed=1)
    assert fixed.iiv is False and fixed.fixed == 1.0 and fixed == Parameter("F", fixed=1.0, iiv=False)
    assert Parameter("tlag", fixed=0).fixed == 0.0
    lower = _spec(OMEGA_VARIANTS["diagonal-none"], columns={"id": "Subject", " Dv ": "conc"})
    assert lower.columns == {"ID": "Subject", "DV": "conc"}
    with pytest.raises(SpecError, match=r"key 'columns\.DV'.*two roles"):
        _spec(OMEGA_VARIANTS["diagonal-none"], columns={"ID": "subject", "DV": "Subject"})
    assert InverseWishart(3, [1, 2]).scale == ((1.0, 0.0), (0.0, 2.0))
    spec = _spec(Omega((("V", "CL"), ("ka",)), structure="block"))
    assert spec.omega.blocks == (("ka",), ("CL", "V"))
    assert spec.omega == Omega.from_structure([["ka"], ["CL", "V"]], NAMES)


def test_more_python_and_mapping_errors() -> None:
    with pytest.raises(SpecError, match=r"key 'name': must not be empty"):
        parse_model({"name": " ", "structural": "one_compartment_iv"})
    with pytest.raises(SpecError, match=r"key 'omega\.structure'.*non-empty array"):
        Omega.from_structure(["CL", "V"], ("CL", "V"))
    with pytest.raises(SpecError, match=r"key 'omega\.prior'.*no parameter has IIV"):
        Omega((), prior=InverseGamma(1, 1))
    with pytest.raises(SpecError, match=r"key 'lkj\.sd'.*'half_normal'"):
        LKJ(1.0, Normal(0, 1))
    with pytest.raises(SpecError, match=r"key 'parameters\.CL\.covariates\[1\]\.column'"):
        Parameter(
            "CL",
            typical=lognormal(3),
            covariates=(CovariateEffect("WT", "power", 70, 0.75), CovariateEffect("WT", "linear", 70, 0.1)),
        )
