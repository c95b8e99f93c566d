"""What the report's sections share: the fit with its seeded simulations, and figure drawing."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import diagnostics as dg
from .. import plots
from .html import escape

__all__ = ["Context", "N_REPLICATES", "SEED"]

#: Replicates simulated for the VPCs and NPDE, and their seed.
N_REPLICATES = 500
SEED = 20240601


class Context:
    """What the sections share: the fit and its simulations (computed once, seeded)."""

    def __init__(self, fd: dg.FitData) -> None:
        self.fd = fd
        self._sims = None
        self._npde = None

    @property
    def sims(self) -> np.ndarray:
        """Replicates of the observations with new subjects."""
        if self._sims is None:
            self._sims = dg.simulate_replicates(self.fd, N_REPLICATES, seed=SEED)
        return self._sims

    @property
    def npde(self) -> pd.DataFrame:
        """NPDE per observation."""
        if self._npde is None:
            self._npde = dg.fit_npde(self.fd, simulated=self.sims)
        return self._npde


def _figure(page, parts, make, caption: str) -> None:
    """Draw one figure into the page; a failure becomes a visible note, not a crash."""
    try:
        fig = make()
    except Exception as exc:  # noqa: BLE001 - one broken figure must not lose the report
        parts.append(
            f'<p class="missing">Figure not drawn ({escape(caption)}): {escape(type(exc).__name__)}: {escape(exc)}</p>'
        )
        return
    if fig is not None:
        page.figure(parts, plots.png_bytes(fig), caption)
