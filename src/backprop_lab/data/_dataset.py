"""The :class:`Dataset` type: a train/test pair of example arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["Dataset", "TargetKind"]

TargetKind = Literal["binary", "one_hot", "labels", "regression"]
"""What ``y`` holds.

- ``"binary"``: one column of 0/1 values (logic gates).
- ``"one_hot"``: one column per class, each row has a single 1.
- ``"labels"``: integer class indices, shape ``(n,)``.
- ``"regression"``: real-valued target vectors (``swap``, the notes' examples).
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
        sha256: The SHA-256 of the file the rows were read from (``data=file``),
            ``None`` for the built-in data sets.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int | None
    targets: TargetKind
    sha256: str | None = None

    @property
    def in_width(self) -> int:
        """Number of input features (columns of ``x``)."""
        return int(self.x_train.shape[1])

    @property
    def out_width(self) -> int:
        """Width a network's output layer needs: the number of classes for
        integer labels, otherwise the number of columns of ``y``."""
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
