"""The run engine: one or more training runs (lanes) as one compiled program, with their files.

A single run is one lane; a vectorized sweep is many lanes that differ only in
array values (learning rate, seed, numeric optimizer settings) and architecture
(hidden widths, depth, activation: padded to one shape, see ``training._masked``). Both go through :func:`run_experiments`:

1. each lane's directory is locked and checked: a directory holding a run is
   refused unless ``resume=true``, and a resume continues only the same run
   (the checkpoint's config must match, ``epochs`` may grow);
2. the lanes train chunk by chunk (:mod:`._chunks`), ``log_every`` epochs per
   compiled call of the vmapped scan; after each chunk every lane's step losses go to
   losses.csv, an evaluation record to metrics.jsonl, then its checkpoint;
3. a lane whose loss is not finite or exceeds ``divergence_factor`` times its
   first loss, or whose parameters are not finite, stops with its last good
   state (``status: "diverged"``); SIGINT/SIGTERM end the current chunk and
   stop every lane (``status: "interrupted"``, resumable);
4. each lane gets summary.json and its plots.

The metrics record at step 0 is taken before any update. ``train_loss`` in a
record is the loss of the network at that step on the whole training set (the
same measurement as ``test_loss``, so the two compare); ``epoch_loss`` is the
mean of the last epoch's minibatch losses, as they were seen during training.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import jax

from ..files._checkpoint import CheckpointError, load_checkpoint
from ..files._rundir import CHECKPOINT, PLOT, RunDir, RunDirError
from ..files._safe import os_error_line
from ..nn._network import MLP
from ..plots._worker import Painter
from ..trackers._registry import Tracker, make_tracker
from ..training._early_stopping import EarlyStopping
from ..training._sharding import agree, process_index
from ._best import restore_best
from ._chunks import DIVERGENCE_FACTOR, train_group
from ._config import result_config
from ._experiment import Experiment
from ._finish import (
    Finishing,
    close_trackers,
    finish,
    plot_scale,
    plot_title,
    record_failure,
    report,
    report_program,
    stopped,
)
from ._lane import Lane, RunSpec
from ._resume import resume_point, wall_before
from ._signals import Interrupted, RunInterrupted, Signals

__all__ = ["DIVERGENCE_FACTOR", "RunInterrupted", "RunSpec", "run_experiments"]

log = logging.getLogger("backprop_lab.run")


def _check_lanes(specs: Sequence[RunSpec]) -> None:
    def shape(e: Experiment):
        return (
            (e.model.sizes[0], e.model.sizes[-1]),  # widths, depth and activation may differ (padded)
            e.model.output_activation,
            e.model.biases[0] is not None,
            e.loss,
            e.grad,
            e.epochs,
            e.batch_size,
            e.data.x_train.shape,
            e.data.x_test.shape,
            str(e.model.weights[0].dtype),
            e.config.get("log_every", 1),
            e.config.get("divergence_factor", DIVERGENCE_FACTOR),
            e.config.get("diagnostics", False),
            jax.tree.structure(e.optimizer.init(e.model), is_leaf=lambda n: isinstance(n, MLP)),
        )

    if len(specs) < 2:
        return  # (building the shapes initialises an optimizer state: not free for one lane)
    first = shape(specs[0].exp)
    for s in specs[1:]:
        if shape(s.exp) != first:
            raise ValueError(
                "lanes of one program must differ only in array values (learning rate, seed, "
                "numeric optimizer settings) and architecture (hidden widths, depth, activation); "
                "group the runs by everything else"
            )


_START, _RESUME, _KEEP, _REFUSED = range(4)


def _open(lane: Lane, resume: bool) -> int:
    """Lock and inspect the lane's directory (process 0 only); return what to do."""
    lane.dir.lock()
    point = resume_point(lane.dir, lane.exp, resume)
    if point.message:
        lane.say(logging.INFO, "%s", point.message)
    if point.action == "resume":
        lane.model, lane.opt_state = point.model, point.opt_state
        lane.epoch, lane.initial_loss = point.epoch, point.initial_loss
        lane.wall_before = wall_before(point.header or {})
        restore_best(lane, point.header or {})
    return {"start": _START, "resume": _RESUME, "keep": _KEEP}[point.action]


def _follow(lane: Lane, action: int) -> None:
    """Another process's lane: take the state process 0 decided on (it reads, never writes)."""
    if action == _RESUME:
        like = (lane.exp.model, lane.exp.optimizer.init(lane.exp.model))
        (lane.model, lane.opt_state), header = load_checkpoint(lane.dir / CHECKPOINT, like)
        lane.epoch, lane.initial_loss = header["epoch"], header["meta"].get("initial_loss")
        lane.wall_before = wall_before(header)


def _open_all(lanes: list[Lane], resume: bool, refuse: str) -> list[int]:
    """Every lane's action, decided by process 0 and agreed by all processes."""
    actions: list[int] = []
    errors: dict[int, Exception] = {}
    for lane in lanes:
        lane.writer = process_index() == 0
        if not lane.writer:
            actions.append(_START)
            continue
        try:
            actions.append(_open(lane, resume))
        except (RunDirError, CheckpointError, OSError) as failure:
            refused = RunDirError(os_error_line(failure)) if isinstance(failure, OSError) else failure
            lane.dir.unlock()
            actions.append(_REFUSED)
            errors[id(lane)] = refused
    actions = agree(actions)
    for lane, action in zip(lanes, actions):
        if action == _REFUSED:
            err = errors.get(id(lane)) or RunDirError(f"{lane.dir.path}: refused by process 0 (see its log)")
            if refuse == "raise":
                raise err
            lane.say(logging.ERROR, "%s", err)
            lane.status = "refused"
        elif action == _KEEP:
            lane.status = "finished"
        elif not lane.writer:
            _follow(lane, action)
    return actions


def _start(lanes: list[Lane]) -> None:
    """Fresh lanes: config files and the initial state."""
    for lane in lanes:
        if lane.writer:
            lane.dir.write_config(lane.spec.config_files)
        lane.model, lane.opt_state = lane.exp.model, lane.exp.optimizer.init(lane.exp.model)


def _keep_finished(lanes: list[Lane], results: dict, painter: Painter) -> None:
    """Lanes found finished: their summary as it is, and their plots when the run was killed
    before it drew them."""
    for lane in lanes:
        results[id(lane)] = lane.dir.summary()
        if lane.writer and not (lane.dir / PLOT).exists():
            painter.draw(lane.dir.path, plot_title(lane.exp), plot_scale(lane.exp))


def _start_lanes(lanes: list[Lane]) -> None:
    """Each lane about to train: its notes logged, its early stopping (replayed on a resume)
    and its tracker started."""
    for lane in lanes:
        for note in lane.exp.notes:
            lane.say(logging.INFO, "%s", note)
        lane.stopper = EarlyStopping.from_config(lane.exp.config.get("early_stopping"))
        if lane.epoch > 0:
            lane.stopper.replay(lane.dir.records())
        lane.tracker = (
            make_tracker(lane.exp.config, lane.dir.path, lane.spec.config_files)
            if lane.writer
            else Tracker(lane.dir.path)
        )
        # the keys that decide the result: a resume may change the others (epochs), which a
        # tracker run that continues (MLflow's params are write-once) must not see change
        lane.tracker.start(result_config(lane.exp.config))


def _train_all(lanes: list[Lane], signals: Signals, program: list[Lane]) -> tuple[list[float], float]:
    """Train the lanes, in groups by the epoch they start from, until they end or a signal
    comes: the seconds of each chunk and the wall time. Each group's program is laid out as
    the one all of them started in (``program``: its lanes, finished ones too): as many lanes
    wide, its networks padded to the same shape with the same activations. A lane's numbers
    depend on its program's layout (XLA lays a one-lane or unpadded program out differently),
    so a resumed lane computes what it would have computed without the stop, bit for bit."""
    _start([l for l in lanes if l.epoch == 0])
    t_run = time.perf_counter()
    seconds: list[float] = []
    like = [l.exp.model for l in program]
    for epoch in sorted({l.epoch for l in lanes}):
        seconds += train_group([l for l in lanes if l.epoch == epoch], signals, t_run, len(program), like)
    return seconds, time.perf_counter() - t_run


def _finish_all(
    lanes: list[Lane], seconds: list[float], wall: float, extra: dict, painter: Painter, results: dict
) -> None:
    """Each lane's summary, plots and report; a lane that did not train (a signal came first)
    gets its short summary."""
    shared = None
    for lane in lanes:
        if lane.status == "running":
            lane.status = "interrupted"
        if not lane.dir.records():
            results[id(lane)] = stopped(lane) if lane.writer else None
            continue
        shared = shared or Finishing(lanes)
        results[id(lane)] = summary = finish(lane, seconds, wall, extra, painter, shared)
        report(lane, summary)


def _interrupted(lanes: list[Lane], actions: list[int], results: dict, signum: int) -> RunInterrupted:
    """A second signal: the trackers closed and the short summaries of the runs not finished;
    the error to raise."""
    close_trackers(lanes, results, "interrupted", str(RunInterrupted(signum)))
    for lane, action in zip(lanes, actions):
        if action in (_START, _RESUME) and id(lane) not in results and lane.writer:
            stopped(lane)
    return RunInterrupted(signum)


def _failed_write(err: OSError, runnable: list[Lane], results: dict, refuse: str) -> None:
    """A filesystem that refuses a write (read-only, full): one line, recorded in each lane not
    finished, and raised as a :class:`RunDirError` with ``refuse="raise"``; the files written
    before stay as they were, the checkpoint the last one written whole."""
    failed = RunDirError(f"{os_error_line(err)}; what was written before is kept")
    for lane in runnable:
        if id(lane) not in results and lane.writer:
            record_failure(lane, failed, say=refuse != "raise")  # raised: the caller says it
    if refuse == "raise":
        raise failed from None


def run_experiments(
    specs: Sequence[RunSpec], *, resume: bool = False, refuse: str = "raise", **extra
) -> list[dict | None]:
    """Run one or more experiments as lanes of one compiled program, each into its directory.

    Arguments:
        specs: the lanes; they may differ only in array values (learning rate,
            seed, data drawn by the seed), not in shapes or settings.
        resume: continue the runs found in the directories (the same runs only).
        refuse: what a lane whose directory cannot be used does: "raise" a
            :class:`RunDirError` (a single run), or "skip" it with an error line
            and leave the directory as it is (a sweep goes on).
        **extra: more summary fields (e.g. ``launcher``).

    Returns:
        Per lane, its summary (as written to summary.json), or None for a
        skipped lane. Lanes found already finished return their summary unchanged.

    Raises:
        RunDirError, CheckpointError: with ``refuse="raise"``.
        RunInterrupted: SIGINT, SIGTERM or SIGHUP came; the runs' files say
            ``status: "interrupted"`` and ``resume=true`` continues them.
    """
    if not specs:
        return []
    _check_lanes(specs)
    dir_key = "hydra.run.dir" if len(specs) == 1 and refuse == "raise" else "hydra.sweep.dir"
    lanes = [Lane(s, RunDir(s.out, dir_key, app="train")) for s in specs]
    results: dict[int, dict | None] = {}
    painter = None
    actions: list[int] = []
    runnable: list[Lane] = []
    with Signals() as signals:
        try:
            actions = _open_all(lanes, resume, refuse)
            runnable = [l for l, a in zip(lanes, actions) if a in (_START, _RESUME)]
            painter = Painter(len(runnable) if process_index() == 0 else 0)  # its workers start now
            _keep_finished([l for l, a in zip(lanes, actions) if a == _KEEP], results, painter)
            _start_lanes(runnable)
            seconds, wall = _train_all(runnable, signals, lanes)
            painter.stopping = signals.received is not None
            _finish_all(runnable, seconds, wall, {"lanes": len(specs), **extra}, painter, results)
            if len(runnable) > 1 and runnable[0].writer:
                report_program(len(runnable), results[id(runnable[0])], wall)
            painter.close()  # every plot drawn before the run returns
        except Interrupted as stop:  # a second signal: the runs' short summaries, then out
            if painter is not None:
                painter.stopping = True
            raise _interrupted(lanes, actions, results, stop.signum) from None
        except Exception as err:
            close_trackers(lanes, results, "failed", str(err))
            if not isinstance(err, OSError):
                raise
            _failed_write(err, runnable, results, refuse)
        finally:
            if painter is not None:
                painter.close()
            for lane in lanes:
                lane.dir.unlock()
    if signals.received is not None:
        raise RunInterrupted(signals.received)
    return [results.get(id(l)) for l in lanes]
