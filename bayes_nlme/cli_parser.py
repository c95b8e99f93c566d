"""The argument parser of the ``bayes-nlme`` command line (:func:`build_parser`): its
subcommands, their flags and the checks of flag values (a bad value exits 2 with one line,
through :class:`~bayes_nlme.errors.ArgumentError`). Kept light: nothing heavy is imported."""

from __future__ import annotations

import argparse

from .cli_estimation import add_frequentist_flags
from .errors import ArgumentError

__all__ = ["build_parser", "METHODS", "SAMPLERS", "MIN_DRAWS", "MAX_SEED"]

METHODS = ("nuts", "laplace", "focei", "foce", "fo", "saem", "prior")

#: NUTS implementations (:data:`bayes_nlme.fit.SAMPLERS`, not imported here: the parser stays light).
SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")

#: The fewest draws per chain a fit may ask for: split R-hat, bulk and tail ESS, the
#: E-BFMI and PSIS-LOO of the report need a few dozen draws per chain to be defined.
MIN_DRAWS = 20

#: The largest seed (the samplers take 64-bit seeds; the post-processing uses seed + 1).
MAX_SEED = 2**63 - 2


class _Parser(argparse.ArgumentParser):
    """argparse with bad-argument errors as :class:`ArgumentError` (exit 2, one line)."""

    def error(self, message):  # noqa: D102 - argparse hook
        raise ArgumentError(f"{self.prog}: {message}")


def _integer(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _integer(text, 1, "a positive integer")


def _draws(text: str) -> int:
    return _integer(text, MIN_DRAWS, f"an integer >= {MIN_DRAWS} (the convergence diagnostics need it)")


def _nonnegative_int(text: str) -> int:
    return _integer(text, 0, "a non-negative integer")


def _seed(text: str) -> int:
    value = _integer(text, 0, f"an integer from 0 to {MAX_SEED}")
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {MAX_SEED}, got {text!r}")
    return value


def _scales(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0.5,2, got {text!r}") from None
    if not values or any(not v > 0 or v == float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"expected positive comma-separated numbers such as 0.5,2, got {text!r}")
    return values


MODEL_HELP = "TOML model file (see models/theophylline.toml)"
DATA_HELP = "CSV dataset (NONMEM style) or the name of a bundled dataset, e.g. theophylline"


def _add_sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--draws", type=_draws, help=f"posterior draws per chain, at least {MIN_DRAWS} (default: [sampling] or 1000)"
    )
    p.add_argument(
        "--tune", type=_nonnegative_int, help="tuning steps per chain, 0 or more (default: [sampling] or 1000)"
    )
    p.add_argument("--chains", type=_positive_int, help="number of chains (default: [sampling] or 4)")
    p.add_argument("--seed", type=_seed, help="random seed (default: [sampling] or 1)")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1) such as 0.9, got {text!r}")
    return value


def _centred_choice(text: str):
    """``--centered``: auto, true, false or comma-separated parameter names."""
    choice = {"auto": "auto", "true": True, "false": False}.get(text.strip().lower())
    if choice is not None:
        return choice
    names = tuple(n.strip() for n in text.split(","))
    if not all(n.isidentifier() for n in names):
        raise argparse.ArgumentTypeError(
            f"invalid choice {text!r}: expected auto, true, false or comma-separated parameter names (e.g. CL,V)"
        )
    return names


def _add_nuts(p: argparse.ArgumentParser) -> None:
    """NUTS options of `fit` (issue 17); each defaults to the model's [sampling] table."""
    p.add_argument("--target-accept", type=_fraction, help="NUTS target acceptance rate, e.g. 0.95")
    p.add_argument(
        "--centered",
        type=_centred_choice,
        metavar="{auto,true,false,NAMES}",
        help="centred etas: auto (per parameter), true, false, or the centred parameters, e.g. CL,V "
        "(default: [sampling] or auto)",
    )
    p.add_argument(
        "--init",
        choices=("auto", "focei", "fo", "jitter"),
        help="chain start: FOCE-I/FO estimates or the jittered prior point (default: [sampling] or auto)",
    )
    p.add_argument("--adaptation", choices=("diag", "draw_diag", "low_rank"), help="nutpie mass-matrix adaptation")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``bayes-nlme``.

    Returns
    -------
    argparse.ArgumentParser
    """
    from . import __version__

    parser = _Parser(
        prog="bayes-nlme",
        description="Bayesian and frequentist population PK modelling.",
        epilog="Start with: bayes-nlme check models/theophylline.toml --data theophylline",
    )
    parser.add_argument("--version", action="version", version=f"bayes-nlme {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and Python warnings")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    _add_fit(sub)
    _add_sensitivity(sub)
    _add_predict(sub)
    _add_check(sub)
    _add_report(sub)
    _add_kfold(sub)
    _add_compare(sub)
    return parser


def _add_fit(sub) -> None:
    """``fit``: the model, data, output and the flags of every method."""
    fit = sub.add_parser("fit", help="fit a model to a dataset")
    fit.add_argument("model", help=MODEL_HELP)
    fit.add_argument("--data", required=True, help=DATA_HELP)
    fit.add_argument("--out", required=True, help="fit directory to write (must be new or empty, see --overwrite)")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing fit directory --out, whole")
    fit.add_argument("--method", default="nuts", choices=METHODS, help="estimation method (default nuts)")
    _add_sampling(fit)
    _add_nuts(fit)
    fit.add_argument(
        "--sampler",
        default="nutpie",
        choices=SAMPLERS,
        help="NUTS implementation: nutpie (default), pymc, numpyro, blackjax",
    )
    fit.add_argument(
        "--covariance",
        default="sandwich",
        choices=("sandwich", "r", "s", "none"),
        help="frequentist covariance step (default sandwich)",
    )
    add_frequentist_flags(fit)
    fit.add_argument("--quiet", action="store_true", help="no progress, no summary")


def _add_sensitivity(sub) -> None:
    """``sensitivity``: prior spread factors and variant models."""
    sens = sub.add_parser("sensitivity", help="prior sensitivity study")
    sens.add_argument("model", help=MODEL_HELP)
    sens.add_argument("--data", required=True, help=DATA_HELP)
    sens.add_argument("--out", required=True, help="directory to write psense.csv, variants.csv and report.html")
    sens.add_argument("--scales", type=_scales, default=(0.5, 2.0), help="prior spread factors (default 0.5,2)")
    sens.add_argument("--variants", nargs="*", default=(), help="alternative model files of the same structure")
    sens.add_argument(
        "--workers",
        type=_positive_int,
        help="local processes fitting variants in parallel (default: cores // chains, at least 1)",
    )
    sens.add_argument("--scheduler", help="Dask scheduler address (needs the dask extra)")
    _add_sampling(sens)
    sens.add_argument("--quiet", action="store_true", help="no progress")


def _add_predict(sub) -> None:
    """``predict``: population predictions from a parameter file."""
    pred = sub.add_parser("predict", help="population predictions with all etas zero")
    pred.add_argument("model", help=MODEL_HELP)
    pred.add_argument("--data", required=True, help=DATA_HELP)
    pred.add_argument(
        "--params",
        required=True,
        help='JSON file: parameter name -> typical value, e.g. {"ka": 1.5, "CL": 2.8, "V": 32} '
        "(models/theophylline_params.json)",
    )
    pred.add_argument("--out", required=True, help="output CSV file (replaced if it exists)")


def _add_check(sub) -> None:
    """``check``: the checks of ``fit`` without fitting."""
    check = sub.add_parser("check", help="validate a model file and a dataset (every check that fit makes)")
    check.add_argument("model", help=MODEL_HELP)
    check.add_argument("--data", required=True, help=DATA_HELP)
    check.add_argument(
        "--method",
        default="nuts",
        choices=METHODS,
        help="the method the fit will use; its checks are run (default nuts)",
    )


def _add_report(sub) -> None:
    """``report``: the HTML report of a fit directory."""
    report = sub.add_parser("report", help="HTML report of a fit directory")
    report.add_argument("dir", help="fit directory written by 'bayes-nlme fit'")
    report.add_argument("--out", help="HTML file (default DIR/report.html)")
    report.add_argument(
        "--compare",
        action="extend",
        nargs="+",
        default=[],
        metavar="DIR",
        help="fit directories of the same model to compare with (one or more)",
    )


def _add_kfold(sub) -> None:
    """``kfold``: K-fold cross-validation by subject."""
    kfold = sub.add_parser("kfold", help="K-fold cross-validation by subject of a NUTS fit (K refits)")
    kfold.add_argument("dir", help="NUTS fit directory written by 'bayes-nlme fit'; kfold.csv is written into it")
    kfold.add_argument("--folds", type=int, default=5, help="number of folds of subjects (default 5)")
    kfold.add_argument("--draws", type=int, default=500, help="draws per chain of each refit (default 500)")
    kfold.add_argument("--tune", type=int, default=500, help="tuning steps per chain of each refit (default 500)")
    kfold.add_argument("--chains", type=int, default=2, help="chains of each refit (default 2)")
    kfold.add_argument("--seed", type=int, default=1, help="seed of the folds and the refits (default 1)")
    kfold.add_argument("--quiet", action="store_true", help="no progress")


def _add_compare(sub) -> None:
    """``compare``: the side-by-side table of fits."""
    compare = sub.add_parser("compare", help="side-by-side table of fits")
    compare.add_argument("dirs", nargs="+", metavar="DIR", help="fit directories")
    compare.add_argument("--out", help="CSV file for the table")
