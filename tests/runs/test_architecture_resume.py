"""A lane of an architecture sweep resumed apart from the lanes that set its program's padded
shape: it is laid out as the whole program was, so it resumes to the uninterrupted sweep bit
for bit (the expectation: the same sweep never stopped, its files byte for byte)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from backprop_lab.runs._engine import RunSpec, run_experiments
from backprop_lab.runs._experiment import build_experiment
from helpers.train_app import cfg_of

BASE = ("data=moons", "data.n_samples=200", "batch_size=50", "log_every=1")
# lane 0, the deepest and widest, sets the padded shape; lane 1 is the one left behind
LANES = (
    ("model.sizes=[2,16,16,2]", "model.activation=relu", "optimizer.lr=0.1"),
    ("model.sizes=[2,8,2]", "model.activation=tanh", "optimizer.lr=0.3"),
    ("model.sizes=[2,8,2]", "model.activation=tanh", "optimizer.lr=0.01"),
)


def _sweep(root: Path, epochs: int, resume: bool = False) -> None:
    specs = [
        RunSpec(build_experiment(cfg_of(*BASE, *lane, f"epochs={epochs}")), root / str(i))
        for i, lane in enumerate(LANES)
    ]
    run_experiments(specs, resume=resume, refuse="skip")


def _rows(path: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k != "wall_time"}
        for line in path.read_text().splitlines()
    ]


def _state(run: Path) -> bytes:
    return (run / "checkpoint.eqx").read_bytes().partition(b"\n")[2]


def test_a_lane_behind_the_lanes_that_set_the_padding_resumes_bit_for_bit(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    _sweep(straight, epochs=4)
    _sweep(killed, epochs=1)  # lane 1 as a kill -9 at epoch 1 leaves it ...
    for lane in ("0", "2"):  # ... the others finished: lane 1 resumes in a program of its own
        shutil.rmtree(killed / lane)
        shutil.copytree(straight / lane, killed / lane)
    for summary in killed.glob("*/summary.json"):
        summary.unlink()

    _sweep(killed, epochs=4, resume=True)
    for lane in ("0", "1", "2"):
        assert json.loads((killed / lane / "summary.json").read_text())["status"] == "completed"
        assert _rows(killed / lane / "metrics.jsonl") == _rows(straight / lane / "metrics.jsonl"), lane
        assert _state(killed / lane) == _state(straight / lane), f"lane {lane}"
