"""Run directories a run did not make, checkpoints from elsewhere, and filesystems that refuse.

Each case is checked against what was on disk before (byte for byte), against an
uninterrupted run, or against the records the run wrote itself. The filesystem
faults use real tmpfs mounts (read-only, size-limited) and are skipped where
mounting is not allowed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

import backprop_lab as bl
from backprop_lab import CheckpointError
from backprop_lab.apps._evaluate import evaluate as evaluate_cli
from backprop_lab.files._rundir import RunDirError
from backprop_lab.runs._experiment import ConfigError, build_experiment
from helpers.train_app import TINY, app, cfg_of, moved_run, run_cli, trained_run


def _tree(d: Path) -> dict[str, bytes]:
    """Every file under ``d`` (dotfiles too) and its bytes."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _rows(path: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k != "wall_time"}
        for line in path.read_text().splitlines()
    ]


def _rewrite_header(path: Path, **changes) -> None:
    """Change header fields and sign the result with a valid checksum, as a forger would."""
    line, _, payload = path.read_bytes().partition(b"\n")
    header = json.loads(line)
    for key, value in changes.items():
        node = header
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    fields = {k: v for k, v in header.items() if k != "sha256"}
    header["sha256"] = hashlib.sha256(
        json.dumps(fields, sort_keys=True).encode() + b"\n" + payload
    ).hexdigest()
    path.write_bytes(json.dumps(header).encode() + b"\n" + payload)


# Its tests share the module's trained run: one xdist worker runs them all (tests/conftest.py).
pytestmark = pytest.mark.xdist_group("run_dirs")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory, *TINY)


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    """The trained run, moved: the same run (its mark comes along) in a directory of its own."""
    return moved_run(trained, tmp_path)


# --- directories that hold other things ------------------------------------------------------


def test_a_directory_of_the_users_files_is_refused_and_left_as_it_was(tmp_path):
    mine = tmp_path / "mine"
    (mine / ".hydra").mkdir(parents=True)
    for name in (
        "summary.json",
        "loss_curve.png",
        "losses.csv",
        "train.log",
        ".notes.tmp",
        ".hydra/config.yaml",
    ):
        (mine / name).write_text(f"the user's {name}\n")
    before = _tree(mine)
    with pytest.raises(RunDirError) as info:
        app.train(cfg_of(*TINY), out_dir=mine)
    assert "holds files" in str(info.value) and "\n" not in str(info.value)
    assert _tree(mine) == before


@pytest.mark.slow
def test_the_command_line_refuses_a_directory_of_other_files_before_hydra_writes_its_log(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "train.log").write_text("the user's log\n")
    (mine / "summary.json").write_text("{}\n")
    before = _tree(mine)
    result = run_cli(mine, *TINY)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "holds files" in result.stderr
    assert _tree(mine) == before


def test_a_run_deletes_only_temporary_files_of_its_own_names(run_copy):
    (run_copy / ".notes.tmp").write_text("the user's")
    (run_copy / ".checkpoint.eqx.4242.tmp").write_bytes(b"half a checkpoint")
    app.train(cfg_of(*TINY, "resume=true"), out_dir=run_copy)
    assert (run_copy / ".notes.tmp").read_text() == "the user's"
    assert not (run_copy / ".checkpoint.eqx.4242.tmp").exists()


def _hydra_cfg(*overrides: str):
    from hydra import compose, initialize_config_dir

    from helpers.train_app import CONF

    with initialize_config_dir(config_dir=CONF, version_base="1.3", job_name="train"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    return cfg


def _task(cfg, *overrides: str):
    """``cfg`` as Hydra hands it to a callback of a sweep with these command-line overrides."""
    from omegaconf import read_write

    with read_write(cfg.hydra):
        cfg.hydra.overrides.task = list(overrides)
    return cfg


def _claim(cfg, kind: str, capsys) -> str:
    from backprop_lab.apps.callbacks import RunDirCallback

    callback = RunDirCallback()
    with pytest.raises(SystemExit) as info:
        (callback.on_run_start if kind == "run" else callback.on_multirun_start)(config=cfg)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_an_empty_run_dir_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "hydra.run.dir" in _claim(_hydra_cfg("hydra.run.dir=''"), "run", capsys)
    assert not list(tmp_path.iterdir())


def test_a_sweep_directory_holds_one_sweep(tmp_path, capsys):
    from backprop_lab.apps.callbacks import RunDirCallback

    sweep = f"hydra.sweep.dir={tmp_path / 'sweep'}"
    RunDirCallback().on_multirun_start(config=_task(_hydra_cfg(sweep), "optimizer.lr=0.1,0.2", "seed=0,1"))
    again = _task(_hydra_cfg(sweep), "seed=0,1", "optimizer.lr=0.1,0.2", "resume=true", "epochs=60")
    RunDirCallback().on_multirun_start(config=again)  # the same sweep, continued: accepted
    other = _task(_hydra_cfg(sweep), "optimizer.lr=0.3,0.4", "seed=0,1")
    assert "another sweep" in _claim(other, "sweep", capsys)
    # a directory of other files is no sweep's
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    assert "holds files" in _claim(_hydra_cfg(f"hydra.sweep.dir={tmp_path / 'notes'}"), "sweep", capsys)


@pytest.mark.parametrize("where", ["file", "under_file", "proc"])
def test_a_run_directory_that_cannot_be_one_is_one_line(tmp_path, capsys, where):
    (tmp_path / "f").write_text("a file")
    path = {"file": tmp_path / "f", "under_file": tmp_path / "f" / "run", "proc": Path("/proc/self/run")}[
        where
    ]
    err = _claim(_hydra_cfg(f"hydra.run.dir={path}"), "run", capsys)
    assert str(path) in err and ("file" in err or "proc" in err)
    with pytest.raises(RunDirError, match="file|proc"):
        app.train(cfg_of(*TINY), out_dir=path)
    assert (tmp_path / "f").read_text() == "a file"


# --- checkpoints and run directories from elsewhere ------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("step", -30, "step"),
        ("epoch", 10**9, "epoch"),
        ("step", "abc", "step"),
        ("meta.architecture.activation", "relu", "activation"),
        ("meta.architecture.sizes", "abc", "sizes"),
        ("meta.run", "0" * 32, "another run"),
        ("meta.files.metrics\\.jsonl", None, "record"),
    ],
)
def test_a_forged_header_is_refused_and_no_record_is_cut(run_copy, field, value, says):
    if field.startswith("meta.files"):
        _rewrite_header(run_copy / "checkpoint.eqx", **{"meta.files": {}})
    else:
        _rewrite_header(run_copy / "checkpoint.eqx", **{field: value})
    (run_copy / "summary.json").unlink()  # as if stopped: resume would continue it
    before = _tree(run_copy)
    with pytest.raises((RunDirError, CheckpointError)) as info:
        app.train(cfg_of(*TINY, "resume=true", "epochs=5"), out_dir=run_copy)
    assert says in str(info.value) and "\n" not in str(info.value)
    assert _tree(run_copy) == before
    if says != "record":
        with pytest.raises((RunDirError, CheckpointError)):
            bl.load_run(run_copy)


def test_another_runs_checkpoint_is_refused_by_evaluate(run_copy, tmp_path):
    app.train(cfg_of(*TINY, "model.activation=relu"), out_dir=tmp_path / "other")
    shutil.copy(tmp_path / "other" / "checkpoint.eqx", run_copy / "checkpoint.eqx")
    with pytest.raises(CheckpointError, match="another run"):
        bl.evaluate_run(run_copy)
    assert evaluate_cli([str(run_copy)]) == 2


def test_records_that_are_not_what_the_checkpoint_recorded_are_never_cut(run_copy):
    metrics = run_copy / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"epoch": 1', '"epoch": 1, "edited": true')
    metrics.write_text("".join(lines) + '{"epoch": 4, "step": 60}\n')
    (run_copy / "summary.json").unlink()
    before = _tree(run_copy)
    with pytest.raises(RunDirError, match="metrics.jsonl"):
        app.train(cfg_of(*TINY, "resume=true", "epochs=5"), out_dir=run_copy)
    assert _tree(run_copy) == before


def _returns(fn, *args) -> BaseException | None:
    """``fn(*args)``'s exception, from a thread that must not block (a FIFO read would)."""
    out: list[BaseException | None] = []

    def call():
        try:
            fn(*args)
            out.append(None)
        except BaseException as err:  # noqa: BLE001 - handed back to the test
            out.append(err)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(120)
    assert out, f"{fn.__name__} blocked"
    return out[0]


@pytest.mark.parametrize(
    ("name", "resume_reads", "load_reads"),
    [("checkpoint.eqx", True, True), ("metrics.jsonl", True, False), (".hydra/config.yaml", False, True)],
)
def test_a_fifo_in_place_of_a_file_is_refused_without_blocking(run_copy, name, resume_reads, load_reads):
    (run_copy / name).unlink()
    os.mkfifo(run_copy / name)
    refused = (RunDirError, CheckpointError)
    err = _returns(bl.load_run, run_copy)
    assert isinstance(err, refused) if load_reads else err is None, err
    (run_copy / "summary.json").unlink()
    err = _returns(lambda: app.train(cfg_of(*TINY, "resume=true", "epochs=5"), out_dir=run_copy))
    assert isinstance(err, refused) if resume_reads else err is None, err


def test_a_garbage_config_is_one_line(run_copy, capsys):
    (run_copy / ".hydra" / "config.yaml").write_bytes(b"model: [unclosed\n\x00\xff")
    with pytest.raises(RunDirError, match="config.yaml") as info:
        bl.load_run(run_copy)
    assert "\n" not in str(info.value)
    assert evaluate_cli([str(run_copy)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# --- the best checkpoint as well as the last -------------------------------------------------


def test_the_best_checkpoint_is_the_best_record_by_the_optimized_metric(trained):
    rows = [r for r in _rows(trained / "metrics.jsonl") if r["step"] > 0]
    best = min(rows, key=lambda r: r["test_loss"])  # optimized_metric: final_test_loss
    run = bl.load_run(trained, "best")
    assert (run.checkpoint, run.step) == ("best", best["step"])
    measured = bl.evaluate_run(trained, checkpoint="best")
    assert measured["checkpoint"] == "best"
    assert measured["test_loss"] == pytest.approx(best["test_loss"], rel=1e-5)
    assert bl.load_run(trained).checkpoint == "last"


def test_a_best_checkpoint_lost_to_a_kill_is_written_again_on_resume(run_copy, tmp_path):
    """Killed after its last checkpoint, before the best one: the resumed run takes the state it
    resumes from as the best so far, then goes on choosing."""
    (run_copy / "checkpoint_best.eqx").unlink()
    app.train(cfg_of(*TINY, "resume=true", "epochs=6"), out_dir=run_copy)
    rows = [r for r in _rows(run_copy / "metrics.jsonl") if r["step"] >= 45]  # from the resume on
    best = min(rows, key=lambda r: r["test_loss"])
    assert bl.load_run(run_copy, "best").step == best["step"]


def test_checkpoint_keep_takes_last_or_last_and_best(tmp_path):
    app.train(cfg_of(*TINY, "checkpoint.keep=[last]"), out_dir=tmp_path / "last")
    assert not (tmp_path / "last" / "checkpoint_best.eqx").exists()
    with pytest.raises(CheckpointError, match="best"):
        bl.load_run(tmp_path / "last", "best")
    with pytest.raises(ConfigError, match="checkpoint.keep"):
        build_experiment(cfg_of(*TINY, "checkpoint.keep=[best]"))


# --- filesystems that refuse writes (real tmpfs mounts) --------------------------------------


class Mount:
    def __init__(self, path: Path) -> None:
        self.path = path

    def mount(self, options: str) -> None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.path)], check=True)

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.path)], check=True)


@pytest.fixture
def tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path = tmp_path / "mnt"
    path.mkdir()
    mount = Mount(path)
    try:
        mount.mount("size=4m")
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.skip("this machine does not allow mounting a tmpfs")
    yield mount
    subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_read_only_filesystem_is_one_line_and_changes_nothing(tmpfs, capsys, tmp_path):
    from backprop_lab.apps._summarize import main as summarize
    from backprop_lab.trackers._base import TrackerError

    run = tmpfs.path / "run"
    app.train(cfg_of(*TINY[:2], "epochs=1", *TINY[3:]), out_dir=run)
    tmpfs.remount("ro")
    before = _tree(tmpfs.path)
    for target, extra in ((run, ("resume=true",)), (tmpfs.path / "new", ())):
        with pytest.raises(RunDirError, match="read-only") as info:
            app.train(cfg_of(*TINY, *extra), out_dir=target)
        assert str(target) in str(info.value) and "\n" not in str(info.value)
    tracked = (*TINY, "logger=csv", f"logger.csv.dir={tmpfs.path / 'csv'}")  # a tracker's directory
    with pytest.raises(TrackerError, match="Read-only file system") as refused:  # before any compute
        app.train(cfg_of(*tracked), out_dir=tmp_path / "tracked")
    assert str(tmpfs.path / "csv") in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "tracked" / "checkpoint.eqx").exists()
    _claim(_hydra_cfg(f"hydra.sweep.dir={tmpfs.path / 'sweep'}"), "sweep", capsys)
    assert summarize([str(tmpfs.path), "--no-plot"]) == 2
    assert "read-only" in capsys.readouterr().err
    assert _tree(tmpfs.path) == before


def test_a_full_disk_mid_run_keeps_a_checkpoint_that_resumes_identically(tmpfs, tmp_path):
    over = (*TINY[:2], "data.n_samples=200", "epochs=60", *TINY[3:])
    tmpfs.remount("size=48k")
    run = tmpfs.path / "run"
    with pytest.raises(RunDirError, match="no space") as info:
        app.train(cfg_of(*over), out_dir=run)
    assert str(run) in str(info.value) and "\n" not in str(info.value)
    header = bl.load_run(run).step  # the last checkpoint is whole
    assert 0 < header < 60 * 3
    tmpfs.remount("size=4m")
    app.train(cfg_of(*over, "resume=true"), out_dir=run)
    app.train(cfg_of(*over), out_dir=tmp_path / "straight")
    assert _rows(run / "metrics.jsonl") == _rows(tmp_path / "straight" / "metrics.jsonl")
    assert (run / "losses.csv").read_bytes() == (tmp_path / "straight" / "losses.csv").read_bytes()
    payload = [(d / "checkpoint.eqx").read_bytes().partition(b"\n")[2] for d in (run, tmp_path / "straight")]
    assert payload[0] == payload[1]


def test_in_a_sweep_a_full_disk_stops_the_jobs_it_hits_and_the_sweep_goes_on(tmpfs, caplog):
    """The engine as every launcher runs a sweep's jobs (``refuse="skip"``): each lane that cannot
    write gets its error line and no result (its objective is the worst), and nothing raises."""
    from backprop_lab.runs._engine import RunSpec, run_experiments

    over = (*TINY[:2], "data.n_samples=200", "epochs=60", *TINY[3:])
    tmpfs.remount("size=64k")
    specs = [
        RunSpec(build_experiment(cfg_of(*over, f"seed={seed}")), tmpfs.path / str(seed), name=f"#{seed}")
        for seed in (0, 1)
    ]
    assert run_experiments(specs, refuse="skip") == [None, None]
    lines = [r.getMessage() for r in caplog.records if "no space" in r.getMessage()]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    for spec in specs:
        summary = spec.out / "summary.json"
        assert not summary.exists() or json.loads(summary.read_text())["status"] == "failed"


def test_a_state_serialised_once_is_the_checkpoint_written_from_the_state(tmp_path):
    """The last and the best checkpoint of one state share one serialisation: the file written
    from it is, byte for byte, the file written from the state, and loads back to the state."""
    import jax
    import numpy as np

    from backprop_lab.files._checkpoint import load_checkpoint, save_checkpoint, serialise

    exp = build_experiment(cfg_of(*TINY))
    tree = (exp.model, exp.optimizer.init(exp.model))
    meta = {"config": {"seed": 0}}
    save_checkpoint(tmp_path / "a.eqx", tree, step=3, epoch=1, meta=meta)
    save_checkpoint(tmp_path / "b.eqx", tree, step=3, epoch=1, meta=meta, payload=serialise(tree))
    assert (tmp_path / "a.eqx").read_bytes() == (tmp_path / "b.eqx").read_bytes()
    back, header = load_checkpoint(tmp_path / "b.eqx", tree)
    assert header["step"] == 3
    for x, y in zip(jax.tree.leaves(back), jax.tree.leaves(tree)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_directory_holds_one_apps_run(tmp_path, capsys):
    """A compare's directory refuses a train run (its summary.json would be overwritten), through
    the apps' own callbacks and the run engine's lock; a mark that records no app (written before
    marks recorded one) is taken as before."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from backprop_lab.files._claim import MARKER, claim
    from backprop_lab.files._rundir import RunDir
    from helpers.train_app import CONF

    out = tmp_path / "compared"

    def callback(app: str):  # the app's run_dir callback as its config sets it up
        with initialize_config_dir(config_dir=CONF, version_base="1.3", job_name=app):
            cfg = compose(app, overrides=[f"hydra.run.dir={out}"], return_hydra_config=True)
        return instantiate(cfg.hydra.callbacks.run_dir), cfg

    made, cfg = callback("compare")
    made.on_run_start(config=cfg)
    (out / "summary.json").write_text('{"kind": "compare"}\n')
    before = _tree(out)
    train, cfg = callback("train")
    with pytest.raises(SystemExit) as info:
        train.on_run_start(config=cfg)
    (line,) = capsys.readouterr().err.splitlines()
    assert info.value.code == 2 and line.startswith("backprop-lab train: "), line
    assert "holds a compare run" in line and "choose another hydra.run.dir for this train run" in line
    with pytest.raises(RunDirError, match="holds a compare run"):
        RunDir(out, app="train").lock()
    assert _tree(out) == before
    old = tmp_path / "old"
    old.mkdir()
    (old / MARKER).write_text('{"kind": "run", "id": "0"}\n')
    assert claim(old, "hydra.run.dir", app="train") == {"kind": "run", "id": "0"}
