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
``kappa = sqrt(omega_iov) * kappa_z``. When they are centred (rich data per subject,
hence per occasion), the free variable is the **log occasion parameter**
``log_occasion = log P_i + kappa_ik`` (centred on the subject's log individual
parameter, with the density ``N(kappa_ik; 0, omega_iov)`` as the potential
``kappa_prior``): the data inform each occasion's parameter directly, so there is no
ridge between a subject's eta and the mean of its kappas. (Centring the kappas alone,
``kappa_c ~ N(0, sqrt(omega_iov))`` free, leaves that ridge: it doubled the leapfrog
steps per draw of the IOV benchmark.) A parameter with IOV but no centred log
individual parameter gets ``kappa_c``.
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
_LOG_2PI = float(np.log(2.0 * np.pi))


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


def occasion_effects(
    spec,
    n_occasions: int,
    *,
    centered: bool = False,
    log_subject: dict | None = None,
    subject=None,
    initial: dict | None = None,
) -> dict:
    """Create the IOV variances and the kappas in the current model.

    Parameters
    ----------
    spec : ModelSpec
    n_occasions : int
        Number of subject-occasions.
    centered : bool
        The etas' parameterisation (see the module notes).
    log_subject : dict, optional
        Centred only: the subjects' log individual parameters (a tensor over subjects per
        name); the parameters found there get the log occasion parameter as free variable.
    subject : numpy.ndarray of int, optional
        The subject of each subject-occasion (needed with ``log_subject``).
    initial : dict, optional
        Initial log occasion parameter per name (default 0).

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
    occasion_level = [n for n in names if centered and log_subject and n in log_subject]
    if occasion_level:
        start = np.array([(initial or {}).get(n, 0.0) for n in occasion_level], dtype=float)
        columns = _occasion_centred(names, sds, occasion_level, log_subject, subject, np.tile(start, (n_occasions, 1)))
    elif centered:
        free = pm.Normal("kappa_c", 0.0, pt.stack(sds)[None, :], dims=dims, shape=shape)
        columns = [free[:, j] for j in range(len(names))]
    else:
        z = pm.Normal("kappa_z", 0.0, 1.0, dims=dims, shape=shape)
        columns = [sds[j] * z[:, j] for j in range(len(names))]
    pm.Deterministic("kappa", pt.stack(columns, axis=1), dims=dims)
    return dict(zip(names, columns))


def _occasion_centred(names, sds, occasion_level, log_subject, subject, start) -> list:
    """Kappas as ``log_occasion - log P_i`` for ``occasion_level`` parameters (free
    ``log_occasion``, ``n_occasions x len(occasion_level)``, with the normal density of
    the kappas as a potential), ``kappa_c`` free for the other parameters with IOV."""
    subject = np.asarray(subject, dtype=np.int64)
    logs = {n: log_subject[n][subject] for n in occasion_level}
    n_occasions = start.shape[0]
    free = pm.Flat("log_occasion", shape=start.shape, initval=start)
    columns, log_density = [], 0.0
    for j, name in enumerate(names):
        if name in logs:
            kappa = free[:, occasion_level.index(name)] - logs[name]
            log_density = log_density + pt.sum(-0.5 * (kappa / sds[j]) ** 2 - pt.log(sds[j]) - 0.5 * _LOG_2PI)
        else:
            kappa = pm.Normal(f"kappa_c_{name}", 0.0, sds[j], shape=(n_occasions,))
        columns.append(kappa)
    pm.Potential("kappa_prior", log_density)
    return columns
