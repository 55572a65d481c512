"""The seeded train/test split of the data sets: a shuffle, stratified by class when labels are given.

Of ``n`` rows, ``n_test = ceil(test_fraction * n)`` are held out.

Without labels, the test rows are the first ``n_test`` of a seeded permutation of
all rows and the training rows the rest.

With labels, class ``k`` (``c_k`` rows, classes in sorted order) holds out
``t_k`` rows, the ``n_test`` test rows shared out in proportion to the class
sizes by largest remainder (:func:`held_out_per_class`):

1. class ``k`` gets its share ``n_test * c_k / n`` rounded down;
2. the rows still to give go one each to the classes with the largest
   remainders (share minus its rounded-down value), ties to the class that sorts first;
3. every class keeps at least one row on each side: a class given none gets one,
   a class given all its rows gives one back, and the difference is made up one
   row at a time by the class furthest over its share (taking) or under it
   (giving), ties to the class that sorts first.

Step 3 acts only where a class's share of a side is under one row; otherwise each
``t_k`` is its share rounded down or up. The arithmetic is in integers (shares in
units of ``1/n``), so ties are exact. Then each class's rows are permuted, its
first ``t_k`` are test rows and the others training rows, and the training and
test rows are each permuted once more so that the classes come mixed.

Every draw comes from one ``np.random.default_rng(seed)``, classes in order: the
same seed gives the same split.

The split changed once, in version 0.2.0: earlier versions held out the rows
scikit-learn's ``train_test_split`` picks; from 0.2.0 on a seed holds out as many
rows, but other ones, so results on the split data sets (moons, circles, digits,
files without test arrays) differ from those of earlier versions.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["split_rows", "held_out_per_class"]


def held_out_per_class(counts: np.ndarray, n_test: int) -> np.ndarray:
    """Test rows per class: ``n_test`` shared out by largest remainder (module docstring).

    Arguments:
        counts: Rows of each class, shape ``(n_classes,)``, each at least 2.
        n_test: Rows to hold out, from ``n_classes`` to ``sum(counts) - n_classes``.

    Returns:
        ``t`` of shape ``(n_classes,)``: int64, summing to ``n_test``, with
        ``1 <= t[k] <= counts[k] - 1``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    share = n_test * counts  # class k's share of the test rows is share[k] / n
    t = share // n
    by_remainder = np.argsort(-(share % n), kind="stable")  # largest first, ties in class order
    t[by_remainder[: n_test - int(t.sum())]] += 1
    t = np.clip(t, 1, counts - 1)
    while (excess := int(t.sum()) - n_test) != 0:
        under = share - n * t  # how far each class is under its share, in units of 1/n
        if excess > 0:
            (can,) = np.nonzero(t > 1)
            t[can[np.argmin(under[can])]] -= 1
        else:
            (can,) = np.nonzero(t < counts - 1)
            t[can[np.argmax(under[can])]] += 1
    return t


def _check_classes(classes: np.ndarray, counts: np.ndarray, n_test: int, test_fraction: float) -> None:
    """Refuse a class of one row, or a side with fewer rows than there are classes."""
    if counts.min() < 2:
        raise ValueError(
            f"class {classes[counts.argmin()].item()!r} has a single row; "
            "a stratified split needs 2 or more rows per class"
        )
    n = int(counts.sum())
    for side, size in (("test", n_test), ("training", n - n_test)):
        if size < len(classes):
            raise ValueError(
                f"test_fraction={test_fraction} of {n} rows leaves {size} {side} rows for "
                f"{len(classes)} classes; give each side at least one row per class"
            )


def split_rows(
    n: int, test_fraction: float, seed: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/test row indices, stratified by class when ``labels`` are given.

    The split is described in the module docstring: ``ceil(test_fraction * n)``
    rows are held out, each class in proportion to its size.

    Arguments:
        n: Number of rows.
        test_fraction: Fraction held out, in (0, 1).
        seed: Seed of the draw, 0 to 2**32 - 1.
        labels: Class of each row, shape ``(n,)`` (any sortable values), or
            ``None`` for a plain shuffle.

    Returns:
        ``(train, test)`` integer index arrays, shapes ``(n - n_test,)`` and
        ``(n_test,)``, disjoint, together every row once, in shuffled order.

    Raises:
        ValueError: When the training side would be empty, a side would have
            fewer rows than there are classes, or a class has a single row.
    """
    n_test = math.ceil(test_fraction * n)
    n_train = n - n_test
    if n_train < 1:
        raise ValueError(
            f"test_fraction={test_fraction} of {n} rows leaves no training rows; lower test_fraction"
        )
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(n)
        return order[n_test:], order[:n_test]
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    _check_classes(classes, counts, n_test, test_fraction)
    train, test = [], []
    for k, t_k in enumerate(held_out_per_class(counts, n_test)):
        rows = rng.permutation(np.flatnonzero(inverse.ravel() == k))
        test.append(rows[:t_k])
        train.append(rows[t_k:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
