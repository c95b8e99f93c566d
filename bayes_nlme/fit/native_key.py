"""Keys and place of the native route's cache (:mod:`.native`): :func:`graph_key` digests a
model graph with the sources that shape it and the library versions; :func:`cache_directory`
is where the metadata lives."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

__all__ = ["graph_key", "cache_directory"]

#: Bumped when the generated callbacks or the metadata layout change.
_FORMAT = 3


def cache_directory() -> Path:
    """Where the native route keeps its metadata.

    ``BAYES_NLME_CACHE_DIR`` if set, else ``<pytensor base_compiledir>/bayes_nlme``
    (the machine code itself lives in PyTensor's Numba cache, ``.../numba``).

    Returns
    -------
    pathlib.Path
    """
    env = os.environ.get("BAYES_NLME_CACHE_DIR")
    if env:
        return Path(env)
    import pytensor

    return Path(pytensor.config.base_compiledir) / "bayes_nlme"


_SOURCE_DIGEST: str | None = None
#: Modules whose code shapes the compiled graph or the callbacks.
_GRAPH_SOURCES = ("build", "core", "pk", "spec", "data", "individual.py", "fit/native.py", "fit/compile.py")


def _source_digest() -> str:
    """Digest of the sources that shape the graph: a change there invalidates the cache."""
    global _SOURCE_DIGEST
    if _SOURCE_DIGEST is None:
        root = Path(__file__).resolve().parent.parent
        h = hashlib.sha256()
        paths = [
            p
            for part in _GRAPH_SOURCES
            for p in (sorted((root / part).rglob("*.py")) if (root / part).is_dir() else [root / part])
        ]
        for path in paths:
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
        _SOURCE_DIGEST = h.hexdigest()
    return _SOURCE_DIGEST


def graph_key(*parts) -> str:
    """Cache key of a model graph.

    Parameters
    ----------
    *parts
        What fixes the graph besides the library versions (the model structure and the
        dataset digest); they are hashed through their ``repr``.

    Returns
    -------
    str
        A hex digest covering ``parts``, the bayes_nlme source, and the versions of
        PyTensor, PyMC, Numba, nutpie and NumPy.
    """
    import numba
    import nutpie
    import pymc
    import pytensor

    versions = (pytensor.__version__, pymc.__version__, numba.__version__, nutpie.__version__, np.__version__)
    text = repr((_FORMAT, versions, _source_digest(), parts))
    return hashlib.sha256(text.encode()).hexdigest()
