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


@pytest.mark.parametrize("launcher", ["slurm", "slurm_vmap"])
def test_an_unknown_partition_is_one_line_and_status_2(tmp_path: Path, launcher: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\necho '{REFUSAL}' >&2\nexit 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, str(TRAIN), "-m", f"hydra/launcher={launcher}", "hydra.launcher.partition=nosuch",
         "data=xor", "model.sizes=[2,2,1]", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        capture_output=True, text=True, timeout=240, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("SLURM refused")]
    assert f"({REFUSAL})" in line and "hydra.launcher.partition" in line
