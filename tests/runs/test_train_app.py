"""The Hydra training app: results on disk, bad configs, divergence, resume, determinism."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from backprop_lab import CheckpointError
from backprop_lab.files._checkpoint import read_header
from backprop_lab.files._rundir import RunDirError
from backprop_lab.runs._experiment import ConfigError, build_experiment
from helpers.train_app import ROOT, SLOW, TINY, TRAIN, app, cfg_of
from helpers.train_app import run_cli as _run_cli


@pytest.fixture(autouse=True)
def _clear_hydra():
    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


def test_run_writes_readable_results(tmp_path):
    summary = app.train(cfg_of(*TINY), out_dir=tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1, 2, 3]
    assert {"step", "train_loss", "epoch_loss", "test_loss", "test_accuracy", "wall_time"} <= set(records[0])
    assert "grad_norms" not in records[0]  # diagnostics=false by default
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["status"] == summary["status"] == "completed"
    assert on_disk["steps"] == records[-1]["step"]
    assert on_disk["final_train_loss"] == records[-1]["train_loss"]
    assert 0.0 <= on_disk["test_accuracy"] <= 1.0
    assert on_disk["samples_per_second"] > 0
    for when in ("start", "end"):
        assert on_disk["grad_agreement"][when]["passed"] is True
    assert read_header(tmp_path / "checkpoint.eqx")["step"] == records[-1]["step"]
    assert (tmp_path / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_lowers_the_loss_with_either_gradient(tmp_path):
    losses = {}
    for grad in ("manual", "autodiff"):
        s = app.train(cfg_of(*TINY, f"grad={grad}", "epochs=6"), out_dir=tmp_path / grad)
        first = json.loads((tmp_path / grad / "metrics.jsonl").read_text().splitlines()[1])
        assert s["final_train_loss"] < first["train_loss"]
        losses[grad] = s["final_train_loss"]
    assert losses["manual"] == pytest.approx(losses["autodiff"], rel=1e-4)


@pytest.mark.parametrize(
    ("overrides", "key", "hint"),
    [
        (["model.activation=swish"], "model.activation", "tanh"),
        (["model.output_activation=sofmax"], "model.output_activation", "softmax"),
        (["loss=hinge"], "loss", "cross_entropy"),
        (["model.sizes=[64,0,10]"], "model.sizes", ">= 1"),
        (["optimizer.lr=0"], "optimizer.lr", "> 0"),
        (["optimizer.lr=-0.5"], "optimizer.lr", "> 0"),
        (["optimizer.lr=nan"], "optimizer.lr", "finite"),
        (["batch_size=0"], "batch_size", ">= 1"),
        (["model.sizes=[3,8,10]"], "model.sizes", "start with 64"),
        (["model.sizes=[64,8,3]"], "model.sizes", "end with 10"),
        (["loss=binary_cross_entropy"], "loss", "output_activation=sigmoid"),
        (["grad=symbolic"], "grad", "manual"),
        (["epochs=0"], "epochs", "from 1 to"),
    ],
)
def test_bad_config_is_refused_before_compute(overrides, key, hint):
    with pytest.raises(ConfigError) as info:
        build_experiment(cfg_of(*overrides))
    message = str(info.value)
    assert message.startswith(key + "=")
    assert hint in message


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        # (a value the app refuses, exit 2: tests/runs/test_run_contract.py, model.activation=relux)
        (["data=mnist"], ["data/mnist", "digits"]),
        (["optimizer=rmsprop"], ["optimizer/rmsprop", "adam"]),
        (["experiment=note999"], ["experiment/note999", "note003"]),
    ],
)
def test_bad_config_exits_nonzero_without_traceback(tmp_path, overrides, words):
    result = _run_cli(tmp_path, *overrides)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    for word in words:
        assert word in output
    assert not (tmp_path / "checkpoint.eqx").exists()


def test_divergence_is_recorded_and_the_run_ends_cleanly(tmp_path):
    summary = app.train(
        cfg_of(
            "data=moons",
            "model.sizes=[2,32,32,2]",
            "model.activation=relu",
            "model.output_activation=identity",
            "loss=mse",
            "optimizer=sgd",
            "optimizer.lr=1e6",
            "epochs=5",
            "batch_size=50",
            "log_every=1",
        ),
        out_dir=tmp_path,
    )
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == on_disk["status"] == "diverged"
    assert isinstance(on_disk["diverged_at_step"], int) and on_disk["diverged_at_step"] >= 0


@pytest.mark.slow
def test_diverged_cli_run_exits_zero(tmp_path):
    result = _run_cli(
        tmp_path,
        "data=moons",
        "model.sizes=[2,32,2]",
        "model.activation=relu",
        "model.output_activation=identity",
        "loss=mse",
        "optimizer=sgd",
        "optimizer.lr=1e6",
        "epochs=3",
        "batch_size=50",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"
    # piped: the log and its start banner, no progress bar, no JAX backend probing
    both = result.stdout + result.stderr
    assert "step/s" not in both and "\r" not in both and "\x1b[" not in both
    assert "Unable to initialize backend" not in both
    banner = next(line for line in result.stdout.splitlines() if "training: data moons" in line)
    for part in ("network [2, 32, 2] relu->identity", "optimizer sgd lr 1e+06", "devices 1 x cpu"):
        assert part in banner
    assert "3 epochs of 15 steps" in banner and banner.endswith(f"output {tmp_path}")


def _metrics_without_time(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]


def test_same_config_twice_gives_the_same_metrics(tmp_path):
    app.train(cfg_of(*TINY), out_dir=tmp_path / "a")
    app.train(cfg_of(*TINY), out_dir=tmp_path / "b")
    assert _metrics_without_time(tmp_path / "a" / "metrics.jsonl") == _metrics_without_time(
        tmp_path / "b" / "metrics.jsonl"
    )


def _payload(path: Path) -> bytes:
    return path.read_bytes().partition(b"\n")[2]


def test_stopped_then_resumed_run_matches_an_uninterrupted_one(tmp_path):
    full = (*TINY[:2], "epochs=4", "batch_size=50", "log_every=1", "optimizer=adam")
    app.train(cfg_of(*full), out_dir=tmp_path / "straight")
    app.train(cfg_of(*full[:2], "epochs=2", *full[3:]), out_dir=tmp_path / "resumed")
    app.train(cfg_of(*full, "resume=true"), out_dir=tmp_path / "resumed")
    assert _payload(tmp_path / "straight" / "checkpoint.eqx") == _payload(
        tmp_path / "resumed" / "checkpoint.eqx"
    )
    assert _metrics_without_time(tmp_path / "straight" / "metrics.jsonl") == _metrics_without_time(
        tmp_path / "resumed" / "metrics.jsonl"
    )


def test_existing_run_is_not_overwritten_without_resume(tmp_path):
    app.train(cfg_of(*TINY), out_dir=tmp_path)
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(RunDirError, match="resume=true"):
        app.train(cfg_of(*TINY), out_dir=tmp_path)
    assert (tmp_path / "metrics.jsonl").read_text() == before


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_checkpoint_is_refused(tmp_path, damage):
    app.train(cfg_of(*TINY), out_dir=tmp_path)
    path = tmp_path / "checkpoint.eqx"
    raw = path.read_bytes()
    damaged = {
        "truncate": raw[: len(raw) - 7],
        "flip": raw[:-3] + bytes([raw[-3] ^ 0xFF]) + raw[-2:],
        "garbage": b"not a checkpoint at all",
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(CheckpointError, match="corrupt"):
        app.train(cfg_of(*TINY, "resume=true"), out_dir=tmp_path)
    assert path.read_bytes() == damaged  # nothing overwritten


@pytest.mark.slow
@pytest.mark.xdist_group("straight_slow")  # one worker runs the shared straight run (conftest.py)
def test_kill_dash_nine_then_resume_gives_identical_parameters(tmp_path, straight_slow):
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, str(TRAIN), f"hydra.run.dir={run_dir}", *SLOW]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    metrics = run_dir / "metrics.jsonl"
    while time.monotonic() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "summary.json").exists(), "the run finished before it could be killed"

    resumed = _run_cli(run_dir, *SLOW, "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert _payload(run_dir / "checkpoint.eqx") == _payload(straight_slow / "checkpoint.eqx")
    assert _metrics_without_time(metrics) == _metrics_without_time(straight_slow / "metrics.jsonl")


@pytest.mark.slow
def test_bad_job_in_a_sweep_is_recorded_and_the_others_run(tmp_path):
    result = subprocess.run(
        [sys.executable, str(TRAIN), "-m", *TINY, "optimizer.lr=0,0.01", f"hydra.sweep.dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    bad = json.loads((tmp_path / "0" / "summary.json").read_text())
    good = json.loads((tmp_path / "1" / "summary.json").read_text())
    assert bad["status"] == "config_error" and "optimizer.lr=0" in bad["error"]
    assert good["status"] == "completed"
    # The refused job keeps its .hydra files, so the sweep's summary counts it as the planned
    # job it is (TINY's list-valued model.sizes has commas of its own), not as one more.
    overrides = (tmp_path / "0" / ".hydra" / "overrides.yaml").read_text()
    assert "optimizer.lr=0" in overrides
    assert "2 jobs: 1 completed, 1 config_error;" in result.stdout + result.stderr
