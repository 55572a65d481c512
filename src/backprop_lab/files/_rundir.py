"""A run directory: the files a training run owns, and the rules for touching them.

    metrics.jsonl     one JSON record per evaluation, step 0 first (appended, never rewritten)
    losses.csv        ``step,loss``: every optimizer step's minibatch loss (appended)
    checkpoint.eqx    network, optimizer state and header, checksummed (see _checkpoint)
    summary.json      the run's outcome, replaced atomically
    loss_curve.png    and grad_norms.png: the plots
    .hydra/           the composed config, the overrides and Hydra's own config
    .lock             held (flock) by the process writing into the directory

One process at a time writes into a directory (:meth:`RunDir.lock`). The
appended files may run ahead of the checkpoint when a run is killed between
writing them and the checkpoint; :meth:`RunDir.cut_after` truncates them back
to the checkpoint's step before a resume continues (a truncate at a line
boundary, so a kill at any moment loses nothing the checkpoint holds).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import SupportsFloat

METRICS = "metrics.jsonl"
LOSSES = "losses.csv"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.eqx"
PLOT = "loss_curve.png"
GRAD_PLOT = "grad_norms.png"
LOCK = ".lock"
CONFIG_DIR = ".hydra"
_LOSSES_HEADER = "step,loss\n"


class RunDirError(RuntimeError):
    """A run directory this run may not write into; the message says why and what to do."""


def finite_or_none(x: SupportsFloat) -> float | None:
    """A float for JSON, None for NaN/Inf (JSON has no NaN)."""
    value = float(x)
    return value if math.isfinite(value) else None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file whole or not at all (temp file, fsync, rename), mode 0666 & ~umask."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: dict) -> None:
    """A JSON file, written atomically."""
    write_atomic(Path(path), (json.dumps(obj, indent=2) + "\n").encode())


def _append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


class RunDir:
    """The files of one run, in ``path``.

    Arguments:
        path: the run's directory (created when missing).
        dir_key: the config key that chose it (``hydra.run.dir`` or
            ``hydra.sweep.dir``), named in messages.
    """

    def __init__(self, path: str | os.PathLike, dir_key: str = "hydra.run.dir"):
        self.path = Path(path)
        self.dir_key = dir_key
        self._lock_fd: int | None = None

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def lock(self) -> None:
        """Take the directory for this process, or raise :class:`RunDirError` if another has it."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self / LOCK, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunDirError(
                f"{self.path} is in use by another run (pid {holder}); wait for it "
                f"to end or choose another {self.dir_key}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        self.clean_temp()

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def clean_temp(self) -> None:
        """Remove temp files left by a killed writer (only the lock holder calls this)."""
        for tmp in self.path.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        for tmp in self.path.glob(f"{CHECKPOINT}.*.tmp"):
            tmp.unlink(missing_ok=True)

    def holds_run(self) -> bool:
        """Whether a training run has written here (a config error alone does not count)."""
        return (self / CHECKPOINT).exists() or (self / METRICS).exists()

    def summary(self) -> dict | None:
        """The summary.json written here, or None."""
        try:
            value = json.loads((self / SUMMARY).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return value if isinstance(value, dict) else None

    def append_records(self, records: Iterable[dict]) -> None:
        _append(self / METRICS, "".join(json.dumps(r) + "\n" for r in records))

    def append_losses(self, first_step: int, losses: Sequence[float]) -> None:
        path = self / LOSSES
        head = "" if path.exists() and path.stat().st_size else _LOSSES_HEADER
        _append(path, head + "".join(f"{first_step + i},{float(v)!r}\n" for i, v in enumerate(losses)))

    def records(self) -> list[dict]:
        """The metrics records written here; a torn last line is left out."""
        out: list[dict] = []
        try:
            lines = (self / METRICS).read_text().splitlines()
        except OSError:
            return out
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def losses(self) -> list[tuple[int, float]]:
        """``(step, loss)`` of every step written to losses.csv."""
        try:
            lines = (self / LOSSES).read_text().splitlines()[1:]
        except OSError:
            return []
        out = []
        for line in lines:
            step, _, value = line.partition(",")
            try:
                out.append((int(step), float(value)))
            except ValueError:
                continue
        return out

    def cut_after(self, step: int) -> None:
        """Truncate metrics.jsonl and losses.csv after their last line at or before ``step``.

        metrics.jsonl records carry the step they were taken at; losses.csv
        lines carry the step whose loss they are, and the checkpoint at step s
        comes after the losses of steps up to s - 1.
        """
        self._cut(self / METRICS, lambda line: json.loads(line)["step"] <= step)
        self._cut(self / LOSSES, lambda line: line.startswith("step,") or int(line.split(",")[0]) < step)

    @staticmethod
    def _cut(path: Path, keep: Callable[[str], bool]) -> None:
        try:
            raw = path.read_bytes()
        except OSError:
            return
        offset = 0
        for line in raw.splitlines(keepends=True):
            try:
                ok = line.endswith(b"\n") and keep(line.decode())
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                ok = False
            if not ok:
                break
            offset += len(line)
        if offset < len(raw):
            os.truncate(path, offset)

    def write_config(self, files: dict[str, str]) -> None:
        """The run's config files under .hydra/ (name → YAML text), each atomically."""
        folder = self / CONFIG_DIR
        folder.mkdir(exist_ok=True)
        for name, content in files.items():
            write_atomic(folder / name, content.encode())
