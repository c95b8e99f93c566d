"""``BayesFit``: the result of a Bayesian fit (NUTS or forward prior draws).

A :class:`BayesFit` holds the DataTree (see :mod:`bayes_nlme.fit.tree` for its
groups), the spec and dataset it came from, the timings, and for NUTS the convergence
verdict. :meth:`BayesFit.save` writes the fit directory of the contract
(``summary.csv``, ``fit.json``, ``fit.nc``) and :meth:`BayesFit.load` reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .convergence import ConvergenceVerdict
from .summary import summarise

__all__ = ["BayesFit", "METHODS"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


#: Bayesian methods: ``nuts`` (posterior draws) and ``prior`` (forward prior draws).
METHODS = ("nuts", "prior")


@dataclass(frozen=True, eq=False)
class BayesFit:
    """A Bayesian fit.

    Attributes
    ----------
    tree : xarray.DataTree
        ``posterior`` (``nuts``) or ``prior`` (``prior``) draws and the other groups.
    spec : ModelSpec
    dataset : Dataset
    method : str
        ``"nuts"`` or ``"prior"``.
    seconds_build : float
        Building and compiling the model (for ``sampler="pymc"`` the compilation
        happens inside sampling).
    seconds_sample : float
        Sampling alone (the sampler's wall time; the post-processing that adds the
        log-likelihood and predictive draws is ``details["seconds_postprocess"]``).
    seconds : float
        Total wall time of the fit.
    draws, tune, chains : int
    seed : int or None
    sampler : str
        ``nutpie``, ``pymc``, ``numpyro``, ``blackjax`` or ``forward`` (prior draws).
    convergence : ConvergenceVerdict or None
        NUTS only.
    details : dict
        Further facts for ``fit.json`` (flip-flop guard, centred etas, compile
        backend, acceptance of the restricted prior ...).
    created : str
        When the fit was made (UTC, ISO 8601); ``fit.json`` keeps it, with the
        package version, for the report's provenance.
    """

    tree: xr.DataTree
    spec: object
    dataset: object
    method: str
    seconds_build: float
    seconds_sample: float
    seconds: float
    draws: int
    tune: int
    chains: int
    seed: int | None = None
    sampler: str = "nutpie"
    convergence: ConvergenceVerdict | None = None
    details: dict = field(default_factory=dict)
    created: str = field(default_factory=_now)

    @property
    def draws_group(self) -> xr.Dataset:
        """The draws: the ``posterior`` group (``nuts``) or the ``prior`` group."""
        return self.tree["prior" if self.method == "prior" else "posterior"].to_dataset()

    def summary(self) -> pd.DataFrame:
        """One row per population parameter (canonical names, see :mod:`.summary`).

        Returns
        -------
        pandas.DataFrame
            Columns ``parameter, mean, sd, median, q5, q95``, plus ``ess_bulk,
            ess_tail, r_hat, mcse_mean`` for ``nuts``.
        """
        return summarise(self.spec, self.draws_group, diagnostics=self.method == "nuts")

    def info(self, summary: pd.DataFrame | None = None) -> dict:
        """The contents of ``fit.json``.

        Parameters
        ----------
        summary : pandas.DataFrame, optional
            The summary (computed when not given).

        Returns
        -------
        dict
        """
        out = {
            "method": self.method,
            "n_subjects": int(self.dataset.n_subjects),
            "n_obs": int(self.dataset.n_observations),
            "seconds": float(self.seconds),
            "seconds_build": float(self.seconds_build),
            "seconds_sample": float(self.seconds_sample),
            "draws": int(self.draws),
            "chains": int(self.chains),
            "seed": self.seed,
            "sampler": self.sampler,
            "model": self.spec.name,
            "data": str(self.dataset.source),
            **_censoring_info(self.spec, self.dataset),
            "created": self.created,
            "bayes_nlme_version": _version(),
        }
        if self.method == "nuts":
            from .convergence import nonfinite_draws

            group = self.draws_group
            n_bad, n_draws = nonfinite_draws(group)
            completed = int(group.sizes.get("draw", 0)) if n_draws else 0
            # an interrupted run holds fewer draws than asked for, or NaN-padded ones
            out["complete"] = bool(n_draws and not n_bad and completed == self.draws)
            out["draws_completed"] = completed
            out["tune"] = int(self.tune)
            out["divergences"] = int(self.convergence.divergences) if self.convergence else None
            # One definition: the verdict's figures (population parameters and etas).
            out["max_r_hat"] = float(self.convergence.max_r_hat) if self.convergence else None
            out["min_ess_bulk"] = float(self.convergence.min_ess_bulk) if self.convergence else None
            out["convergence"] = self.convergence.to_dict() if self.convergence else None
        out.update(self.details)
        return out

    def save(self, out) -> Path:
        """Write the fit directory (``summary.csv``, ``fit.json``, ``fit.nc``).

        Parameters
        ----------
        out : path
            The directory (created; fit files in it are replaced atomically).

        Returns
        -------
        pathlib.Path
        """
        from ..fitdir import embed_inputs, write_fit_dir

        summary = self.summary()
        tree = self.tree.copy()
        embed_inputs(tree, self._spec_as_run(), self.dataset, self.method)
        return write_fit_dir(out, tree=tree, summary=summary, info=self.info(summary))

    def _spec_as_run(self):
        """The spec with ``[sampling]`` as this fit ran (command-line overrides included)."""
        try:
            sampling = replace(self.spec.sampling, draws=self.draws, tune=self.tune, chains=self.chains, seed=self.seed)
            return replace(self.spec, sampling=sampling)
        except Exception:  # noqa: BLE001 - a spec object without [sampling]: embed it as it is
            return self.spec

    @classmethod
    def load(cls, path) -> BayesFit:
        """Read a fit directory written by :meth:`save`.

        Parameters
        ----------
        path : path

        Returns
        -------
        BayesFit

        Raises
        ------
        InputError
            When the directory is not a Bayesian fit directory.
        """
        from ..errors import InputError
        from ..fitdir import load_fit_dir

        fd = load_fit_dir(path)
        info = dict(fd.info)
        if info.get("method") not in METHODS:
            raise InputError(f"'{path}' holds a '{info.get('method')}' fit, not a Bayesian one (nuts or prior)")
        verdict = info.get("convergence")
        if verdict:
            verdict = dict(verdict)
            verdict["messages"] = tuple(verdict.get("messages", ()))
            verdict = ConvergenceVerdict(**{k: (np.nan if v is None else v) for k, v in verdict.items()})
        known = {
            "method",
            "n_subjects",
            "n_obs",
            "seconds",
            "seconds_build",
            "seconds_sample",
            "draws",
            "tune",
            "chains",
            "seed",
            "sampler",
            "model",
            "data",
            "divergences",
            "max_r_hat",
            "min_ess_bulk",
            "convergence",
            "complete",
            "created",
            "draws_completed",
        }
        return cls(
            tree=fd.tree,
            spec=fd.spec,
            dataset=fd.dataset,
            method=info["method"],
            seconds_build=float(info.get("seconds_build", np.nan)),
            seconds_sample=float(info.get("seconds_sample", np.nan)),
            seconds=float(info.get("seconds", np.nan)),
            draws=int(info.get("draws", 0)),
            tune=int(info.get("tune", 0) or 0),
            chains=int(info.get("chains", 0)),
            seed=info.get("seed"),
            sampler=info.get("sampler", ""),
            convergence=verdict or None,
            details={k: v for k, v in info.items() if k not in known},
            created=str(info.get("created", "")),
        )

    def __repr__(self) -> str:  # noqa: D105
        status = ""
        if self.convergence is not None:
            status = f", convergence={'ok' if self.convergence.ok else 'problems'}"
        return (
            f"BayesFit(model={self.spec.name!r}, method={self.method!r}, subjects={self.dataset.n_subjects}, "
            f"draws={self.draws}x{self.chains}, seconds={self.seconds:.1f}{status})"
        )


def _censoring_info(spec, dataset) -> dict:
    """``blq_method`` and ``n_blq`` (censored rows in the likelihood; 0 under M1). With
    several outputs each row follows its output's method (comma-separated when they differ)."""
    from ..data.outputs import output_index
    from ..spec.outputs import residual_parts

    table = dataset.table
    observed = ((table["EVID"] == 0) & (table["MDV"].fillna(0) == 0)).to_numpy()
    censored = observed & (table["BLQ"].fillna(0) > 0).to_numpy()
    parts = residual_parts(spec)
    output = output_index(table, [o.id for o in spec.outputs] if len(parts) > 1 else [])
    n_blq = sum(int((censored & (output == p.index)).sum()) for p in parts if p.residual.blq != "M1")
    methods = tuple(dict.fromkeys(p.residual.blq for p in parts))
    return {"blq_method": ",".join(methods), "n_blq": n_blq}


def _version() -> str:
    from .. import __version__

    return __version__
