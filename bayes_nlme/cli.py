"""The ``bayes-nlme`` command line (CONTRACT section 3).

Exit codes: 0 success; 2 bad input (model file, dataset, arguments or ``--out`` path),
with one message on stderr and no output written; 130 interrupted (Ctrl-C), with nothing
written; 1 any other failure. Every output path is checked before any work, and every
output is written atomically (a temporary file or directory beside the target, renamed
into place). Python warnings are not shown (``--debug`` shows them): the command prints
its own messages, the convergence verdict included.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from .cli_estimation import add_frequentist_flags, check_frequentist_flags, frequentist_warnings
from .errors import ArgumentError, InputError
from .pk.models import model_of

__all__ = ["main", "build_parser", "MIN_DRAWS", "MAX_SEED", "EXIT_INTERRUPTED"]

METHODS = ("nuts", "laplace", "focei", "foce", "fo", "saem", "prior")

#: NUTS implementations (:data:`bayes_nlme.fit.SAMPLERS`, not imported here: the parser stays light).
SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")

#: The fewest draws per chain a fit may ask for: split R-hat, bulk and tail ESS, the
#: E-BFMI and PSIS-LOO of the report need a few dozen draws per chain to be defined.
MIN_DRAWS = 20

#: The largest seed (the samplers take 64-bit seeds; the post-processing uses seed + 1).
MAX_SEED = 2**63 - 2

#: Exit code of an interrupted command (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


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


def _add_nuts(p: argparse.ArgumentParser) -> None:
    """NUTS options of `fit` (issue 17); each defaults to the model's [sampling] table."""
    p.add_argument("--target-accept", type=_fraction, help="NUTS target acceptance rate, e.g. 0.95")
    p.add_argument("--centered", choices=("auto", "true", "false"), help="centred etas (default: [sampling] or auto)")
    p.add_argument(
        "--init",
        choices=("auto", "focei", "fo", "jitter"),
        help="chain start: FOCE-I/FO estimates or the jittered prior point (default: [sampling] or auto)",
    )
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
    from . import __version__

    parser = _Parser(
        prog="bayes-nlme",
        description="Bayesian and frequentist population PK modelling.",
        epilog="Start with: bayes-nlme check models/theophylline.toml --data theophylline",
    )
    parser.add_argument("--version", action="version", version=f"bayes-nlme {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and Python warnings")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

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

    check = sub.add_parser("check", help="validate a model file and a dataset (every check that fit makes)")
    check.add_argument("model", help=MODEL_HELP)
    check.add_argument("--data", required=True, help=DATA_HELP)
    check.add_argument(
        "--method",
        default="nuts",
        choices=METHODS,
        help="the method the fit will use; its checks are run (default nuts)",
    )

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

    kfold = sub.add_parser("kfold", help="K-fold cross-validation by subject of a NUTS fit (K refits)")
    kfold.add_argument("dir", help="NUTS fit directory written by 'bayes-nlme fit'; kfold.csv is written into it")
    kfold.add_argument("--folds", type=int, default=5, help="number of folds of subjects (default 5)")
    kfold.add_argument("--draws", type=int, default=500, help="draws per chain of each refit (default 500)")
    kfold.add_argument("--tune", type=int, default=500, help="tuning steps per chain of each refit (default 500)")
    kfold.add_argument("--chains", type=int, default=2, help="chains of each refit (default 2)")
    kfold.add_argument("--seed", type=int, default=1, help="seed of the folds and the refits (default 1)")
    kfold.add_argument("--quiet", action="store_true", help="no progress")

    compare = sub.add_parser("compare", help="side-by-side table of fits")
    compare.add_argument("dirs", nargs="+", metavar="DIR", help="fit directories")
    compare.add_argument("--out", help="CSV file for the table")
    return parser


def _load_inputs(model: str, data: str):
    from .data import check_for_model, load_dataset
    from .spec import load_model

    spec = load_model(model)
    dataset = load_dataset(data, columns=spec.columns or None)
    check_for_model(dataset, model_of(spec), spec.covariate_columns, spec=spec)
    return spec, dataset


def _preflight(spec, dataset, method: str) -> None:
    """The checks that ``fit --method METHOD`` makes on the model-data pair before fitting:
    the functions the Bayesian builder and the frequentist engines call themselves."""
    if method in ("nuts", "prior"):
        from .build.model import check_model_data

        check_model_data(spec, dataset)
    else:
        from .estimation.estimator import check_estimation_inputs

        check_estimation_inputs(spec, dataset, method)


def _show_progress(logger: str, on: bool) -> None:
    """Print an engine's progress log (INFO) on stderr; engines log, the CLI shows."""
    import logging

    log = logging.getLogger(logger)
    if on and not any(getattr(h, "_bayes_nlme_cli", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._bayes_nlme_cli = True
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def _check_draws(spec, args) -> None:
    draws = args.draws if args.draws is not None else spec.sampling.draws
    if draws < MIN_DRAWS:
        raise ArgumentError(
            f"draws = {draws} ([sampling] draws of the model file): at least {MIN_DRAWS} draws per chain are "
            "needed for the convergence diagnostics; give --draws N or raise [sampling] draws"
        )


def _cmd_check(args) -> int:
    spec, dataset = _load_inputs(args.model, args.data)
    _preflight(spec, dataset, args.method)
    if args.method in ("nuts", "prior"):
        _check_draws(spec, argparse.Namespace(draws=None))
    s = dataset.summary() if hasattr(dataset, "summary") else {}
    print(f"model    {args.model}: '{spec.name}', {spec.structural}, parameters {', '.join(spec.parameter_names)}")
    print(f"dataset  {dataset.source}")
    print(f"subjects     {dataset.n_subjects}")
    print(f"observations {dataset.n_observations}")
    print(f"doses        {dataset.n_doses}")
    for key, value in s.items():
        if key not in ("subjects", "observations", "doses", "n_subjects", "n_observations", "n_doses", "source"):
            print(f"{key:<12} {value}")
    print(f"OK (checked for --method {args.method})")
    return 0


def _cmd_predict(args) -> int:
    from .fitdir import check_out_file
    from .predict import predict, read_params

    out = check_out_file(args.out)
    for flag, given in (("MODEL", args.model), ("--data", args.data), ("--params", args.params)):
        if Path(given).exists() and Path(given).resolve() == out.resolve():
            raise ArgumentError(f"--out '{out}' is the {flag} file; give another path for the predictions")
    spec, dataset = _load_inputs(args.model, args.data)
    try:
        params = read_params(args.params)
    except (UnicodeDecodeError, OSError) as exc:
        raise InputError(
            f"parameter file '{args.params}' cannot be read ({exc}); it must be a JSON text file "
            'such as {"ka": 1.5, "CL": 2.8, "V": 32}'
        ) from None
    frame = predict(spec, dataset, params, source=f"parameter file '{args.params}'")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=out.parent, prefix=f".{out.name}.", suffix=".tmp", delete=False) as tmp:
        frame.to_csv(tmp, index=False, na_rep=".")
    os.replace(tmp.name, out)
    print(f"wrote {out} ({len(frame)} rows)")
    return 0


def _tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _step(text: str, quiet: bool = False) -> None:
    """A progress line on stderr, on a terminal only (the samplers and the estimator show their own bars)."""
    if not quiet and _tty():
        print(text, file=sys.stderr, flush=True)


_FIT_STEPS = {
    "nuts": "building and compiling the model (a model's first compile takes 30-60 s; later fits "
    "load it from the cache), then tuning and sampling ...",
    "prior": "drawing from the prior ...",
}


def _fit_settings(args, method: str, quiet: bool) -> dict:
    """The engine settings of ``bayes-nlme fit`` from its flags."""
    if method == "nuts":
        sampling = {"draws": args.draws, "tune": args.tune, "chains": args.chains, "seed": args.seed}
        return {**sampling, "sampler": args.sampler, "progressbar": not quiet, "quiet": True, **_nuts_kwargs(args)}
    if method == "prior":
        return {"draws": args.draws, "seed": args.seed}
    return {
        "covariance": None if args.covariance == "none" else args.covariance,
        "verbose": not quiet,
        "starts": args.starts,
        "seed": 0 if args.seed is None else args.seed,
        "ofv": args.ofv,
        "saem": {
            "n_burn": args.saem_burn,
            "n_em": args.saem_em,
            "chains": args.saem_chains,
            "is_samples": args.is_samples,
        },
    }


def _cmd_fit(args) -> int:
    from .fitdir import check_out_dir

    out = check_out_dir(args.out, overwrite=args.overwrite)
    spec, dataset = _load_inputs(args.model, args.data)
    _preflight(spec, dataset, args.method)
    if args.method in ("nuts", "prior"):
        _check_draws(spec, args)
    check_frequentist_flags(args)
    quiet = args.quiet or bool(os.environ.get("CI"))
    started = time.perf_counter()
    from .engines import engine

    method = engine(args.method)
    _step(_FIT_STEPS.get(method.name, f"estimating ({method.name}) ..."), quiet)
    if method.kind == "frequentist":
        _show_progress("bayes_nlme.estimation", not quiet)
    try:
        result = method.fit(spec, dataset, **_fit_settings(args, method.name, quiet))
    except Exception as exc:
        _INTERRUPT.raise_if_hit()
        if method.name != "nuts" or not _is_init_failure(exc):
            raise
        raise InputError(_init_failure_message(spec, dataset)) from None
    _INTERRUPT.raise_if_hit()
    verdict = getattr(result, "convergence", None)
    out = result.save(out)
    frequentist_warnings(result)  # even with --quiet: a fit that is not an optimum must say so
    if not args.quiet:
        import pandas as pd

        if verdict is not None:
            print(verdict.report(), file=sys.stderr)
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            print(result.summary().to_string(index=False))
        print(f"wrote {out} in {time.perf_counter() - started:.1f} s")
    return 0


def _cmd_report(args) -> int:
    from .fitdir import check_out_file
    from .report import write_report

    if args.out is not None:
        check_out_file(args.out)
    _step("writing the report (500 simulated replicates for the VPC and NPDE take a while) ...")
    path = write_report(args.dir, out=args.out, compare=args.compare)
    print(f"wrote {path}")
    return 0


def _cmd_compare(args) -> int:
    import pandas as pd

    from .compare import compare_fits
    from .fitdir import check_out_file

    if args.out is not None:
        check_out_file(args.out)
    table = compare_fits(*args.dirs)
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        print(table.to_string(index=False))
    for label, note in table.attrs.get("notes", {}).items():
        print(f"{label}: {note}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=out.parent, prefix=f".{out.name}.", suffix=".tmp", delete=False
        ) as tmp:
            table.to_csv(tmp, index=False)
        os.replace(tmp.name, out)
    return 0


def _cmd_sensitivity(args) -> int:
    from .fitdir import check_out_file
    from .sensitivity import run_sensitivity

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ArgumentError(f"--out '{out}' is an existing file; give the path of a directory")
    check_out_file(out / "psense.csv")
    spec, dataset = _load_inputs(args.model, args.data)
    _check_draws(spec, args)
    out = run_sensitivity(
        spec,
        dataset,
        out=args.out,
        scales=args.scales,
        variants=args.variants,
        workers=args.workers,
        scheduler=args.scheduler,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        seed=args.seed,
        quiet=args.quiet,
    )
    _INTERRUPT.raise_if_hit()
    print(f"wrote {out}")
    return 0


def _cmd_kfold(args) -> int:
    from .diagnostics.kfold import kfold_subject, write_kfold
    from .fitdir import load_fit_dir

    for name in ("draws", "tune", "chains", "seed"):
        minimum = 0 if name in ("tune", "seed") else 1
        if getattr(args, name) < minimum:
            raise ArgumentError(f"--{name} must be an integer >= {minimum}, got {getattr(args, name)}")
    fd = load_fit_dir(args.dir)
    _step(f"K-fold cross-validation by subject: {args.folds} NUTS refits ...", args.quiet)
    result = kfold_subject(fd, k=args.folds, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed)
    _INTERRUPT.raise_if_hit()
    paths = write_kfold(result, fd.path)
    if not args.quiet:
        print(result.table().to_string(index=False))
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


COMMANDS = {
    "fit": _cmd_fit,
    "kfold": _cmd_kfold,
    "predict": _cmd_predict,
    "check": _cmd_check,
    "report": _cmd_report,
    "compare": _cmd_compare,
    "sensitivity": _cmd_sensitivity,
}


class _Interrupt:
    """Remembers a Ctrl-C (SIGINT) while a command runs.

    A sampler may catch the ``KeyboardInterrupt`` and return the draws made so far
    (nutpie does); the command then finds :attr:`hit` set and stops before writing
    anything, instead of saving a partial fit as if it were complete.
    """

    def __init__(self) -> None:
        self.hit = False
        self._previous = None

    def _handler(self, signum, frame):
        self.hit = True
        raise KeyboardInterrupt

    def raise_if_hit(self) -> None:
        """Raise ``KeyboardInterrupt`` when a SIGINT arrived."""
        if self.hit:
            raise KeyboardInterrupt

    def __enter__(self):
        self.hit = False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


_INTERRUPT = _Interrupt()


def _run(argv: list[str], debug: bool) -> int:
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    with warnings.catch_warnings():
        if not debug:
            # The CLI prints its own one-line messages (the convergence verdict included).
            warnings.simplefilter("ignore")
        return COMMANDS[args.command](args)


def main(argv: list[str] | None = None) -> int:
    """Run ``bayes-nlme``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 success, 2 bad input, 130 interrupted (Ctrl-C; nothing is
        written), 1 other failure.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    with _INTERRUPT:
        try:
            return _run(argv, debug)
        except KeyboardInterrupt:
            return _interrupted()
        except InputError as exc:
            if _INTERRUPT.hit:
                return _interrupted()
            print(f"bayes-nlme: error: {exc}", file=sys.stderr)
            return 2
        except SystemExit as exc:  # --help and --version
            return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 2
        except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
            if _INTERRUPT.hit:
                return _interrupted()
            if debug:
                raise
            print(f"bayes-nlme: failed: {_describe(exc)} (run with --debug for the traceback)", file=sys.stderr)
            return 1


def _interrupted() -> int:
    print("bayes-nlme: interrupted; nothing was written", file=sys.stderr)
    return EXIT_INTERRUPTED


def _is_init_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "initialization" in text and ("logp" in text or "point" in text)


def _init_failure_message(spec, dataset) -> str:
    """Why NUTS could not start: the non-finite terms of the log density at the initial point."""
    from .build.model import build
    from .fit.initial import explain_initial_point

    try:
        why = explain_initial_point(build(spec, dataset))
    except Exception:  # noqa: BLE001 - the diagnosis is a courtesy; the failure stands
        why = ""
    head = (
        f"model '{spec.name}' with dataset '{dataset.source}': the sampler found no starting point with a "
        "finite log density"
    )
    return (
        f"{head}: {why}"
        if why
        else (
            f"{head} (every term is finite at the initial values, so a random start within (-2, 2) on the "
            "unconstrained scale fails: give initial values closer to the data, or narrower priors)"
        )
    )


def _describe(exc: BaseException) -> str:
    """One line for an unexpected error; a sampler's Rust backtrace is cut off."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if _is_init_failure(exc):
        return (
            "the sampler found no starting point with a finite log density (a dataset value, a prior "
            "or an initial value gives NaN or infinity); run 'bayes-nlme check' on the model and data"
        )
    return f"{type(exc).__name__}: {first[:300]}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
