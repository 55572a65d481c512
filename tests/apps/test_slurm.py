"""Against a real SLURM cluster (scripts/slurm-local): a Hydra sweep through
``hydra/launcher=slurm``; ``hydra/launcher=slurm_vmap`` submitting one job per
vmap group with the files ``hydra/launcher=vmap`` writes; a run requeued mid-way
resuming to the uninterrupted result; one run over two SLURM tasks through
jax.distributed; and SLURM itself (requeue, two tasks in one step)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "experiments" / "train.py"

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


# A two-job xor sweep, quick to train (1 CPU and 1 GB per SLURM job).
XOR = [
    "data=xor",
    "model.sizes=[2,4,1]",
    "model.output_activation=sigmoid",
    "loss=binary_cross_entropy",
    "batch_size=null",
    "epochs=20",
    "log_every=10",
    "optimizer=sgd",
]
SMALL_JOB = ["hydra.launcher.timeout_min=5", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]


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
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_hydra_sweep_runs_each_job_under_slurm(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        str(TRAIN),
        "-m",
        "hydra/launcher=slurm",
        *XOR,
        "optimizer.lr=0.1,1.0",
        f"hydra.sweep.dir={sweep}",
        *SMALL_JOB,
    ]
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
    # Requeueable (slurm.yaml's additional_parameters), with submitit's USR2 ahead of the limit.
    script = (sweep / ".submitit" / array_id / f"{array_id}_submission.sh").read_text()
    assert "#SBATCH --requeue\n" in script and "#SBATCH --signal=USR2@120\n" in script, script
    for folder in folders:
        log = (sweep / ".submitit" / folder / f"{folder}_0_log.out").read_text()
        # submitit's job side read SLURM_ARRAY_JOB_ID/SLURM_ARRAY_TASK_ID from its environment.
        assert f"JobEnvironment(job_id={folder}," in log, log

    # And the controller itself recorded both array tasks as completed on this node
    # (a moment after submitit saw their results: the jobs still had to exit).
    records = _wait_for(
        lambda: len(r := _jobcomp_records(array_id, since)) >= 2 and r,
        30,
        f"the controller to record array job {array_id}",
    )
    assert sorted(r["ArrayTaskId"] for r in records) == ["0", "1"], records
    for r in records:
        assert r["JobState"] == "COMPLETED" and r["NodeList"] == slurm_cluster, r
        assert r["Tres"].startswith("cpu=1,mem=1G"), r


def _lines(path: Path) -> list[dict]:
    """metrics.jsonl rows without their wall time (the one field two equal runs differ in)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row.pop("wall_time")
    return rows


def _payload(path: Path) -> bytes:
    """A checkpoint's arrays: the bytes after its first (header) line."""
    return path.read_bytes().split(b"\n", 1)[1]


def _files(job: Path) -> list[str]:
    return sorted(str(p.relative_to(job)) for p in job.rglob("*"))


def test_slurm_vmap_submits_each_group_as_one_job_with_the_vmap_files(slurm_cluster, tmp_path):
    # Two groups (batch sizes), each of two architectures (a deeper one padded to it) x 2
    # learning rates, half with an activation the config refuses (config errors): one SLURM
    # job per group. Beside it, the same sweep by hydra/launcher=vmap here.
    sweep = [
        "batch_size=null,2",
        "model.sizes=[2,4,1],[2,3,3,1]",
        "optimizer.lr=0.1,1.0",
        "model.activation=tanh,bogus",
    ]
    local = subprocess.Popen(
        [
            sys.executable,
            str(TRAIN),
            "-m",
            "hydra/launcher=vmap",
            *XOR,
            *sweep,
            f"hydra.sweep.dir={tmp_path / 'vmap'}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _run(
        sys.executable,
        str(TRAIN),
        "-m",
        "hydra/launcher=slurm_vmap",
        *XOR,
        *sweep,
        f"hydra.sweep.dir={tmp_path / 'slurm'}",
        *SMALL_JOB,
        timeout=300,
        cwd=ROOT,
    )
    out, _ = local.communicate(timeout=300)
    assert local.returncode == 0, out[-3000:]

    # One job array, one task per group (two allocations for sixteen jobs), each requeueable.
    submitit = tmp_path / "slurm" / ".submitit"
    folders = sorted(p.name for p in submitit.iterdir() if re.fullmatch(r"\d+_\d+", p.name))
    array_id = folders[0].split("_")[0]
    assert folders == [f"{array_id}_0", f"{array_id}_1"]
    assert "#SBATCH --requeue\n" in (submitit / array_id / f"{array_id}_submission.sh").read_text()

    for num in range(16):
        vmap, slurm = tmp_path / "vmap" / str(num), tmp_path / "slurm" / str(num)
        assert _files(slurm) == _files(vmap), num
        summary = json.loads((slurm / "summary.json").read_text())
        if num % 2:  # model.activation=bogus
            assert summary["status"] == "config_error" and "bogus" in summary["error"], summary
            continue
        assert summary["status"] == "completed" and summary["launcher"] == "vmap"
        assert summary["lanes"] == 4, summary  # both architectures, both learning rates
        assert _lines(slurm / "metrics.jsonl") == _lines(vmap / "metrics.jsonl")
        assert _payload(slurm / "checkpoint.eqx") == _payload(vmap / "checkpoint.eqx")


# Long enough to requeue mid-way: 30 epochs of 168 steps, a metrics row per epoch.
DIGITS = [
    "data=digits",
    "model.sizes=[64,32,10]",
    "epochs=30",
    "batch_size=8",
    "log_every=1",
    "optimizer.lr=0.001",
]


def _cancel(sweep: Path) -> None:
    """scancel the jobs a sweep submitted (left running by a failed test); harmless once they ended."""
    ids = {p.name.split("_")[0] for p in (sweep / ".submitit").glob("*") if p.is_dir()}
    if ids:
        subprocess.run(["scancel", *sorted(ids)], capture_output=True)


# How SLURM requeues: `scontrol requeue` (preemption by a requeueing partition, an
# operator) or USR2, the signal submitit's jobs get ahead of their time limit (and on
# preemption on clusters set up for it), on which submitit requeues the job itself.
REQUEUE = {"scontrol": ["scontrol", "requeue"], "usr2": ["scancel", "--signal=USR2"]}
# Long enough that the requeue lands mid-training on a quiet machine too (30 epochs of this
# network take about a second there, less than finding the job and requeueing it).
LONG_EPOCHS = 150
LONG_DIGITS = [f"epochs={LONG_EPOCHS}" if o.startswith("epochs=") else o for o in DIGITS]


class _LongSweep:
    """The sweep of DIGITS for LONG_EPOCHS over ``lanes`` (an override), started in ``out`` under ``launcher``
    (``cache``: the compilation cache of every such sweep: the machine's 2 cores are shared)."""

    def __init__(self, out: Path, launcher: str, lanes: str, cache: Path) -> None:
        self.out, self._output = out, None
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(TRAIN),
                "-m",
                f"hydra/launcher={launcher}",
                *LONG_DIGITS,
                lanes,
                f"hydra.sweep.dir={out}",
                f"jax_cache_dir={cache}",
                *SMALL_JOB,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def output(self) -> str:
        """The command's whole output, once it has ended."""
        if self._output is None:
            self._output = self.proc.communicate(timeout=240)[0]
        return self._output

    def stop(self) -> None:
        self.proc.kill()
        _cancel(self.out)


@pytest.fixture(scope="module")
def never_requeued(tmp_path_factory):
    """The sweep of each (launcher, lanes) run once without a requeue, for every case that
    requeues it: started by the first such case, side by side with its requeued sweep; a later
    case finds it finished. Gives ``start(launcher, lanes)`` and the sweeps' compilation cache."""
    started: dict[tuple[str, str], _LongSweep] = {}
    cache = tmp_path_factory.mktemp("long_sweeps") / "cache"

    def start(launcher: str, lanes: str) -> _LongSweep:
        if (launcher, lanes) not in started:
            out = tmp_path_factory.mktemp("never_requeued") / "plain"
            started[launcher, lanes] = _LongSweep(out, launcher, lanes, cache)
        return started[launcher, lanes]

    yield start, cache
    for sweep in started.values():
        sweep.stop()


# the slurm_vmap sweep: two architectures as the lanes of one padded program
ARCHITECTURES = "model.sizes=[64,32,10],[64,16,16,10]"


@pytest.mark.parametrize(
    ("launcher", "lanes", "jobs", "how"),
    [
        ("slurm", "seed=0", 1, "scontrol"),
        ("slurm_vmap", ARCHITECTURES, 2, "scontrol"),
        ("slurm_vmap", ARCHITECTURES, 2, "usr2"),
    ],
)
def test_a_requeued_job_resumes_and_ends_as_if_never_requeued(
    slurm_cluster, never_requeued, tmp_path, launcher, lanes, jobs, how
):
    # Side by side, one core each: the same sweep twice, one of them requeued mid-run. The one
    # never requeued is shared by the cases of one launcher and lanes (scontrol and usr2).
    start, cache = never_requeued
    plain = start(launcher, lanes)
    requeued = _LongSweep(tmp_path / "requeued", launcher, lanes, cache)
    try:
        metrics = tmp_path / "requeued" / "0" / "metrics.jsonl"
        _wait_for(
            lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 3,
            90,
            "three epochs of the run to be requeued",
        )
        # submitit's folder of the job: its SLURM id (one job) or array id _ task id.
        (folder,) = [
            p.name
            for p in (tmp_path / "requeued" / ".submitit").iterdir()
            if (p / f"{p.name}_0_log.out").exists()
        ]
        _run(*REQUEUE[how], folder)
        outs = [sweep.output() for sweep in (plain, requeued)]
    finally:
        requeued.stop()
    for sweep, out in zip((plain, requeued), outs):
        assert sweep.proc.returncode == 0, out[-3000:]

    log = (tmp_path / "requeued" / ".submitit" / folder / f"{folder}_0_log.out").read_text()
    assert "SIGTERM received: stopping after the current chunk" in log, log[-3000:]
    assert "resuming" in log, log[-3000:]
    if how == "usr2":  # submitit checkpointed and requeued; the run still stopped after its chunk
        assert f"Requeued job {folder}" in log and "job requeued: the run stops after" in log, log[-3000:]
    for num in range(jobs):
        a, b = plain.out / str(num), tmp_path / "requeued" / str(num)
        assert json.loads((b / "summary.json").read_text())["status"] == "completed"
        rows = _lines(b / "metrics.jsonl")
        assert [r["epoch"] for r in rows] == list(range(LONG_EPOCHS + 1))
        assert rows == _lines(a / "metrics.jsonl")
        assert (b / "losses.csv").read_text() == (a / "losses.csv").read_text()
        assert _payload(b / "checkpoint.eqx") == _payload(a / "checkpoint.eqx")


MOONS = [
    "data=moons",
    "model.sizes=[2,8,2]",
    "epochs=3",
    "batch_size=40",
    "log_every=1",
    "optimizer=sgd",
    "optimizer.lr=0.1",
    "jax_cache_dir=null",
]


def test_two_tasks_per_node_run_one_distributed_run_that_writes_once(slurm_cluster, tmp_path):
    ref = subprocess.Popen(
        [sys.executable, str(TRAIN), *MOONS, f"hydra.run.dir={tmp_path / 'one'}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _run(
        sys.executable,
        str(TRAIN),
        "-m",
        "hydra/launcher=slurm",
        *MOONS,
        f"hydra.sweep.dir={tmp_path / 'two'}",
        *SMALL_JOB,
        "hydra.launcher.tasks_per_node=2",
        timeout=300,
        cwd=ROOT,
    )
    out, _ = ref.communicate(timeout=300)
    assert ref.returncode == 0, out[-3000:]

    one, two = tmp_path / "one", tmp_path / "two" / "0"
    summary = json.loads((two / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["processes"] == 2 and summary["devices"] == 2, summary
    assert json.loads((one / "summary.json").read_text())["processes"] == 1
    # The job's log is process 0's alone (the other task's lines are in its submitit log).
    assert (two / "train.log").read_text().count("completed 54 steps") == 1
    rows, ref_rows = _lines(two / "metrics.jsonl"), _lines(one / "metrics.jsonl")
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]
    assert len({r["step"] for r in rows}) == len(rows)
    np.testing.assert_allclose(
        [r["train_loss"] for r in rows], [r["train_loss"] for r in ref_rows], rtol=1e-6
    )
    losses = [line.split(",") for line in (two / "losses.csv").read_text().splitlines()[1:]]
    ref_losses = [line.split(",") for line in (one / "losses.csv").read_text().splitlines()[1:]]
    assert [s for s, _ in losses] == [s for s, _ in ref_losses]
    np.testing.assert_allclose([float(v) for _, v in losses], [float(v) for _, v in ref_losses], rtol=1e-6)


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
    job = (
        _run(
            "sbatch",
            "--parsable",
            "--requeue",
            "--time=3",
            "--mem=100M",
            f"--chdir={tmp_path}",
            f"--output={tmp_path}/slurm.out",
            "--open-mode=append",
            str(tmp_path / "job.sh"),
        )
        .strip()
        .split(";")[0]
    )
    try:
        _wait_for((tmp_path / "started").exists, 60, f"job {job} to start")
        _run("scontrol", "requeue", job)
        # Requeued jobs wait AuthInfo=cred_expire (10 s here) before they are eligible again.
        _wait_for(
            lambda: "finished" in (tmp_path / "runs.txt").read_text(), 90, f"requeued job {job} to run again"
        )
    finally:
        subprocess.run(["scancel", job], capture_output=True)
    # The first run was killed in its sleep; the second ran with SLURM_RESTART_COUNT=1.
    assert (tmp_path / "runs.txt").read_text().splitlines() == [
        f"run 0 of job {job}",
        f"run 1 of job {job}",
        "finished",
    ]

    def completed():
        show = _run("scontrol", "show", "job", job)
        return show if "JobState=COMPLETED" in show else None

    show = _wait_for(completed, 30, f"job {job} to complete")
    assert re.search(r"\bRestarts=1\b", show), show


def test_srun_starts_two_tasks_on_one_node(slurm_cluster):
    out = _run(
        "srun",
        "--nodes=1",
        "--ntasks=2",
        "--time=1",
        "--mem-per-cpu=100M",
        "bash",
        "-c",
        'echo "$SLURM_PROCID $SLURM_NTASKS $SLURMD_NODENAME"',
    )
    assert sorted(out.splitlines()) == [f"0 2 {slurm_cluster}", f"1 2 {slurm_cluster}"]
