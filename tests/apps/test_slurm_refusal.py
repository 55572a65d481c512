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
    """An environment whose sbatch is a stand-in running ``script`` (sh) and exiting 1 (and whose
    srun, which submitit looks for, one that does nothing)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command, text in (("sbatch", f"{script}\nexit 1"), ("srun", "exit 0")):
        (bin_dir / command).write_text(f"#!/bin/sh\n{text}\n")
        (bin_dir / command).chmod(0o755)
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
    (line,) = proc.stderr.splitlines()  # sbatch's own lines only inside the launcher's
    assert line.startswith("SLURM refused") and f"({REFUSAL})" in line and "hydra.launcher.partition" in line


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


_CALLS = """
import sys
from submitit.core.utils import CommandFunction
from hydra_plugins.backprop_lab_vmap_launcher.slurm_vmap_launcher import _require_slurm, _submitted
if sys.argv[1] == "submit":
    _submitted(lambda: CommandFunction(["sbatch", "job.sh"], verbose=False)())
else:
    _require_slurm("slurm_vmap")
"""


@pytest.mark.parametrize(
    ("call", "path", "says"),
    [
        ("submit", "stand-in", "SLURM refused the sweep's jobs (sbatch failed and said nothing)"),
        ("require", "empty", "hydra/launcher=slurm_vmap: SLURM's sbatch and srun not found on PATH"),
        ("require", "stand-in", None),
    ],
)
def test_a_silent_refusal_and_no_slurm_are_one_line(tmp_path: Path, call: str, path: str, says) -> None:
    """submitit's own sbatch call, on a stand-in that fails and says nothing; a PATH without SLURM's
    commands (submitit's error there is a traceback), refused before anything is submitted."""
    env = _sbatch(tmp_path, ":") if path == "stand-in" else {**os.environ, "PATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", _CALLS, call], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )
    assert proc.returncode == (0 if says is None else 2), proc.stderr
    assert proc.stderr.splitlines() == ([] if says is None else [proc.stderr.strip()])
    assert says is None or proc.stderr.startswith(says), proc.stderr
