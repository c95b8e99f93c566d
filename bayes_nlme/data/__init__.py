"""NONMEM-style datasets: reading, validation and bundled data.

>>> from bayes_nlme.data import load_dataset
>>> ds = load_dataset("theophylline")
>>> ds.n_subjects
12
"""

from __future__ import annotations

from .bundled import BUNDLED, bundled_names, bundled_path, describe
from .columns import COMPARTMENTS, DEFAULTS, REQUIRED, ROLES
from .dataset import Dataset, check_for_model, load_dataset, read_dataset

__all__ = [
    "BUNDLED",
    "COMPARTMENTS",
    "DEFAULTS",
    "REQUIRED",
    "ROLES",
    "Dataset",
    "bundled_names",
    "bundled_path",
    "check_for_model",
    "describe",
    "load_dataset",
    "read_dataset",
]
