"""The ``bayes-nlme`` command line (CONTRACT section 3).

Exit codes: 0 success; 2 bad input (model file, dataset or arguments), with one message
on stderr and no partial output; 1 any other failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from .errors import ArgumentError, InputError

__all__ = ["main", "build_parser"]

METHODS = ("nuts", "laplace", "focei", "foce", "fo", "prior")


class _Parser(argparse.ArgumentParser):
    """argparse with bad-argument errors as :class:`ArgumentError` (exit 2, one line)."""

    def error(self, message):  # noqa: D102 - argparse hook
        raise ArgumentError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _scales(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0.5,2, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive comma-separated numbers such as 0.5,2, got {text!r}")
    return values


def _add_sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument("--draws", type=_positive_int, help="posterior draws per chain (default: [sampling] or 1000)")
    p.add_argument("--tune", type=_positive_int, help="tuning steps per chain (default: [sampling] or 1000)")
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


def _add_nuts(p: argparse.ArgumentParser) -> None:
    """NUTS options of `fit` (issue 17); each defaults to the model's [sampling] table."""
    p.add_argument("--target-accept", type=_fraction, help="NUTS target acceptance rate, e.g. 0.95")
    p.add_argument("--centered", choices=("auto", "true", "false"), help="centred etas (default: [sampling] or auto)")
    p.add_argument("--init", choices=("auto", "focei", "fo", "jitter"),
                   help="chain start: FOCE-I/FO estimates or the jittered prior point (default: [sampling] or auto)")
    p.add_argument("--adaptation", choices=("diag", "draw_diag", "low_rank"), help="nutpie mass-matrix adaptation")


def _nuts_kwargs(args) -> dict:
    centered = {"true": True, "false": False}.get(args.centered, args.centered)
    return {"target_accept": args.target_accept, "centered": centered, "init": args.init, "adaptation": args.adaptation}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``bayes-nlme``.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = _Parser(prog="bayes-nlme", description="Bayesian and frequentist population PK modelling.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    fit = sub.add_parser("fit", help="fit a model to a dataset")
    fit.add_argument("model", help="TOML model file")
    fit.add_argument("--data", required=True, help="CSV file or bundled dataset name (e.g. theophylline)")
    fit.add_argument("--out", required=True, help="fit directory to write")
    fit.add_argument("--method", default="nuts", choices=METHODS, help="estimation method (default nuts)")
    _add_sampling(fit)
    _add_nuts(fit)
    fit.add_argument("--sampler", default="nutpie", help="NUTS implementation: nutpie (default), pymc, numpyro, blackjax")
    fit.add_argument("--covariance", default="sandwich", choices=("sandwich", "r", "s", "none"),
                     help="frequentist covariance step (default sandwich)")
    fit.add_argument("--quiet", action="store_true", help="no progress bar or summary")

    sens = sub.add_parser("sensitivity", help="prior sensitivity study")
    sens.add_argument("model")
    sens.add_argument("--data", required=True)
    sens.add_argument("--out", required=True)
    sens.add_argument("--scales", type=_scales, default=(0.5, 2.0), help="prior spread factors (default 0.5,2)")
    sens.add_argument("--variants", nargs="*", default=(), help="alternative model files of the same structure")
    sens.add_argument("--workers", type=_positive_int, help="local processes fitting variants in parallel (default: cores // chains, at least 1)")
    sens.add_argument("--scheduler", help="Dask scheduler address (needs the dask extra)")
    _add_sampling(sens)
    sens.add_argument("--quiet", action="store_true")

    pred = sub.add_parser("predict", help="population predictions with all etas zero")
    pred.add_argument("model")
    pred.add_argument("--data", required=True)
    pred.add_argument("--params", required=True, help="JSON file: parameter name -> typical value")
    pred.add_argument("--out", required=True, help="output CSV file")

    check = sub.add_parser("check", help="validate a model file and a dataset")
    check.add_argument("model")
    check.add_argument("--data", required=True)

    report = sub.add_parser("report", help="HTML report of a fit directory")
    report.add_argument("dir")
    report.add_argument("--out", help="HTML file (default DIR/report.html)")
    report.add_argument("--compare", action="append", default=[], help="a frequentist fit directory of the same model")

    compare = sub.add_parser("compare", help="side-by-side table of fits")
    compare.add_argument("dirs", nargs="+")
    compare.add_argument("--out", help="CSV file for the table")
    return parser


def _load_inputs(model: str, data: str):
    from .data import check_for_model, load_dataset
    from .spec import load_model

    spec = load_model(model)
    dataset = load_dataset(data, columns=spec.columns or None)
    check_for_model(dataset, spec.structural, spec.covariate_columns)
    return spec, dataset


def _cmd_check(args) -> int:
    spec, dataset = _load_inputs(args.model, args.data)
    s = dataset.summary() if hasattr(dataset, "summary") else {}
    print(f"model    {args.model}: '{spec.name}', {spec.structural}, parameters {', '.join(spec.parameter_names)}")
    print(f"dataset  {dataset.source}")
    print(f"subjects     {dataset.n_subjects}")
    print(f"observations {dataset.n_observations}")
    print(f"doses        {dataset.n_doses}")
    for key, value in s.items():
        if key not in ("subjects", "observations", "doses", "n_subjects", "n_observations", "n_doses", "source"):
            print(f"{key:<12} {value}")
    print("OK")
    return 0


def _cmd_predict(args) -> int:
    from .predict import predict, read_params

    spec, dataset = _load_inputs(args.model, args.data)
    params = read_params(args.params)
    frame = predict(spec, dataset, params, source=f"parameter file '{args.params}'")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=out.parent, prefix=f".{out.name}.", suffix=".tmp", delete=False) as tmp:
        frame.to_csv(tmp, index=False, na_rep=".")
    os.replace(tmp.name, out)
    print(f"wrote {out} ({len(frame)} rows)")
    return 0


def _cmd_fit(args) -> int:
    spec, dataset = _load_inputs(args.model, args.data)
    quiet = args.quiet or bool(os.environ.get("CI"))
    started = time.perf_counter()
    if args.method in ("nuts", "prior"):
        from .fit import sample, sample_prior

        if args.method == "nuts":
            result = sample(spec, dataset, draws=args.draws, tune=args.tune, chains=args.chains,
                            seed=args.seed, sampler=args.sampler, progressbar=not quiet, quiet=args.quiet,
                            **_nuts_kwargs(args))
        else:
            result = sample_prior(spec, dataset, draws=args.draws, seed=args.seed)
    else:
        from .estimation import estimate

        covariance = None if args.covariance == "none" else args.covariance
        result = estimate(spec, dataset, method=args.method, covariance=covariance, verbose=not quiet)
    out = result.save(args.out)
    if not args.quiet:
        import pandas as pd

        with pd.option_context("display.width", 120, "display.max_columns", 20):
            print(result.summary().to_string(index=False))
        print(f"wrote {out} in {time.perf_counter() - started:.1f} s")
    return 0


def _cmd_report(args) -> int:
    from .report import write_report

    path = write_report(args.dir, out=args.out, compare=args.compare)
    print(f"wrote {path}")
    return 0


def _cmd_compare(args) -> int:
    import pandas as pd

    from .compare import compare_fits

    table = compare_fits(*args.dirs)
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        print(table.to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


def _cmd_sensitivity(args) -> int:
    from .sensitivity import run_sensitivity

    spec, dataset = _load_inputs(args.model, args.data)
    out = run_sensitivity(spec, dataset, out=args.out, scales=args.scales, variants=args.variants,
                          workers=args.workers, scheduler=args.scheduler, draws=args.draws,
                          tune=args.tune, chains=args.chains, seed=args.seed, quiet=args.quiet)
    print(f"wrote {out}")
    return 0


COMMANDS = {
    "fit": _cmd_fit,
    "predict": _cmd_predict,
    "check": _cmd_check,
    "report": _cmd_report,
    "compare": _cmd_compare,
    "sensitivity": _cmd_sensitivity,
}


def main(argv: list[str] | None = None) -> int:
    """Run ``bayes-nlme``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 success, 2 bad input, 1 other failure.
    """
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except InputError as exc:
        print(f"bayes-nlme: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bayes-nlme: interrupted", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if debug:
            raise
        print(f"bayes-nlme: failed: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
