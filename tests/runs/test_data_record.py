"""What a run records of its data file: the path, absolute, so the run loads from anywhere, and
the file's SHA-256, which a resume checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from backprop_lab import evaluate_run, load_run
from backprop_lab.files._rundir import RunDirError
from helpers.train_app import app, cfg_of

pytestmark = pytest.mark.slow


def _csv(path: Path, flip: int | None = None) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    labels = (x[:, 0] > 0).astype(int)
    if flip is not None:
        labels[flip] ^= 1
    path.write_text("a,b,label\n" + "".join(f"{a},{b},{c}\n" for (a, b), c in zip(x.tolist(), labels)))


def test_relative_data_path_is_recorded_absolute_and_the_hash_guards_resume(tmp_path, monkeypatch) -> None:
    launch, elsewhere, run = tmp_path / "launch", tmp_path / "elsewhere", tmp_path / "run"
    launch.mkdir(), elsewhere.mkdir()
    _csv(launch / "d.csv")
    monkeypatch.chdir(launch)
    overrides = ("data=file", "data.path=d.csv", "data.target=label", "model.sizes=[2,4,2]", "batch_size=10")
    summary = app.train(cfg_of(*overrides, "epochs=1"), out_dir=run)
    assert summary["data_sha256"] == hashlib.sha256((launch / "d.csv").read_bytes()).hexdigest()
    recorded = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["data"]["path"]
    assert recorded == str(launch / "d.csv")

    monkeypatch.chdir(elsewhere)  # the run's record names the file from anywhere
    assert load_run(run).config["data"]["path"] == str(launch / "d.csv")
    assert evaluate_run(run)["n_train"] == 30

    monkeypatch.chdir(launch)
    _csv(launch / "d.csv", flip=3)  # one label changed
    with pytest.raises(RunDirError, match=r"resume=true refused: the data file .* changed since the run"):
        app.train(cfg_of(*overrides, "epochs=2", "resume=true"), out_dir=run)
    _csv(launch / "d.csv")  # restored: the run continues
    assert app.train(cfg_of(*overrides, "epochs=2", "resume=true"), out_dir=run)["epochs"] == 2
