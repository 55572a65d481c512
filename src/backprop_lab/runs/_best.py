"""The best checkpoint: with ``checkpoint.keep`` holding ``best``, each lane keeps, besides its
last state, the state of its best evaluation so far by the optimized metric
(``checkpoint_best.eqx``, whose header says which metric and value). A resumed lane takes
its best value from that file, and writes it from the state it resumes from when the run
was stopped between writing its last checkpoint and its best one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config._objective import METRICS
from ..files._checkpoint import CheckpointError, read_header, save_checkpoint
from ..files._rundir import BEST

if TYPE_CHECKING:
    from ._lane import Lane

#: The record field each optimized metric (a summary field) is measured by.
RECORD_FIELDS = {
    "final_test_loss": "test_loss",
    "final_train_loss": "train_loss",
    "test_accuracy": "test_accuracy",
}


def best_metric(config: dict) -> tuple[str, bool] | None:
    """The record field the best checkpoint is chosen by and whether larger is better, or None
    when ``checkpoint.keep`` does not hold ``best`` (``optimized_metric: null``: the test loss)."""
    if "best" not in ((config.get("checkpoint") or {}).get("keep") or ()):
        return None
    metric = config.get("optimized_metric") or "final_test_loss"
    return RECORD_FIELDS[metric], METRICS[metric] == "maximize"


def keep_best(lane: Lane, rec: dict, meta: dict, payload: bytes | None = None) -> None:
    """The lane's state as its best checkpoint too, when ``rec`` beats the best so far
    (``payload``: the state serialised, when the caller has it)."""
    chosen = best_metric(lane.exp.config)
    value = None if chosen is None else rec.get(chosen[0])
    if chosen is None or value is None:
        return
    if lane.best is None or (value > lane.best if chosen[1] else value < lane.best):
        lane.best = value
        step = lane.epoch * lane.exp.steps_per_epoch
        best = {"metric": chosen[0], "value": value, "step": step}
        tree = (lane.model, lane.opt_state)
        save_checkpoint(
            lane.dir / BEST, tree, step=step, epoch=lane.epoch, meta={**meta, "best": best}, payload=payload
        )


def restore_best(lane: Lane, header: dict) -> None:
    """A resumed lane's best value so far, from its best checkpoint; when the run was stopped
    after the last checkpoint (``header``) but before it wrote the best one, that state's."""
    if (chosen := best_metric(lane.exp.config)) is None or not lane.writer:
        return
    try:
        best = read_header(lane.dir / BEST)["meta"]
        if best.get("run") == lane.dir.run_id and (best.get("best") or {}).get("metric") == chosen[0]:
            value = best["best"].get("value")
            lane.best = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    except (CheckpointError, KeyError, TypeError, AttributeError):  # none yet, or not this run's
        lane.best = None
    last = next((r for r in reversed(lane.dir.records()) if r.get("step") == header["step"]), None)
    if last is not None and header["step"] > 0:
        keep_best(lane, last, header["meta"])
