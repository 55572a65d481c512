"""Data sets made from arrays (split by the seeded train/test split of
:mod:`._split`), the 8x8 digits file scikit-learn ships, and your own ``.npz``
or ``.csv`` file (``data=file data.path=...``).

A ``.npz`` archive holds arrays ``x`` ``(n, d)`` and ``y``, and optionally a
held-out pair ``x_test``, ``y_test``; without them the rows are split like the
built-in data sets. A 1-D ``y`` holds class labels (whole numbers, or strings);
a 2-D ``y`` holds target rows used as they are (one-hot rows count as classes).

A ``.csv`` file has a header row naming its columns; ``target`` names the
column of class labels (whole numbers or names) and every other column is a
numeric feature.

Class ``k`` is the ``k``-th of the sorted distinct labels. Every problem with a
file is a one-line ``ValueError`` naming the file and what is wrong.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._dataset import Dataset
from ._split import split_rows

__all__ = ["assemble", "classification", "load_file", "read_digits"]

_NPZ_NAMES = ("x", "y", "x_test", "y_test")


# --------------------------------------------------------------------------- #
# data sets from arrays
# --------------------------------------------------------------------------- #


def assemble(
    name: str,
    x: tuple[np.ndarray, np.ndarray],
    y: tuple[np.ndarray, np.ndarray],
    n_classes: int | None,
    *,
    one_hot: bool,
    standardize: bool,
) -> Dataset:
    """A :class:`Dataset` from train and test arrays.

    Arguments:
        name: Registry name.
        x: ``(x_train, x_test)``, shapes ``(n_train, d)`` and ``(n_test, d)``.
        y: ``(y_train, y_test)``: integer labels ``(n,)`` in ``0..n_classes-1``
            when ``n_classes`` is given, otherwise regression targets ``(n, k)``.
        n_classes: Number of classes, ``None`` for regression targets.
        one_hot: Labels as one-hot rows ``(n, n_classes)`` rather than ``(n,)``.
        standardize: Rescale each input column to zero mean and unit variance
            with statistics of the training rows only.
    """
    x_train, x_test = x
    if standardize:
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if n_classes is None:
        return Dataset(name, x_train, y[0], x_test, y[1], None, "regression")
    if one_hot:
        eye = np.eye(n_classes)
        return Dataset(name, x_train, eye[y[0]], x_test, eye[y[1]], n_classes, "one_hot")
    return Dataset(name, x_train, y[0].astype(np.int64), x_test, y[1].astype(np.int64), n_classes, "labels")


def classification(
    name: str,
    x: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    seed: int,
    test_fraction: float,
    one_hot: bool,
    standardize: bool,
) -> Dataset:
    """Split ``x`` ``(n, d)`` and integer ``labels`` ``(n,)`` with :func:`split_rows`
    (stratified) and :func:`assemble` the halves."""
    train, test = split_rows(len(labels), test_fraction, seed, labels)
    return assemble(
        name,
        (x[train], x[test]),
        (labels[train], labels[test]),
        n_classes,
        one_hot=one_hot,
        standardize=standardize,
    )


# --------------------------------------------------------------------------- #
# files
# --------------------------------------------------------------------------- #


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits file scikit-learn ships, read without importing ``sklearn.datasets``.

    Returns:
        ``(pixels, labels)``: float64 ``(1797, 64)`` in 0..16 and int64
        ``(1797,)``, equal to ``load_digits().data`` and ``.target``.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("data set 'digits' reads the file scikit-learn ships; install scikit-learn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :-1], table[:, -1].astype(int)


def _first(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _check_numbers(name: str, a: np.ndarray) -> None:
    """Refuse a non-numeric array, or one holding NaN or infinity."""
    if a.dtype.kind not in "biuf":
        raise ValueError(f"array {name!r} has dtype {a.dtype}; expected numbers")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        at = _first(~np.isfinite(a))
        raise ValueError(f"array {name!r} holds {a[at]} at index {list(at)}; every value must be finite")


def _read_npz(path: Path, target: str | None) -> dict[str, np.ndarray]:
    """Arrays of a ``.npz`` archive, by name (the names are checked)."""
    if target is not None:
        raise ValueError(f"target={target!r} is for .csv files; a .npz file holds arrays x and y")
    if not zipfile.is_zipfile(path):
        raise ValueError("is not a whole .npz (zip) archive; save one with np.savez(path, x=..., y=...)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"is not a readable .npz archive ({reason})") from None
    extra = sorted(set(arrays) - set(_NPZ_NAMES))
    missing = [k for k in ("x", "y") if k not in arrays]
    if extra or missing:
        raise ValueError(f"holds arrays {sorted(arrays)}; expected x and y, optionally x_test and y_test")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise ValueError("holds only one of x_test and y_test; give both or neither")
    return arrays


def _cell_numbers(cells: np.ndarray, names: list[str], lines: list[int]) -> np.ndarray:
    """Strings ``(n, k)`` as float64, or a ValueError naming the first bad cell."""
    try:
        values = cells.astype(np.float64)
    except ValueError:
        for (r, c), cell in np.ndenumerate(cells):
            try:
                float(cell)
            except ValueError:
                what = "is empty" if not cell.strip() else f"holds {cell.strip()!r}, not a number"
                raise ValueError(f"line {lines[r]}, column {names[c]!r} {what}") from None
        raise
    if not np.isfinite(values).all():
        r, c = _first(~np.isfinite(values))
        raise ValueError(
            f"line {lines[r]}, column {names[c]!r} holds {values[r, c]}; every feature must be finite"
        )
    return values


def _read_csv(path: Path, target: str | None) -> dict[str, np.ndarray]:
    """``x`` (numeric features) and ``y`` (the target column's labels) of a ``.csv`` file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"is not UTF-8 text (byte {err.start})") from None
    reader = csv.reader(io.StringIO(text))
    rows, lines = [], []
    for row in reader:
        if any(cell.strip() for cell in row):
            rows.append(row)
            lines.append(reader.line_num)
    if not rows:
        raise ValueError("holds no rows; expected a header row and data rows")
    header = [name.strip() for name in rows[0]]
    if target is None:
        raise ValueError(f"needs target=COLUMN naming its label column; columns: {', '.join(header)}")
    if target not in header or header.count(target) > 1:
        problem = "has no column" if target not in header else "has more than one column"
        raise ValueError(f"{problem} named {target!r}; columns: {', '.join(header)}")
    if len(header) < 2:
        raise ValueError(f"has no feature columns besides {target!r}")
    if len(rows) < 2:
        raise ValueError("has a header row but no data rows")
    for row, line in zip(rows[1:], lines[1:]):
        if len(row) != len(header):
            raise ValueError(f"line {line} has {len(row)} cells but the header names {len(header)} columns")
    cells = np.array(rows[1:], dtype=str)
    t = header.index(target)
    features = [n for i, n in enumerate(header) if i != t]
    labels = np.char.strip(cells[:, t])
    if (labels == "").any():
        raise ValueError(f"line {lines[1 + _first(labels == '')[0]]}, column {target!r} is empty")
    try:
        numeric = labels.astype(np.float64)
        if np.isfinite(numeric).all() and (numeric == np.round(numeric)).all():
            labels = numeric.astype(np.int64)
    except ValueError:
        pass  # names: classes in string order
    return {"x": _cell_numbers(np.delete(cells, t, axis=1), features, lines[1:]), "y": labels}


Reader = Callable[[Path, str | None], dict[str, np.ndarray]]
_READERS: dict[str, Reader] = {".npz": _read_npz, ".csv": _read_csv}


def _targets(y: np.ndarray, y_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Targets as ``(y, y_test, n_classes)``: class indices ``(n,)`` with their
    number of classes, or float rows ``(n, k)`` with ``None``."""
    both = np.concatenate([y, y_test])
    if both.ndim == 2:
        if both.shape[1] > 1 and np.isin(both, (0, 1)).all() and (both.sum(axis=1) == 1).all():
            return y.argmax(axis=1), y_test.argmax(axis=1), int(both.shape[1])
        return y.astype(np.float64), y_test.astype(np.float64), None
    if y.dtype.kind == "f" and not (np.round(y) == y).all():
        bad = _first(np.round(y) != y)[0]
        raise ValueError(
            f"y is 1-D so it holds class labels, but y[{bad}]={y[bad]} is not a whole number; "
            "give real-valued targets as a 2-D (n, k) array"
        )
    classes, codes = np.unique(both, return_inverse=True)
    return codes[: len(y)], codes[len(y) :], len(classes)


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
        if y.dtype.kind != "U" or y.ndim != 1:
            _check_numbers(y_name, y)
    shapes = {k: a[k].shape[1:] for k in a}
    if "x_test" in a and (shapes["x_test"], shapes["y_test"]) != (shapes["x"], shapes["y"]):
        raise ValueError(
            f"x_test {a['x_test'].shape} and y_test {a['y_test'].shape} do not match the widths "
            f"of x {a['x'].shape} and y {a['y'].shape}"
        )


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
        The :class:`Dataset` named ``"file"``, float64 arrays.

    Raises:
        ValueError: One line naming the file and the problem: missing, empty,
            unreadable, wrong suffix, missing or extra arrays, bad shapes,
            non-numeric cells, NaN or infinity, or a split that cannot be made.
    """
    file = Path(path).expanduser()
    try:
        reader = _READERS.get(file.suffix.lower())
        if reader is None:
            raise ValueError(f"has suffix {file.suffix!r}; expected a .npz or .csv file")
        if not file.is_file():
            raise ValueError(f"not found (relative paths are taken from the launch directory {Path.cwd()})")
        if file.stat().st_size == 0:
            raise ValueError("is empty")
        arrays = reader(file, target)
        _check_shapes(arrays)
        x = arrays["x"].astype(np.float64)
        if "x_test" in arrays:
            y, y_test, n_classes = _targets(arrays["y"], arrays["y_test"])
            return assemble(
                "file",
                (x, arrays["x_test"].astype(np.float64)),
                (y, y_test),
                n_classes,
                one_hot=one_hot,
                standardize=standardize,
            )
        y, _, n_classes = _targets(arrays["y"], arrays["y"][:0])
        labels = arrays["y"] if arrays["y"].ndim == 1 else y  # the file's own labels name a lonely class
        train, test = split_rows(len(y), test_fraction, seed, None if n_classes is None else labels)
        return assemble(
            "file",
            (x[train], x[test]),
            (y[train], y[test]),
            n_classes,
            one_hot=one_hot,
            standardize=standardize,
        )
    except ValueError as err:
        raise ValueError(f"data file {path!r}: {err}") from None
