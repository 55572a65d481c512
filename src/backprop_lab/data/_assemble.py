"""Data sets from arrays: train and test arrays into a :class:`Dataset`, labelled rows split by
the seeded train/test split of :mod:`._split`, and the 8x8 digits file scikit-learn ships."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from ._dataset import Dataset
from ._split import split_rows

__all__ = ["assemble", "classification", "read_digits"]


def assemble(
    name: str,
    x: tuple[np.ndarray, np.ndarray],
    y: tuple[np.ndarray, np.ndarray],
    n_classes: int | None,
    *,
    one_hot: bool,
    standardize: bool,
    sha256: str | None = None,
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
        sha256: The content hash of the file the arrays were read from, if any.
    """
    x_train, x_test = x
    if standardize:
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if n_classes is None:
        return Dataset(name, x_train, y[0], x_test, y[1], None, "regression", sha256)
    if one_hot:
        eye = np.eye(n_classes)
        return Dataset(name, x_train, eye[y[0]], x_test, eye[y[1]], n_classes, "one_hot", sha256)
    y_train, y_test = y[0].astype(np.int64), y[1].astype(np.int64)
    return Dataset(name, x_train, y_train, x_test, y_test, n_classes, "labels", sha256)


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
