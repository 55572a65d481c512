"""One lane of the run engine: a run's state, its directory, and what it writes there.

A lane is one training run inside a (possibly vmapped) program. It appends
every step's loss and each evaluation record to its files and its tracker,
checkpoints its state with a header that records its architecture, the
config that decides its result, the run it belongs to and the length of its
appended files (and the best state so far, :mod:`._best`); at the end it writes
summary.json and hands its plots to the painter (:mod:`._finish`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..files._checkpoint import save_checkpoint, serialise
from ..files._rundir import CHECKPOINT, RunDir, finite_or_none
from ..trackers._registry import Tracker
from ..training._early_stopping import EarlyStopping
from ._best import keep_best
from ._config import result_config
from ._experiment import Experiment

if TYPE_CHECKING:
    pass

log = logging.getLogger("backprop_lab.run")


@dataclasses.dataclass
class RunSpec:
    """One lane to run: its experiment, its directory and the config files it records.

    Attributes:
        exp: the checked experiment (see ``build_experiment``).
        out: the run directory.
        config_files: ``.hydra/`` file name → YAML text, written when the run starts afresh.
        name: a short label for log lines (the job number in a sweep).
        log_file: a file that also receives this lane's log lines (a vmapped
            job's own log), or None.
    """

    exp: Experiment
    out: Path
    config_files: dict[str, str] = dataclasses.field(default_factory=dict)
    name: str = ""
    log_file: Path | None = None


@dataclasses.dataclass
class Lane:
    spec: RunSpec
    dir: RunDir
    epoch: int = 0
    initial_loss: float | None = None
    wall_before: float = 0.0  # seconds the run trained before it was resumed (its checkpoint's)
    status: str = "running"
    diverged_at: int | None = None
    note: str = ""
    model: object = None
    opt_state: object = None
    tracker: Tracker | None = None
    devices: int = 1
    writer: bool = True
    best: float | None = None
    stopper: EarlyStopping = dataclasses.field(default_factory=EarlyStopping)

    @property
    def exp(self) -> Experiment:
        return self.spec.exp

    def say(self, level: int, msg: str, *args) -> None:
        """A line in the log, named by the lane's job, and in the lane's own log file."""
        log.log(level, "%s" + msg, f"[{self.spec.name}] " if self.spec.name else "", *args)
        self.write_log(level, msg, *args)

    def write_log(self, level: int, msg: str, *args) -> None:
        """A line in the lane's own log file only (a vmapped job's), when it has one."""
        if self.spec.log_file is not None and self.writer:
            line = f"[{time.strftime('%Y-%m-%d %H:%M:%S')}][{log.name}][{logging.getLevelName(level)}] - "
            try:
                with open(self.spec.log_file, "a") as f:
                    f.write(line + (msg % args if args else msg) + "\n")
            except OSError:
                pass  # a directory that takes no more writes: the process's own log has the line

    def append(self, first_step: int, losses, records: list[dict]) -> None:
        """Every step's loss and the evaluation records, to the files and the tracker."""
        if not self.writer:
            return
        assert self.tracker is not None, "a lane's tracker starts before it trains"
        if len(losses):
            self.dir.append_losses(first_step, losses)
            self.tracker.log_losses(first_step, [float(v) for v in losses])
        if records:
            self.dir.append_records(records)
            for rec in records:
                self.tracker.log_record(rec)


def record(lane: Lane, m: dict, i: int, epoch_loss, wall: float) -> dict:
    """Lane ``i``'s metrics.jsonl record from the measurements ``m`` of all lanes."""
    exp = lane.exp
    rec: dict[str, Any] = {
        "epoch": lane.epoch,
        "step": lane.epoch * exp.steps_per_epoch,
        "train_loss": finite_or_none(m["train_loss"][i]),
        "epoch_loss": None if epoch_loss is None else finite_or_none(epoch_loss),
        "test_loss": finite_or_none(m["test_loss"][i]),
        "test_accuracy": float(m["test_accuracy"][i]) if exp.data.n_classes is not None else None,
        "wall_time": round(lane.wall_before + wall, 4),
    }
    real = m["real_layers"][i] if "real_layers" in m else None  # a padded lane: its own layers only
    for key in ("grad_norms", "bias_grad_norms", "mean_abs_delta"):
        if key in m:
            values = m[key][i] if real is None else m[key][i][real]
            rec[key] = [finite_or_none(v) for v in values]
    return rec


def data_record(exp: Experiment) -> dict:
    """What the run records of its data beyond the config: the file's SHA-256 (``data=file``),
    which a resume checks (:func:`._resume.check_data`)."""
    return {} if exp.data.sha256 is None else {"data_sha256": exp.data.sha256}


def architecture(exp: Experiment) -> dict:
    """The network a run trains, as its checkpoint's header records it."""
    return {
        "sizes": list(exp.model.sizes),
        "activation": exp.model.activation,
        "output_activation": exp.model.output_activation,
        "bias": exp.model.biases[0] is not None,
        "dtype": str(exp.model.weights[0].dtype),
    }


def architecture_of(model_cfg: dict, dtype: str) -> dict:
    """:func:`architecture` of the network a config's model group and dtype describe (a key
    the group leaves to the data, such as widths inferred from it, as None)."""
    sizes = model_cfg.get("sizes")
    return {
        "sizes": list(sizes) if isinstance(sizes, (list, tuple)) else None,
        "activation": model_cfg.get("activation"),
        "output_activation": model_cfg.get("output_activation"),
        "bias": model_cfg.get("bias", True),
        "dtype": dtype,
    }


def save(lane: Lane, rec: dict | None = None) -> None:
    """Checkpoint the lane's state at its epoch (process 0 only); and, when ``rec`` (the record
    of that state) is the best so far by :func:`best_metric`, as the best checkpoint too."""
    if not lane.writer:
        return
    exp = lane.exp
    meta = {
        "config": result_config(exp.config),
        "epochs": exp.epochs,
        "initial_loss": lane.initial_loss,
        "wall_time": lane.wall_before if rec is None else rec["wall_time"],
        **data_record(exp),
        "architecture": architecture(exp),
        "run": lane.dir.run_id,
        "files": lane.dir.extent(),
    }
    step = lane.epoch * exp.steps_per_epoch
    tree = (lane.model, lane.opt_state)
    payload = serialise(tree)  # once, for the last checkpoint and the best one
    save_checkpoint(lane.dir / CHECKPOINT, tree, step=step, epoch=lane.epoch, meta=meta, payload=payload)
    if rec is not None:
        keep_best(lane, rec, meta, payload)
