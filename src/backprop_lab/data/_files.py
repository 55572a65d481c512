"""Your own ``.npz`` or ``.csv`` file as a data set (``data=file data.path=...``).

A ``.npz`` archive holds arrays ``x`` ``(n, d)`` and ``y``, and optionally a
held-out pair ``x_test``, ``y_test``; without them the rows are split like the
built-in data sets. A 1-D ``y`` holds class labels; a 2-D ``y`` holds target
rows used as they are (one-hot rows count as classes).

A ``.csv`` file has a header row naming its columns; ``target`` names the
column of class labels and every other column is a numeric feature.

Labels follow one rule in both formats (:mod:`._labels`); the arrays are read
as :mod:`._readers` says. Every problem with a file is a one-line
``ValueError`` naming the file and what is wrong (shapes, line and column
numbers, never the file's text). The file's SHA-256 comes with the data set, so
a run records what it trained on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ._assemble import assemble
from ._dataset import Dataset
from ._labels import class_codes, parse_labels
from ._readers import READERS
from ._split import split_rows

__all__ = ["load_file"]


def _check_numbers(name: str, a: np.ndarray) -> None:
    """Refuse a non-numeric array, or one holding NaN or infinity."""
    if a.dtype.kind not in "biuf":
        raise ValueError(f"array {name!r} has dtype {a.dtype}; expected numbers")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        at = [int(i) for i in np.argwhere(~np.isfinite(a))[0]]
        raise ValueError(f"array {name!r} holds {a[tuple(at)]} at index {at}; every value must be finite")


def _check_shapes(a: dict[str, np.ndarray]) -> None:
    """x and y (and x_test, y_test) have rows, matching row counts and widths."""
    for x_name, y_name in (("x", "y"), ("x_test", "y_test")):
        if x_name not in a:
            continue
        x, y = a[x_name], a[y_name]
        if x.ndim != 2 or 0 in x.shape:
            raise ValueError(
                f"array {x_name!r} has shape {x.shape}; expected (rows, features), both at least 1"
            )
        if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"array {y_name!r} has shape {y.shape}; expected {x.shape[0]} rows like {x_name!r}, "
                f"as ({x.shape[0]},) labels or ({x.shape[0]}, k) targets"
            )
        _check_numbers(x_name, x)
        if y.ndim == 2:
            _check_numbers(y_name, y)
    shapes = {k: a[k].shape[1:] for k in a}
    if "x_test" in a and (shapes["x_test"], shapes["y_test"]) != (shapes["x"], shapes["y"]):
        raise ValueError(
            f"x_test {a['x_test'].shape} and y_test {a['y_test'].shape} do not match the widths "
            f"of x {a['x'].shape} and y {a['y'].shape}"
        )


def _targets(a: dict[str, np.ndarray], csv_column: str | None) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Targets of all rows, train then test: ``(labels as read, class indices or float rows,
    n_classes)``; ``n_classes`` is None for real-valued rows."""
    both = np.concatenate([a["y"], a["y_test"]]) if "y_test" in a else a["y"]
    if both.ndim == 2:
        if both.shape[1] > 1 and np.isin(both, (0, 1)).all() and (both.sum(axis=1) == 1).all():
            codes = both.argmax(axis=1)
            if len(np.unique(codes)) < 2:
                raise ValueError("y's one-hot rows are all one class; classification needs at least two")
            return codes, codes, int(both.shape[1])
        return both, both.astype(np.float64), None
    n = len(a["y"])

    def where(i: int) -> str:
        if csv_column is not None:
            return f"line {a['lines'][i]}, column {csv_column!r}"
        return f"y[{i}]" if i < n else f"y_test[{i - n}]"

    labels = parse_labels(both, where)
    codes, n_classes = class_codes(labels)
    return labels, codes, n_classes


def _sha256(file: Path) -> str:
    with open(file, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_file(
    *, seed: int, path: str, target: str | None, test_fraction: float, one_hot: bool, standardize: bool
) -> Dataset:
    """The ``file`` data set: your own ``.npz`` or ``.csv`` file, checked and split.

    Arguments:
        seed: Seed of the train/test split (:func:`split_rows`, stratified for
            class labels); unused when the file holds ``x_test`` and ``y_test``.
        path: The file; a relative path is taken from the current directory
            (where the command was launched).
        target: The ``.csv`` column of class labels; ``None`` for ``.npz``.
        test_fraction: Fraction of rows held out, in (0, 1).
        one_hot: Class labels as one-hot rows ``(n, n_classes)`` or as ``(n,)``.
        standardize: Rescale each feature to zero mean and unit variance with
            statistics of the training rows.

    Returns:
        The :class:`Dataset` named ``"file"``, float64 arrays, with the file's SHA-256.

    Raises:
        ValueError: One line naming the file and the problem: missing, empty,
            unreadable, too large, wrong suffix, missing or extra arrays, bad
            shapes, non-numeric cells, NaN or infinity, labels that break the
            rule of :mod:`._labels`, or a split that cannot be made.
    """
    file = Path(path).expanduser()
    try:
        reader = READERS.get(file.suffix.lower())
        if reader is None:
            raise ValueError(f"has suffix {file.suffix!r}; expected a .npz or .csv file")
        if not file.is_file():
            raise ValueError(f"not found (relative paths are taken from the launch directory {Path.cwd()})")
        if file.stat().st_size == 0:
            raise ValueError("is empty")
        sha256 = _sha256(file)
        arrays = reader(file, target)
        _check_shapes({k: v for k, v in arrays.items() if k != "lines"})
        labels, y, n_classes = _targets(arrays, target)
        x, n = arrays["x"].astype(np.float64), len(arrays["x"])
        if "x_test" in arrays:
            x_test = arrays["x_test"].astype(np.float64)
            halves = ((x, x_test), (y[:n], y[n:]))
        else:
            train, test = split_rows(n, test_fraction, seed, None if n_classes is None else labels)
            halves = ((x[train], x[test]), (y[train], y[test]))
        return assemble("file", *halves, n_classes, one_hot=one_hot, standardize=standardize, sha256=sha256)
    except OSError as err:
        raise ValueError(
            f"data file {path!r}: cannot be read ({err.strerror or type(err).__name__})"
        ) from None
    except ValueError as err:
        raise ValueError(f"data file {path!r}: {err}") from None
