"""A sweep SLURM refuses to take (a partition that does not exist) ends with sbatch's reason in
one line of the launcher's own and exit status 2. sbatch here is a stand-in that answers as
slurmctld answers an unknown partition: the check sits where submitit's error arrives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.train_app import ROOT, TRAIN

pytestmark = pytest.mark.slow

REFUSAL = "sbatch: error: Batch job submission failed: Invalid partition name specified"


def _sbatch(tmp_path: Path, script: str) -> dict[str, str]:
    """An environment whose sbatch is a stand-in running ``script`` (sh) and exiting 1."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\n{script}\nexit 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize("launcher", ["slurm", "slurm_vmap"])
def test_an_unknown_partition_is_one_line_and_status_2(tmp_path: Path, launcher: str) -> None:
    env = _sbatch(tmp_path, f"echo '{REFUSAL}' >&2")
    proc = subprocess.run(
        [sys.executable, str(TRAIN), "-m", f"hydra/launcher={launcher}", "hydra.launcher.partition=nosuch",
         "data=xor", "model.sizes=[2,2,1]", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        capture_output=True, text=True, timeout=240, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("SLURM refused")]
    assert f"({REFUSAL})" in line and "hydra.launcher.partition" in line


@pytest.mark.parametrize(
    ("launcher", "key", "says"),
    [
        ("vmap", "hydra.launcher.max_padding=0.5", "hydra.launcher.max_padding=0.5: expected a number >= 1"),
        (
            "slurm_vmap",
            "hydra.launcher.max_padding=0.5",
            "hydra.launcher.max_padding=0.5: expected a number >= 1",
        ),
        ("vmap", "hydra.launcher.vmap_keys=[seed,batch_size]", "batch_size cannot differ within one program"),
        (
            "slurm_vmap",
            "hydra.launcher.vmap_keys=[lr]",
            "lr cannot differ within one program; expected some of",
        ),
    ],
)
def test_a_bad_launcher_key_is_refused_before_anything_is_submitted(
    tmp_path: Path, launcher: str, key: str, says: str
) -> None:
    # sbatch here leaves a mark when called: a refusal inside the SLURM job would come after it
    called = tmp_path / "sbatch-called"
    env = _sbatch(tmp_path, f"touch {called}")
    proc = subprocess.run(
        [sys.executable, str(TRAIN), "-m", f"hydra/launcher={launcher}", key, "batch_size=2,4",
         "data=xor", "model.sizes=[2,2,1],[2,3,3,1]", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        capture_output=True, text=True, timeout=240, cwd=ROOT, env=env,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    assert says in out
    assert not called.exists()
    assert not [p for p in (tmp_path / "sweep").glob("*") if p.name.isdigit()]  # no job directory
