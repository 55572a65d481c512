"""The checks a maintainer runs on the code itself, as tests: the import layers
(import-linter's contracts in pyproject.toml), ruff's lint and format, and mypy on
src/. Each runs the tool the project pins (pyproject's ``lint`` extra) on the
checkout, so a change that breaks a layer, a rule or a type fails the suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; `pip install -e .[test]` installs it")
    return found


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_import_layers_hold():
    proc = _run(_tool("lint-imports"), "--no-cache")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout and "KEPT" in proc.stdout


def test_ruff_lint_is_clean():
    proc = _run(_tool("ruff"), "check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_ruff_format_is_clean():
    proc = _run(_tool("ruff"), "format", "--check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.slow
def test_mypy_is_clean_on_src():
    """Incremental, with pyproject's settings and cache (.mypy_cache): the one ``mypy`` before a
    commit leaves, so only the files changed since are checked again (a cold cache: half a
    minute of one core; a warm one: a second or two). mypy checks a cached result against each
    file's contents and its options, so a stale cache cannot hide an error."""
    proc = _run(_tool("mypy"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_no_private_api_of_other_libraries_outside_compat():
    """jax._src, hydra._internal and omegaconf._utils only inside backprop_lab/compat/."""
    bad = []
    for path in (ROOT / "src").rglob("*.py"):
        if "compat" in path.relative_to(ROOT / "src").parts:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if any(
                f"{kind} {mod}" in code
                for kind in ("import", "from")
                for mod in ("jax._src", "hydra._internal", "omegaconf._utils")
            ):
                bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)
