"""Whether a run may start or continue in a directory, and from where.

A directory that holds a run is never written over without ``resume=true``;
with it, only the same run continues: the checkpoint's header records the
config that decides the result (all but ``epochs``, ``log_every``, paths and
logging), and a difference is refused naming the key, the old and the new
value. ``epochs`` may grow. A finished (or diverged) run is left as it is.

The checkpoint must be this directory's run's (the run id in its header is the
one in the directory's mark), of the network the config builds, and at a step
the run's schedule reaches (``epoch`` × steps per epoch, ``epoch`` no more than
the run's). The metrics and losses written after it by a run that was stopped
are cut back only when the files' first bytes are what the checkpoint recorded.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ..files._checkpoint import load_checkpoint, read_header
from ..files._rundir import CHECKPOINT, RunDir, RunDirError
from ._config import result_config
from ._experiment import Experiment
from ._lane import architecture


@dataclasses.dataclass
class ResumePoint:
    """What to do in a run directory.

    Attributes:
        action: "start" (afresh), "resume" (from the checkpoint) or "keep"
            (the run is finished; leave it as it is).
        message: a line for the log, or "".
        model, opt_state, epoch, initial_loss: the state to resume from.
        header: the checkpoint's header, when resuming.
    """

    action: str
    message: str = ""
    model: Any = None
    opt_state: Any = None
    epoch: int = 0
    initial_loss: float | None = None
    header: dict | None = None


def _first_difference(key: str, old: Any, new: Any) -> tuple[str, Any, Any] | None:
    if repr(old) == repr(new):
        return None
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            found = _first_difference(f"{key}.{k}" if key else str(k), old.get(k), new.get(k))
            if found:
                return found
    return key, old, new


def _check_belongs(d: RunDir, exp: Experiment, header: dict) -> None:
    """Refuse a checkpoint that is not this directory's run's, or not of this run's network and
    schedule (whatever its checksum says: a header can be rewritten with a valid one)."""
    meta, path = header["meta"], d / CHECKPOINT
    if meta.get("run") != d.run_id:
        raise RunDirError(
            f"resume=true refused: {path} belongs to another run (run id {meta.get('run')!r}, "
            f"this directory's is {d.run_id!r}); start a new run elsewhere"
        )
    diff = _first_difference("architecture", meta.get("architecture"), architecture(exp))
    if diff:
        raise RunDirError(
            f"resume=true refused: {path} holds a network of {diff[0]}={diff[1]!r}, the config "
            f"builds {diff[2]!r}; resume with the config the run was started with"
        )
    epochs = meta.get("epochs")
    spe = exp.steps_per_epoch
    if (
        not isinstance(epochs, int)
        or not header["epoch"] <= epochs
        or header["step"] != header["epoch"] * spe
    ):
        raise RunDirError(
            f"resume=true refused: {path} is at epoch {header['epoch']}, step {header['step']}, "
            f"which a run of {epochs!r} epochs of {spe} steps does not reach; "
            "it was not written by this run: start a new run elsewhere"
        )


def check_data(meta: dict, exp: Experiment, d: RunDir) -> None:
    """Refuse to resume on a data file whose content changed since the run began (the
    checkpoint records its SHA-256; a checkpoint without one is not checked)."""
    recorded, now = meta.get("data_sha256"), exp.data.sha256
    if recorded is not None and recorded != now:
        raise RunDirError(
            f"resume=true refused: the data file {exp.config['data'].get('path')!r} changed since "
            f"the run in {d.path} began (SHA-256 {str(recorded)[:12]}… then, {str(now)[:12]}… now); "
            "restore it, or start a new run elsewhere"
        )


def _check_same_run(d: RunDir, exp: Experiment, header: dict) -> None:
    """Refuse a resume that would change the run of the checkpoint ``header``: its config, the
    run it belongs to, its data, or fewer epochs."""
    meta = header["meta"]
    diff = _first_difference("", meta.get("config", {}), result_config(exp.config))
    if diff:
        raise RunDirError(
            f"resume=true refused: {diff[0]} was {diff[1]!r} in the run in {d.path}, "
            f"now {diff[2]!r}; resume with the same config, or start a new run elsewhere"
        )
    _check_belongs(d, exp, header)
    check_data(meta, exp, d)
    old_epochs = meta.get("epochs", header["epoch"])
    if exp.epochs < old_epochs:
        raise RunDirError(
            f"resume=true refused: epochs={exp.epochs} is below the {old_epochs} the run "
            f"in {d.path} was started with; epochs may only grow"
        )


def resume_point(d: RunDir, exp: Experiment, resume: bool) -> ResumePoint:
    """Decide how ``exp`` may use directory ``d`` (already locked by the caller).

    Raises:
        RunDirError: the directory holds a run and ``resume`` is false, or
            resuming would change the run (the message names the key).
        CheckpointError: the checkpoint is corrupt or does not fit.
    """
    if not resume:
        if d.holds_run():
            raise RunDirError(
                f"{d.path} already holds a run; pass resume=true to continue it, "
                f"or choose another {d.dir_key}"
            )
        return ResumePoint("start")
    if not (d / CHECKPOINT).exists():
        if d.holds_run():
            raise RunDirError(
                f"{d.path} holds metrics but no checkpoint to resume from; "
                f"delete the directory or choose another {d.dir_key}"
            )
        return ResumePoint("start", f"resume=true but {d.path} holds no run yet: starting afresh")
    header = read_header(d / CHECKPOINT)
    meta = header["meta"]
    _check_same_run(d, exp, header)
    summary = d.summary() or {}
    if summary.get("status") == "diverged":
        return ResumePoint(
            "keep", f"{d.path} diverged at step {summary.get('diverged_at_step')}; it is not continued"
        )
    like = (exp.model, exp.optimizer.init(exp.model))
    (model, opt_state), _ = load_checkpoint(d / CHECKPOINT, like)
    if summary.get("status") == "stopped_early" or (
        header["epoch"] >= exp.epochs and summary.get("status") == "completed"
    ):
        return ResumePoint(
            "keep", f"{d.path} is complete at epoch {header['epoch']}; its results are left as they are"
        )
    d.cut_to(meta.get("files"))
    return ResumePoint(
        "resume",
        f"resuming {d.path} at epoch {header['epoch']} (step {header['step']})",
        model,
        opt_state,
        header["epoch"],
        meta.get("initial_loss"),
        header,
    )


def wall_before(header: dict) -> float:
    """The seconds a resumed run had trained when its checkpoint was written (its record's
    ``wall_time``; 0 for a checkpoint that does not say), so that its times go on from there."""
    wall = header.get("meta", {}).get("wall_time")
    return float(wall) if isinstance(wall, (int, float)) and math.isfinite(wall) and wall >= 0 else 0.0
