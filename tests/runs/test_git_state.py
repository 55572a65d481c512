"""The version a run records: read from the repository without running what it configures."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from backprop_lab.runs._environment import git_state

SAFE = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null")


def _git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": "a@b",
        "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@b",
    }
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=env, check=True)
    return proc.stdout.strip()


@pytest.fixture
def hostile_repo(tmp_path: Path) -> tuple[Path, Path]:
    """A repository whose config sets core.fsmonitor (and a hook) to a program that leaves a mark."""
    repo, mark = tmp_path / "repo", tmp_path / "ran"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-qm", "first")
    script = tmp_path / "monitor.sh"
    script.write_text(f"#!/bin/sh\necho ran >> {mark}\n")
    script.chmod(0o755)
    _git(repo, "config", "core.fsmonitor", str(script))
    _git(repo, "config", "core.hooksPath", str(tmp_path))
    (tmp_path / "post-index-change").write_text(script.read_text())
    (tmp_path / "post-index-change").chmod(0o755)
    return repo, mark


def test_commit_and_dirty_without_running_the_repositorys_programs(hostile_repo) -> None:
    repo, mark = hostile_repo
    head = _git(repo, "rev-parse", "HEAD")  # rev-parse consults no monitor
    assert git_state(repo) == {"commit": head, "dirty": False}
    (repo / "a.txt").write_text("two\n")
    assert git_state(repo / ".") == {"commit": head, "dirty": True}
    assert not mark.exists()
    # the same repository as git status runs it: the monitor runs (the fixture's mark works)
    subprocess.run(["git", "status"], cwd=repo, capture_output=True)
    assert mark.exists()


def test_packed_refs_detached_head_and_subdirectories(hostile_repo) -> None:
    repo, mark = hostile_repo
    head = _git(repo, "rev-parse", "HEAD")
    _git(repo, *SAFE, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    (repo / "sub").mkdir()
    assert git_state(repo / "sub")["commit"] == head
    _git(repo, *SAFE, "checkout", "-q", "--detach")
    assert git_state(repo)["commit"] == head
    assert not mark.exists()


def test_outside_a_repository(tmp_path: Path) -> None:
    assert git_state(tmp_path) is None
