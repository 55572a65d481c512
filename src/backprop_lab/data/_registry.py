"""Data sets for the experiments: one registry table of tiny truth tables, the
notes' worked examples, small seeded classification problems, and your own file.

Every data set comes back as a :class:`Dataset` whose arrays are rows of
examples: ``x`` has shape ``(n, in_width)`` and ``y`` has shape
``(n, out_width)``, except integer class labels, which have shape ``(n,)``.

Tiny tables (the logic gates, ``swap`` and the notes' single examples) have no
held-out data: their test arrays are the same rows as their training arrays.
The other data sets are split into train and test rows with a seeded split,
stratified by class (:func:`._split.split_rows`; it changed once, in 0.2.0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np
from numpy.typing import DTypeLike

from ..config._data_keys import DATA_DEFAULTS, DATA_OPTIONS
from ._dataset import Dataset, TargetKind

__all__ = [
    "DATASETS",
    "DataSpec",
    "Dataset",
    "TargetKind",
    "dataset_names",
    "load_dataset",
    "validate_against_model",
]

Builder = Callable[..., Dataset]
"""A registry entry's loader: ``build(*, seed, **options) -> Dataset`` with
float64 arrays, where ``options`` are the entry's checked options."""


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """One data set of the registry.

    Attributes:
        build: Its loader, see :data:`Builder`.
        description: One line on what the rows are and how they are split.
        defaults: The options it accepts, each with the value used when the
            option is not given (or given as ``None``). Empty for fixed tables.
    """

    build: Builder
    description: str
    defaults: Mapping[str, object] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------- #
# options
# --------------------------------------------------------------------------- #


def _check_options(values: Mapping[str, object]) -> dict[str, object]:
    """Check option values against :data:`backprop_lab.config._data_keys.DATA_OPTIONS`.

    Returns:
        The values as the loaders take them (numbers as ``int``/``float``, flags as ``bool``).

    Raises:
        ValueError: ``"<option>=<value> is invalid: expected <what is right>"``.
    """
    for key, value in values.items():
        if not DATA_OPTIONS[key].accepts(value):
            raise ValueError(f"{key}={value!r} is invalid: expected {DATA_OPTIONS[key].expected}")
    return {key: None if value is None else DATA_OPTIONS[key].kind(value) for key, value in values.items()}


# --------------------------------------------------------------------------- #
# loaders
# --------------------------------------------------------------------------- #

_GATE_INPUTS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])


def _table(name: str, x: list[list[float]], y: list[list[float]], binary: bool = False) -> Builder:
    """Loader of a fixed table whose test rows are (copies of) its training rows."""

    def build(**_: object) -> Dataset:
        xs, ys = np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)
        return Dataset(
            name, xs, ys, xs.copy(), ys.copy(), 2 if binary else None, "binary" if binary else "regression"
        )

    return build


def _gate(name: str, outputs: list[float]) -> Builder:
    """Loader of a two-input logic gate, outputs for rows (0,0), (0,1), (1,0), (1,1)."""
    return _table(name, _GATE_INPUTS.tolist(), [[o] for o in outputs], binary=True)


def _two_rings(
    outer: tuple[np.ndarray, np.ndarray], inner: tuple[np.ndarray, np.ndarray], seed: int, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Points ``x`` (n, 2) of an outer (class 0) and an inner (class 1) curve, shuffled by a
    ``RandomState(seed)`` that then draws the Gaussian noise: scikit-learn's ``make_moons`` and
    ``make_circles`` draw the same numbers in the same order, so the arrays are theirs to the bit
    (tests compare), without importing scikit-learn (about a second)."""
    x = np.stack([np.append(outer[0], inner[0]), np.append(outer[1], inner[1])], axis=1)
    labels = np.repeat(np.array([0, 1], dtype=np.intp), [outer[0].size, inner[0].size])
    rng = np.random.RandomState(seed)
    order = np.arange(labels.size)
    rng.shuffle(order)
    x, labels = x[order], labels[order]
    if noise is not None:
        x += rng.normal(scale=noise, size=x.shape)
    return x, labels


def _moons(*, seed: int, n_samples: int, noise: float, **split: object) -> Dataset:
    from ._assemble import classification

    top, bottom = np.linspace(0, np.pi, n_samples // 2), np.linspace(0, np.pi, n_samples - n_samples // 2)
    x, labels = _two_rings(
        (np.cos(top), np.sin(top)), (1 - np.cos(bottom), 1 - np.sin(bottom) - 0.5), seed, noise
    )
    return classification("moons", x, labels, 2, seed=seed, standardize=True, **split)  # type: ignore[arg-type]


def _circles(*, seed: int, n_samples: int, noise: float, **split: object) -> Dataset:
    from ._assemble import classification

    out = np.linspace(0, 2 * np.pi, n_samples // 2, endpoint=False)
    inside = np.linspace(0, 2 * np.pi, n_samples - n_samples // 2, endpoint=False)
    x, labels = _two_rings(
        (np.cos(out), np.sin(out)), (np.cos(inside) * 0.5, np.sin(inside) * 0.5), seed, noise
    )
    return classification("circles", x, labels, 2, seed=seed, standardize=True, **split)  # type: ignore[arg-type]


def _digits(*, seed: int, **split: object) -> Dataset:
    from ._assemble import classification, read_digits

    pixels, labels = read_digits()
    x = pixels / 16.0
    return classification("digits", x, labels, 10, seed=seed, standardize=False, **split)  # type: ignore[arg-type]


def _file(**options: object) -> Dataset:
    from ._files import load_file

    return load_file(**options)  # type: ignore[arg-type]


DATASETS: Mapping[str, DataSpec] = {
    "xor": DataSpec(_gate("xor", [0, 1, 1, 0]), "The XOR truth table: x (4, 2), y (4, 1) in {0, 1}."),
    "and": DataSpec(_gate("and", [0, 0, 0, 1]), "The AND truth table: x (4, 2), y (4, 1) in {0, 1}."),
    "or": DataSpec(_gate("or", [0, 1, 1, 1]), "The OR truth table: x (4, 2), y (4, 1) in {0, 1}."),
    "swap": DataSpec(
        _table("swap", [[1, 0], [0, 1], [1, 1], [0, 0]], [[0, 1], [1, 0], [1, 1], [0, 0]]),
        "Note 004's swap-the-inputs table: x (4, 2), y = x reversed; row 0 is the note's worked example.",
    ),
    "note003": DataSpec(_table("note003", [[1, 0]], [[1, 0]]), "Note 003's example x = (1, 0), y = (1, 0)."),
    "note004": DataSpec(_table("note004", [[1, 0]], [[0, 1]]), "Note 004's example x = (1, 0), y = (0, 1)."),
    "moons": DataSpec(
        _moons,
        "Two interleaving half circles (as sklearn's make_moons), seeded, standardized; x (n, 2), 2 classes.",
        DATA_DEFAULTS["moons"],
    ),
    "circles": DataSpec(
        _circles,
        "A circle inside a circle (as sklearn's make_circles, factor 0.5), seeded, "
        "standardized; x (n, 2), 2 classes.",
        DATA_DEFAULTS["circles"],
    ),
    "digits": DataSpec(
        _digits,
        "The 1797 8x8 digits scikit-learn ships, pixels / 16 in [0, 1]; x (n, 64), 10 classes.",
        DATA_DEFAULTS["digits"],
    ),
    "file": DataSpec(
        _file, "Your own .npz (x, y[, x_test, y_test]) or .csv (a target column) file.", DATA_DEFAULTS["file"]
    ),
}
"""The registry: each data set's loader, description and accepted options.
:func:`load_dataset` is the front door. Tables take no options; the others
are split with :func:`._split.split_rows`."""


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset`, sorted.

    Returns:
        The registry's keys.
    """
    return sorted(DATASETS)


def load_dataset(name: str, *, seed: int = 0, dtype: DTypeLike = np.float64, **options: object) -> Dataset:
    """Load a data set by name.

    Arguments:
        name: One of :func:`dataset_names`.
        seed: Seeds sample generation (moons, circles) and the train/test split,
            0 to 2**32 - 1. Tiny tables ignore it: they are fixed.
        dtype: Floating dtype of ``x`` and of non-label ``y``.
        **options: The data set's own options (``DATASETS[name].defaults``
            lists them with their defaults; ``None`` means the default):
            ``test_fraction`` (fraction of rows held out, in (0, 1)),
            ``one_hot`` (one-hot rows ``(n, n_classes)`` if True, integer labels
            ``(n,)`` if False), ``n_samples`` (generated points, >= 8) and
            ``noise`` (their Gaussian noise, >= 0) for moons and circles,
            ``path``, ``target`` and ``standardize`` for ``file``.

    Returns:
        The :class:`Dataset`. Tiny tables have test arrays equal to their
        training arrays.

    Raises:
        ValueError: Unknown name, an option the data set does not take (the
            message lists those it takes), a value out of range, a file
            that cannot be read, or values beyond ``dtype``'s range; one line
            naming the option, file or array.
    """
    spec = DATASETS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ValueError(f"unknown data set {name!r}; valid names are: {', '.join(dataset_names())}")
    unknown = sorted(set(options) - set(spec.defaults))
    if unknown:
        hint = (
            f"it accepts only: {', '.join(spec.defaults)}"
            if spec.defaults
            else "it is a fixed table whose test rows are its training rows and takes no options"
        )
        raise ValueError(f"data set {name!r} does not take {', '.join(unknown)}: {hint}")
    values = _check_options({**spec.defaults, **{k: v for k, v in options.items() if v is not None}})
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed={seed!r} is invalid: expected an integer from 0 to 2**32 - 1")
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype must be a floating type such as float32 or float64, got {dtype}")

    data = spec.build(seed=int(seed), **values)

    def cast(y: np.ndarray) -> np.ndarray:
        return y if data.targets == "labels" else np.ascontiguousarray(y, dtype=dtype)

    with np.errstate(over="ignore"):  # values beyond dtype's range are refused just below
        x_train, x_test = (np.ascontiguousarray(x, dtype=dtype) for x in (data.x_train, data.x_test))
        y_train, y_test = cast(data.y_train), cast(data.y_test)
    for what, a in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test)):
        _check_finite(name, what, a, dtype)
    return dataclasses.replace(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def _check_finite(name: str, what: str, a: np.ndarray, dtype: np.dtype) -> None:
    """Refuse an array that is not finite in the run's dtype (values beyond its range, or
    standardized values that overflowed), naming its first such column."""
    if a.dtype.kind != "f" or np.isfinite(a).all():
        return
    column = int(np.argwhere(~np.isfinite(a.reshape(len(a), -1)))[0][1])
    raise ValueError(
        f"data set {name!r}: {what} column {column} holds values that are not finite in {dtype} "
        f"(its largest is {np.finfo(dtype).max:.3g}); rescale the data or use dtype=float64"
    )


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
