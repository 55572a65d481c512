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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from helpers.train_app import app, cfg_of

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "experiments" / "train.py"

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


# 1 CPU and 1 GB per SLURM job.
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


def _wait_for(check, timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _rows(path: Path) -> int:
    """The rows a run has written to its metrics.jsonl so far."""
    return len(path.read_text().splitlines()) if path.exists() else 0


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


def _cancel(sweep: Path) -> None:
    """scancel the jobs a sweep submitted (left running by a failed test); harmless once they ended."""
    ids = {p.name.split("_")[0] for p in (sweep / ".submitit").glob("*") if p.is_dir()}
    if ids:
        subprocess.run(["scancel", *sorted(ids)], capture_output=True)


# Long enough to requeue mid-way: 150 epochs (of 168 steps at batch_size=8), a metrics row (and
# checkpoint) per epoch. A run is requeued once it has written three rows: the 148 epochs left
# take longer than finding the job and requeueing it on a quiet machine too (30 epochs of this
# network take about a second there). Each sweep adds its networks and batch sizes.
LONG_EPOCHS = 150
DIGITS = [
    "data=digits",
    f"epochs={LONG_EPOCHS}",
    "log_every=1",
    "optimizer.lr=0.001",
]

# How SLURM requeues: `scontrol requeue` (preemption by a requeueing partition, an
# operator) or USR2, the signal submitit's jobs get ahead of their time limit (and on
# preemption on clusters set up for it), on which submitit requeues the job itself.
REQUEUE = {"scontrol": ["scontrol", "requeue"], "usr2": ["scancel", "--signal=USR2"]}


def _in_queue(job_id: str) -> bool:
    """Whether SLURM still holds job (or array) job_id: pending, running or completing."""
    ids = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
    return any(i == job_id or i.startswith(f"{job_id}_") for i in ids)


class _Sweep:
    """``train.py -m hydra/launcher=<launcher> <overrides>`` started into ``out``. ``requeued``: how ->
    (array task, its jobs) of each task :meth:`requeue` requeued; ``reference``: a job's number ->
    the directory of the same job never requeued."""

    def __init__(self, out: Path, launcher: str, *overrides: str) -> None:
        self.out, self.since = out, time.strftime("%Y-%m-%dT%H:%M:%S")
        self.requeued: dict[str, tuple[int, list[int]]] = {}
        self.records: list[dict[str, str]] = []  # the controller's, once SLURM is done with the jobs
        self.reference: Callable[[int], Path] = lambda num: out / str(num)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(TRAIN),
                "-m",
                f"hydra/launcher={launcher}",
                *overrides,
                f"hydra.sweep.dir={out}",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def folder(self, name: str = "") -> Path:
        """submitit's folder (``name``: that of a job, <id>, or of an array task, <array id>_<task>)."""
        return self.out / ".submitit" / name

    def job_id(self) -> str:
        """The SLURM id of the sweep's one job or job array."""
        (job_id,) = {
            p.name.split("_")[0] for p in self.folder().iterdir() if re.fullmatch(r"\d+(_\d+)?", p.name)
        }
        return job_id

    def requeue(self, requeues: dict[str, tuple[int, list[int]]]) -> None:
        """For each ``how`` (REQUEUE): requeue array task ``task``, whose runs are the jobs ``jobs``,
        that way as soon as its first run has written three metrics rows (two epochs trained
        and checkpointed)."""
        pending = dict(requeues)

        def requeue_ready() -> bool:
            for how, (task, jobs) in list(pending.items()):
                if _rows(self.out / str(jobs[0]) / "metrics.jsonl") >= 3:
                    _run(*REQUEUE[how], f"{self.job_id()}_{task}")
                    self.requeued[how] = pending.pop(how)
            return not pending

        _wait_for(requeue_ready, 120, f"three epochs of the runs to requeue ({requeues})", poll=0.05)

    def output(self) -> str:
        """The launcher's output, once it has ended with status 0."""
        out = self.proc.communicate(timeout=300)[0]
        assert self.proc.returncode == 0, out[-3000:]
        return out

    def wait(self) -> list[dict[str, str]]:
        """Once the launcher has ended (status 0) and SLURM has let go of the sweep's jobs (a
        moment later: they still had to exit; the node is free again): the controller's records."""
        self.output()
        job_id = self.job_id()
        _wait_for(lambda: not _in_queue(job_id), 60, f"job {job_id} to leave the queue")
        return _jobcomp_records(job_id, self.since)

    def stop(self) -> None:
        """The launcher killed and the jobs cancelled (after a failure; harmless once they ended)."""
        self.proc.kill()
        self.proc.communicate()
        _cancel(self.out)


@pytest.fixture(scope="module")
def slurm_sweep(slurm_cluster, tmp_path_factory):
    """A ``hydra/launcher=slurm`` sweep of DIGITS: two jobs alike but for max_memory_gb (a limit
    neither comes near; one of the keys the project counts as not changing a run's result),
    side by side as the two tasks of one job array. Job 0 is requeued with `scontrol requeue`
    mid-run, job 1 runs straight through: each is the other's reference. Returned once SLURM
    has ended both; ``records`` are the controller's lines of the array."""
    sweep = _Sweep(
        tmp_path_factory.mktemp("slurm") / "sweep",
        "slurm",
        *DIGITS,
        "model.sizes=[64,32,10]",
        "batch_size=8",
        "max_memory_gb=8,9",
        *SMALL_JOB,
    )
    try:
        sweep.requeue({"scontrol": (0, [0])})
        sweep.records = sweep.wait()
        sweep.reference = lambda num: sweep.out / str(num + 1)
    finally:
        sweep.stop()
    return sweep


# the slurm_vmap sweep's lanes: two architectures, the deeper one padded to the other's program
ARCHITECTURES = "model.sizes=[64,32,10],[64,16,16,10]"
# two groups (batch sizes), each of two architectures and two activations, one of which the
# config refuses (config errors): eight jobs, two SLURM jobs. Hydra numbers the jobs in the
# order of the keys here, the last varying fastest: group g is jobs 4g to 4g + 3, the odd ones
# refused.
VMAP_SWEEP = ["batch_size=8,16", ARCHITECTURES, "model.activation=tanh,bogus"]


@pytest.fixture(scope="module")
def slurm_vmap_sweep(slurm_cluster, tmp_path_factory):
    """A ``hydra/launcher=slurm_vmap`` sweep of DIGITS x VMAP_SWEEP (one SLURM job per group, the
    groups one job array) and, beside it, the same sweep by ``hydra/launcher=vmap`` here
    (never requeued: each job's ``reference``). Group 0 (jobs 0-3) is requeued mid-run with
    `scontrol requeue`, group 1 (jobs 4-7) with USR2. Returned once SLURM has ended both."""
    tmp = tmp_path_factory.mktemp("slurm_vmap")
    sweep = _Sweep(tmp / "slurm", "slurm_vmap", *DIGITS, *VMAP_SWEEP, *SMALL_JOB)
    local = None
    try:
        sweep.requeue({"scontrol": (0, [0, 2]), "usr2": (1, [4, 6])})  # the groups' runs (not refused)
        # started now, it takes the cores while the requeued jobs wait to run again
        local = _Sweep(tmp / "vmap", "vmap", *DIGITS, *VMAP_SWEEP)
        sweep.records = sweep.wait()
        local.output()
    finally:
        sweep.stop()
        if local is not None:
            local.proc.kill()
    sweep.reference = lambda num: local.out / str(num)
    return sweep


def test_hydra_sweep_runs_each_job_under_slurm(slurm_cluster, slurm_sweep):
    sweep = slurm_sweep.out
    for num, limit in enumerate([8, 9]):
        summary = json.loads((sweep / str(num) / "summary.json").read_text())
        assert summary["status"] == "completed"
        assert summary["steps"] == LONG_EPOCHS * 168
        assert f"max_memory_gb={limit}" in (sweep / str(num) / ".hydra" / "overrides.yaml").read_text()

    # submitit keeps one folder per array task: <array job id>_<task id>.
    array_id = slurm_sweep.job_id()
    folders = sorted(p.name for p in slurm_sweep.folder().iterdir() if re.fullmatch(r"\d+_\d+", p.name))
    assert folders == [f"{array_id}_0", f"{array_id}_1"]
    # Requeueable (slurm.yaml's additional_parameters), with submitit's USR2 ahead of the limit.
    script = (slurm_sweep.folder() / array_id / f"{array_id}_submission.sh").read_text()
    assert "#SBATCH --requeue\n" in script and "#SBATCH --signal=USR2@120\n" in script, script
    for folder in folders:
        log = (slurm_sweep.folder() / folder / f"{folder}_0_log.out").read_text()
        # submitit's job side read SLURM_ARRAY_JOB_ID/SLURM_ARRAY_TASK_ID from its environment.
        assert f"JobEnvironment(job_id={folder}," in log, log

    # The controller recorded both array tasks as completed on this node, task 0 after a first
    # run that the requeue ended (a record of its own).
    records = slurm_sweep.records
    assert sorted(r["ArrayTaskId"] for r in records) == ["0", "0", "1"], records
    for r in records:
        assert r["NodeList"] == slurm_cluster and r["Tres"].startswith("cpu=1,mem=1G"), r
    assert [r["JobState"] for r in records if r["ArrayTaskId"] == "1"] == ["COMPLETED"], records
    assert [r["JobState"] for r in records if r["ArrayTaskId"] == "0"][-1] == "COMPLETED", records


def test_slurm_vmap_submits_each_group_as_one_job_with_the_vmap_files(slurm_vmap_sweep):
    # One job array, one task per group (two allocations for eight jobs), each requeueable.
    array_id = slurm_vmap_sweep.job_id()
    submitit = slurm_vmap_sweep.folder()
    folders = sorted(p.name for p in submitit.iterdir() if re.fullmatch(r"\d+_\d+", p.name))
    assert folders == [f"{array_id}_0", f"{array_id}_1"]
    assert "#SBATCH --requeue\n" in (submitit / array_id / f"{array_id}_submission.sh").read_text()

    # Each job's files are those hydra/launcher=vmap wrote here, bit for bit (the groups were
    # requeued mid-run, one by scontrol, one by USR2: a SLURM job's files whichever way it ran).
    for num in range(8):
        vmap, slurm = slurm_vmap_sweep.reference(num), slurm_vmap_sweep.out / str(num)
        assert _files(slurm) == _files(vmap), num
        summary = json.loads((slurm / "summary.json").read_text())
        if num % 2:  # model.activation=bogus
            assert summary["status"] == "config_error" and "bogus" in summary["error"], summary
            continue
        assert summary["status"] == "completed" and summary["launcher"] == "vmap"
        assert summary["lanes"] == 2, summary  # both architectures
        assert _lines(slurm / "metrics.jsonl") == _lines(vmap / "metrics.jsonl")
        assert (slurm / "losses.csv").read_text() == (vmap / "losses.csv").read_text()
        assert _payload(slurm / "checkpoint.eqx") == _payload(vmap / "checkpoint.eqx")


@pytest.mark.parametrize(
    ("sweep", "how"),
    [("slurm_sweep", "scontrol"), ("slurm_vmap_sweep", "scontrol"), ("slurm_vmap_sweep", "usr2")],
)
def test_a_requeued_job_resumes_and_ends_as_if_never_requeued(request, sweep, how):
    # The requeued job against the same job never requeued: hydra/launcher=slurm's job 1 (alike
    # but for max_memory_gb), hydra/launcher=slurm_vmap's group run here by hydra/launcher=vmap.
    sweep = request.getfixturevalue(sweep)
    task, jobs = sweep.requeued[how]
    folder = f"{sweep.job_id()}_{task}"
    log = (sweep.folder(folder) / f"{folder}_0_log.out").read_text()
    assert "SIGTERM received: stopping after the current chunk" in log, log[-3000:]
    assert "resuming" in log, log[-3000:]
    if how == "usr2":  # submitit checkpointed and requeued; the run still stopped after its chunk
        assert f"Requeued job {folder}" in log and "job requeued: the run stops after" in log, log[-3000:]
    for b, a in [(sweep.out / str(num), sweep.reference(num)) for num in jobs]:
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
    sweep = _Sweep(tmp_path / "two", "slurm", *MOONS, *SMALL_JOB, "hydra.launcher.tasks_per_node=2")
    try:
        # Meanwhile, the same run in one process (this one).
        app.train(cfg_of(*MOONS), out_dir=tmp_path / "one")
        sweep.wait()
    finally:
        sweep.stop()

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
        # Requeued jobs wait AuthInfo=cred_expire (5 s here) before they are eligible again.
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
