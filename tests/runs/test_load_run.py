"""Runs loaded back: the network and optimizer state a run ended with, its files, and its environment.

One tiny float64 run is trained through the training app; what ``load_run``
gives back is compared with the same run trained afresh by ``run_steps``, with
the loss of the loaded network on the training set against the run's last
record, and with the run's files read as they are.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import shutil
import subprocess
from pathlib import Path

import jax
import numpy as np
import pytest

import backprop_lab as bl
from backprop_lab.runs._experiment import ConfigError, build_experiment
from helpers.train_app import TINY, cfg_of, trained_run

CONFIG = (*TINY, "dtype=float64")
# Its tests share the module's trained run: one xdist worker runs them all (tests/conftest.py).
pytestmark = pytest.mark.xdist_group("load_run")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory, *CONFIG)


def _leaves_close(a, b, **tol) -> None:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tol)


def test_load_run_gives_back_the_network_and_optimizer_the_run_ended_with(trained):
    run = bl.load_run(trained)
    exp = build_experiment(cfg_of(*CONFIG))
    steps = exp.epochs * exp.steps_per_epoch
    model, opt_state, _ = bl.run_steps(
        exp.model,
        exp.optimizer.init(exp.model),
        exp.data.x_train,
        exp.data.y_train,
        exp.key,
        0,
        loss=exp.loss,
        optimizer=exp.optimizer,
        steps=steps,
        batch_size=exp.batch_size,
        grad=exp.grad,
    )
    assert (run.step, run.epoch) == (steps, exp.epochs)
    assert run.model.sizes == exp.model.sizes and run.model.activation == exp.model.activation
    _leaves_close(run.model, model, rtol=1e-10, atol=1e-12)
    _leaves_close(run.opt_state, opt_state, rtol=1e-10, atol=1e-12)


def test_the_loaded_network_measures_what_the_run_recorded(trained):
    run = bl.load_run(trained)
    exp = build_experiment(cfg_of(*CONFIG))
    last = run.records[-1]
    train_loss = bl.loss_value(run.model, exp.data.x_train, exp.data.y_train, exp.loss)
    assert float(train_loss) == pytest.approx(last["train_loss"], rel=1e-12)
    result = bl.evaluate_run(trained)
    assert result["step"] == last["step"] and result["data"] == "moons"
    assert result["train_loss"] == pytest.approx(last["train_loss"], rel=1e-12)
    assert result["test_loss"] == pytest.approx(last["test_loss"], rel=1e-12)
    assert result["test_accuracy"] == pytest.approx(last["test_accuracy"], abs=1e-12)
    assert result["n_train"] + result["n_test"] == 1000


def test_evaluate_run_on_another_data_set(trained):
    other = {"name": "moons", "n_samples": 400, "noise": 0.3, "test_fraction": 0.5, "one_hot": True}
    result = bl.evaluate_run(trained, other)
    data = bl.load_dataset("moons", seed=0, dtype=np.float64, n_samples=400, noise=0.3, test_fraction=0.5)
    model = bl.load_run(trained).model
    loss, acc = bl.evaluate(model, data.x_test, data.y_test, "cross_entropy")
    assert (result["n_train"], result["n_test"]) == (200, 200)
    assert result["test_loss"] == pytest.approx(float(loss), rel=1e-12)
    assert result["test_accuracy"] == pytest.approx(float(acc), abs=1e-12)
    with pytest.raises(ConfigError, match="model.sizes"):
        bl.evaluate_run(trained, {"name": "digits"})


def test_load_run_reads_the_run_files(trained):
    run = bl.load_run(trained)
    with open(trained / "losses.csv", newline="") as f:
        losses = [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]
    np.testing.assert_array_equal(run.losses, np.array(losses))
    assert list(run.records) == [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines()]
    assert run.summary == json.loads((trained / "summary.json").read_text())
    assert run.config["epochs"] == 3 and run.config["data"]["name"] == "moons"
    assert run.config["model"]["sizes"] == [2, 8, 2] and run.config["dtype"] == "float64"
    with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError is one
        run.step = 0  # frozen


def test_the_summary_records_its_environment(trained):
    env = json.loads((trained / "summary.json").read_text())["environment"]
    assert env["packages"]["jax"] == jax.__version__
    assert env["packages"]["backprop-lab"] == bl.__version__
    assert env["packages"]["optax"] == importlib.metadata.version("optax")
    assert env["jax_backend"] == jax.default_backend()
    assert env["device_kind"] == jax.devices()[0].device_kind
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    assert env["git"] == (
        None if head.returncode else {"commit": head.stdout.strip(), "dirty": env["git"]["dirty"]}
    )


def test_environment_outside_a_git_repository(tmp_path):
    env = bl.environment(cwd=tmp_path)
    assert env["git"] is None
    assert env["packages"]["equinox"] == importlib.metadata.version("equinox")


def test_a_checkpoint_alone_rebuilds_its_network(trained, tmp_path):
    shutil.copy(trained / "checkpoint.eqx", tmp_path / "checkpoint.eqx")
    model, opt_state, header = bl.load_checkpoint_state(tmp_path / "checkpoint.eqx")
    full = bl.load_run(trained)
    _leaves_close(model, full.model, rtol=0, atol=0)
    _leaves_close(opt_state, full.opt_state, rtol=0, atol=0)
    alone = bl.load_run(tmp_path)
    assert alone.summary is None and alone.records == () and alone.losses.shape == (0, 2)
    assert alone.config == header["meta"]["config"]


def test_missing_and_damaged_checkpoints_are_clear_errors(trained, tmp_path):
    with pytest.raises(bl.CheckpointError, match="does not exist"):
        bl.load_run(tmp_path / "nowhere")
    with pytest.raises(bl.CheckpointError, match="holds no checkpoint.eqx"):
        bl.load_run(tmp_path)
    raw = (trained / "checkpoint.eqx").read_bytes()
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "checkpoint.eqx").write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(bl.CheckpointError, match="corrupt"):
        bl.load_run(damaged)
    (damaged / "checkpoint.eqx").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(bl.CheckpointError, match="truncated"):
        bl.load_run(damaged)
    with jax.enable_x64(False):
        with pytest.raises(bl.CheckpointError, match="jax_enable_x64"):
            bl.load_run(trained)
