"""Signals at any moment, kills, and resuming after them: the run contract's promise that an
interrupted run says so, exits 128 + n without a traceback, and resumes to the result of a
run that was never stopped.

The expectations are independent of the code under test: an uninterrupted run or sweep (its
files byte for byte), the signal's number, and the summary a stopped run must leave.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from backprop_lab.files._rundir import RunDir, RunDirError
from backprop_lab.runs._config import check_distributed
from backprop_lab.runs._engine import RunSpec, run_experiments
from backprop_lab.runs._experiment import ConfigError, build_experiment
from backprop_lab.runs._signals import Interrupted, Signals
from helpers.train_app import ROOT, SLOW, TRAIN, app, cfg_of

LANES = ("data=moons", "data.n_samples=200", "model.sizes=[2,8,2]", "batch_size=50", "log_every=1")
RATES = (0.01, 0.3, 0.1)


# lanes of one program: three learning rates; or architectures, lane 0 (deepest, widest)
# setting the padded shape
RATE_LANES = tuple((f"optimizer.lr={lr}",) for lr in RATES)
ARCHITECTURES = (
    ("model.sizes=[2,16,16,2]", "model.activation=relu", "optimizer.lr=0.1"),
    ("model.sizes=[2,8,2]", "model.activation=tanh", "optimizer.lr=0.3"),
    ("model.sizes=[2,8,2]", "model.activation=tanh", "optimizer.lr=0.01"),
)


def _sweep(root: Path, epochs: int, resume: bool = False, lanes=RATE_LANES) -> None:
    """The ``lanes`` (overrides each) as one vmapped program, as hydra/launcher=vmap runs them."""
    specs = [
        RunSpec(build_experiment(cfg_of(*LANES, *lane, f"epochs={epochs}")), root / str(i))
        for i, lane in enumerate(lanes)
    ]
    run_experiments(specs, resume=resume, refuse="skip")


#: epochs of the rates sweep that the tests stop and resume
RATE_EPOCHS = 8


@pytest.fixture(scope="module")
def straight_rates(tmp_path_factory) -> Path:
    """The rates sweep of RATE_EPOCHS, never stopped: what the tests' stopped sweeps end as.
    Its tests name ``xdist_group("straight_rates")``, so one worker runs it once."""
    root = tmp_path_factory.mktemp("straight_rates")
    _sweep(root, RATE_EPOCHS)
    return root


def _rows(path: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k != "wall_time"}
        for line in path.read_text().splitlines()
    ]


def _state(run: Path) -> bytes:
    """The checkpoint's arrays and optimizer state (the header line apart: it holds paths)."""
    return (run / "checkpoint.eqx").read_bytes().partition(b"\n")[2]


@pytest.mark.parametrize(
    ("lanes", "behind", "epochs"),
    # rates: lane 1 five epochs behind; architectures: lane 1 resumes apart from the lanes that
    # set its program's padded shape, and is laid out as the whole program was (with a shape of
    # its own its numbers would differ in float32)
    [
        pytest.param(RATE_LANES, 3, RATE_EPOCHS, marks=pytest.mark.xdist_group("straight_rates")),
        (ARCHITECTURES, 1, 4),
    ],
    ids=["rates", "architectures"],
)
def test_a_lane_behind_resumes_to_the_uninterrupted_sweep_bit_for_bit(
    tmp_path, request, lanes, behind, epochs
):
    killed = tmp_path / "killed"
    if lanes is RATE_LANES:  # the rates sweep, shared with the signalled sweep's test
        straight = request.getfixturevalue("straight_rates")
    else:
        straight = tmp_path / "straight"
        _sweep(straight, epochs, lanes=lanes)
    # a sweep killed (kill -9: no summaries) with lane 1 behind the others, which had
    # checkpointed their last epoch: lane 1 as the sweep leaves it ...
    _sweep(killed, behind, lanes=lanes)
    for lane in ("0", "2"):  # ... the others as they were at the end
        shutil.rmtree(killed / lane)
        shutil.copytree(straight / lane, killed / lane)
    for summary in killed.glob("*/summary.json"):
        summary.unlink()

    _sweep(killed, epochs, resume=True, lanes=lanes)
    for lane in ("0", "1", "2"):
        assert json.loads((killed / lane / "summary.json").read_text())["status"] == "completed"
        assert _rows(killed / lane / "metrics.jsonl") == _rows(straight / lane / "metrics.jsonl"), lane
        assert _state(killed / lane) == _state(straight / lane), f"lane {lane}"


def test_a_second_signal_while_the_first_is_said_stops_once_its_line_is_whole():
    said = []

    class SecondSignalMidLine(logging.Handler):  # the second signal cuts the first one's write
        def emit(self, record: logging.LogRecord) -> None:
            signal.raise_signal(signal.SIGINT)
            said.append(record.getMessage())

    logger, handler = logging.getLogger("backprop_lab.run"), SecondSignalMidLine()
    logger.addHandler(handler)
    try:
        with pytest.raises(Interrupted) as stop, Signals():
            signal.raise_signal(signal.SIGHUP)
    finally:
        logger.removeHandler(handler)
    assert stop.value.code == 128 + signal.SIGHUP
    assert said == ["SIGHUP received: stopping after the current chunk (again to stop at once)"]


# --- real processes, real signals, sent at moments the run's own files mark ----------------


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _signalled(
    args: list[str], ready: Callable[[str], bool], signals: tuple[int, ...], tmp: Path, group: bool = False
) -> subprocess.CompletedProcess:
    """The app run with ``args``; once ``ready(output so far)`` holds, ``signals`` sent one after
    the other, each once the app has said it received the one before (two signals sent at once
    may reach the process in either order), to the app alone or (``group``) to its whole
    process group, its plot workers too, as SLURM signals a job; its exit status and whole
    output (when every process writing it has ended)."""
    log = tmp / f"out{len(list(tmp.glob('out*')))}.txt"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(TRAIN), *args],
            cwd=ROOT,
            stdout=out,
            stderr=out,
            env=_with_helpers(),
            start_new_session=group,
        )
    deadline = time.monotonic() + 300
    while proc.poll() is None and not ready(log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.005)
    for before, sig in zip((None, *signals), signals):
        said = f"{signal.Signals(before).name} received" if before else ""
        while proc.poll() is None and said not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.001)
        if group and proc.poll() is None:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    proc.wait(timeout=300)
    _ended(log)
    return subprocess.CompletedProcess(args, proc.returncode, log.read_text(), "")


def _with_helpers() -> dict[str, str]:
    """The environment with tests/ on the path (for the Hydra callback in helpers/)."""
    tests = str(ROOT / "tests")
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{tests}{os.pathsep}{path}" if path else tests}


def _ended(log: Path) -> None:
    """Wait until no process (a plot worker, a joblib worker) holds ``log`` open any more."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        holders = [
            fd for pid in filter(str.isdigit, os.listdir("/proc")) for fd in _fds(pid) if fd == str(log)
        ]
        if not holders:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes still write {log}")


def _released(run: Path) -> None:
    """Wait until no process holds ``run`` (a worker that outlives its parent holds it for ever)."""
    deadline, held = time.monotonic() + 120, RunDir(run)
    while True:
        try:
            held.lock()
        except RunDirError:
            assert time.monotonic() < deadline, f"{run} is still held"
            time.sleep(0.05)
            continue
        held.unlock()
        return


def _fds(pid: str) -> list[str]:
    try:
        return [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return []


def _status(run: Path) -> str:
    return json.loads((run / "summary.json").read_text())["status"]


def _clean(result: subprocess.CompletedProcess, code: int) -> None:
    assert result.returncode == code, result.stdout[-3000:]
    assert "Traceback" not in result.stdout and "Error" not in result.stdout, result.stdout[-3000:]


@pytest.mark.slow
@pytest.mark.xdist_group("straight_slow")  # one worker runs the shared straight run (conftest.py)
def test_a_run_signalled_at_any_moment_says_so_exits_128_plus_n_and_resumes_to_the_same_run(
    tmp_path, straight_slow
):
    # start-up (its directory made, JAX starting); compiling its first chunk, SIGTERM to the
    # whole process group (as SLURM stops a job: its plot workers end too); training, twice
    moments = [
        ("startup", lambda out: (tmp_path / "startup" / ".hydra").exists(), (signal.SIGINT,)),
        ("compile", lambda out: (tmp_path / "compile" / "metrics.jsonl").exists(), (signal.SIGTERM,)),
        (
            "twice",
            lambda out: _lines(tmp_path / "twice" / "metrics.jsonl") >= 3,
            (signal.SIGHUP, signal.SIGINT),
        ),
    ]
    for name, ready, signals in moments:
        run = tmp_path / name
        result = _signalled(
            [f"hydra.run.dir={run}", *SLOW], ready, signals, tmp_path, group=name == "compile"
        )
        _clean(result, 128 + signals[0])
        if name != "startup":  # the engine runs: it says which signal stops it
            assert f"{signal.Signals(signals[0]).name} received" in result.stdout, name
        if name == "compile":  # the workers ended with it: their plots are the resume's to draw
            assert "the plot workers ended with the signal" in result.stdout, result.stdout[-2000:]
            assert not (run / "loss_curve.png").exists()
        assert _status(run) == "interrupted", name
        app.train(cfg_of(*SLOW, "resume=true"), out_dir=run)
        assert _status(run) == "completed", name
        assert (run / "loss_curve.png").exists(), name
        _same_run(run, straight_slow)


def _same_run(run: Path, straight: Path) -> None:
    """The records of ``run`` are those of ``straight``, step by step, once each. Their chunks ran
    in processes whose XLA options differ (the app's own and the test's), so the numbers agree to
    float32 rounding, not bit for bit (tests/runs/test_run_contract.py compares two apps)."""
    got, want = _rows(run / "metrics.jsonl"), _rows(straight / "metrics.jsonl")
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for key in ("train_loss", "test_loss", "test_accuracy"):
        np.testing.assert_allclose([r[key] for r in got], [r[key] for r in want], rtol=1e-4, err_msg=key)


def _cli_sweep(root: Path, launcher: str, *extra: str) -> list[str]:
    return ["-m", *extra, f"hydra/launcher={launcher}", f"hydra.sweep.dir={root}"]


@pytest.mark.slow
@pytest.mark.xdist_group("straight_rates")
def test_a_vmap_sweep_signalled_in_its_set_up_or_killed_while_plotting_resumes_without_a_traceback(
    tmp_path, straight_rates
):
    rates = "optimizer.lr=" + ",".join(map(str, RATES))
    set_up = tmp_path / "set_up"
    # SIGTERM as Hydra sets up the second job: its directory made, its task not run yet
    stop = "+hydra.callbacks.stop._target_=helpers.signal_callback.SignalAtJob"
    result = _signalled(
        _cli_sweep(set_up, "vmap", *LANES, f"epochs={RATE_EPOCHS}", rates, stop),
        lambda out: False,
        (),
        tmp_path,
    )
    _clean(result, 128 + signal.SIGTERM)
    assert sorted(job.name for job in set_up.glob("[0-9]*")) == ["0", "1"], result.stdout[-2000:]
    assert all(_status(job) == "interrupted" for job in set_up.glob("[0-9]*")), result.stdout[-2000:]

    killed = tmp_path / "killed"
    result = _signalled(
        _cli_sweep(killed, "vmap", *LANES, f"epochs={RATE_EPOCHS}", rates),
        lambda out: any(killed.glob("*/summary.json")),  # the plots being drawn
        (signal.SIGKILL,),
        tmp_path,
    )
    assert result.returncode == -signal.SIGKILL
    assert "Traceback" not in result.stdout and "BrokenPipe" not in result.stdout, result.stdout[-3000:]
    _sweep(killed, RATE_EPOCHS, resume=True)
    for lane in ("0", "1", "2"):
        assert _status(killed / lane) == "completed"
        _same_run(killed / lane, straight_rates / lane)


@pytest.mark.slow
def test_parallel_workers_end_with_their_killed_parent_and_a_job_refused_as_in_use_fails_the_sweep(tmp_path):
    sweep = tmp_path / "parallel"
    args = _cli_sweep(sweep, "parallel", *SLOW, "optimizer.lr=0.01,0.1")
    result = _signalled(
        args,
        lambda out: all(_lines(sweep / job / "metrics.jsonl") >= 2 for job in "01"),
        (signal.SIGKILL,),
        tmp_path,
    )
    assert "Traceback" not in result.stdout, result.stdout[-3000:]
    for job in "01":
        _released(sweep / job)  # the worker's run ended and let its directory go
        assert _status(sweep / job) in ("interrupted", "completed")

    holder = RunDir(sweep / "0")
    holder.lock()
    try:
        again = subprocess.run(
            [sys.executable, str(TRAIN), *args, "resume=true"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=400,
        )
    finally:
        holder.unlock()
    output = again.stdout + again.stderr
    assert again.returncode == 2, output[-3000:]
    assert "refused: 0 (pid" in output and "Traceback" not in output, output[-3000:]
    assert _status(sweep / "1") == "completed"


# --- jax.distributed: a bad address or a process that never comes is one line, exit 2 -----


@pytest.mark.parametrize(
    "address", ["nonsense", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "::1:1234", "host:12a", ":1234"]
)
def test_a_malformed_coordinator_address_is_one_config_error(address):
    with pytest.raises(ConfigError, match=r"^distributed.coordinator_address=.*HOST:PORT") as err:
        check_distributed({"coordinator_address": address, "num_processes": 2, "process_id": 1})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("address", ["10.0.0.1:1234", "[::1]:1234", "node-7.cluster:65535"])
def test_well_formed_coordinator_addresses_pass(address):
    values = check_distributed({"coordinator_address": address, "num_processes": 2, "process_id": 1})
    assert values["coordinator_address"] == address and values["initialization_timeout"] == 60


@pytest.mark.slow
def test_a_process_whose_peers_never_come_ends_with_one_line_and_exit_2(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = {
        pid: subprocess.Popen(
            [
                sys.executable,
                str(TRAIN),
                f"hydra.run.dir={tmp_path / str(pid)}",
                *LANES,
                "epochs=1",
                f"distributed.coordinator_address=127.0.0.1:{port + pid}",  # each alone at its own
                "distributed.num_processes=2",
                f"distributed.process_id={pid}",
                "distributed.initialization_timeout=2",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for pid in (0, 1)  # process 0 waits for process 1; process 1 finds no process 0
    }
    for proc in procs.values():
        out = proc.communicate(timeout=300)[0]
        assert proc.returncode == 2, out[-3000:]
        errors = [line for line in out.splitlines() if "ERROR" in line or "jax.distributed:" in line]
        assert (
            len(errors) == 1 and "jax.distributed: " in errors[0] and "initialization_timeout" in errors[0]
        ), out
        assert "Check failure" not in out and "Traceback" not in out, out
