"""One lane of the run engine: a run's state, its directory, and what it writes there.

A lane is one training run inside a (possibly vmapped) program. It appends
every step's loss and each evaluation record to its files and its tracker,
checkpoints its state with a header that records its architecture, the
config that decides its result, the run it belongs to and the length of its
appended files (and the best state so far, :mod:`._best`), and at the end writes summary.json (the one
place a training summary is made) and hands its plots to the painter.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from ..files._checkpoint import save_checkpoint, serialise
from ..files._rundir import CHECKPOINT, SUMMARY, RunDir, finite_or_none, write_json
from ..trackers._registry import Tracker
from ..training._early_stopping import EarlyStopping
from ._best import keep_best
from ._config import result_config
from ._experiment import Experiment

if TYPE_CHECKING:
    from ..plots._worker import Painter

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
        "wall_time": round(wall, 4),
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


def report(lane: Lane, summary: dict) -> None:
    """The run's last log line: what happened, what the results hold, where they are."""
    acc = summary["test_accuracy"]
    state = (
        f"train loss {summary['final_train_loss']:.6g}"
        if summary["final_train_loss"] is not None
        else "no finite train loss"
    ) + ("" if acc is None else f", test accuracy {acc:.4f}")
    if lane.status == "diverged":
        what = (
            f"diverged at step {lane.diverged_at}; kept the last good state, step {summary['steps']}: {state}"
        )
    elif lane.status == "interrupted":
        what = f"interrupted at step {summary['steps']}: {state}; resume=true continues it"
    elif lane.status == "stopped_early":
        what = f"stopped early after {summary['steps']} steps: {state}"
    else:
        what = f"completed {summary['steps']} steps: {state}"
    lane.say(
        logging.INFO if lane.status in ("completed", "stopped_early") else logging.WARNING,
        "%s; results in %s",
        what,
        lane.dir.path,
    )


class Finishing:
    """What finishing the lanes of one program shares: the environment (measured once) and the
    lanes' gradient-agreement checks, at their start and end, all from one call of one
    compiled program (``checks.lane_agreements``)."""

    def __init__(self, lanes: list[Lane]) -> None:
        from ._environment import environment

        self.environment = environment()
        self._lanes = [l for l in lanes if l.model is not None]
        self._agreements: dict[int, dict] | None = None

    def agreement(self, lane: Lane) -> dict:
        """The lane's ``grad_agreement`` fields of its initial and its final network, as
        ``{"start": ..., "end": ...}``; every lane's are checked the first time one is asked for."""
        if self._agreements is None:
            self._agreements = _agreements(self._lanes)
        return self._agreements[id(lane)]


def _agreements(lanes: list[Lane]) -> dict[int, dict]:
    """Each lane's start and end agreement: the initial networks and then the final ones as
    the lanes of one program (padded and masked as training pads them when they differ in
    architecture), each on its first ``AGREEMENT_ROWS`` training rows."""
    from ..checks._agreement import AGREEMENT_ROWS, lane_agreements
    from ..training._masked import stack_networks

    nets = [l.exp.model for l in lanes] + [l.model for l in lanes]
    models, masks = stack_networks([jax.tree.map(np.asarray, m) for m in nets])
    x, y = (
        np.stack([np.asarray(getattr(l.exp.data, a))[:AGREEMENT_ROWS] for l in lanes * 2])
        for a in ("x_train", "y_train")
    )
    fields = lane_agreements(models, masks, x, y, lanes[0].exp.loss)
    n = len(lanes)
    return {id(l): {"start": fields[i], "end": fields[n + i]} for i, l in enumerate(lanes)}


def record_failure(lane: Lane, err: Exception, say: bool = True) -> None:
    """A lane the filesystem stopped: its error logged (unless ``say`` is false: the caller
    reports it), and ``status: "failed"`` in its summary.json when the directory still takes that."""
    lane.status = "failed"
    if say:
        lane.say(logging.ERROR, "%s", err)
    try:
        write_json(lane.dir / SUMMARY, {"kind": "train", "status": "failed", "error": str(err)})
    except OSError:
        pass  # the log line is the record


def plot_title(exp: Experiment) -> str:
    """A run's plot title: data, network, optimizer and learning rate, gradient."""
    return (
        f"{exp.data.name}: {list(exp.model.sizes)} {exp.model.activation}, "
        f"{exp.config['optimizer']['name']} lr {exp.lr:g}, grad {exp.grad}"
    )


def plot_scale(exp: Experiment) -> str:
    """A run's ``plot.scale`` (``auto`` when its config has no plot group)."""
    return (exp.config.get("plot") or {}).get("scale", "auto")


def finish(
    lane: Lane, seconds: list[float], wall: float, extra: dict, painter: Painter, shared: Finishing
) -> dict:
    """The lane's plots (handed to the painter first, so they are drawn while the rest is
    made), its summary.json (returned, and written by process 0) and its tracker's end."""
    exp = lane.exp
    records = lane.dir.records()
    last = records[-1] if records else {}
    if lane.writer:
        painter.draw(lane.dir.path, plot_title(exp), plot_scale(exp))
    timed = seconds[1:] if len(seconds) > 1 else seconds
    steps_timed = sum(timed) and len(timed) * exp.config.get("log_every", 1) * exp.steps_per_epoch
    lanes = extra.get("lanes", 1)  # the times are the program's: its lanes train together
    summary = {
        "kind": "train",
        "status": lane.status,
        "steps": lane.epoch * exp.steps_per_epoch,
        "epochs": lane.epoch,
        "diverged_at_step": lane.diverged_at,
        "divergence": lane.note or None,
        "final_train_loss": last.get("train_loss"),
        "final_test_loss": last.get("test_loss"),
        "test_accuracy": last.get("test_accuracy"),
        "samples_per_second": lanes * steps_timed * exp.batch_size / sum(timed) if sum(timed) > 0 else None,
        "wall_time": wall,
        "timing": "program" if lanes > 1 else "run",
        "first_chunk_seconds": seconds[0] if seconds else None,
        "grad": exp.grad,
        "batch_size": exp.batch_size,
        "devices": lane.devices,
        "processes": jax.process_count(),
        "grad_agreement": shared.agreement(lane),
        "output_dir": str(lane.dir.path),
        **data_record(exp),
        "environment": shared.environment,
        **extra,
    }
    if not lane.writer:
        return summary
    write_json(lane.dir / SUMMARY, summary)
    assert lane.tracker is not None, "a lane's tracker starts before it trains"
    lane.tracker.finish(summary)
    return summary


def stopped(lane: Lane) -> dict:
    """The short summary.json of a lane a signal stopped before it was finished (process 0
    writes it): its status and how far it got; ``resume=true`` continues it."""
    summary = {
        "kind": "train",
        "status": "interrupted",
        "steps": lane.epoch * lane.exp.steps_per_epoch,
        "epochs": lane.epoch,
        "output_dir": str(lane.dir.path),
    }
    if lane.writer:
        write_json(lane.dir / SUMMARY, summary)
    return summary
