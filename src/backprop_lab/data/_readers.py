"""Reading a data file's arrays: a ``.npz`` archive or a ``.csv`` file, never more than it holds.

A ``.npz`` member is read only after its ``.npy`` header: a member that is not
a ``.npy`` array (pickled bytes, say) or whose dtype holds Python objects is
refused without being loaded, and so is one whose header declares more bytes
than the archive holds for it or than this machine's memory. Messages name
arrays, shapes, line and column numbers, never the file's text.
"""

from __future__ import annotations

import csv
import io
import math
import os
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

__all__ = ["NPZ_NAMES", "READERS", "Reader", "memory_bytes", "size_text"]

NPZ_NAMES = ("x", "y", "x_test", "y_test")

Reader = Callable[[Path, str | None], dict[str, np.ndarray]]


def memory_bytes() -> float:
    """This machine's physical memory in bytes (infinite when it cannot be read)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def size_text(n: float) -> str:
    """Bytes as a short size: ``14.6 TiB``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.3g} {unit}" if unit != "bytes" else f"{int(n)} bytes"
        n /= 1024
    raise AssertionError("unreachable")


def _header(f: IO[bytes], name: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype a member's ``.npy`` header declares."""
    try:
        version = np.lib.format.read_magic(f)
    except ValueError:
        raise ValueError(
            f"array {name!r} is not a .npy array (it holds other bytes, such as pickled data, "
            "which are never loaded); save plain arrays with np.savez"
        ) from None
    try:
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    except (ValueError, TypeError, SyntaxError):
        raise ValueError(f"array {name!r} has a malformed .npy header") from None
    return tuple(int(n) for n in shape), dtype


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> np.ndarray:
    """One member, its header checked before anything is allocated."""
    with archive.open(info) as f:
        shape, dtype = _header(f, name)
    if dtype.hasobject:
        raise ValueError(
            f"array {name!r} holds Python objects (dtype {dtype}), which are never unpickled; "
            "save numbers or text"
        )
    need = math.prod(shape) * dtype.itemsize
    for limit, what in ((info.file_size, "the archive holds for it"), (memory_bytes(), "this machine has")):
        if need > limit:
            raise ValueError(
                f"array {name!r} declares shape {shape} of {dtype}, about {size_text(need)}, "
                f"more than the {size_text(limit)} {what}"
            )
    with archive.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def read_npz(path: Path, target: str | None) -> dict[str, np.ndarray]:
    """Arrays of a ``.npz`` archive, by name (the names are checked before any is read)."""
    if target is not None:
        raise ValueError(f"target={target!r} is for .csv files; a .npz file holds arrays x and y")
    if not zipfile.is_zipfile(path):
        raise ValueError("is not a whole .npz (zip) archive; save one with np.savez(path, x=..., y=...)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            extra = sorted(set(members) - set(NPZ_NAMES))
            missing = [k for k in ("x", "y") if k not in members]
            if extra or missing:
                raise ValueError(
                    f"holds arrays {sorted(members)}; expected x and y, optionally x_test and y_test"
                )
            if ("x_test" in members) != ("y_test" in members):
                raise ValueError("holds only one of x_test and y_test; give both or neither")
            return {name: _member(archive, info, name) for name, info in members.items()}
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"is not a readable .npz archive ({reason})") from None


def _cell_numbers(cells: np.ndarray, lines: list[int], columns: list[int]) -> np.ndarray:
    """Strings ``(n, k)`` as float64, or a ValueError naming the first bad cell by line and column."""
    try:
        values = cells.astype(np.float64)
    except ValueError:
        for (r, c), cell in np.ndenumerate(cells):
            try:
                float(cell)
            except ValueError:
                what = "is empty" if not cell.strip() else "is not a number"
                raise ValueError(f"line {lines[r]}, column {columns[c]} {what}") from None
        raise
    if not np.isfinite(values).all():
        r, c = (int(i) for i in np.argwhere(~np.isfinite(values))[0])
        raise ValueError(
            f"line {lines[r]}, column {columns[c]} holds {values[r, c]}; every feature must be finite"
        )
    return values


def _rows(path: Path) -> tuple[list[list[str]], list[int]]:
    """The non-blank rows of a ``.csv`` file and their line numbers."""
    if path.stat().st_size > memory_bytes() / 4:
        raise ValueError(f"is {size_text(path.stat().st_size)}, more than this machine's memory can parse")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"is not UTF-8 text (byte {err.start})") from None
    reader = csv.reader(io.StringIO(text))
    rows, lines = [], []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append(row)
                lines.append(reader.line_num)
    except csv.Error:
        raise ValueError(f"line {reader.line_num} is not valid CSV") from None
    return rows, lines


def read_csv(path: Path, target: str | None) -> dict[str, np.ndarray]:
    """``x`` (numeric features), ``y`` (the target column's labels, as text) and ``lines`` (each
    row's line number) of a ``.csv`` file."""
    rows, lines = _rows(path)
    if not rows:
        raise ValueError("holds no rows; expected a header row and data rows")
    header = [name.strip() for name in rows[0]]
    if target is None:
        raise ValueError(
            f"needs target=COLUMN naming its label column (its header has {len(header)} columns)"
        )
    if target not in header or header.count(target) > 1:
        problem = "has no column" if target not in header else "has more than one column"
        raise ValueError(f"{problem} named {target!r} (its header has {len(header)} columns)")
    if len(header) < 2:
        raise ValueError(f"has no feature columns besides {target!r}")
    if len(rows) < 2:
        raise ValueError("has a header row but no data rows")
    for row, line in zip(rows[1:], lines[1:]):
        if len(row) != len(header):
            raise ValueError(f"line {line} has {len(row)} cells but the header names {len(header)} columns")
    cells = np.array(rows[1:], dtype=str)
    t = header.index(target)
    columns = [i + 1 for i in range(len(header)) if i != t]
    x = _cell_numbers(np.delete(cells, t, axis=1), lines[1:], columns)
    return {"x": x, "y": cells[:, t], "lines": np.array(lines[1:])}


READERS: dict[str, Reader] = {".npz": read_npz, ".csv": read_csv}
"""Each file suffix's reader: ``reader(path, target) -> {"x", "y"[, "x_test", "y_test"]}``."""
