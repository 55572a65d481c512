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


@pytest.mark.parametrize("launcher", ["vmap", "slurm_vmap"])
def test_max_padding_below_1_is_refused_before_anything_is_submitted(tmp_path: Path, launcher: str) -> None:
    # sbatch here leaves a mark when called: a refusal inside the SLURM job would come after it
    called = tmp_path / "sbatch-called"
    env = _sbatch(tmp_path, f"touch {called}")
    proc = subprocess.run(
        [sys.executable, str(TRAIN), "-m", f"hydra/launcher={launcher}", "hydra.launcher.max_padding=0.5",
         "data=xor", "model.sizes=[2,2,1],[2,3,3,1]", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        capture_output=True, text=True, timeout=240, cwd=ROOT, env=env,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    assert "hydra.launcher.max_padding=0.5: expected a number >= 1" in out
    assert not called.exists()
    assert not [p for p in (tmp_path / "sweep").glob("*") if p.name.isdigit()]  # no job directory


def test_a_silent_refusal_and_no_slurm_are_one_line(tmp_path: Path, capfd, monkeypatch) -> None:
    """submitit's own sbatch call, on a stand-in that fails and says nothing; then a PATH without
    SLURM's commands (submitit's error there is a traceback), refused before anything is submitted."""
    from submitit.core.utils import CommandFunction

    from hydra_plugins.backprop_lab_vmap_launcher.slurm_vmap_launcher import _require_slurm, _submitted

    monkeypatch.setenv("PATH", _sbatch(tmp_path, ":")["PATH"])
    with pytest.raises(SystemExit) as refused:
        _submitted(lambda: CommandFunction(["sbatch", "job.sh"], verbose=False)())
    assert refused.value.code == 2
    (line,) = capfd.readouterr().err.splitlines()
    assert line.startswith("SLURM refused the sweep's jobs (sbatch failed and said nothing)"), line
    _require_slurm("slurm")  # both commands there: nothing to say
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SystemExit) as refused:
        _require_slurm("slurm_vmap")
    (line,) = capfd.readouterr().err.splitlines()
    assert refused.value.code == 2 and "hydra/launcher=slurm_vmap: SLURM's sbatch and srun not found" in line
