"""The end of a lane: its summary.json, its plots handed to the painter, its last log line.

A finished lane's summary is made here, the one place a training summary is made
(:func:`finish`), with its gradient-agreement checks shared by the program's lanes
(:class:`Finishing`); a lane a signal or the filesystem stopped gets a short one
(:func:`stopped`, :func:`record_failure`). Whatever ended the run, its trackers are
closed (:func:`close_trackers`); a program of several lanes logs its timing once
(:func:`report_program`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import jax
import numpy as np

from ..files._rundir import SUMMARY, write_json
from ._experiment import Experiment
from ._lane import Lane, data_record

if TYPE_CHECKING:
    from ..plots._worker import Painter

__all__ = [
    "Finishing",
    "close_trackers",
    "finish",
    "plot_scale",
    "plot_title",
    "record_failure",
    "report",
    "report_program",
    "stopped",
]

log = logging.getLogger("backprop_lab.run")


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
        "wall_time": lane.wall_before + wall,
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


def close_trackers(lanes: list[Lane], results: dict, status: str, error: str) -> None:
    """A tracker run is closed, whatever ended the run."""
    for lane in lanes:
        if lane.tracker is not None and id(lane) not in results and lane.writer:
            try:
                lane.tracker.finish({"status": status, "error": error})
            except Exception:
                pass


def report_program(lanes: int, summary: dict | None, wall: float) -> None:
    """The timing of a program of several lanes (``wall`` seconds), once: every lane's summary
    holds the same figures (``timing: "program"``), which are the program's, not a lane's."""
    if summary is None:
        return
    rate = summary.get("samples_per_second")
    log.info(
        "the program of %d lanes took %.3g s%s (each job's time and samples/s are the program's)",
        lanes,
        wall,
        "" if rate is None else f", {rate:.4g} samples/s over all lanes",
    )
