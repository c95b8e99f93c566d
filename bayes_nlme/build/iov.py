"""Inter-occasion variability (CONTRACT 5.3) in the PyMC graph.

For every parameter ``P`` with ``iov``:

* ``omega_iov_<P>``: the IOV variance. An ``inverse_gamma`` prior is on the variance
  itself; a ``half_normal`` prior is on the standard deviation, the free variable
  ``omega_iov_sd_<P>``, and ``omega_iov_<P>`` is its square (a deterministic).
* ``kappa_<P>,ik ~ N(0, omega_iov_<P>)``, one per subject-occasion
  (:attr:`bayes_nlme.core.EngineDesign.seg_occasion`), independent over subjects and
  occasions (NONMEM's ``BLOCK(1) SAME``).

The kappas follow the etas' parameterisation (:mod:`bayes_nlme.build.etas`): when the
etas are non-centred the free variable is ``kappa_z ~ N(0, 1)`` and
``kappa = sqrt(omega_iov) * kappa_z``; when they are centred (rich data per subject,
hence per occasion) the free variable is ``kappa_c ~ N(0, sqrt(omega_iov))`` itself.
The deterministic ``kappa`` (dims ``occasion x iov_parameter``) holds them either way.
The ``occasion`` coordinate is ``"<ID>:<OCC>"``.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..spec.priors import HalfNormal, InverseGamma
from .priors import check_prior, hyperparameters, prior_variable

__all__ = ["iov_name", "iov_coords", "iov_hyperparameters", "occasion_effects"]

_IOV_PRIORS = (InverseGamma, HalfNormal)


def iov_name(parameter: str) -> str:
    """Canonical name of an IOV variance: ``omega_iov_<P>``."""
    return f"omega_iov_{parameter}"


def _prior(spec, name: str):
    return check_prior(spec.parameter(name).iov, f"parameters.{name}.iov", _IOV_PRIORS)


def iov_hyperparameters(spec) -> dict[str, np.ndarray]:
    """The hyperparameter data of the IOV priors (see :func:`bayes_nlme.build.prior_data`).

    Parameters
    ----------
    spec : ModelSpec

    Returns
    -------
    dict of str to numpy.ndarray
    """
    out: dict[str, np.ndarray] = {}
    for name in getattr(spec, "iov_names", ()):
        out.update(hyperparameters(iov_name(name), _prior(spec, name)))
    return out


def iov_coords(dataset, design) -> dict:
    """The coordinate ``occasion``: ``"<ID>:<OCC>"`` per subject-occasion.

    Parameters
    ----------
    dataset : Dataset
    design : EngineDesign
        Built with ``occasions=True``.

    Returns
    -------
    dict
    """
    ids = dataset.subject_ids
    return {
        "occasion": [f"{ids[s]}:{o}" for s, o in zip(design.occasion_subject, design.occasion_label)],
    }


def occasion_effects(spec, n_occasions: int, *, centered: bool = False) -> dict:
    """Create the IOV variances and the kappas in the current model.

    Parameters
    ----------
    spec : ModelSpec
    n_occasions : int
        Number of subject-occasions.
    centered : bool
        The etas' parameterisation (see the module notes).

    Returns
    -------
    dict of str to tensor
        Parameter name -> its kappas (a vector over the subject-occasions), to pass to
        :func:`bayes_nlme.individual.individual_parameters` as ``kappa``.
    """
    names = list(spec.iov_names)
    sds = []
    for name in names:
        prior = _prior(spec, name)
        if isinstance(prior, HalfNormal):
            sd = prior_variable(f"omega_iov_sd_{name}", prior, hyper=iov_name(name), initval=0.3)
            pm.Deterministic(iov_name(name), sd**2)
        else:
            variance = prior_variable(iov_name(name), prior, initval=0.09)
            sd = pt.sqrt(variance)
        sds.append(sd)
    dims = ("occasion", "iov_parameter")
    shape = (n_occasions, len(names))
    if centered:
        free = pm.Normal("kappa_c", 0.0, pt.stack(sds)[None, :], dims=dims, shape=shape)
        columns = [free[:, j] for j in range(len(names))]
    else:
        z = pm.Normal("kappa_z", 0.0, 1.0, dims=dims, shape=shape)
        columns = [sds[j] * z[:, j] for j in range(len(names))]
    pm.Deterministic("kappa", pt.stack(columns, axis=1), dims=dims)
    return dict(zip(names, columns))
