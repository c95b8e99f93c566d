"""The seam between the model core and the inference engines: one interface, one registry.

Every estimation method is an :class:`Engine`: a name, a kind (``"bayesian"`` or
``"frequentist"``) and a ``fit(spec, dataset, **settings)`` that returns a fit object
with the common result interface (``save(out)``, ``summary()``, ``fit_info()``, and
``convergence`` for Bayesian fits). The engines share the model: the Bayesian ones
sample the PyMC graph of :func:`bayes_nlme.build.build` (nutpie, PyMC, numpyro and
blackjax are samplers of the one ``nuts`` engine, as a numpyro ``MCMCKernel`` runs under
one ``MCMC`` driver), the frequentist ones minimise objectives of
:class:`bayes_nlme.estimation.problem.Problem`. Front ends (the CLI, notebooks) call
:func:`fit_model` or :func:`engine`, never a method by name; a new method is one
:func:`register` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import ArgumentError

__all__ = ["Engine", "engine", "engines", "fit_model", "register"]


@dataclass(frozen=True)
class Engine:
    """An estimation method.

    Attributes
    ----------
    name : str
        The method name (``--method``).
    kind : {"bayesian", "frequentist"}
    run : callable
        ``run(spec, dataset, **settings)`` -> fit object.
    settings : tuple of str
        The keyword settings ``run`` accepts (others are refused with their names).
    description : str
    """

    name: str
    kind: str
    run: Callable
    settings: tuple
    description: str

    def fit(self, spec, dataset, **settings):
        """Fit ``spec`` to ``dataset`` with the method's settings (passed as given).

        Parameters
        ----------
        spec : ModelSpec
        dataset : Dataset, path, bundled name or pandas.DataFrame
        **settings
            Keywords among :attr:`settings`.

        Returns
        -------
        BayesFit or EstimationResult
        """
        unknown = sorted(set(settings) - set(self.settings))
        if unknown:
            raise ArgumentError(
                f"method '{self.name}' has no setting {', '.join(map(repr, unknown))} "
                f"(valid: {', '.join(self.settings)})"
            )
        return self.run(spec, dataset, **settings)


_REGISTRY: dict[str, Engine] = {}


def register(engine_: Engine) -> Engine:
    """Add (or replace) an engine in the registry.

    Parameters
    ----------
    engine_ : Engine

    Returns
    -------
    Engine
    """
    _REGISTRY[engine_.name] = engine_
    return engine_


def _nuts(spec, dataset, **settings):
    from .fit import sample

    return sample(spec, dataset, **settings)


def _prior(spec, dataset, **settings):
    from .fit import sample_prior

    return sample_prior(spec, dataset, **settings)


def _frequentist(method: str) -> Callable:
    def run(spec, dataset, **settings):
        from .estimation import estimate

        return estimate(spec, dataset, method=method, **settings)

    return run


_NUTS_SETTINGS = (
    "draws",
    "tune",
    "chains",
    "seed",
    "sampler",
    "progressbar",
    "quiet",
    "target_accept",
    "centered",
    "cores",
    "compile_backend",
    "init",
    "adaptation",
)


def _defaults() -> None:
    register(Engine("nuts", "bayesian", _nuts, _NUTS_SETTINGS, "NUTS (nutpie, PyMC, numpyro or blackjax)"))
    register(Engine("prior", "bayesian", _prior, ("draws", "seed"), "exact forward draws from the prior"))
    import inspect

    from .estimation import estimate
    from .estimation.estimator import ALL_METHODS

    names = tuple(p for p in inspect.signature(estimate).parameters if p not in ("spec", "data", "method"))
    for method in ALL_METHODS:
        register(Engine(method, "frequentist", _frequentist(method), names, f"maximum likelihood ({method})"))


def engines() -> dict[str, Engine]:
    """Every registered engine by name (the built-in ones first).

    Returns
    -------
    dict of str to Engine
    """
    if not _REGISTRY:
        _defaults()
    return dict(_REGISTRY)


def engine(name: str) -> Engine:
    """The engine of a method name.

    Parameters
    ----------
    name : str

    Returns
    -------
    Engine

    Raises
    ------
    ArgumentError
        For an unknown method, listing the valid ones.
    """
    known = engines()
    if name not in known:
        raise ArgumentError(f"unknown method {name!r} (valid: {', '.join(known)})")
    return known[name]


def fit_model(spec, dataset, method: str = "nuts", **settings):
    """Fit a model by any registered method (the one entry point of every front end).

    Parameters
    ----------
    spec : ModelSpec
    dataset : Dataset, path, bundled name or pandas.DataFrame
    method : str
        ``nuts``, ``prior``, or a frequentist method (``fo``, ``foce``, ``focei``,
        ``laplace``, ...); see :func:`engines`.
    **settings
        The engine's settings (:attr:`Engine.settings`).

    Returns
    -------
    BayesFit or EstimationResult
    """
    return engine(method).fit(spec, dataset, **settings)
