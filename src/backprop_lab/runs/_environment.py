"""What a result was computed with: package versions, the git commit, the JAX backend and device.

summary.json records :func:`environment` so a number can be traced back to the
code and the machine that produced it.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

import jax

#: Distributions whose versions a summary records.
PACKAGES = ("backprop-lab", "jax", "jaxlib", "equinox", "optax", "numpy")


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


#: ``git status`` with everything a repository can configure to run switched off: its
#: file-system monitor (``core.fsmonitor``), hooks, and the optional lock-taking refresh.
_SAFE_GIT = [
    "git",
    "--no-optional-locks",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.untrackedCache=false",
]


def _git_dir(where: Path) -> tuple[Path, Path, Path] | None:
    """``(work tree, git dir, common dir)`` of the repository holding ``where``, read from the
    files (a ``.git`` directory, or a ``.git`` file naming one as a worktree's does)."""
    for top in (where, *where.parents):
        dot = top / ".git"
        if dot.is_dir():
            return top, dot, dot
        if dot.is_file():
            text = dot.read_text(errors="replace").strip()
            if not text.startswith("gitdir:"):
                return None
            git_dir = (top / text.removeprefix("gitdir:").strip()).resolve()
            common = git_dir / "commondir"
            common_dir = (git_dir / common.read_text().strip()).resolve() if common.is_file() else git_dir
            return top, git_dir, common_dir
    return None


def _ref(common: Path, ref: str) -> str | None:
    """The commit a ref names: its loose file, else its line in ``packed-refs``."""
    loose = common / ref
    if loose.is_file():
        return loose.read_text().strip() or None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(errors="replace").splitlines():
            sha, _, name = line.partition(" ")
            if name.strip() == ref and not line.startswith(("#", "^")):
                return sha
    return None


def _commit(git_dir: Path, common: Path) -> str | None:
    head = (git_dir / "HEAD").read_text().strip()
    if head.startswith("ref:"):
        ref = head.removeprefix("ref:").strip()
        return _ref(git_dir, ref) if (git_dir / ref).is_file() else _ref(common, ref)
    return head or None


def _dirty(top: Path, common: Path) -> bool | None:
    """Whether tracked files differ from the commit, by :data:`_SAFE_GIT` ``status``; None when
    git is missing, fails, or the repository configures filters (which ``status`` would run)."""
    try:
        config = (common / "config").read_text(errors="replace")
    except OSError:
        config = ""
    if "[filter" in config:
        return None
    try:
        proc = subprocess.run(
            [*_SAFE_GIT, "status", "--porcelain", "--untracked-files=no"],
            cwd=top,
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(proc.stdout.strip()) if proc.returncode == 0 else None


def git_state(cwd: str | Path | None = None) -> dict | None:
    """The commit checked out in the git repository holding ``cwd`` (default: the
    current directory), and whether tracked files differ from it; None outside a
    repository.

    The commit is read from the repository's files (``HEAD``, its ref, ``packed-refs``), and
    ``git status`` runs with the repository's file-system monitor and hooks switched off, so
    nothing a repository configures runs (``dirty`` is None when it configures filters).
    """
    where = (Path.cwd() if cwd is None else Path(cwd)).absolute()
    try:
        found = _git_dir(where)
        commit = _commit(found[1], found[2]) if found else None
    except OSError:
        return None
    if found is None or not commit:
        return None
    return {"commit": commit, "dirty": _dirty(found[0], found[2])}


def environment(cwd: str | Path | None = None) -> dict:
    """The versions, commit, backend and device a run is computed with.

    Arguments:
        cwd: the directory whose git repository is recorded (default: the
            current directory, where the run was launched).

    Returns:
        ``{"packages": {name: version}, "python", "platform", "git": {"commit",
        "dirty"} or None, "jax_backend", "device_kind", "device_count"}``; a
        package that is not installed has version None.
    """
    device = jax.devices()[0]
    return {
        "packages": {name: _version(name) for name in PACKAGES},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": git_state(cwd),
        "jax_backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
    }
