"""Command-line flags of the frequentist methods (``fit --starts``, ``--ofv``, SAEM's
settings) and the lines they print on stderr."""

from __future__ import annotations

import argparse
import sys

from .errors import ArgumentError

__all__ = ["add_frequentist_flags", "check_frequentist_flags", "frequentist_warnings"]


def _positive(text: str) -> int:
    return _whole(text, 1)


def _nonnegative(text: str) -> int:
    return _whole(text, 0)


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {least}, got {text!r}")
    return value


def add_frequentist_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--starts``, ``--ofv``, ``--saem-burn``, ``--saem-em``, ``--saem-chains`` and
    ``--is-samples`` to the ``fit`` parser.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    """
    parser.add_argument(
        "--starts",
        type=_positive,
        help="frequentist methods: number of optimisations, from the initial values and from screened "
        "start points (default: one, and four more when it does not converge)",
    )
    parser.add_argument(
        "--ofv",
        choices=("importance_sampling",),
        help="frequentist methods: compute the OFV (and AIC, BIC) by importance sampling around the "
        "conditional modes, with its Monte-Carlo SE, so that it compares across methods (always so for saem)",
    )
    parser.add_argument("--saem-burn", type=_nonnegative, help="saem: exploration iterations (default [saem] or 200)")
    parser.add_argument("--saem-em", type=_positive, help="saem: smoothing iterations (default [saem] or 300)")
    parser.add_argument(
        "--saem-chains", type=_positive, help="saem: chains per subject (default min(3, ceil(50/subjects)))"
    )
    parser.add_argument(
        "--is-samples", type=_positive, help="importance samples per subject for the OFV (default 3000)"
    )


def check_frequentist_flags(args) -> None:
    """Flags of methods other than the one chosen are refused (exit 2), not ignored.

    Parameters
    ----------
    args : argparse.Namespace
    """
    saem = [f"--{n.replace('_', '-')}" for n in ("saem_burn", "saem_em", "saem_chains") if getattr(args, n) is not None]
    if saem and args.method != "saem":
        raise ArgumentError(f"{', '.join(saem)} apply to --method saem only (this fit is --method {args.method})")
    frequentist = [
        f for f, v in (("--starts", args.starts), ("--ofv", args.ofv), ("--is-samples", args.is_samples)) if v
    ]
    if frequentist and args.method in ("nuts", "prior"):
        raise ArgumentError(
            f"{', '.join(frequentist)} apply to the frequentist methods (laplace, focei, foce, fo, saem), "
            f"not --method {args.method}"
        )


def frequentist_warnings(result) -> None:
    """Non-convergence, a failed covariance step and an importance-sampling OFV of a
    frequentist fit, on stderr.

    Parameters
    ----------
    result : EstimationResult or BayesFit
        Anything without ``info`` and ``ofv`` is ignored.
    """
    info = getattr(result, "info", None)
    if info is None or not hasattr(result, "ofv"):
        return
    if not result.converged:
        print(
            f"WARNING: the {result.method} fit did NOT converge: {info.get('convergence_reason', '')}. "
            f"{info.get('advice', '')}",
            file=sys.stderr,
        )
    if info.get("covariance") and not info.get("covariance_ok", True):
        print(f"WARNING: {info.get('covariance_message')}", file=sys.stderr)
    if info.get("ofv_method") == "importance_sampling":
        print(
            f"OFV {result.ofv:.3f} by importance sampling (Monte-Carlo SE {info.get('ofv_mcse', float('nan')):.3f})",
            file=sys.stderr,
        )
