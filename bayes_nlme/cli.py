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

from .cli_estimation import check_frequentist_flags, frequentist_warnings
from .cli_parser import MAX_SEED, METHODS, MIN_DRAWS, SAMPLERS, build_parser  # noqa: F401 (re-exported)
from .errors import ArgumentError, InputError
from .pk.models import model_of

__all__ = ["main", "build_parser", "MIN_DRAWS", "MAX_SEED", "EXIT_INTERRUPTED"]

#: Exit code of an interrupted command (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


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


def _nuts_kwargs(args) -> dict:
    return {
        "target_accept": args.target_accept,
        "centered": args.centered,
        "init": args.init,
        "adaptation": args.adaptation,
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
