"""Units of a fit's quantities, from the dataset's metadata where it has any.

Bundled datasets carry their column units (:data:`bayes_nlme.data.bundled.BUNDLED`);
from ``TIME``, ``AMT`` and ``DV`` units the units of the structural parameters follow
(``DV = AMT / volume`` gives the volume, a clearance is a volume per time). Without
metadata every unit is empty and labels say ``time`` and ``concentration``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Units", "dataset_units"]

_VOLUMES = ("V", "V1", "V2")
_FLOWS = ("CL", "Q")


@dataclass(frozen=True)
class Units:
    """Units of time, amount, concentration and covariates (empty when unknown).

    Attributes
    ----------
    time, amount, concentration : str
    columns : dict of str to str
        Column -> unit, for covariates and roles.
    """

    time: str = ""
    amount: str = ""
    concentration: str = ""
    columns: dict = field(default_factory=dict, hash=False)

    @property
    def volume(self) -> str:
        """The volume unit: ``L`` for ``AMT`` mg and ``DV`` mg/L ('' if unknown)."""
        amount, conc = self.amount, self.concentration
        if amount and conc.startswith(amount + "/"):
            return conc[len(amount) + 1 :]
        return ""

    def parameter(self, name: str) -> str:
        """Unit of a structural parameter (``CL`` -> ``L/h``), '' when unknown or none.

        Parameters
        ----------
        name : str

        Returns
        -------
        str
        """
        if name in _VOLUMES:
            return self.volume
        if name in _FLOWS:
            return f"{self.volume}/{self.time}" if self.volume and self.time else ""
        if name == "ka":
            return f"1/{self.time}" if self.time else ""
        if name == "tlag":
            return self.time
        return ""

    def column(self, name: str) -> str:
        """Unit of a dataset column ('' when unknown)."""
        return self.columns.get(name, "")

    def label(self, what: str, unit: str) -> str:
        """``what (unit)`` or ``what`` alone when the unit is unknown."""
        return f"{what} ({unit})" if unit else what

    @property
    def time_label(self) -> str:
        """Axis label of time, e.g. ``Time (h)``."""
        return self.label("Time", self.time)

    @property
    def conc_label(self) -> str:
        """Axis label of concentrations, e.g. ``Concentration (mg/L)``."""
        return self.label("Concentration", self.concentration)


def dataset_units(dataset) -> Units:
    """Units of a dataset: from the bundled metadata when it is a bundled dataset.

    Parameters
    ----------
    dataset : Dataset

    Returns
    -------
    Units
        Empty units for datasets without metadata.
    """
    from ..data.bundled import BUNDLED

    entry = BUNDLED.get(str(getattr(dataset, "source", "")).strip().lower())
    if entry is None:
        return Units()
    units = dict(entry.get("units", {}))
    roles = dict(getattr(dataset, "columns", {}) or {})
    for role, column in roles.items():  # the units are keyed by file column names
        if column in units and role not in units:
            units[role] = units[column]
    return Units(
        time=units.get("TIME", ""),
        amount=units.get("AMT", ""),
        concentration=units.get("DV", ""),
        columns=units,
    )
