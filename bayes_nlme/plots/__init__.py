"""Diagnostic plots of fits (matplotlib figures; arviz-plots for rank plots).

Every function takes a fit (a fit directory path, a
:class:`~bayes_nlme.fitdir.FitDirectory` or a
:class:`~bayes_nlme.diagnostics.FitData`) and returns a
:class:`matplotlib.figure.Figure` with labelled axes (units from the dataset's
metadata), a title and constrained layout. :func:`png_bytes` renders one
deterministically.
"""

from __future__ import annotations

from ._common import png_bytes
from .compare import plot_compare
from .covariates import plot_eta_covariates, plot_shrinkage
from .gof import plot_data, plot_dv_vs_pred, plot_npde_distribution, plot_pareto_k, plot_residuals
from .individual import plot_individual_fits
from .mcmc import plot_pair, plot_prior_posterior, plot_rank, plot_trace, prior_distribution
from .saem import plot_saem_trajectory
from .vpc import plot_vpc

__all__ = [
    "plot_saem_trajectory",
    "png_bytes",
    "plot_data",
    "plot_rank",
    "plot_trace",
    "plot_prior_posterior",
    "plot_pair",
    "prior_distribution",
    "plot_dv_vs_pred",
    "plot_residuals",
    "plot_npde_distribution",
    "plot_pareto_k",
    "plot_individual_fits",
    "plot_vpc",
    "plot_eta_covariates",
    "plot_shrinkage",
    "plot_compare",
]
