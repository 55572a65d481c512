"""Tests for the seeded train/test split: its properties, against expectations computed here.

The per-class test counts are compared with a brute-force largest-remainder
allocation in exact fractions (every choice of classes that get a row above
their rounded-down share, the one with the largest remainders kept), and with
allocations worked out by hand where a class's share of a side is under one row.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from backprop_lab.data._split import held_out_per_class, split_rows


def _brute_force_largest_remainder(counts: list[int], n_test: int) -> list[int]:
    """Shares ``n_test * c / n`` rounded down, then one more row for each class of the set of
    ``n_test - sum(floors)`` classes whose remainders sum highest, the first such set in
    lexicographic order of class indices (ties to the class that sorts first)."""
    n = sum(counts)
    shares = [Fraction(n_test * c, n) for c in counts]
    floors = [math.floor(s) for s in shares]
    left = n_test - sum(floors)
    best = max(
        itertools.combinations(range(len(counts)), left),
        key=lambda chosen: sum(shares[k] - floors[k] for k in chosen),
    )  # max keeps the first of equal sums: combinations come in lexicographic order
    return [f + (k in best) for k, f in enumerate(floors)]


def _cases(n_cases: int) -> list[tuple[list[int], float]]:
    """Random class sizes (2 to 60 rows, 2 to 7 classes) and test fractions."""
    rng = np.random.default_rng(123)
    cases = []
    while len(cases) < n_cases:
        counts = rng.integers(2, 61, size=rng.integers(2, 8)).tolist()
        fraction = float(rng.choice([0.1, 0.2, 0.25, 1 / 3, 0.5, 0.7, float(rng.uniform(0.05, 0.95))]))
        n_test = math.ceil(fraction * sum(counts))
        if len(counts) <= n_test <= sum(counts) - len(counts):
            cases.append((counts, fraction))
    return cases


def _labels(counts: list[int], seed: int = 0) -> np.ndarray:
    """Class ``k`` repeated ``counts[k]`` times, rows in a shuffled order."""
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(len(counts)), counts))


@pytest.mark.parametrize(("counts", "fraction"), _cases(60))
def test_stratified_split_properties(counts: list[int], fraction: float) -> None:
    n = sum(counts)
    labels = _labels(counts)
    train, test = split_rows(n, fraction, seed=5, labels=labels)
    n_test = math.ceil(fraction * n)
    assert (len(train), len(test)) == (n - n_test, n_test)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(n))  # disjoint and covering
    got = np.bincount(labels[test], minlength=len(counts))
    assert (got >= 1).all() and (got <= np.array(counts) - 1).all()
    shares = [Fraction(n_test * c, n) for c in counts]
    if all(1 <= s <= c - 1 for s, c in zip(shares, counts)):  # no class's share of a side under one row
        assert all(abs(g - s) < 1 for g, s in zip(got.tolist(), shares))
        assert got.tolist() == _brute_force_largest_remainder(counts, n_test)


@pytest.mark.parametrize(
    ("counts", "n_test", "expected"),
    [
        ([10, 10, 10], 3, [1, 1, 1]),
        ([3, 3, 4], 3, [1, 1, 1]),  # shares 0.9, 0.9, 1.2: the two first classes take the remainders
        ([5, 5, 6], 7, [2, 2, 3]),  # shares 2.1875, 2.1875, 2.625: class 2 has the largest remainder
        ([4, 4, 4, 4], 6, [2, 2, 1, 1]),  # equal remainders 0.5: the first classes
        ([2, 5, 13], 4, [1, 1, 2]),  # shares 0.4, 1, 2.6: class 0 raised to 1, class 2 (most over) gives one
        ([2, 2, 100], 3, [1, 1, 1]),  # shares 0.06, 0.06, 2.9: both small classes raised, class 2 gives
        ([100, 2, 2], 101, [99, 1, 1]),  # shares 97.1, 1.9, 1.9: the small classes keep a training row
    ],
)
def test_allocation_worked_by_hand(counts: list[int], n_test: int, expected: list[int]) -> None:
    got = held_out_per_class(np.array(counts), n_test)
    assert got.tolist() == expected and got.sum() == n_test


@pytest.mark.parametrize("labels", [None, np.repeat([0, 1, 2], [20, 13, 7])])
def test_same_seed_same_split_other_seeds_differ(labels: np.ndarray | None) -> None:
    splits = [split_rows(40, 0.25, seed, labels) for seed in range(8)]
    for train, test in splits:
        assert len(test) == 10 and len(np.intersect1d(train, test)) == 0
    for a, b in zip(splits, [split_rows(40, 0.25, seed, labels) for seed in range(8)]):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert len({tuple(sorted(test.tolist())) for _, test in splits}) == len(splits)
    assert split_rows(40, 0.25, 2**32 - 1, labels)[1].shape == (10,)


def test_plain_split_is_a_permutation() -> None:
    train, test = split_rows(23, 0.3, seed=1)
    assert (len(train), len(test)) == (16, 7)  # ceil(6.9) = 7 held out
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(23))


def test_rows_are_drawn_evenly_and_mixed() -> None:
    """Over many seeds each row of a class is held out about as often as its class's share
    (the draw is not biased to the first rows), and the rows come back in mixed order."""
    labels = np.repeat([0, 1], [6, 4])  # 3 test rows: 2 of class 0, 1 of class 1 (shares 1.8, 1.2)
    seeds = 3000
    held = np.zeros(10)
    for seed in range(seeds):
        train, test = split_rows(10, 0.3, seed, labels)
        held[test] += 1
    p = np.array([2 / 6] * 6 + [1 / 4] * 4)
    assert np.all(np.abs(held / seeds - p) < 4 * np.sqrt(p * (1 - p) / seeds))
    train, _ = split_rows(200, 0.25, 0, np.repeat([0, 1], 100))
    assert not np.all(np.diff(np.repeat([0, 1], 100)[train]) >= 0)  # not grouped by class


def test_string_labels_are_classes() -> None:
    labels = np.array(["b", "a", "b", "a", "b", "a", "c", "c"])
    train, test = split_rows(8, 0.4, 3, labels)  # 4 test rows; shares 1.5, 1.5, 1: the row left goes to a
    assert sorted(labels[test].tolist()) == ["a", "a", "b", "c"]


THREE_PAIRS = np.array([0, 0, 1, 1, 2, 2])


@pytest.mark.parametrize(
    ("n", "fraction", "labels", "message"),
    [
        (9, 0.95, None, "^test_fraction=0.95 of 9 rows leaves no training rows; lower test_fraction$"),
        (5, 0.4, np.array([5, 5, 8, 8, 9]), "^class 9 has a single row; a stratified split needs 2 or more"),
        (5, 0.4, np.array(["a", "a", "c", "b", "b"]), "^class 'c' has a single row"),
        (6, 0.2, THREE_PAIRS, "^test_fraction=0.2 of 6 rows leaves 2 test rows for 3 classes"),
        (6, 0.6, THREE_PAIRS, "leaves 2 training rows for 3 classes; give each side at least"),
    ],
)
def test_errors_are_one_line(n: int, fraction: float, labels: np.ndarray | None, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        split_rows(n, fraction, 0, labels)
    assert "\n" not in str(info.value)
