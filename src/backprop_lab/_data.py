"""Data sets for the experiments: tiny truth tables, the notes' worked examples,
and small seeded classification problems from scikit-learn.

Every data set comes back as a :class:`Dataset` whose arrays are rows of
examples: ``x`` has shape ``(n, in_width)`` and ``y`` has shape
``(n, out_width)``, except integer class labels, which have shape ``(n,)``.

Tiny tables (the logic gates, ``swap`` and the notes' single examples) have no
held-out data: their test arrays are the same rows as their training arrays.
The scikit-learn problems are split into train and test sets with a seeded,
stratified split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import DTypeLike

__all__ = [
    "DATASETS",
    "Dataset",
    "TargetKind",
    "dataset_names",
    "load_dataset",
    "validate_against_model",
]

TargetKind = Literal["binary", "one_hot", "labels", "regression"]
"""What ``y`` holds.

- ``"binary"``: one column of 0/1 values (logic gates).
- ``"one_hot"``: one column per class, each row has a single 1.
- ``"labels"``: integer class indices, shape ``(n,)``.
- ``"regression"``: real-valued target vectors (``swap`` and the notes' examples).
"""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test pair of example arrays.

    Attributes:
        name: Registry name the data set was loaded under.
        x_train: Inputs, shape ``(n_train, in_width)``, floating point.
        y_train: Targets, shape ``(n_train, out_width)`` (floating point), or
            ``(n_train,)`` integer labels when ``targets == "labels"``.
        x_test: Inputs, shape ``(n_test, in_width)``.
        y_test: Targets, shaped like ``y_train`` with ``n_test`` rows.
        n_classes: Number of classes for classification data, ``None`` for
            regression targets.
        targets: What ``y`` holds, see :data:`TargetKind`.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int | None
    targets: TargetKind

    @property
    def in_width(self) -> int:
        """Number of input features (columns of ``x``)."""
        return int(self.x_train.shape[1])

    @property
    def out_width(self) -> int:
        """Width a network's output layer needs for these targets.

        One column per class for integer labels, otherwise the number of
        columns of ``y``.
        """
        if self.targets == "labels":
            assert self.n_classes is not None
            return self.n_classes
        return int(self.y_train.shape[1])

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test examples."""
        return int(self.x_test.shape[0])


Builder = Callable[..., Dataset]
"""Signature of a registry entry: ``builder(*, seed, one_hot, **options) -> Dataset``
where ``options`` are the data set's own settings (test_fraction, n_samples, noise)."""


# --------------------------------------------------------------------------- #
# tiny tables
# --------------------------------------------------------------------------- #

_GATE_INPUTS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])


def _table(
    name: str, x: np.ndarray, y: np.ndarray, n_classes: int | None, targets: TargetKind
) -> Dataset:
    """A data set whose test rows are its training rows."""
    return Dataset(name, x, y, x.copy(), y.copy(), n_classes, targets)


def _gate(name: str, outputs: list[float]) -> Builder:
    """Builder for a two-input logic gate with the given outputs for the rows
    (0,0), (0,1), (1,0), (1,1)."""

    def build(**_: object) -> Dataset:
        y = np.array(outputs, dtype=np.float64).reshape(4, 1)
        return _table(name, _GATE_INPUTS.copy(), y, 2, "binary")

    build.__doc__ = (
        f"The {name.upper()} truth table: x shape (4, 2), y shape (4, 1) in {{0, 1}}. "
        "The test rows are the training rows."
    )
    return build


def _swap(**_: object) -> Dataset:
    """Note 004's swap-the-inputs table: (1,1)->(1,1), (1,0)->(0,1),
    (0,1)->(1,0), (0,0)->(0,0). x and y have shape (4, 2).
    The test rows are the training rows."""
    x = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    return _table("swap", x, x[:, ::-1].copy(), None, "regression")


def _note003(**_: object) -> Dataset:
    """Note 003's single worked example x=(1, 0), y=(1, 0); shapes (1, 2).
    The test row is the training row."""
    return _table("note003", np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]), None, "regression")


def _note004(**_: object) -> Dataset:
    """Note 004's single worked example x=(1, 0), y=(0, 1); shapes (1, 2).
    The test row is the training row."""
    return _table("note004", np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), None, "regression")


# --------------------------------------------------------------------------- #
# scikit-learn problems
# --------------------------------------------------------------------------- #


def _classification(name: str, x: np.ndarray, labels: np.ndarray, n_classes: int, *, seed: int,
                    test_fraction: float, one_hot: bool, standardize: bool) -> Dataset:
    """Split ``(x, labels)`` into a stratified train/test pair.

    Arguments:
        x: Inputs, shape ``(n, d)``.
        labels: Integer classes, shape ``(n,)``.
        n_classes: Number of classes.
        seed: Seed of the split.
        test_fraction: Fraction of rows held out for testing, in (0, 1).
        one_hot: Return one-hot targets ``(n, n_classes)`` instead of labels.
        standardize: Rescale each input column to zero mean and unit variance,
            using statistics of the training rows only.

    Returns:
        The :class:`Dataset`.
    """
    from sklearn.model_selection import train_test_split

    x_train, x_test, l_train, l_test = train_test_split(
        x, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    if standardize:
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        x_train = (x_train - mean) / std
        x_test = (x_test - mean) / std
    if one_hot:
        eye = np.eye(n_classes)
        y_train, y_test = eye[l_train], eye[l_test]
        targets: TargetKind = "one_hot"
    else:
        y_train, y_test = l_train.astype(np.int64), l_test.astype(np.int64)
        targets = "labels"
    return Dataset(name, x_train, y_train, x_test, y_test, n_classes, targets)


def _moons(*, seed: int, test_fraction: float, one_hot: bool, n_samples: int, noise: float) -> Dataset:
    """Two interleaving half circles (``sklearn.datasets.make_moons``), seeded
    by ``seed``, inputs standardized. x (n, 2); y (n, 2) one-hot or (n,) labels."""
    from sklearn.datasets import make_moons

    x, labels = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return _classification("moons", x, labels, 2, seed=seed, test_fraction=test_fraction,
                           one_hot=one_hot, standardize=True)


def _circles(*, seed: int, test_fraction: float, one_hot: bool, n_samples: int, noise: float) -> Dataset:
    """A small circle inside a large one (``sklearn.datasets.make_circles``,
    factor 0.5), seeded by ``seed``, inputs standardized. x (n, 2); y (n, 2)
    one-hot or (n,) labels."""
    from sklearn.datasets import make_circles

    x, labels = make_circles(n_samples=n_samples, noise=noise, factor=0.5, random_state=seed)
    return _classification("circles", x, labels, 2, seed=seed, test_fraction=test_fraction,
                           one_hot=one_hot, standardize=True)


def _digits(*, seed: int, test_fraction: float, one_hot: bool, **_: object) -> Dataset:
    """The 1797 8x8 handwritten digits bundled with scikit-learn
    (``sklearn.datasets.load_digits``, no download), pixels scaled to [0, 1]
    by dividing by 16. x (n, 64); y (n, 10) one-hot or (n,) labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64) / 16.0
    return _classification("digits", x, np.asarray(bunch.target, dtype=np.int64), 10, seed=seed,
                           test_fraction=test_fraction, one_hot=one_hot, standardize=False)


# --------------------------------------------------------------------------- #
# registry
# --------------------------------------------------------------------------- #

DATASETS: dict[str, Builder] = {
    "xor": _gate("xor", [0, 1, 1, 0]),
    "and": _gate("and", [0, 0, 0, 1]),
    "or": _gate("or", [0, 1, 1, 1]),
    "swap": _swap,
    "note003": _note003,
    "note004": _note004,
    "moons": _moons,
    "circles": _circles,
    "digits": _digits,
}
"""Registry of data set builders by name; :func:`load_dataset` is the front door."""

_TABLES = frozenset({"xor", "and", "or", "swap", "note003", "note004"})
# Options each generated data set takes, with the value used when one is not given.
_DEFAULTS: dict[str, dict[str, float | int]] = {
    "moons": {"test_fraction": 0.25, "n_samples": 1000, "noise": 0.2},
    "circles": {"test_fraction": 0.25, "n_samples": 1000, "noise": 0.1},
    "digits": {"test_fraction": 0.25},
}


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset`, sorted.

    Returns:
        The registry's keys.
    """
    return sorted(DATASETS)


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    test_fraction: float | None = None,
    one_hot: bool = True,
    n_samples: int | None = None,
    noise: float | None = None,
    dtype: DTypeLike = np.float64,
) -> Dataset:
    """Load a data set by name.

    Arguments:
        name: One of :func:`dataset_names`.
        seed: Seeds sample generation (moons, circles) and the train/test split.
            Tiny tables ignore it: they are fixed.
        test_fraction: Fraction of rows held out for testing, in (0, 1);
            ``None`` means 0.25. Only for moons, circles and digits.
        one_hot: Classification targets as one-hot rows ``(n, n_classes)``
            (True) or integer labels ``(n,)`` (False). Tables with a single
            0/1 column (gates) and regression tables are not affected.
        n_samples: Number of generated points (moons, circles); ``None``
            means 1000.
        noise: Standard deviation of the Gaussian noise added to the points
            (moons, circles); ``None`` means 0.2 for moons and 0.1 for circles.
        dtype: Floating dtype of ``x`` and of non-label ``y``.

    Returns:
        The :class:`Dataset`. Tiny tables have test arrays equal to their
        training arrays.

    Raises:
        ValueError: Unknown name, an option the data set does not take, or an
            option out of range.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid names are: {', '.join(dataset_names())}")
    given = {k: v for k, v in (("test_fraction", test_fraction), ("n_samples", n_samples), ("noise", noise))
             if v is not None}
    accepted = set(_DEFAULTS.get(name, {}))
    unused = sorted(set(given) - accepted)
    if unused:
        hint = (
            "it is a fixed table whose test rows are its training rows; leave these options unset (null)"
            if name in _TABLES
            else f"it accepts only: {', '.join(sorted(accepted))}"
        )
        raise ValueError(f"data set {name!r} does not take {', '.join(unused)}: {hint}")
    if test_fraction is not None and not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    if n_samples is not None and n_samples < 8:
        raise ValueError(f"n_samples must be at least 8 to leave both classes in train and test, got {n_samples}")
    if noise is not None and noise < 0:
        raise ValueError(f"noise is a standard deviation and must be >= 0, got {noise}")
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype must be a floating type such as float32 or float64, got {dtype}")

    data = DATASETS[name](seed=seed, one_hot=one_hot, **{**_DEFAULTS.get(name, {}), **given})

    def cast_y(y: np.ndarray) -> np.ndarray:
        return y if data.targets == "labels" else np.asarray(y, dtype=dtype)

    return Dataset(data.name, np.asarray(data.x_train, dtype=dtype), cast_y(data.y_train),
                   np.asarray(data.x_test, dtype=dtype), cast_y(data.y_test), data.n_classes, data.targets)


def validate_against_model(dataset: Dataset, in_width: int, out_width: int) -> None:
    """Check that a network of the given widths fits a data set.

    Arguments:
        dataset: The data.
        in_width: Width of the network's input layer (first entry of ``sizes``).
        out_width: Width of its output layer (last entry of ``sizes``).

    Raises:
        ValueError: When the data's input width differs from ``in_width`` or
            its target width (number of classes for integer labels) differs
            from ``out_width``; the message names both numbers.
    """
    problems = []
    if dataset.in_width != in_width:
        problems.append(
            f"the model's input width is {in_width} but data set {dataset.name!r} has "
            f"{dataset.in_width} input features (set the first entry of model.sizes to {dataset.in_width})"
        )
    if dataset.out_width != out_width:
        what = "classes" if dataset.targets == "labels" else "target columns"
        problems.append(
            f"the model's output width is {out_width} but data set {dataset.name!r} has "
            f"{dataset.out_width} {what} (set the last entry of model.sizes to {dataset.out_width})"
        )
    if problems:
        raise ValueError("; ".join(problems))
