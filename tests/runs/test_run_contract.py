"""The run contract: what the run engine promises about a run directory, for every launcher.

Each test compares with an independent expectation: an uninterrupted run, the
public API's own loss of a checkpoint, the bytes a directory held before.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import backprop_lab as bl
from backprop_lab import CheckpointError
from backprop_lab.files._checkpoint import load_checkpoint, read_header
from backprop_lab.files._rundir import RunDir, RunDirError
from backprop_lab.runs._experiment import ConfigError, build_experiment
from helpers.train_app import ROOT, SLOW, SLOW_EPOCHS, TINY, TRAIN, app, cfg_of, moved_run, trained_run
from helpers.train_app import run_cli as _run_cli


def _files(d: Path) -> dict[str, bytes]:
    """A run's result files and their bytes (its log and lock apart: a refusal is logged)."""
    return {
        p.name: p.read_bytes()
        for p in sorted(d.iterdir())
        if p.is_file() and p.name != ".lock" and p.suffix != ".log"
    }


def _rows(path: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k != "wall_time"}
        for line in path.read_text().splitlines()
    ]


# --- validation: one line naming the key, before any compute -------------------------------


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["log_every=-1"], "log_every"),
        (["log_every=0"], "log_every"),
        (["optimizer=momentum", "optimizer.momentum=-0.5"], "optimizer.momentum"),
        (["optimizer.eps=-1e-8"], "optimizer.eps"),
        (["~loss"], "loss"),
        (["~data"], "data"),
        (["~early_stopping"], "early_stopping"),
        (["seed=9223372036854775808"], "seed"),
        (["seed=-1"], "seed"),
        (["model.weights=abc"], "model.weights"),
        (["+model.activaton=relu"], "model.activaton"),
        (["+learning_rate=0.1"], "learning_rate"),
        (["divergence_factor=0.5"], "divergence_factor"),
        (["dtype=float16"], "dtype"),
        (["devices=99"], "devices"),
        (["devices=0"], "devices"),
        (["distributed.num_processes=2"], "distributed.coordinator_address"),
        (["early_stopping.patience=0"], "early_stopping.patience"),
        (["plot.scale=logarithmic"], "plot.scale"),
        (["~plot"], "plot"),
        (["data=xor", "model.sizes=[2,4,1]"], "model.output_activation"),  # softmax over one output
        (
            [
                "data=xor",
                "model.sizes=[2,4000000000,1]",
                "model.output_activation=sigmoid",
                "loss=binary_cross_entropy",
            ],
            "model.sizes",
        ),  # memory estimate, not an allocation
    ],
)
def test_bad_value_is_one_clear_error(overrides, key):
    with pytest.raises(ConfigError) as info:
        build_experiment(cfg_of(*overrides))
    assert str(info.value).startswith(key + "="), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["log_every=1.5"], "log_every"),
        (["log_every=abc"], "log_every"),
        (["model.bias=maybe"], "model.bias"),
        (["optimizer=momentum", "optimizer.nesterov=abc"], "optimizer.nesterov"),
        (["optimizer.b1=abc"], "optimizer.b1"),
        (["seed=2**63"], "seed"),
        (["epochs=abc"], "epochs"),
        (["resume=maybe"], "resume"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_as_the_config_composes(overrides, key):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as info:
        cfg_of(*overrides)
    assert f"full_key: {key}" in str(info.value.__cause__)


def test_bad_values_exit_2_on_the_command_line_without_traceback(tmp_path):
    """The app's own refusals (Hydra's, of a config group or preset that does not exist:
    tests/runs/test_train_app.py): exit 2, the key named, nothing trained."""
    for i, bad in enumerate(["model.activation=relux", "~loss", "seed=-1", "log_every=-1"]):
        result = _run_cli(tmp_path / str(i), bad)
        output = result.stdout + result.stderr
        assert result.returncode == 2, (bad, result.stderr[-500:])
        assert "Traceback" not in output
        assert bad.lstrip("~").split("=")[0] in output
        assert not (tmp_path / str(i) / "checkpoint.eqx").exists()
        if i == 0:  # the value, and the choices there are
            assert all(word in output for word in ("model.activation='relux'", "tanh", "relu")), output


def test_digits_one_hot_false_is_refused():
    with pytest.raises(ConfigError, match="one_hot|data"):
        build_experiment(cfg_of("data.one_hot=false"))


@pytest.mark.parametrize(
    ("data", "model"),
    [
        ("xor", ["model.sizes=[2,4,1]", "model.output_activation=sigmoid", "loss=binary_cross_entropy"]),
        ("swap", ["model.sizes=[2,4,2]", "model.output_activation=sigmoid", "loss=half_sse"]),
        ("note003", ["model.sizes=[2,2,2]", "model.output_activation=sigmoid", "loss=half_sse"]),
        ("moons", ["model.sizes=[2,8,2]"]),
    ],
)
def test_default_batch_size_works_with_every_shipped_data_set(tmp_path, data, model):
    summary = app.train(cfg_of(f"data={data}", *model, "epochs=2", "log_every=1"), out_dir=tmp_path)
    exp = build_experiment(cfg_of(f"data={data}", *model))
    assert summary["status"] == "completed"
    assert summary["batch_size"] == min(32, exp.data.n_train)


def test_empty_batches_are_refused_by_the_api():
    model = bl.MLP([2, 3, 1], key=jax_key(0))
    x, y = jnp.zeros((0, 2)), jnp.zeros((0, 1))
    for call in (
        lambda: bl.manual_grad(model, x, y, "half_sse"),
        lambda: bl.train(model, x, y, loss="half_sse", optimizer=bl.make_optimizer("sgd", 0.1), steps=2),
        lambda: bl.train_sweep(
            model,
            x,
            y,
            loss="half_sse",
            optimizer=bl.make_optimizer("sgd", 0.1),
            learning_rates=[0.1],
            steps=2,
        ),
    ):
        with pytest.raises(ValueError, match="rows|empty"):
            call()


@pytest.mark.parametrize("rates", [[0.1, -0.1], [float("nan")], []])
def test_train_sweep_checks_its_learning_rates(rates):
    model = bl.MLP([2, 3, 1], key=jax_key(0))
    x, y = jnp.ones((4, 2)), jnp.ones((4, 1))
    with pytest.raises(ValueError, match="learning rate|learning_rates"):
        bl.train_sweep(
            model,
            x,
            y,
            loss="half_sse",
            optimizer=bl.make_optimizer("sgd", 0.1),
            learning_rates=rates,
            steps=2,
        )


def jax_key(seed):
    import jax

    return jax.random.PRNGKey(seed)


# --- metrics: step 0 first, train_loss defined, every step's loss kept --------------------


def test_records_start_at_step_0_and_train_loss_is_the_whole_training_set(tmp_path):
    app.train(cfg_of(*TINY, "log_every=2", "epochs=4", "diagnostics=true"), out_dir=tmp_path)
    rows = _rows(tmp_path / "metrics.jsonl")
    exp = build_experiment(cfg_of(*TINY))
    x, y = jnp.asarray(exp.data.x_train), jnp.asarray(exp.data.y_train)
    assert rows[0]["step"] == 0 and rows[0]["epoch_loss"] is None
    assert rows[0]["train_loss"] == pytest.approx(float(bl.loss_value(exp.model, x, y, exp.loss)), rel=1e-6)
    (model, _), _ = load_checkpoint(tmp_path / "checkpoint.eqx", (exp.model, exp.optimizer.init(exp.model)))
    assert rows[-1]["train_loss"] == pytest.approx(float(bl.loss_value(model, x, y, exp.loss)), rel=1e-6)
    # every step's minibatch loss, and each record's epoch_loss is the mean of its epoch's steps
    lines = (tmp_path / "losses.csv").read_text().splitlines()
    assert lines[0] == "step,loss"
    steps = [int(line.split(",")[0]) for line in lines[1:]]
    losses = np.array([float(line.split(",")[1]) for line in lines[1:]])
    assert steps == list(range(4 * exp.steps_per_epoch))
    spe = exp.steps_per_epoch
    for r in rows[1:]:
        assert r["epoch_loss"] == pytest.approx(losses[r["step"] - spe : r["step"]].mean(), rel=1e-5)
    # grad_norms: the Frobenius norm of the hand-written dL/dW per layer, first layer first
    grads = bl.manual_grad(model, x, y, exp.loss)
    np.testing.assert_allclose(
        rows[-1]["grad_norms"], [float(jnp.linalg.norm(w)) for w in grads.weights], rtol=1e-4
    )


def test_train_loss_does_not_depend_on_log_every(tmp_path):
    app.train(cfg_of(*TINY, "epochs=4", "log_every=1"), out_dir=tmp_path / "a")
    app.train(cfg_of(*TINY, "epochs=4", "log_every=2"), out_dir=tmp_path / "b")
    a = {r["step"]: r["train_loss"] for r in _rows(tmp_path / "a" / "metrics.jsonl")}
    b = {r["step"]: r["train_loss"] for r in _rows(tmp_path / "b" / "metrics.jsonl")}
    for step, value in b.items():
        assert a[step] == pytest.approx(value, rel=1e-6)


# --- divergence --------------------------------------------------------------------------


def test_a_loss_exploding_to_1e29_is_divergence_and_the_last_good_state_is_kept(tmp_path):
    over = (
        "data=moons",
        "model.sizes=[2,32,32,2]",
        "model.activation=relu",
        "model.output_activation=identity",
        "loss=mse",
        "optimizer=adam",
        "optimizer.lr=1e6",
        "epochs=5",
        "batch_size=50",
        "log_every=1",
    )
    summary = app.train(cfg_of(*over), out_dir=tmp_path)
    assert summary["status"] == "diverged"
    rows = _rows(tmp_path / "metrics.jsonl")
    header = read_header(tmp_path / "checkpoint.eqx")
    assert header["step"] == rows[-1]["step"] == summary["steps"] < summary["diverged_at_step"] + 1
    last = (tmp_path / "losses.csv").read_text().splitlines()[-1].split(",")
    assert int(last[0]) == summary["diverged_at_step"]
    assert float(last[1]) > 1e4 * rows[0]["train_loss"] or not np.isfinite(float(last[1]))
    assert (tmp_path / "loss_curve.png").exists()
    # with the check off, the same run goes on to the end
    off = app.train(cfg_of(*over, "divergence_factor=null", "epochs=2"), out_dir=tmp_path / "off")
    assert off["status"] in ("completed", "diverged")


# --- resume: only the same run -----------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory, *TINY)


@pytest.fixture
def finished(trained, tmp_path) -> Path:
    """A finished TINY run, moved: the same run (its mark comes along) in a directory of its own
    (tests/runs/test_run_dirs.py resumes moved runs). Its files keep their modes."""
    return moved_run(trained, tmp_path)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ("optimizer.lr=0.5", "optimizer.lr"),
        ("model.activation=relu", "model.activation"),
        ("seed=3", "seed"),
        ("loss=mse", "loss"),
        ("batch_size=25", "batch_size"),
        ("data.noise=0.3", "data.noise"),
        ("optimizer=sgd", "optimizer"),
        ("grad=autodiff", "grad"),
    ],
)
def test_resume_with_a_changed_config_is_refused_and_nothing_changes(finished, change, key):
    before = _files(finished) | {"config": (finished / ".hydra" / "config.yaml").read_bytes()}
    with pytest.raises(RunDirError, match=key.replace(".", r"\.")):
        app.train(cfg_of(*TINY, "resume=true", "epochs=5", change), out_dir=finished)
    assert _files(finished) | {"config": (finished / ".hydra" / "config.yaml").read_bytes()} == before


def test_resume_with_fewer_epochs_is_refused(finished):
    with pytest.raises(RunDirError, match="epochs"):
        app.train(cfg_of(*TINY[:2], "epochs=2", *TINY[3:], "resume=true"), out_dir=finished)


def test_resuming_a_finished_run_leaves_it_untouched(finished):
    before = _files(finished)
    again = app.train(cfg_of(*TINY, "resume=true", "log_every=3"), out_dir=finished)
    assert _files(finished) == before
    assert again == json.loads(before["summary.json"])


def test_resuming_a_finished_run_killed_before_its_plot_draws_only_the_plot(finished):
    """A run killed after its summary but before its plot was written: resume=true draws the
    plot (the same file) and changes nothing else."""
    plot = finished / "loss_curve.png"
    drawn = plot.read_bytes()
    plot.unlink()
    before = _files(finished)
    app.train(cfg_of(*TINY, "resume=true"), out_dir=finished)
    assert plot.read_bytes() == drawn
    assert {k: v for k, v in _files(finished).items() if k != "loss_curve.png"} == before


def test_more_epochs_continue_to_what_a_longer_run_gives(finished, tmp_path):
    app.train(cfg_of(*TINY, "resume=true", "epochs=5"), out_dir=finished)
    app.train(cfg_of(*TINY, "epochs=5"), out_dir=tmp_path / "straight")
    assert _rows(finished / "metrics.jsonl") == _rows(tmp_path / "straight" / "metrics.jsonl")


def test_files_ahead_of_the_checkpoint_are_cut_back_on_resume(tmp_path):
    """A kill after the metrics were appended but before the checkpoint was written."""
    app.train(cfg_of(*TINY[:2], "epochs=2", *TINY[3:]), out_dir=tmp_path / "run")
    run = tmp_path / "run"
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 3, "step": 45, "train_loss": 9.0}) + "\n" + '{"epoch": 4, "st')
    with open(run / "losses.csv", "a") as f:
        f.write("30,9.0\n31,9.")
    (run / "checkpoint.eqx.abc123.tmp").write_bytes(b"half a checkpoint")
    (run / "summary.json").unlink()
    app.train(cfg_of(*TINY, "resume=true"), out_dir=run)
    app.train(cfg_of(*TINY), out_dir=tmp_path / "straight")
    assert _rows(run / "metrics.jsonl") == _rows(tmp_path / "straight" / "metrics.jsonl")
    assert (run / "losses.csv").read_text() == (tmp_path / "straight" / "losses.csv").read_text()
    assert not list(run.glob("*.tmp"))


# --- checkpoints ---------------------------------------------------------------------------


def test_the_checksum_covers_the_header(finished):
    path = finished / "checkpoint.eqx"
    raw = path.read_bytes()
    header, _, payload = raw.partition(b"\n")
    edited = json.loads(header)
    edited["epoch"] = 9
    path.write_bytes(json.dumps(edited).encode() + b"\n" + payload)
    with pytest.raises(CheckpointError, match="corrupt"):
        app.train(cfg_of(*TINY, "resume=true", "epochs=12"), out_dir=finished)


@pytest.mark.parametrize("other", [("optimizer=sgd",), ("dtype=float64",), ("data=circles",)])
def test_a_checkpoint_of_another_run_is_refused(finished, tmp_path, other):
    app.train(cfg_of(*TINY, *other), out_dir=tmp_path / "other")
    (finished / "checkpoint.eqx").write_bytes((tmp_path / "other" / "checkpoint.eqx").read_bytes())
    with pytest.raises(RunDirError, match="refused"):
        app.train(cfg_of(*TINY, "resume=true", "epochs=5"), out_dir=finished)


def test_outputs_are_written_with_the_umask_mode(finished):
    umask = os.umask(0)
    os.umask(umask)
    for name in ("checkpoint.eqx", "summary.json", "metrics.jsonl", "losses.csv"):
        assert (finished / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


# --- one writer per directory ----------------------------------------------------------------


def test_a_second_run_into_a_locked_directory_is_refused(tmp_path):
    holder = RunDir(tmp_path)
    holder.lock()
    try:
        with pytest.raises(RunDirError, match="in use"):
            app.train(cfg_of(*TINY), out_dir=tmp_path)
        result = _run_cli(tmp_path, *TINY)
        assert result.returncode == 2 and "in use" in result.stdout + result.stderr
    finally:
        holder.unlock()
    assert not (tmp_path / "metrics.jsonl").exists()


# --- signals ---------------------------------------------------------------------------------


def _start_and_signal(run_dir: Path, sig: int, *extra: str) -> subprocess.CompletedProcess:
    """The app run into ``run_dir``, sent ``sig`` once it has written two records of its own
    (two more lines in metrics.jsonl than it held before: it trains)."""
    metrics = run_dir / "metrics.jsonl"
    ready = 2 + (len(metrics.read_text().splitlines()) if metrics.exists() else 1)
    cmd = [sys.executable, str(TRAIN), f"hydra.run.dir={run_dir}", *SLOW, *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= ready:
            break
        time.sleep(0.01)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


@pytest.mark.slow
@pytest.mark.xdist_group("straight_slow")  # one worker runs the shared straight run (conftest.py)
def test_a_signal_ends_the_chunk_records_interrupted_and_resume_completes_the_same_run(
    tmp_path, straight_slow
):
    """SIGINT while the run trains, then SIGTERM while its resumed run trains: each ends the
    chunk, exits 128 + n and records interrupted at the checkpoint's epoch; the last resume ends
    as the run that was never stopped, bit for bit."""
    run = tmp_path / "run"
    epochs = 0
    for sig, extra in ((signal.SIGINT, ()), (signal.SIGTERM, ("resume=true",))):
        stopped = _start_and_signal(run, sig, *extra)
        assert stopped.returncode == 128 + sig, stopped.stdout[-2000:]
        assert "Traceback" not in stopped.stdout
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "interrupted" and epochs < summary["epochs"] < SLOW_EPOCHS, summary
        assert read_header(run / "checkpoint.eqx")["epoch"] == summary["epochs"]
        epochs = summary["epochs"]
    resumed = _run_cli(run, *SLOW, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _rows(run / "metrics.jsonl") == _rows(straight_slow / "metrics.jsonl")
    assert (run / "checkpoint.eqx").read_bytes().partition(b"\n")[2] == (
        straight_slow / "checkpoint.eqx"
    ).read_bytes().partition(b"\n")[2]


# --- sweeps: the same contract under every launcher ------------------------------------------

SWEEP = [
    "data=moons",
    "data.n_samples=200",
    "model.sizes=[2,8,2]",
    "epochs=3",
    "batch_size=50",
    "log_every=1",
    "optimizer=sgd",
    "optimizer.lr=0.01,0.3",
]


def _sweep(sweep_dir: Path, *extra: str, launcher: str = "basic") -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(TRAIN),
            "-m",
            *SWEEP,
            *extra,
            f"hydra/launcher={launcher}",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=400,
    )


def _jobs(sweep_dir: Path) -> dict[str, Path]:
    out = {}
    for job in sweep_dir.iterdir():
        if (job / ".hydra" / "overrides.yaml").exists():
            out[" ".join(sorted(yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())))] = job
    return out


@pytest.mark.slow
def test_vmap_and_basic_launchers_leave_the_same_job_files_and_refuse_reruns_per_job(tmp_path):
    runs = {}
    for launcher in ("basic", "vmap"):
        result = _sweep(tmp_path / launcher, "model.activation=tanh,swish", launcher=launcher)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-3000:]
        assert "Traceback" not in output
        runs[launcher] = _jobs(tmp_path / launcher)
        bad = [
            json.loads((d / "summary.json").read_text())
            for d in (tmp_path / launcher).iterdir()
            if d.is_dir() and not (d / "metrics.jsonl").exists()
        ]
        assert len(bad) == 2 and all(b["status"] == "config_error" and "swish" in b["error"] for b in bad)
    assert runs["basic"].keys() == runs["vmap"].keys() and len(runs["basic"]) == 4  # refused ones too
    for name, basic in runs["basic"].items():
        vmapped = runs["vmap"][name]
        assert sorted(_files(basic)) == sorted(_files(vmapped))
        if not (basic / "metrics.jsonl").exists():
            continue  # refused for its config: summary.json, .hydra/ and its log
        assert (vmapped / "train.log").read_text().count("completed 9 steps") == 1
        for a, b in zip(_rows(basic / "metrics.jsonl"), _rows(vmapped / "metrics.jsonl")):
            assert a["step"] == b["step"]
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert json.loads((vmapped / "summary.json").read_text())["launcher"] == "vmap"

    # a rerun into the same sweep directory refuses job by job and overwrites nothing
    for launcher in ("basic", "vmap"):
        before = {name: _files(d) for name, d in runs[launcher].items()}
        again = _sweep(tmp_path / launcher, "model.activation=tanh,swish", launcher=launcher)
        output = again.stdout + again.stderr
        assert "Traceback" not in output and output.count("already holds a run") == 2, output[-3000:]
        assert "hydra.sweep.dir" in output
        assert {name: _files(d) for name, d in runs[launcher].items()} == before


@pytest.mark.slow
def test_vmap_launcher_runs_other_apps_job_by_job(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "experiments/compare.py",
            "-m",
            "data.name=random",
            "model.sizes=[2,3,2]",
            "model.activation=tanh,relu",
            "+repeats=2",
            "hydra/launcher=vmap",
            f"hydra.sweep.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        summary = json.loads((tmp_path / job / "summary.json").read_text())
        assert summary["kind"] == "compare" and summary["passed"] is True
        assert (tmp_path / job / "grad_report.json").exists()


# --- early stopping --------------------------------------------------------------------------


def test_early_stopping_ends_where_the_patience_rule_says_and_stays_ended(tmp_path):
    over = (
        *TINY[:2],
        "epochs=12",
        *TINY[3:],
        "optimizer=sgd",
        "optimizer.lr=0.001",
        "early_stopping.metric=test_loss",
        "early_stopping.patience=2",
        "early_stopping.min_delta=0.01",
    )
    summary = app.train(cfg_of(*over), out_dir=tmp_path)
    rows = _rows(tmp_path / "metrics.jsonl")
    # the rule, applied by hand to the records: stop at the 2nd record in a row without a gain > 0.01
    best, waited, stop = None, 0, None
    for r in rows:
        if best is None or best - r["test_loss"] > 0.01:
            best, waited = r["test_loss"], 0
        else:
            waited += 1
            if waited == 2:
                stop = r["epoch"]
                break
    assert stop is not None and stop < 12
    assert summary["status"] == "stopped_early" and summary["epochs"] == stop == rows[-1]["epoch"]
    before = _files(tmp_path)
    app.train(cfg_of(*over, "resume=true"), out_dir=tmp_path)
    assert _files(tmp_path) == before
