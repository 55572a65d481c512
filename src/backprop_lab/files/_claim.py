"""Which directories a run may write into: the mark a run (or a sweep) leaves in its own.

A run writes only into an empty directory or one it owns: :func:`claim` checks
the directory (a file, a path under a file, a kernel filesystem and a directory
the filesystem will not let a run write into are refused with one line), then
writes the mark, ``.backprop-lab.json``, before any other file. A job's
directory inside a sweep's own directory is the sweep's: what Hydra made there
for the job (its log, its ``.hydra/``) does not keep a run out.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from ._safe import check_directory, os_error_line, read_regular, write_json

MARKER = ".backprop-lab.json"


class RunDirError(RuntimeError):
    """A run directory this run may not write into; the message says why and what to do."""


def read_marker(path: str | os.PathLike) -> dict | None:
    """The mark of a directory a run or sweep owns (``{"kind": "run"|"sweep", ...}``), or None."""
    try:
        value = json.loads(read_regular(Path(path) / MARKER))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and value.get("kind") in ("run", "sweep") else None


def _in_own_sweep(path: Path) -> bool:
    """Whether ``path`` is a job's directory inside a sweep directory (up to two levels up)."""
    return any((read_marker(p) or {}).get("kind") == "sweep" for p in list(path.absolute().parents)[:2])


def _foreign(path: Path) -> list[str]:
    """The entries of ``path`` that keep it from being claimed for a run: all but what Hydra
    makes for a job before the run starts, its log (``*.log``) and, in a sweep's directory,
    its ``.hydra/`` (an empty log is no one's file)."""
    sweep = None
    out = []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        log = entry.name.endswith(".log") and entry.is_file(follow_symlinks=False)
        if log and entry.stat().st_size == 0:
            continue
        if log or (entry.name == ".hydra" and entry.is_dir(follow_symlinks=False)):
            sweep = _in_own_sweep(path) if sweep is None else sweep
            if sweep:
                continue
        out.append(entry.name)
    return out


def claim(path: str | os.PathLike, key: str, kind: str = "run", app: str | None = None, **fields) -> dict:
    """Take ``path`` as a run's (or sweep's) own directory, or raise :class:`RunDirError`.

    A directory that does not exist or is empty is created and marked (the mark
    written first, before any other file); one marked for the same kind is
    taken as it is, unless it records another app (a compare's directory is no place
    for a train run: its summary.json would be overwritten; a mark that records no
    app, as marks written before apps were recorded, is taken by any). Anything else
    (a file, a directory of other files, a directory the filesystem will not let a
    run write into) is refused with one line naming the path and the cause. Returns
    the mark.

    Arguments:
        path: the directory.
        key: the config key that chose it (``hydra.run.dir``), named in messages.
        kind: ``"run"`` or ``"sweep"``.
        app: the app that writes there (``"train"``, ``"compare"``, ``"explain"``), recorded in
            a new mark; None: any app's.
        **fields: more fields for a new mark (a sweep records what it sweeps).
    """
    p = Path(path)
    try:
        check_directory(p, key)
    except ValueError as err:
        raise RunDirError(str(err)) from None
    mark = read_marker(p) if p.is_dir() else None
    if mark is not None:
        if mark["kind"] != kind:
            raise RunDirError(f"{p} holds a {mark['kind']}, not a {kind}; choose another {key}")
        made_by = mark.get("app")
        if app is not None and made_by is not None and made_by != app:
            raise RunDirError(
                f"{key}={str(p)!r} holds a {made_by} {kind}, and a directory holds one app's {kind}: "
                f"choose another {key} for this {app} {kind}"
            )
        return mark
    try:
        p.mkdir(parents=True, exist_ok=True)
        others = _foreign(p)
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise RunDirError(
                f"{key}={str(p)!r} holds files that are not this {kind}'s ({shown}); a {kind} "
                f"writes only into an empty directory or its own: choose another {key}"
            )
        mark = {"kind": kind, "id": uuid.uuid4().hex, **({"app": app} if app else {}), **fields}
        write_json(p / MARKER, mark)
    except OSError as err:
        raise RunDirError(f"{os_error_line(err, err.filename or p)}; choose another {key}") from None
    return mark
