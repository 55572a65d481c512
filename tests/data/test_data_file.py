"""Tests for ``data=file``: your own .npz or .csv file, its split and its errors.

Expected arrays are built independently: rows written out by hand, classes
numbered by hand, and split at the rows :func:`split_rows` picks (whose
properties test_split.py checks).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from backprop_lab import load_dataset
from backprop_lab.data._split import split_rows

RNG = np.random.default_rng(7)


def _load(path: Path | str, **options: object):
    return load_dataset("file", path=str(path), **options)


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_npz_labels_are_split_stratified(tmp_path: Path) -> None:
    x = RNG.normal(size=(40, 3))
    y = np.array([3, 7, 9, 7] * 10)  # classes 3, 7, 9 become 0, 1, 2
    np.savez(tmp_path / "d.npz", x=x, y=y)
    for seed in range(3):
        data = _load(tmp_path / "d.npz", seed=seed)
        train, test = split_rows(40, 0.25, seed, y)
        x_tr, x_te, y_tr, y_te = x[train], x[test], y[train], y[test]
        code = {3: 0, 7: 1, 9: 2}
        np.testing.assert_array_equal(data.x_train, x_tr)
        np.testing.assert_array_equal(data.x_test, x_te)
        np.testing.assert_array_equal(data.y_train, np.eye(3)[[code[v] for v in y_tr]])
        np.testing.assert_array_equal(data.y_test, np.eye(3)[[code[v] for v in y_te]])
        assert (data.name, data.targets, data.n_classes, data.out_width) == ("file", "one_hot", 3, 3)


def test_npz_with_test_arrays_keeps_them(tmp_path: Path) -> None:
    x, x_test = RNG.normal(size=(6, 2)), RNG.normal(size=(3, 2))
    np.savez(
        tmp_path / "d.npz", x=x, y=np.array([0, 1, 0, 1, 0, 1]), x_test=x_test, y_test=np.array([1, 1, 0])
    )
    data = _load(tmp_path / "d.npz", one_hot=False, seed=5)
    np.testing.assert_array_equal(data.x_train, x)
    np.testing.assert_array_equal(data.x_test, x_test)
    np.testing.assert_array_equal(data.y_train, [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(data.y_test, [1, 1, 0])
    assert data.targets == "labels" and data.y_train.dtype == np.int64


def test_npz_real_targets_are_shuffled(tmp_path: Path) -> None:
    x, y = RNG.normal(size=(10, 2)), RNG.normal(size=(10, 2))
    np.savez(tmp_path / "r.npz", x=x, y=y)
    data = _load(tmp_path / "r.npz", seed=4, test_fraction=0.3, dtype=np.float32)
    train, test = split_rows(10, 0.3, 4)
    y_tr, x_te = y[train], x[test]
    np.testing.assert_array_equal(data.y_train, y_tr.astype(np.float32))
    np.testing.assert_array_equal(data.x_test, x_te.astype(np.float32))
    assert (data.targets, data.n_classes, data.n_test) == ("regression", None, 3)
    assert data.x_train.dtype == np.float32 and data.x_train.flags.c_contiguous


def test_npz_one_hot_rows_count_as_classes(tmp_path: Path) -> None:
    labels = np.array([0, 1, 2] * 4)
    np.savez(tmp_path / "h.npz", x=RNG.normal(size=(12, 2)), y=np.eye(3)[labels])
    data = _load(tmp_path / "h.npz", one_hot=False)
    assert (data.targets, data.n_classes) == ("labels", 3)
    assert np.bincount(data.y_test, minlength=3).tolist() == [1, 1, 1]


CSV = """a, label ,b
1.5,cat,2
2,dog,-1
3,cat,0.25
4,dog,1e2
5,cat,7
6,dog,8
"""


def test_csv_named_target_one_hot(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "d.csv", CSV)
    data = _load(path, target="label", test_fraction=1 / 3, seed=2)
    x = np.array([[1.5, 2], [2, -1], [3, 0.25], [4, 100], [5, 7], [6, 8]])
    y = np.array([0, 1, 0, 1, 0, 1])  # cat, dog in sorted order
    train, test = split_rows(6, 1 / 3, 2, y)
    x_tr, x_te, y_tr, y_te = x[train], x[test], y[train], y[test]
    np.testing.assert_array_equal(data.x_train, x_tr)
    np.testing.assert_array_equal(data.x_test, x_te)
    np.testing.assert_array_equal(data.y_train, np.eye(2)[y_tr])
    np.testing.assert_array_equal(data.y_test, np.eye(2)[y_te])


def test_csv_numeric_labels_sort_as_numbers(tmp_path: Path) -> None:
    rows = "".join(f"{i},{label}\n" for i, label in enumerate([9, 10, 9, 10, 9, 10]))
    data = _load(_write_csv(tmp_path / "n.csv", "x,y\n" + rows), target="y", one_hot=False, test_fraction=0.5)
    by_x = dict(
        zip(
            np.concatenate([data.x_train[:, 0], data.x_test[:, 0]]),
            np.concatenate([data.y_train, data.y_test]),
        )
    )
    assert by_x == {0: 0, 1: 1, 2: 0, 3: 1, 4: 0, 5: 1}  # 9 is class 0, 10 class 1


def test_standardize_uses_training_rows(tmp_path: Path) -> None:
    x = RNG.normal(3.0, 2.0, size=(20, 2))
    np.savez(tmp_path / "s.npz", x=x, y=np.array([0, 1] * 10))
    plain, scaled = _load(tmp_path / "s.npz"), _load(tmp_path / "s.npz", standardize=True)
    mean, std = plain.x_train.mean(axis=0), plain.x_train.std(axis=0)
    np.testing.assert_allclose(scaled.x_train, (plain.x_train - mean) / std)
    np.testing.assert_allclose(scaled.x_test, (plain.x_test - mean) / std)


def test_relative_path_is_taken_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    _write_csv(tmp_path / "sub" / "d.csv", CSV)
    monkeypatch.chdir(tmp_path)
    assert _load("sub/d.csv", target="label").n_train == 4


def test_config_without_a_path_says_so() -> None:
    with pytest.raises(
        ValueError, match=r"^path='\?\?\?' is invalid: expected the path of a .npz or .csv file"
    ):
        _load("???")


def _npz(path: Path, **arrays: object) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


X4, Y4 = np.arange(8.0).reshape(4, 2), np.array([0, 1, 0, 1])

BAD_NPZ = [
    ("missing", lambda p: p, "not found .*launch directory"),
    ("garbage", lambda p: (p.write_bytes(b"not a zip at all"), p)[1], r"is not a whole .npz \(zip\) archive"),
    ("empty", lambda p: (p.write_bytes(b""), p)[1], "is empty$"),
    ("no_y", lambda p: _npz(p, x=X4), r"holds arrays \['x'\]; expected x and y"),
    ("extra", lambda p: _npz(p, x=X4, y=Y4, w=Y4), r"holds arrays \['w', 'x', 'y'\]"),
    ("half_test", lambda p: _npz(p, x=X4, y=Y4, x_test=X4), "only one of x_test and y_test"),
    ("flat_x", lambda p: _npz(p, x=Y4, y=Y4), r"array 'x' has shape \(4,\); expected \(rows, features\)"),
    ("rows", lambda p: _npz(p, x=X4, y=Y4[:3]), r"array 'y' has shape \(3,\); expected 4 rows"),
    ("nan", lambda p: _npz(p, x=np.where(X4 == 5, np.nan, X4), y=Y4), r"'x' holds nan at index \[2, 1\]"),
    ("inf", lambda p: _npz(p, x=X4, y=np.array([[0.0], [np.inf], [1], [2]])), "'y' holds inf at index"),
    ("text_x", lambda p: _npz(p, x=X4.astype(str), y=Y4), "'x' has dtype <U32; expected numbers"),
    (
        "objects",
        lambda p: _npz(p, x=np.array([1, "a"], dtype=object), y=Y4),
        "holds Python objects .dtype object.. which are never unpickled",
    ),
    ("half_label", lambda p: _npz(p, x=X4, y=np.array([0, 0.5, 1, 1])), r"y\[1\]=0.5 is not a whole number"),
    (
        "width",
        lambda p: _npz(p, x=X4, y=Y4, x_test=np.ones((2, 3)), y_test=Y4[:2]),
        "do not match the widths",
    ),
    ("lonely", lambda p: _npz(p, x=np.ones((5, 1)), y=np.array([5, 5, 8, 8, 9])), "class 9 has a single row"),
    (
        "lonely_name",
        lambda p: _npz(p, x=np.ones((5, 1)), y=np.array(["a", "a", "b", "b", "c"])),
        "class 'c' has a single row",
    ),
    (
        "npy",
        lambda p: (np.save(p.with_suffix(".npy"), X4), p.with_suffix(".npy").rename(p), p)[2],
        r"is not a whole .npz \(zip\) archive; save one with np.savez",
    ),
    (
        "cut_short",
        lambda p: (_npz(p, x=X4, y=Y4), p.write_bytes(p.read_bytes()[:-30]), p)[2],
        r"is not a whole .npz \(zip\) archive",
    ),
    (
        "bit_flip",
        lambda p: (_npz(p, x=X4, y=Y4), p.write_bytes(_flip(p.read_bytes(), 150)), p)[2],
        r"not a readable .npz archive \(Bad CRC-32",
    ),
]


@pytest.mark.parametrize(("case", "make", "problem"), BAD_NPZ, ids=[c[0] for c in BAD_NPZ])
def test_bad_npz_gives_one_line_naming_file_and_problem(
    tmp_path: Path, case: str, make, problem: str
) -> None:
    path = make(tmp_path / f"{case}.npz")
    with pytest.raises(ValueError) as info:
        _load(path)
    message = str(info.value)
    assert message.startswith(f"data file {str(path)!r}: ") and "\n" not in message
    assert re.search(problem, message), message


BAD_CSV = [
    ("empty", "", {}, "is empty$"),
    ("blank", "\n  \n", {}, "holds no rows"),
    ("header_only", "a,label\n", {}, "header row but no data rows"),
    ("no_target", CSV, {"target": None}, r"needs target=COLUMN .*\(its header has 3 columns\)$"),
    ("wrong_target", CSV, {"target": "class"}, r"has no column named 'class' \(its header has 3 columns\)$"),
    ("only_target", "label\ncat\ndog\n", {}, "no feature columns besides 'label'"),
    ("ragged", "a,label\n1,cat\n2,dog,3\n", {}, "line 3 has 3 cells but the header names 2 columns"),
    ("word", "a,label\n1,cat\nabc,dog\n", {}, "line 3, column 1 is not a number$"),
    ("hole", "a,b,label\n1,2,cat\n3,,dog\n", {}, "line 3, column 2 is empty$"),
    ("nan", "a,label\n1,cat\nnan,dog\n", {}, "line 3, column 1 holds nan; every feature must be finite"),
    ("inf", "a,label\n\n1,cat\n-inf,dog\n", {}, "line 4, column 1 holds -inf"),
    ("no_label", "a,label\n1,cat\n2, \n", {}, "line 3, column 'label' is empty"),
    (
        "split",
        "a,label\n1,cat\n2,cat\n3,dog\n4,dog\n",
        {"test_fraction": 0.25},
        "leaves 1 test rows for 2 classes",
    ),
    (
        "npz_key",
        CSV,
        {"target": "label", "path_suffix": ".txt"},
        r"has suffix '.txt'; expected a .npz or .csv",
    ),
]


@pytest.mark.parametrize(("case", "text", "options", "problem"), BAD_CSV, ids=[c[0] for c in BAD_CSV])
def test_bad_csv_gives_one_line_naming_file_and_problem(
    tmp_path: Path, case: str, text: str, options: dict, problem: str
) -> None:
    options = {"target": "label", **options}
    path = _write_csv(tmp_path / f"{case}{options.pop('path_suffix', '.csv')}", text)
    with pytest.raises(ValueError) as info:
        _load(path, **options)
    message = str(info.value)
    assert message.startswith(f"data file {str(path)!r}: ") and "\n" not in message
    assert re.search(problem, message), message


def test_target_is_refused_for_npz(tmp_path: Path) -> None:
    path = _npz(tmp_path / "d.npz", x=X4, y=Y4)
    with pytest.raises(ValueError, match="target='label' is for .csv files"):
        _load(path, target="label")


def test_hydra_data_file_config(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parents[2] / "conf"
    path = _write_csv(tmp_path / "d.csv", CSV)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            unset = compose(config_name="train", overrides=["data=file"])
            given = compose(
                config_name="train", overrides=["data=file", f"data.path={path}", "data.target=label"]
            )
    finally:
        GlobalHydra.instance().clear()
    for cfg in (unset, given):
        assert OmegaConf.to_container(cfg.data)["name"] == "file"
    kwargs = OmegaConf.to_container(given.data)
    data = load_dataset(kwargs.pop("name"), seed=given.seed, **kwargs)
    assert (data.n_train, data.n_test, data.in_width, data.out_width) == (4, 2, 2, 2)
    kwargs = OmegaConf.to_container(unset.data)
    with pytest.raises(ValueError, match=r"^path='\?\?\?' is invalid"):
        load_dataset(kwargs.pop("name"), **kwargs)
