"""Whether a run may start or continue in a directory, and from where.

A directory that holds a run is never written over without ``resume=true``;
with it, only the same run continues: the checkpoint's header records the
config that decides the result (all but ``epochs``, ``log_every``, paths and
logging), and a difference is refused naming the key, the old and the new
value. ``epochs`` may grow. A finished (or diverged) run is left as it is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..files._checkpoint import load_checkpoint, read_header
from ..files._rundir import CHECKPOINT, RunDir, RunDirError
from ._experiment import Experiment, result_config


@dataclasses.dataclass
class ResumePoint:
    """What to do in a run directory.

    Attributes:
        action: "start" (afresh), "resume" (from the checkpoint) or "keep"
            (the run is finished; leave it as it is).
        message: a line for the log, or "".
        model, opt_state, epoch, initial_loss: the state to resume from.
    """

    action: str
    message: str = ""
    model: Any = None
    opt_state: Any = None
    epoch: int = 0
    initial_loss: float | None = None


def _first_difference(key: str, old: Any, new: Any) -> tuple[str, Any, Any] | None:
    if repr(old) == repr(new):
        return None
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            found = _first_difference(f"{key}.{k}" if key else str(k), old.get(k), new.get(k))
            if found:
                return found
    return key, old, new


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
    meta = header.get("meta", {})
    diff = _first_difference("", meta.get("config", {}), result_config(exp.config))
    if diff:
        raise RunDirError(
            f"resume=true refused: {diff[0]} was {diff[1]!r} in the run in {d.path}, "
            f"now {diff[2]!r}; resume with the same config, or start a new run elsewhere"
        )
    check_data(meta, exp, d)
    old_epochs = meta.get("epochs", header["epoch"])
    if exp.epochs < old_epochs:
        raise RunDirError(
            f"resume=true refused: epochs={exp.epochs} is below the {old_epochs} the run "
            f"in {d.path} was started with; epochs may only grow"
        )
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
    d.cut_after(header["step"])
    return ResumePoint(
        "resume",
        f"resuming {d.path} at epoch {header['epoch']} (step {header['step']})",
        model,
        opt_state,
        header["epoch"],
        meta.get("initial_loss"),
    )
