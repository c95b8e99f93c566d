"""The helper process of the native route: it compiles a model's expand callback.

Numba compiles on one core. On a fresh compilation, :func:`bayes_nlme.fit.native.compile_native`
starts this module as a separate Python process (``python -m
bayes_nlme.fit.native_worker RECIPE KEY``), which rebuilds the model from its recipe
(spec, dataset, centring), compiles the expand callback (the traced values) into the
shared cache and writes ``<key>.expand.pkl`` (the data it reads), while the parent
compiles the log density. The parent then loads the callback from the cache. A failed
or missing helper costs nothing but time: the parent compiles the callback itself.

``BAYES_NLME_COMPILE_HELPER=0`` turns the helper off.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

__all__ = ["start_helper", "Helper"]

_LOG = logging.getLogger("bayes_nlme")

#: Seconds the parent waits for the helper before compiling the callback itself.
TIMEOUT = 900


class Helper:
    """A running helper process.

    Parameters
    ----------
    process : subprocess.Popen
    result_path, recipe_path, log_path : pathlib.Path
    """

    def __init__(self, process, result_path: Path, recipe_path: Path, log_path: Path):
        self.process = process
        self.result_path = result_path
        self.recipe_path = recipe_path
        self.log_path = log_path

    def result(self) -> dict | None:
        """Wait for the helper; its expand metadata, or None when it failed.

        Returns
        -------
        dict or None
            ``{"n_expanded": int, "expand_data": list of str}``.
        """
        try:
            code = self.process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.cancel()
            _LOG.debug("the compile helper took over %s s and was stopped", TIMEOUT)
            return None
        try:
            if code != 0 or not self.result_path.exists():
                tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
                _LOG.debug("the compile helper failed (exit %s):\n%s", code, tail)
                return None
            return pickle.loads(self.result_path.read_bytes())
        except Exception:  # noqa: BLE001 - a corrupt result: compile in the parent
            return None
        finally:
            for path in (self.recipe_path, self.result_path, self.log_path):
                path.unlink(missing_ok=True)

    def cancel(self) -> None:
        """Stop the helper (when its work is no longer needed)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for path in (self.recipe_path, self.result_path, self.log_path):
            path.unlink(missing_ok=True)


def start_helper(recipe, key: str, directory: Path) -> Helper | None:
    """Start a helper process that compiles the expand callback of ``recipe``'s model.

    Parameters
    ----------
    recipe : tuple
        ``(spec, dataset, centered)``, picklable.
    key : str
        The model's graph key.
    directory : pathlib.Path
        The native route's metadata directory (the helper writes its result there).

    Returns
    -------
    Helper or None
        None when helpers are turned off or the recipe cannot be pickled.
    """
    if os.environ.get("BAYES_NLME_COMPILE_HELPER", "1") == "0":
        return None
    directory.mkdir(parents=True, exist_ok=True)
    tag = f"{key}.{os.getpid()}"
    recipe_path = directory / f"{tag}.recipe"
    result_path = directory / f"{tag}.expand"
    log_path = directory / f"{tag}.log"
    try:
        recipe_path.write_bytes(pickle.dumps(recipe))
    except Exception:  # noqa: BLE001 - an unpicklable spec or dataset: no helper
        recipe_path.unlink(missing_ok=True)
        return None
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bayes_nlme.fit.native_worker", str(recipe_path), key, str(result_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
    return Helper(process, result_path, recipe_path, log_path)


def main(argv: list[str]) -> int:
    """Entry point of the helper: compile the expand callback; 0 on success."""
    recipe_path, key, result_path = Path(argv[0]), argv[1], Path(argv[2])
    spec, dataset, centered = pickle.loads(recipe_path.read_bytes())

    from ..build import build
    from .native import _metadata, _write, compile_callback

    model = build(spec, dataset, centered=centered).model
    meta = _metadata(model, for_nutpie=False)
    callback = compile_callback(model, "expand", key, meta)
    if callback is None:
        return 1
    _write(result_path, {"n_expanded": meta["n_expanded"], "expand_data": meta["expand_data"]})
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a process
    sys.exit(main(sys.argv[1:]))
