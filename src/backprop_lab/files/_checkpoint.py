"""Checkpoints: the network, the optimizer state and the step, in one file written atomically.

The file is one JSON header line (format, step, epoch, the length of the
payload, any metadata, and a SHA-256 over the header's other fields *and* the
payload) followed by the payload, equinox's ``tree_serialise_leaves`` of
``(model, opt_state)``. It is written to a temporary file in the same
directory and renamed over the old one, so a run killed at any moment leaves
either the previous checkpoint or the new one, never half of one. A
truncated file, or one altered anywhere (an edited epoch included), fails its
checksum and raises :class:`CheckpointError`; it is never loaded as garbage.
Only a regular file is read, opened without blocking (a FIFO put in its place is
refused at once), and a header whose fields have odd types or values out of
range (a negative step, an epoch beyond any run) is refused whatever its checksum.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import equinox as eqx

from ._safe import NotARegularFile, read_regular, write_atomic

FORMAT = "backprop-lab-checkpoint/2"
#: The most epochs a run may have (``epochs``' own limit) and so a checkpoint may record.
MAX_EPOCHS = 10**8


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read back; the message says what to do."""


def serialise(tree: Any) -> bytes:
    """A checkpoint's payload: equinox's ``tree_serialise_leaves`` of ``tree``.

    >>> import jax.numpy as jnp
    >>> len(serialise((jnp.zeros(3), jnp.ones(2)))) > 0
    True
    """
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree)
    return buf.getvalue()


def save_checkpoint(
    path: str | os.PathLike,
    tree: Any,
    *,
    step: int,
    epoch: int,
    meta: dict | None = None,
    payload: bytes | None = None,
) -> None:
    """Write ``tree`` (e.g. ``(model, opt_state)``) with its step and epoch, atomically.
    ``payload``: ``serialise(tree)`` when the caller has it already (one state kept as both
    the last and the best checkpoint is serialised once)."""
    payload = serialise(tree) if payload is None else payload
    header = {
        "format": FORMAT,
        "step": int(step),
        "epoch": int(epoch),
        "bytes": len(payload),
        "meta": meta or {},
    }
    header["sha256"] = _digest(header, payload)
    write_atomic(Path(path), json.dumps(header).encode() + b"\n" + payload)


def _digest(header: dict, payload: bytes) -> str:
    """SHA-256 of the header (all but its own sha256 field, canonical JSON) and the payload."""
    fields = {k: v for k, v in header.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode() + b"\n" + payload).hexdigest()


def read_header(path: str | os.PathLike) -> dict:
    """The header of a checkpoint, checked against its payload."""
    header, _ = _read(Path(path))
    return header


def _is_count(v: Any, high: float) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= high


def check_header(header: dict, path: Path | str) -> None:
    """Refuse a header whose fields have odd types or values out of any run's range."""
    hint = "it was not written by a run of this version; delete it or point hydra.run.dir at another run"
    meta = header.get("meta")
    for field, ok in (
        ("epoch", _is_count(header.get("epoch"), MAX_EPOCHS)),
        ("step", _is_count(header.get("step"), 2**62)),
        ("bytes", _is_count(header.get("bytes"), 2**62)),
        ("meta", isinstance(meta, dict)),
    ):
        if not ok:
            raise CheckpointError(
                f"checkpoint {path} has {field}={header.get(field)!r} in its header; {hint}"
            )


def _read(path: Path) -> tuple[dict, bytes]:
    hint = "delete it to start afresh, or point hydra.run.dir at another run"
    try:
        raw = read_regular(path)
    except NotARegularFile:
        raise CheckpointError(
            f"checkpoint {path} is not a regular file (a FIFO, device or socket); {hint}"
        ) from None
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err.strerror or err}") from None
    line, sep, payload = raw.partition(b"\n")
    try:
        header = json.loads(line) if sep else None
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or not str(header.get("format", "")).startswith(
        "backprop-lab-checkpoint/"
    ):
        raise CheckpointError(f"checkpoint {path} is corrupt: its header is unreadable; {hint}")
    if header["format"] != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is in format {str(header['format'])[:60]}, this version reads {FORMAT}; {hint}"
        )
    try:
        digest = _digest(header, payload)
    except (TypeError, ValueError):  # keys JSON cannot sort, values it cannot write back
        digest = None
    if len(payload) != header.get("bytes") or digest != header.get("sha256"):
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated: its {len(payload)} payload bytes and header "
            f"do not match the recorded length and checksum; {hint}"
        )
    check_header(header, path)
    return header, payload


def load_checkpoint(path: str | os.PathLike, like: Any) -> tuple[Any, dict]:
    """Read a checkpoint into the structure of ``like``; return ``(tree, header)``.

    Raises:
        CheckpointError: a missing, truncated, corrupted or mismatched file.
    """
    path = Path(path)
    header, payload = _read(path)
    try:
        tree = eqx.tree_deserialise_leaves(io.BytesIO(payload), like)
    except Exception as err:  # shape or structure mismatch inside equinox/numpy
        raise CheckpointError(
            f"checkpoint {path} does not fit this run's network and optimizer ({err}); "
            "resume with the same config it was written with"
        ) from None
    return tree, header
