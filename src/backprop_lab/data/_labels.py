"""Class labels, one rule for every file format.

A 1-D ``y`` (a ``.npz`` array, or a ``.csv`` file's target column) holds class
labels, read the same way whatever the file:

- numbers: whole numbers, compared exactly. Integers (an integer array, or
  cells such as ``7`` or ``-12``) may be any 64-bit integer; a floating value
  (a float array, or cells such as ``3.0`` or ``1e3``) must be a whole number
  below 2**53 in magnitude, where every whole number is exact (above it,
  ``1e300`` and ``2e300``, or two 19-digit integers written as floats, would not
  be told apart). A fractional value is refused, as are NaN and infinity.
- names: when some label is not a number, every label is a name (its text,
  surrounding spaces dropped). A name that reads as a missing number (``nan``,
  ``inf``) or an empty one is refused.

Class ``k`` is the ``k``-th of the sorted distinct labels; data of a single
class is refused, as there is nothing to tell apart. Messages name the row
(``y[3]``, or the line of a ``.csv`` file) and the parsed number, never the
file's text.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = ["EXACT", "class_codes", "parse_labels"]

#: Floating labels must be whole numbers below this magnitude (every one is exact in float64).
EXACT = 2**53
_INT64 = np.iinfo(np.int64)
_RULE = "class labels are whole numbers (below 2**53 when written as floats) or names"

Where = Callable[[int], str]


def _whole_floats(values: np.ndarray, where: Where) -> np.ndarray:
    """Floating labels as int64, each checked: finite, whole, exact."""
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{where(i)} is {float(values[i])}, not a class label; {_RULE}")
    bad = values != np.round(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{where(i)}={float(values[i])!r} is not a whole number; {_RULE}")
    bad = np.abs(values) >= EXACT
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{where(i)}={values[i]:g} is too large to be an exact class label; {_RULE} "
            "(write large integers without a decimal point or exponent)"
        )
    return values.astype(np.int64)


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _texts(texts: np.ndarray, where: Where) -> np.ndarray:
    """Labels given as text: int64 when every one is a number (by :func:`_whole_floats` when one
    is written as a float), else the names."""
    cells = [str(t).strip() for t in texts]
    for i, cell in enumerate(cells):
        if not cell:
            raise ValueError(f"{where(i)} is empty; {_RULE}")
    integers = [_integer(c) for c in cells]
    if all(v is not None for v in integers):
        for i, v in enumerate(integers):
            assert v is not None
            if not _INT64.min <= v <= _INT64.max:
                raise ValueError(f"{where(i)} is an integer beyond 64 bits; {_RULE}")
        return np.array(integers, dtype=np.int64)
    numbers = [_number(c) for c in cells]
    for i, number in enumerate(numbers):
        if number is not None and not math.isfinite(number):
            raise ValueError(f"{where(i)} reads as {number}, a missing number, not a class label; {_RULE}")
    if all(v is not None for v in numbers):
        return _whole_floats(np.array(numbers, dtype=np.float64), where)
    return np.array(cells, dtype=str)


def parse_labels(y: np.ndarray, where: Where) -> np.ndarray:
    """A 1-D array of labels read by the module's rule: int64 numbers, or names (``str``).

    Arguments:
        y: The labels as stored: integers, floats, booleans or text.
        where: Row ``i`` as a message names it (``y[3]``, ``line 4, column 'label'``).

    Raises:
        ValueError: One line naming the first label that breaks the rule.
    """
    kind = y.dtype.kind
    if kind == "b":
        return y.astype(np.int64)
    if kind == "i":
        return y.astype(np.int64)
    if kind == "u":
        if y.size and int(y.max()) > _INT64.max:
            raise ValueError(f"{where(int(np.argmax(y)))} is an integer beyond 64 bits; {_RULE}")
        return y.astype(np.int64)
    if kind == "f":
        return _whole_floats(y.astype(np.float64), where)
    if kind in "US":
        return _texts(y.astype(str), where)
    raise ValueError(f"labels of dtype {y.dtype} cannot be read; {_RULE}")


def class_codes(labels: np.ndarray, what: str = "y") -> tuple[np.ndarray, int]:
    """Labels (as :func:`parse_labels` returns them) as class indices ``0..n_classes-1`` (the
    sorted distinct labels' positions) and ``n_classes``.

    Raises:
        ValueError: Every label is the same: one class, nothing to classify.
    """
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"{what} holds a single class; classification needs at least two "
            "(for one target value per row, give y as a 2-D (n, 1) array)"
        )
    return codes.reshape(-1), len(classes)
