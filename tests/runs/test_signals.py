"""Signals at any moment, kills, and resuming after them: the run contract's promise that an
interrupted run says so, exits 128 + n without a traceback, and resumes to the result of a
run that was never stopped.

The expectations are independent of the code under test: an uninterrupted run or sweep (its
files byte for byte), the signal's number, and the summary a stopped run must leave.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from backprop_lab.runs._engine import RunSpec, run_experiments
from backprop_lab.runs._experiment import build_experiment
from helpers.train_app import cfg_of

LANES = ("data=moons", "data.n_samples=200", "model.sizes=[2,8,2]", "batch_size=50", "log_every=1")
RATES = (0.01, 0.3, 0.1)


def _sweep(root: Path, epochs: int, resume: bool = False) -> None:
    """Three lanes (learning rates) of one vmapped program, as hydra/launcher=vmap runs them."""
    specs = [
        RunSpec(build_experiment(cfg_of(*LANES, f"epochs={epochs}", f"optimizer.lr={lr}")), root / str(i))
        for i, lr in enumerate(RATES)
    ]
    run_experiments(specs, resume=resume, refuse="skip")


def _rows(path: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k != "wall_time"}
        for line in path.read_text().splitlines()
    ]


def _state(run: Path) -> bytes:
    """The checkpoint's arrays and optimizer state (the header line apart: it holds paths)."""
    return (run / "checkpoint.eqx").read_bytes().partition(b"\n")[2]


def test_a_lane_five_epochs_behind_resumes_to_the_uninterrupted_sweep_bit_for_bit(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    _sweep(straight, epochs=8)
    # a sweep killed (kill -9: no summaries) with lane 1 five epochs behind the others, which
    # had checkpointed their last epoch: lane 1 as the sweep leaves it at epoch 3 ...
    _sweep(killed, epochs=3)
    for lane in ("0", "2"):  # ... the others as they were at epoch 8
        shutil.rmtree(killed / lane)
        shutil.copytree(straight / lane, killed / lane)
    for summary in killed.glob("*/summary.json"):
        summary.unlink()

    _sweep(killed, epochs=8, resume=True)
    for lane in ("0", "1", "2"):
        assert json.loads((killed / lane / "summary.json").read_text())["status"] == "completed"
        assert _rows(killed / lane / "metrics.jsonl") == _rows(straight / lane / "metrics.jsonl")
        assert _state(killed / lane) == _state(straight / lane), f"lane {lane}"
