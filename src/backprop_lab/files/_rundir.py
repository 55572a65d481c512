"""A run directory: the files a training run owns, and the rules for touching them.

    .backprop-lab.json   the mark of a directory a run (or a sweep) owns, written first
    metrics.jsonl        one JSON record per evaluation, step 0 first (appended, never rewritten)
    losses.csv           ``step,loss``: every optimizer step's minibatch loss (appended)
    checkpoint.eqx       network, optimizer state and header, checksummed (see _checkpoint)
    checkpoint_best.eqx  the same, at the best evaluation by the optimized metric
    summary.json         the run's outcome, replaced atomically
    loss_curve.png       and grad_norms.png: the plots
    .hydra/              the composed config, the overrides and Hydra's own config
    .lock                held (flock) by the process writing into the directory

A run writes only into an empty directory or one it owns (its mark says so; a
job's directory inside a sweep's directory is the sweep's), and deletes only
temporary files of the names it writes. One process at a time writes into a
directory (:meth:`RunDir.lock`). The appended files may run ahead of the
checkpoint when a run is killed between writing them and the checkpoint; the
checkpoint records their length and SHA-256 (:meth:`RunDir.extent`), and
:meth:`RunDir.cut_to` truncates them back to it only when their first bytes
still hash to what it recorded, so a file that is not this run's is never cut.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, SupportsFloat

from ._claim import MARKER, RunDirError, claim, read_marker
from ._safe import append_regular, os_error_line, read_regular, write_atomic, write_json

METRICS = "metrics.jsonl"
LOSSES = "losses.csv"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.eqx"
BEST = "checkpoint_best.eqx"
PLOT = "loss_curve.png"
GRAD_PLOT = "grad_norms.png"
LOCK = ".lock"
CONFIG_DIR = ".hydra"
_LOSSES_HEADER = "step,loss\n"
#: The files written atomically here (their temporary files are ``.NAME.PID.tmp``; a killed
#: writer's ``NAME.ID.tmp`` counts too).
_OWN = (SUMMARY, CHECKPOINT, BEST, MARKER, "config.yaml", "overrides.yaml", "hydra.yaml")
_TEMP = re.compile(r"^\.?(" + "|".join(re.escape(n) for n in _OWN) + r")\.\w+\.tmp$")


__all__ = ["MARKER", "RunDir", "RunDirError", "claim", "finite_or_none", "write_atomic", "write_json"]


def finite_or_none(x: SupportsFloat) -> float | None:
    """A float for JSON, None for NaN/Inf (JSON has no NaN)."""
    value = float(x)
    return value if math.isfinite(value) else None


class _Appended:
    """An appended file's length and running SHA-256 (read from the file on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self.hash: Any = None

    def _load(self) -> Any:
        try:
            data = read_regular(self.path)
        except FileNotFoundError:
            data = b""
        self.size, self.hash = len(data), hashlib.sha256(data)
        return self.hash

    def append(self, data: bytes) -> None:
        digest = self.hash or self._load()
        self.hash = None  # a write that fails part-way leaves the state to be read again
        append_regular(self.path, data)
        digest.update(data)
        self.size, self.hash = self.size + len(data), digest

    def state(self) -> dict:
        digest = self.hash or self._load()
        return {"bytes": self.size, "sha256": digest.hexdigest()}

    def proven(self, recorded: dict) -> bytes:
        """The file's first ``recorded["bytes"]`` bytes, if they hash to ``recorded["sha256"]``."""
        try:
            data = read_regular(self.path)
        except FileNotFoundError:
            data = b""
        n = recorded.get("bytes")
        if (
            not isinstance(n, int)
            or len(data) < n
            or hashlib.sha256(data[:n]).hexdigest() != recorded.get("sha256")
        ):
            raise RunDirError(
                f"{self.path} is not what this run's checkpoint recorded ({n} bytes and their "
                "SHA-256): it was changed or replaced since, and resume cuts back only a file it "
                "can prove is this run's; move it away, or start a new run elsewhere"
            )
        return data[:n]

    def cut_to(self, prefix: bytes) -> None:
        """Truncate the file to ``prefix`` (what :meth:`proven` returned)."""
        if self.path.exists() and self.path.stat().st_size > len(prefix):
            os.truncate(self.path, len(prefix))
        self.size, self.hash = len(prefix), hashlib.sha256(prefix)


class RunDir:
    """The files of one run, in ``path``.

    Arguments:
        path: the run's directory (created when missing).
        dir_key: the config key that chose it (``hydra.run.dir`` or
            ``hydra.sweep.dir``), named in messages.
        app: the app whose run it holds (``"train"``), recorded in its mark when :meth:`lock`
            claims it; another app's directory is refused then.
    """

    def __init__(self, path: str | os.PathLike, dir_key: str = "hydra.run.dir", app: str | None = None):
        self.path = Path(path)
        self.dir_key = dir_key
        self.app = app
        self._lock_fd: int | None = None
        self._files = {name: _Appended(self.path / name) for name in (METRICS, LOSSES)}

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def lock(self) -> None:
        """Claim the directory (:func:`claim`) and take it for this process, or raise
        :class:`RunDirError` if it cannot be used or another process has it."""
        claim(self.path, self.dir_key, app=self.app)
        try:
            fd = os.open(self / LOCK, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, 0o666)
        except OSError as err:
            raise RunDirError(f"{os_error_line(err)}; choose another {self.dir_key}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunDirError(
                f"{self.path} is in use by another run (pid {holder}); wait for it "
                f"to end or choose another {self.dir_key}"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError:
            pass  # the pid is for messages only: a full disk does not stop the lock
        self._lock_fd = fd
        self.clean_temp()

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def clean_temp(self) -> None:
        """Remove the temporary files a killed writer of this run left (only the lock holder
        calls this): those of the names a run writes, never another file."""
        for folder in (self.path, self.path / CONFIG_DIR):
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if _TEMP.match(entry.name) and entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)

    @property
    def run_id(self) -> str | None:
        """The id in the directory's mark (None for a directory no run has claimed)."""
        mark = read_marker(self.path)
        return mark.get("id") if mark and mark["kind"] == "run" else None

    def holds_run(self) -> bool:
        """Whether a training run has written here (a config error alone does not count)."""
        return (self / CHECKPOINT).exists() or (self / METRICS).exists()

    def summary(self) -> dict | None:
        """The summary.json written here, or None."""
        try:
            value = json.loads(read_regular(self / SUMMARY))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def append_records(self, records: Iterable[dict]) -> None:
        self._files[METRICS].append("".join(json.dumps(r) + "\n" for r in records).encode())

    def append_losses(self, first_step: int, losses: Sequence[float]) -> None:
        file = self._files[LOSSES]
        head = "" if file.state()["bytes"] else _LOSSES_HEADER
        file.append(
            (head + "".join(f"{first_step + i},{float(v)!r}\n" for i, v in enumerate(losses))).encode()
        )

    def _lines(self, name: str) -> list[str]:
        try:
            return read_regular(self / name).decode(errors="replace").splitlines()
        except OSError:
            return []

    def records(self) -> list[dict]:
        """The metrics records written here; a torn last line is left out."""
        out: list[dict] = []
        for line in self._lines(METRICS):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def losses(self) -> list[tuple[int, float]]:
        """``(step, loss)`` of every step written to losses.csv."""
        out = []
        for line in self._lines(LOSSES)[1:]:
            step, _, value = line.partition(",")
            try:
                out.append((int(step), float(value)))
            except ValueError:
                continue
        return out

    def extent(self) -> dict:
        """Length and SHA-256 of metrics.jsonl and losses.csv as they are now (a checkpoint
        records them, so a resume can prove what it cuts back is this run's)."""
        return {name: file.state() for name, file in self._files.items()}

    def cut_to(self, extent: dict) -> None:
        """Truncate metrics.jsonl and losses.csv back to ``extent`` (see :meth:`extent`).

        Raises:
            RunDirError: a file whose first bytes are not what ``extent`` recorded
                (nothing is cut then).
        """
        prefixes = {}
        for name, file in self._files.items():  # every file proven before any is cut
            recorded = extent.get(name) if isinstance(extent, dict) else None
            if not isinstance(recorded, dict):
                raise RunDirError(
                    f"the checkpoint in {self.path} does not record the length of {name}; "
                    "resume cuts back only what it can prove is this run's: start a new run elsewhere"
                )
            prefixes[name] = file.proven(recorded)
        for name, file in self._files.items():
            file.cut_to(prefixes[name])

    def write_config(self, files: dict[str, str]) -> None:
        """The run's config files under .hydra/ (name → YAML text), each atomically."""
        folder = self / CONFIG_DIR
        folder.mkdir(exist_ok=True)
        for name, content in files.items():
            write_atomic(folder / name, content.encode())
