"""The rules of the data sets' options (``data.KEY``) and each data set's defaults (imports
neither JAX nor NumPy, as :mod:`._keys`)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeGuard

__all__ = ["DATA_DEFAULTS", "DATA_OPTIONS", "DataOption", "is_number"]


def is_number(v: object) -> TypeGuard[float]:
    """A real number (NumPy's too), not a flag; typed as float, which it compares and converts as."""
    return isinstance(v, numbers.Real) and not is_flag(v)


def is_flag(v: object) -> bool:
    return isinstance(v, bool) or type(v).__name__ in ("bool_", "bool")  # NumPy's too


@dataclass(frozen=True)
class DataOption:
    """One option of the data sets: the test a value passes, what a right value looks like,
    and its type (the loaders get ``kind(value)``; ``null`` in a config means the data set's
    default)."""

    accepts: Callable[[object], bool]
    expected: str
    kind: type


#: The data sets' options (``data.KEY``), each with its rule.
DATA_OPTIONS: dict[str, DataOption] = {
    "test_fraction": DataOption(
        lambda v: is_number(v) and 0 < v < 1, "a number strictly between 0 and 1, e.g. 0.25", float
    ),
    "n_samples": DataOption(
        lambda v: is_number(v) and float(v).is_integer() and v >= 8,
        "an integer of at least 8, to leave both classes in train and test",
        int,
    ),
    "noise": DataOption(
        lambda v: is_number(v) and 0 <= v < math.inf, "a standard deviation, a finite number >= 0", float
    ),
    "one_hot": DataOption(is_flag, "true (one-hot rows) or false (integer labels)", bool),
    "standardize": DataOption(is_flag, "true or false", bool),
    "path": DataOption(
        lambda v: isinstance(v, str) and v not in ("", "???"),
        "the path of a .npz or .csv file, e.g. data.path=my.csv",
        str,
    ),
    "target": DataOption(
        lambda v: v is None or (isinstance(v, str) and v != ""),
        "a column name of the .csv file, or null",
        str,
    ),
}

_SPLIT: dict[str, object] = {"test_fraction": 0.25, "one_hot": True}
#: The options each data set takes, with their defaults (``_data.DATASETS[name].defaults``);
#: a data set of :data:`._names.DATASETS` not here is a fixed table and takes none.
DATA_DEFAULTS: dict[str, dict[str, object]] = {
    "moons": {"n_samples": 1000, "noise": 0.2, **_SPLIT},
    "circles": {"n_samples": 1000, "noise": 0.1, **_SPLIT},
    "digits": _SPLIT,
    "file": {"path": None, "target": None, **_SPLIT, "standardize": False},
}
