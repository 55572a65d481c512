"""Tests for the data sets: shapes, seeding, targets and error messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from backprop_lab import DATASETS, Dataset, dataset_names, load_dataset, validate_against_model

TABLES = ["xor", "and", "or", "swap", "note003", "note004"]
GENERATED = ["moons", "circles", "digits"]
CONF = Path(__file__).resolve().parents[2] / "conf" / "data"


def test_registry_lists_every_data_set() -> None:
    assert dataset_names() == sorted([*TABLES, *GENERATED, "file"])
    assert set(DATASETS) == set(dataset_names())


@pytest.mark.parametrize("name", sorted(p.stem for p in CONF.glob("*.yaml")))
def test_each_data_config_names_exactly_the_registry_options(name: str) -> None:
    config = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    assert config.pop("name") == name
    assert set(config) == set(DATASETS[name].defaults)
    assert DATASETS[name].description


@pytest.mark.parametrize("name", [n for n in sorted(DATASETS) if n != "file"])
def test_each_data_config_sets_the_registry_defaults(name: str) -> None:
    config = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    assert {k: v for k, v in config.items() if k != "name"} == dict(DATASETS[name].defaults)


@pytest.mark.parametrize(
    ("name", "outputs"),
    [("xor", [0, 1, 1, 0]), ("and", [0, 0, 0, 1]), ("or", [0, 1, 1, 1])],
)
def test_gates_are_truth_tables(name: str, outputs: list[int]) -> None:
    data = load_dataset(name)
    np.testing.assert_array_equal(data.x_train, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(data.y_train[:, 0], outputs)
    assert data.y_train.shape == (4, 1)
    assert (data.targets, data.n_classes, data.out_width) == ("binary", 2, 1)


def test_swap_is_note_004_table() -> None:
    data = load_dataset("swap")
    rows = {tuple(x): tuple(y) for x, y in zip(data.x_train, data.y_train)}
    assert rows == {(1, 1): (1, 1), (1, 0): (0, 1), (0, 1): (1, 0), (0, 0): (0, 0)}
    assert data.targets == "regression" and data.n_classes is None


@pytest.mark.parametrize(("name", "y"), [("note003", [1.0, 0.0]), ("note004", [0.0, 1.0])])
def test_note_examples(name: str, y: list[float]) -> None:
    data = load_dataset(name)
    np.testing.assert_array_equal(data.x_train, [[1.0, 0.0]])
    np.testing.assert_array_equal(data.y_train, [y])


@pytest.mark.parametrize("name", TABLES)
def test_tables_test_on_their_training_rows(name: str) -> None:
    data = load_dataset(name)
    np.testing.assert_array_equal(data.x_test, data.x_train)
    np.testing.assert_array_equal(data.y_test, data.y_train)
    assert data.x_test is not data.x_train


@pytest.mark.parametrize("name", TABLES)
def test_tables_ignore_seed(name: str) -> None:
    np.testing.assert_array_equal(load_dataset(name, seed=0).y_train, load_dataset(name, seed=5).y_train)


@pytest.mark.parametrize(
    ("name", "width", "classes"), [("moons", 2, 2), ("circles", 2, 2), ("digits", 64, 10)]
)
def test_generated_shapes_and_one_hot(name: str, width: int, classes: int) -> None:
    data = load_dataset(name)
    assert isinstance(data, Dataset)
    assert data.x_train.shape == (data.n_train, width)
    assert data.x_test.shape == (data.n_test, width)
    assert data.y_train.shape == (data.n_train, classes)
    assert data.y_test.shape == (data.n_test, classes)
    assert (data.targets, data.n_classes, data.in_width, data.out_width) == (
        "one_hot",
        classes,
        width,
        classes,
    )
    for y in (data.y_train, data.y_test):
        np.testing.assert_array_equal(y.sum(axis=1), 1.0)
        assert set(np.unique(y)) == {0.0, 1.0}


@pytest.mark.parametrize("name", GENERATED)
def test_integer_labels(name: str) -> None:
    data = load_dataset(name, one_hot=False)
    assert data.targets == "labels"
    assert data.y_train.shape == (data.n_train,)
    assert np.issubdtype(data.y_train.dtype, np.integer)
    assert data.out_width == data.n_classes
    np.testing.assert_array_equal(np.argmax(load_dataset(name).y_train, axis=1), data.y_train)


def test_digits_split_sizes_and_pixel_range() -> None:
    data = load_dataset("digits")
    assert (data.n_train, data.n_test) == (1347, 450)
    assert data.x_train.min() >= 0.0 and data.x_train.max() <= 1.0
    assert data.x_train.max() == 1.0
    small = load_dataset("digits", test_fraction=0.5)
    assert small.n_train + small.n_test == 1797 and small.n_test == 899


def test_split_is_stratified() -> None:
    """Each digit's held-out rows are its proportional share of the 450, give or take one row."""
    from backprop_lab.data._assemble import read_digits

    data = load_dataset("digits", one_hot=False)
    per_class = np.bincount(read_digits()[1], minlength=10)
    held_out = np.bincount(data.y_test, minlength=10)
    assert np.all(np.abs(held_out - 450 * per_class / 1797) < 1)
    np.testing.assert_array_equal(np.bincount(data.y_train, minlength=10), per_class - held_out)


@pytest.mark.parametrize("name", GENERATED)
def test_same_seed_same_data(name: str) -> None:
    a, b = load_dataset(name, seed=3), load_dataset(name, seed=3)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


@pytest.mark.parametrize("name", GENERATED)
def test_different_seed_different_split(name: str) -> None:
    a, b = load_dataset(name, seed=0), load_dataset(name, seed=1)
    assert a.x_train.shape == b.x_train.shape
    assert not np.array_equal(a.x_train, b.x_train)


def test_generated_inputs_are_standardized_on_train() -> None:
    data = load_dataset("moons", n_samples=400, noise=0.1)
    assert data.n_train + data.n_test == 400
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1.0, atol=1e-12)


def test_noise_changes_points() -> None:
    quiet, loud = load_dataset("circles", noise=0.0), load_dataset("circles", noise=0.3)
    assert not np.allclose(quiet.x_train, loud.x_train)


@pytest.mark.parametrize("dtype", [np.float32, "float64"])
def test_dtype(dtype: object) -> None:
    data = load_dataset("xor", dtype=dtype)
    assert data.x_train.dtype == np.dtype(dtype) and data.y_test.dtype == np.dtype(dtype)
    assert load_dataset("digits", one_hot=False, dtype=dtype).y_train.dtype == np.int64


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown data set 'mnist'") as info:
        load_dataset("mnist")
    for name in dataset_names():
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("xor", {"noise": 0.1}, "'xor' does not take noise: .*fixed table .*takes no options"),
        ("xor", {"one_hot": True}, "does not take one_hot"),
        ("note003", {"test_fraction": 0.5}, "does not take test_fraction"),
        ("digits", {"n_samples": 100}, "does not take n_samples: it accepts only: test_fraction, one_hot$"),
        (
            "moons",
            {"n_sampels": 3},
            "does not take n_sampels: it accepts only: n_samples, noise, test_fraction, one_hot$",
        ),
        (
            "moons",
            {"test_fraction": 1.0},
            "^test_fraction=1.0 is invalid: expected a number strictly between 0 and 1",
        ),
        ("digits", {"test_fraction": 0.0}, "^test_fraction=0.0 is invalid: .*strictly between 0 and 1"),
        ("digits", {"test_fraction": "0.3"}, "^test_fraction='0.3' is invalid"),
        ("moons", {"n_samples": 3}, "^n_samples=3 is invalid: expected an integer of at least 8"),
        ("moons", {"n_samples": 0}, "^n_samples=0 is invalid"),
        ("moons", {"n_samples": -5}, "^n_samples=-5 is invalid"),
        ("moons", {"n_samples": 100.5}, "^n_samples=100.5 is invalid"),
        ("moons", {"n_samples": True}, "^n_samples=True is invalid"),
        ("circles", {"noise": -1.0}, "^noise=-1.0 is invalid: expected .*>= 0"),
        ("circles", {"noise": float("inf")}, "^noise=inf is invalid"),
        ("digits", {"one_hot": "false"}, "^one_hot='false' is invalid: expected true .* or false"),
        ("digits", {"one_hot": 0}, "^one_hot=0 is invalid"),
        ("digits", {"seed": -1}, "^seed=-1 is invalid: expected an integer from 0"),
        ("digits", {"test_fraction": 0.001}, "leaves 2 test rows for 10 classes"),
        ("moons", {"n_samples": 9, "test_fraction": 0.95}, "leaves no training rows"),
        ("xor", {"dtype": np.int32}, "floating type.*got int32"),
    ],
)
def test_bad_options_are_explained_in_one_line(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        load_dataset(name, **kwargs)
    assert "\n" not in str(info.value)


def test_none_means_the_default() -> None:
    a, b = load_dataset("moons", n_samples=None, noise=None), load_dataset("moons")
    np.testing.assert_array_equal(a.x_train, b.x_train)


def test_validate_against_model_accepts_matching_widths() -> None:
    validate_against_model(load_dataset("xor"), 2, 1)
    validate_against_model(load_dataset("moons", one_hot=False), 2, 2)


def test_validate_against_model_names_both_input_widths() -> None:
    with pytest.raises(ValueError, match="input width is 3 but data set 'digits' has 64") as info:
        validate_against_model(load_dataset("digits"), 3, 10)
    assert "output" not in str(info.value)


def test_validate_against_model_names_both_output_widths() -> None:
    with pytest.raises(ValueError, match="output width is 2 but data set 'xor' has 1 target columns"):
        validate_against_model(load_dataset("xor"), 2, 2)
    with pytest.raises(ValueError, match="output width is 1 but data set 'moons' has 2 classes"):
        validate_against_model(load_dataset("moons", one_hot=False), 2, 1)


def test_validate_against_model_reports_both_problems() -> None:
    with pytest.raises(ValueError, match="input width is 4.*; .*output width is 3"):
        validate_against_model(load_dataset("swap"), 4, 3)


def test_digits_file_equals_sklearn_load_digits() -> None:
    from sklearn.datasets import load_digits

    from backprop_lab.data._assemble import read_digits

    pixels, labels = read_digits()
    bunch = load_digits()
    np.testing.assert_array_equal(pixels, bunch.data)
    np.testing.assert_array_equal(labels, bunch.target)
    assert (pixels.dtype, labels.dtype) == (bunch.data.dtype, bunch.target.dtype)


def _reference_arrays(name: str, seed: int, test_fraction: float, one_hot: bool) -> tuple[np.ndarray, ...]:
    """The arrays made with scikit-learn's generators (and digits loader), split at the rows
    :func:`split_rows` picks (tested on its own in test_split.py), standardized by hand."""
    from sklearn import datasets

    from backprop_lab.data._split import split_rows

    make = {
        "moons": lambda: datasets.make_moons(n_samples=300, noise=0.2, random_state=seed),
        "circles": lambda: datasets.make_circles(n_samples=300, noise=0.1, factor=0.5, random_state=seed),
        "digits": lambda: (datasets.load_digits().data / 16.0, datasets.load_digits().target),
    }
    x, labels = make[name]()
    train, test = split_rows(len(labels), test_fraction, seed, labels)
    x_tr, x_te, l_tr, l_te = x[train], x[test], labels[train], labels[test]
    if name != "digits":
        mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    k = labels.max() + 1
    return (x_tr, np.eye(k)[l_tr], x_te, np.eye(k)[l_te]) if one_hot else (x_tr, l_tr, x_te, l_te)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("name", "test_fraction", "one_hot"),
    [
        ("digits", 0.25, True),
        ("digits", 0.37, False),
        ("moons", 0.25, True),
        ("moons", 0.1, False),
        ("circles", 0.5, True),
    ],
)
def test_loaders_split_standardize_and_encode(
    name: str, seed: int, test_fraction: float, one_hot: bool
) -> None:
    options = {} if name == "digits" else {"n_samples": 300}
    data = load_dataset(name, seed=seed, test_fraction=test_fraction, one_hot=one_hot, **options)
    got = (data.x_train, data.y_train, data.x_test, data.y_test)
    for mine, theirs in zip(got, _reference_arrays(name, seed, test_fraction, one_hot)):
        assert mine.dtype == theirs.dtype
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize(("n_samples", "noise"), [(9, 0.0), (301, 0.05), (1000, 0.2)])
def test_moons_and_circles_are_sklearns_arrays(
    seed: int, n_samples: int, noise: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generators draw scikit-learn's points to the bit (before the split, compared above)."""
    from sklearn import datasets

    import backprop_lab.data._assemble as data_file
    from backprop_lab.data._registry import _circles, _moons

    made = []
    monkeypatch.setattr(
        data_file, "classification", lambda name, x, labels, *a, **k: made.append((x, labels))
    )
    _moons(seed=seed, n_samples=n_samples, noise=noise)
    _circles(seed=seed, n_samples=n_samples, noise=noise)
    theirs = [
        datasets.make_moons(n_samples=n_samples, noise=noise, random_state=seed),
        datasets.make_circles(n_samples=n_samples, noise=noise, factor=0.5, random_state=seed),
    ]
    for (x, labels), (x_ref, labels_ref) in zip(made, theirs, strict=True):
        assert (x.dtype, labels.dtype) == (x_ref.dtype, labels_ref.dtype)
        np.testing.assert_array_equal(x, x_ref)
        np.testing.assert_array_equal(labels, labels_ref)


@pytest.mark.parametrize("name", GENERATED)
def test_generated_data_loads_without_sklearn(name: str) -> None:
    code = (
        f"import sys, backprop_lab as bl; bl.load_dataset({name!r}, seed=0); "
        "print(sorted(m for m in sys.modules if m.startswith('sklearn')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
