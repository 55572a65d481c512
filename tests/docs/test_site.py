"""The documentation site builds with ``mkdocs build --strict``: a broken link, a
missing anchor, a docstring griffe cannot read or an API entry that names nothing
fails the build, and so this test."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_site_builds_strict(tmp_path):
    proc = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stderr[-4000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("backprop_lab.MLP", "backprop_lab.manual_grad", "backprop_lab.load_run"):
        assert f'id="{name}"' in api


@pytest.mark.slow
def test_a_broken_link_anchor_or_reference_fails_the_build(tmp_path):
    """The project's mkdocs.yml with a one-page site that breaks each rule once."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(
        "# Home\n\n[gone](missing.md), [no such part](#no-such-part), "
        "[a name](backprop_lab.no_such_name) [ref][backprop_lab.no_such_name]\n"
    )
    config.update(docs_dir=str(docs), nav=["index.md"])
    config.pop("exclude_docs", None)
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    proc = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode != 0
    for problem in ("missing.md", "#no-such-part", "backprop_lab.no_such_name"):
        assert problem in proc.stderr, proc.stderr[-4000:]
