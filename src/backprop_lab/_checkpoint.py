"""Checkpoints: the network, the optimizer state and the step, in one file written atomically.

The file is one JSON header line (format, step, epoch, the SHA-256 and length
of the payload, and any metadata) followed by the payload, equinox's
``tree_serialise_leaves`` of ``(model, opt_state)``. It is written to a
temporary file in the same directory and renamed over the old one, so a run
killed at any moment leaves either the previous checkpoint or the new one,
never half of one. A truncated or altered file fails its checksum and raises
:class:`CheckpointError`; it is never loaded as garbage.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import equinox as eqx

FORMAT = "backprop-lab-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read back; the message says what to do."""


def save_checkpoint(path: str | os.PathLike, tree: Any, *, step: int, epoch: int,
                    meta: dict | None = None) -> None:
    """Write ``tree`` (e.g. ``(model, opt_state)``) with its step and epoch, atomically."""
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree)
    payload = buf.getvalue()
    header = {
        "format": FORMAT,
        "step": int(step),
        "epoch": int(epoch),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "bytes": len(payload),
        "meta": meta or {},
    }
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(header).encode() + b"\n")
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_header(path: str | os.PathLike) -> dict:
    """The header of a checkpoint, checked against its payload."""
    header, _ = _read(Path(path))
    return header


def _read(path: Path) -> tuple[dict, bytes]:
    hint = "delete it to start afresh, or point hydra.run.dir at another run"
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from None
    line, sep, payload = raw.partition(b"\n")
    try:
        header = json.loads(line) if sep else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is corrupt: its header is unreadable; {hint}")
    if len(payload) != header.get("bytes") or hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated: {len(payload)} payload bytes do not "
            f"match the recorded {header.get('bytes')} bytes and checksum; {hint}"
        )
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
