"""Against a real SLURM cluster (scripts/slurm-local): a Hydra sweep through
``hydra/launcher=slurm``, a requeued job running again, two tasks in one step."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "experiments" / "train.py"

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _run(*cmd: str, timeout: float = 60, **kw) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _jobcomp_records(job_id: str, since: str) -> list[dict[str, str]]:
    """The controller's line per finished job (JobCompType=jobcomp/filetxt) of job (or array)
    job_id submitted at or after since (job ids start again at 1 on a fresh state dir)."""
    config = _run("scontrol", "show", "config")
    loc = Path(re.search(r"^JobCompLoc\s*=\s*(\S+)", config, re.M).group(1))
    records = []
    for line in loc.read_text().splitlines() if loc.exists() else []:
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("ArrayJobId", fields.get("JobId")) == job_id and fields["SubmitTime"] >= since:
            records.append(fields)
    return records


def _wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_hydra_sweep_runs_each_job_under_slurm(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, str(TRAIN), "-m", "hydra/launcher=slurm",
           "data=xor", "model.sizes=[2,4,1]", "model.output_activation=sigmoid",
           "loss=binary_cross_entropy", "batch_size=null", "epochs=20", "log_every=10",
           "jax_cache_dir=null", "optimizer=sgd", "optimizer.lr=0.1,1.0",
           f"hydra.sweep.dir={sweep}", "hydra.launcher.timeout_min=5",
           "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    # submitit submits one job array and waits for both results.
    _run(*cmd, timeout=300, cwd=ROOT)

    for num, lr in enumerate([0.1, 1.0]):
        summary = json.loads((sweep / str(num) / "summary.json").read_text())
        assert summary["status"] == "completed"
        assert summary["steps"] == 20
        assert f"optimizer.lr={lr}" in (sweep / str(num) / ".hydra" / "overrides.yaml").read_text()

    # submitit keeps one folder per array task: <array job id>_<task id>.
    folders = sorted(p.name for p in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name))
    assert len(folders) == 2, folders
    array_id = folders[0].split("_")[0]
    assert folders == [f"{array_id}_0", f"{array_id}_1"]
    for folder in folders:
        log = (sweep / ".submitit" / folder / f"{folder}_0_log.out").read_text()
        # submitit's job side read SLURM_ARRAY_JOB_ID/SLURM_ARRAY_TASK_ID from its environment.
        assert f"JobEnvironment(job_id={folder}," in log, log

    # And the controller itself recorded both array tasks as completed on this node
    # (a moment after submitit saw their results: the jobs still had to exit).
    records = _wait_for(lambda: len(r := _jobcomp_records(array_id, since)) >= 2 and r, 30,
                        f"the controller to record array job {array_id}")
    assert sorted(r["ArrayTaskId"] for r in records) == ["0", "1"], records
    for r in records:
        assert r["JobState"] == "COMPLETED" and r["NodeList"] == slurm_cluster, r
        assert r["Tres"].startswith("cpu=1,mem=1G"), r


REQUEUE_JOB = """#!/bin/bash
echo "run ${SLURM_RESTART_COUNT:-0} of job $SLURM_JOB_ID" >> runs.txt
if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then
  touch started
  sleep 120
fi
echo finished >> runs.txt
"""


def test_scontrol_requeue_runs_a_requeueable_job_again(slurm_cluster, tmp_path):
    (tmp_path / "job.sh").write_text(REQUEUE_JOB)
    job = _run("sbatch", "--parsable", "--requeue", "--time=3", "--mem=100M",
               f"--chdir={tmp_path}", f"--output={tmp_path}/slurm.out", "--open-mode=append",
               str(tmp_path / "job.sh")).strip().split(";")[0]
    try:
        _wait_for((tmp_path / "started").exists, 60, f"job {job} to start")
        _run("scontrol", "requeue", job)
        # Requeued jobs wait AuthInfo=cred_expire (10 s here) before they are eligible again.
        _wait_for(lambda: "finished" in (tmp_path / "runs.txt").read_text(), 90,
                  f"requeued job {job} to run again")
    finally:
        subprocess.run(["scancel", job], capture_output=True)
    # The first run was killed in its sleep; the second ran with SLURM_RESTART_COUNT=1.
    assert (tmp_path / "runs.txt").read_text().splitlines() == [
        f"run 0 of job {job}", f"run 1 of job {job}", "finished"]

    def completed():
        show = _run("scontrol", "show", "job", job)
        return show if "JobState=COMPLETED" in show else None

    show = _wait_for(completed, 30, f"job {job} to complete")
    assert re.search(r"\bRestarts=1\b", show), show


def test_srun_starts_two_tasks_on_one_node(slurm_cluster):
    out = _run("srun", "--nodes=1", "--ntasks=2", "--time=1", "--mem-per-cpu=100M",
               "bash", "-c", 'echo "$SLURM_PROCID $SLURM_NTASKS $SLURMD_NODENAME"')
    assert sorted(out.splitlines()) == [f"0 2 {slurm_cluster}", f"1 2 {slurm_cluster}"]
