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


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state(cwd: str | Path | None = None) -> dict | None:
    """The commit checked out in the git repository holding ``cwd`` (default: the
    current directory), and whether tracked files differ from it; None outside a
    repository or without git."""
    where = Path.cwd() if cwd is None else Path(cwd)
    commit = _git(["rev-parse", "HEAD"], where)
    if not commit:
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return {"commit": commit, "dirty": None if status is None else bool(status)}


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
