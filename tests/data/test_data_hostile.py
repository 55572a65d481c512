"""Data files as a hostile user makes them: pickles, lying headers, labels that collapse when
parsed, values beyond the run's dtype, files that are not data. Each is one line naming the
file, and the same labels get the same answer from a .npz and a .csv file (hypothesis)."""

from __future__ import annotations

import io
import math
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backprop_lab import load_dataset

X = np.arange(12.0).reshape(6, 2)


def _load(path: Path, **options: object):
    return load_dataset("file", path=str(path), **options)


def _refused(path: Path, pattern: str, **options: object) -> str:
    with pytest.raises(ValueError) as info:
        _load(path, **options)
    message = str(info.value)
    assert message.startswith(f"data file {str(path)!r}: ") and "\n" not in message, message
    assert re.search(pattern, message), message
    return message


class _Marks:
    """Unpickling it creates a file: proof that a pickle was (or was not) loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def test_a_member_of_pickle_bytes_is_refused_unread(tmp_path: Path) -> None:
    mark = tmp_path / "unpickled"
    path = _zip(tmp_path / "p.npz", {"x.npy": pickle.dumps(_Marks(mark)), "y.npy": _npy(np.arange(6) % 2)})
    _refused(path, r"array 'x' is not a .npy array .*never loaded")
    assert not mark.exists()


def test_an_object_array_is_refused_unpickled(tmp_path: Path) -> None:
    mark = tmp_path / "unpickled"
    objects = np.array([_Marks(mark)] * 6, dtype=object)
    path = _zip(tmp_path / "o.npz", {"x.npy": _npy(X), "y.npy": _npy(objects)})
    _refused(path, r"array 'y' holds Python objects \(dtype object\), which are never unpickled")
    assert not mark.exists()


def test_a_header_declaring_a_trillion_rows_is_refused_before_allocating(tmp_path: Path) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 2)}
    )
    path = _zip(
        tmp_path / "big.npz", {"x.npy": header.getvalue() + b"\0" * 64, "y.npy": _npy(np.arange(6) % 2)}
    )
    size = 10**12 * 2 * 8 / 2**40  # TiB, computed here
    _refused(path, rf"'x' declares shape \(1000000000000, 2\) of float64, about {size:.3g} TiB, more than")


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        (["1e300", "2e300"] * 3, r"line 2, column 'label'=1e\+300 is too large to be an exact class label"),
        (["9223372036854775807.0", "9223372036854775806.0"] * 3, "too large to be an exact class label"),
        (["0", "0.5"] * 3, r"line 3, column 'label'=0.5 is not a whole number"),
        (["0", "nan"] * 3, r"line 3, column 'label' reads as nan, a missing number"),
        (["cat", "NaN"] * 3, r"line 3, column 'label' reads as nan"),
        (["-inf", "1"] * 3, r"line 2, column 'label' reads as -inf"),
        (["7"] * 6, "holds a single class; classification needs at least two"),
        (["99999999999999999999", "1"] * 3, "is an integer beyond 64 bits"),
    ],
)
def test_csv_labels_that_would_collapse_or_mean_nothing_are_refused(tmp_path: Path, labels, problem) -> None:
    text = "a,label\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels))
    path = tmp_path / "d.csv"
    path.write_text(text)
    _refused(path, problem, target="label")


def test_64_bit_integer_labels_stay_apart(tmp_path: Path) -> None:
    top = np.iinfo(np.int64).max
    labels = [top, top - 1] * 3
    path = tmp_path / "d.csv"
    path.write_text("a,label\n" + "".join(f"{i},{v}\n" for i, v in enumerate(labels)))
    data = _load(path, target="label", one_hot=False, test_fraction=0.5)
    assert data.n_classes == 2
    np.savez(tmp_path / "d.npz", x=np.arange(6.0)[:, None], y=np.array(labels, dtype=np.int64))
    assert _load(tmp_path / "d.npz", one_hot=False, test_fraction=0.5).n_classes == 2


@pytest.mark.parametrize(
    ("y", "problem"),
    [
        (np.array([1e300, 2e300] * 3), r"y\[0\]=1e\+300 is too large"),
        (np.array([0.0, 0.5] * 3), r"y\[1\]=0.5 is not a whole number"),
        (np.array(["a", "nan"] * 3), r"y\[1\] reads as nan"),
        (np.zeros(6), "holds a single class"),
        (np.eye(2)[[0] * 6], "one-hot rows are all one class"),
    ],
)
def test_npz_labels_follow_the_same_rule(tmp_path: Path, y: np.ndarray, problem: str) -> None:
    np.savez(tmp_path / "d.npz", x=X, y=y)
    _refused(tmp_path / "d.npz", problem)


def test_features_beyond_float32_are_a_data_error(tmp_path: Path) -> None:
    x = X.copy()
    x[3, 1] = 1e39  # finite in float64, infinite in float32
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(6) % 2)
    assert np.isfinite(_load(tmp_path / "d.npz", dtype=np.float64).x_train).all()
    with pytest.raises(
        ValueError, match=r"column 1 holds values that are not finite in float32 \(its largest is 3.4e\+38\)"
    ):
        _load(tmp_path / "d.npz", dtype=np.float32)


def test_a_symlink_to_a_system_file_does_not_leak_its_content(tmp_path: Path) -> None:
    target = Path("/etc/passwd")
    if not target.is_file():
        pytest.skip("no /etc/passwd here")
    first = target.read_text().splitlines()[0]
    link = tmp_path / "d.csv"
    link.symlink_to(target)
    for options in ({"target": "label"}, {"target": None}, {"target": first.split(":")[0]}):
        with pytest.raises(ValueError) as info:
            _load(link, **options)
        message = str(info.value)
        assert "\n" not in message
        for field in {f for f in first.split(":") if len(f) > 2} - {str(options["target"])}:
            assert field not in message.removeprefix(f"data file {str(link)!r}: "), message


# --------------------------------------------------------------------------- #
# one rule for every format
# --------------------------------------------------------------------------- #

LABEL = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from(["cat", "dog", " 3 ", "1.0", "1e3", "nan", "inf", "-0", "0x1"]),
)


def _outcome(load) -> tuple:
    try:
        data = load()
    except ValueError as err:
        message = str(err)
        assert "\n" not in message
        return ("refused",)
    return ("classes", data.n_classes, tuple(np.concatenate([data.y_train, data.y_test]).tolist()))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(LABEL, min_size=2, max_size=3))
def test_the_same_labels_get_the_same_answer_from_npz_and_csv(tmp_path: Path, values) -> None:
    """Labels written as text (a .csv column, a .npz array of strings) and, when they are all
    numbers, as a .npz number array: each is refused by all, or gives the same classes."""
    labels = [v for v in values for _ in range(2)]  # two rows of each, so a split can stratify
    texts = [repr(v) if isinstance(v, float) else str(v) for v in labels]
    x = np.arange(len(labels), dtype=np.float64)[:, None]
    csv = tmp_path / "d.csv"
    csv.write_text("a,label\n" + "".join(f"{i},{t}\n" for i, t in enumerate(texts)))
    np.savez(tmp_path / "s.npz", x=x, y=np.array(texts), x_test=x, y_test=np.array(texts))
    loads = [
        lambda: _load(csv, target="label", one_hot=False, test_fraction=0.5, seed=0),
        lambda: _load(tmp_path / "s.npz", one_hot=False, test_fraction=0.5, seed=0),
    ]
    if all(isinstance(v, float) for v in labels) or all(isinstance(v, int) for v in labels):
        np.savez(tmp_path / "n.npz", x=x, y=np.array(labels), x_test=x, y_test=np.array(labels))
        loads.append(lambda: _load(tmp_path / "n.npz", one_hot=False, test_fraction=0.5, seed=0))
    outcomes = [_outcome(load)[:2] for load in loads]
    assert len(set(outcomes)) == 1, (texts, outcomes)
    numbers = [float(t) for t in texts if _parses(float, t)]
    if outcomes[0][0] == "classes" and len(numbers) == len(texts):
        exact = {int(t) if _parses(int, t) else float(t) for t in texts}
        assert outcomes[0][1] == len(exact)  # distinct values, compared exactly, are distinct classes
        assert all(math.isfinite(n) for n in numbers)


def _parses(kind: type, t: str) -> bool:
    """Whether Python reads ``t`` as a ``kind`` (int or float)."""
    try:
        kind(t)
    except ValueError:
        return False
    return True
