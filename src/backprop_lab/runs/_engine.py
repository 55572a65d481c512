"""The run engine: one or more training runs (lanes) as one compiled program, with their files.

A single run is one lane; a vectorized sweep is many lanes that differ only in
array values (learning rate, seed). Both go through :func:`run_experiments`:

1. each lane's directory is locked and checked: a directory holding a run is
   refused unless ``resume=true``, and a resume continues only the same run
   (the checkpoint's config must match, ``epochs`` may grow);
2. the lanes train chunk by chunk, ``log_every`` epochs per compiled call of
   the vmapped scan; after each chunk every lane's step losses go to
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
import numpy as np

from ..checks._evaluation import is_one_hot
from ..files._checkpoint import CheckpointError, load_checkpoint
from ..files._rundir import CHECKPOINT, PLOT, RunDir, RunDirError, finite_or_none
from ..plots._worker import Painter
from ..trackers._registry import Tracker, make_tracker
from ..training._early_stopping import EarlyStopping
from ..training._lanes import keep_where, measure_lanes, run_lanes
from ..training._sharding import agree, plan, process_index
from ._experiment import Experiment, result_config
from ._lane import Finishing, Lane, RunSpec, finish, plot_title, record, report, save
from ._resume import resume_point
from ._signals import Interrupted, RunInterrupted, Signals

__all__ = ["DIVERGENCE_FACTOR", "RunInterrupted", "RunSpec", "run_experiments"]

log = logging.getLogger("backprop_lab.run")

#: Default of ``divergence_factor``: a loss this many times the first is divergence.
DIVERGENCE_FACTOR = 1e4


def _check_lanes(specs: Sequence[RunSpec]) -> None:
    def shape(e: Experiment):
        return (
            e.model.sizes,
            e.model.activation,
            e.model.output_activation,
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
            jax.tree.structure(e.optimizer.init(e.model)),
        )

    if len(specs) < 2:
        return  # (building the shapes initialises an optimizer state: not free for one lane)
    first = shape(specs[0].exp)
    for s in specs[1:]:
        if shape(s.exp) != first:
            raise ValueError(
                "lanes of one program must differ only in array values "
                "(learning rate, seed); group the runs by everything else"
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
    return {"start": _START, "resume": _RESUME, "keep": _KEEP}[point.action]


def _follow(lane: Lane, action: int) -> None:
    """Another process's lane: take the state process 0 decided on (it reads, never writes)."""
    if action == _RESUME:
        like = (lane.exp.model, lane.exp.optimizer.init(lane.exp.model))
        (lane.model, lane.opt_state), header = load_checkpoint(lane.dir / CHECKPOINT, like)
        lane.epoch, lane.initial_loss = header["epoch"], header["meta"].get("initial_loss")


def _open_all(lanes: list[Lane], resume: bool, refuse: str) -> list[int]:
    """Every lane's action, decided by process 0 and agreed by all processes."""
    actions, errors = [], {}
    for lane in lanes:
        lane.writer = process_index() == 0
        if not lane.writer:
            actions.append(_START)
            continue
        try:
            actions.append(_open(lane, resume))
        except (RunDirError, CheckpointError) as err:
            lane.dir.unlock()
            actions.append(_REFUSED)
            errors[id(lane)] = err
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


def _data(lanes, attr) -> np.ndarray:
    """One data array shared by the lanes (n, width), or one per lane (lanes, n, width)."""
    arrays = [np.asarray(getattr(l.exp.data, attr)) for l in lanes]
    if all(a is arrays[0] or np.array_equal(a, arrays[0]) for a in arrays):
        return arrays[0]
    return np.stack(arrays)


def _train(lanes: list[Lane], signals: Signals, t_run: float) -> list[float]:
    """Train lanes that start at the same epoch together; return the seconds of each chunk."""
    base = lanes[0].exp
    cfg = base.config
    log_every, spe, bs, n = cfg.get("log_every", 1), base.steps_per_epoch, base.batch_size, base.data.n_train
    factor = cfg.get("divergence_factor", DIVERGENCE_FACTOR)
    place, note = plan(len(lanes), bs, cfg.get("devices"))
    if note:
        lanes[0].say(logging.INFO, "%s", note)
    for lane in lanes:
        lane.devices = place.devices
    padded = lanes + [lanes[0]] * place.pad
    data = {a: _data(padded, a) for a in ("x_train", "y_train", "x_test", "y_test")}
    x, y, x_test, y_test = (place.put_lanes(v) if v.ndim == 3 else place.replicate(v) for v in data.values())
    keys = place.put_lanes(np.stack([np.asarray(l.exp.key) for l in padded]))
    # stacked on the host (the placement copies from there): no program to build for it
    models, opts = (
        place.put_lanes(jax.tree.map(lambda *leaves: np.stack(leaves), *trees))
        for trees in ([l.model for l in padded], [l.opt_state for l in padded])
    )
    measure = dict(
        loss=base.loss,
        diagnostics=bool(cfg.get("diagnostics", False)),
        one_hot=is_one_hot(np.asarray(base.data.y_test)),
    )
    alive = np.array([l.status == "running" for l in lanes])
    if lanes[0].epoch == 0:
        m = place.gather(measure_lanes(models, x, y, x_test, y_test, **measure))
        for i, lane in enumerate(lanes):
            lane.initial_loss = finite_or_none(m["train_loss"][i])
            rec = record(lane, m, i, None, time.perf_counter() - t_run)
            lane.append(0, [], [rec])
            lane.stopper.update(rec)  # the untrained network is the first value to beat
    seconds = []
    epoch = lanes[0].epoch
    while epoch < base.epochs and alive.any() and signals.received is None:
        n_epochs = min(log_every, base.epochs - epoch)
        t0 = time.perf_counter()
        new_models, new_opts, losses = run_lanes(
            models,
            opts,
            x,
            y,
            keys,
            epoch * spe,
            loss=base.loss,
            optimizer=base.optimizer,
            steps=n_epochs * spe,
            batch_size=None if bs == n else bs,
            grad=base.grad,
            batch_sharding=place.batch,
        )
        m = place.gather(measure_lanes(new_models, x, y, x_test, y_test, **measure))
        losses = place.gather(losses)
        seconds.append(time.perf_counter() - t0)
        ok = alive.copy()
        for i, lane in enumerate(lanes):
            if alive[i] and _diverged(lane, losses[i], bool(m["finite"][i]), factor, epoch * spe):
                ok[i] = False
        if ok.all():  # (keep_where would return the new states unchanged)
            models, opts = new_models, new_opts
        else:
            mask = place.put_lanes(np.concatenate([ok, np.zeros(place.pad, bool)]))
            models, opts = keep_where(mask, (new_models, new_opts), (models, opts))
        host_models, host_opts = place.gather((models, opts))
        epoch += n_epochs
        for i, lane in enumerate(lanes):
            if not ok[i]:
                continue
            lane.epoch = epoch
            lane.model = jax.tree.map(lambda leaf: leaf[i], host_models)
            lane.opt_state = jax.tree.map(lambda leaf: leaf[i], host_opts)
            rec = record(lane, m, i, losses[i, -spe:].mean(), time.perf_counter() - t_run)
            lane.append((epoch - n_epochs) * spe, losses[i], [rec])
            save(lane)
            if lane.stopper.update(rec) and epoch < base.epochs:
                ok[i], lane.status = False, "stopped_early"
                lane.say(
                    logging.INFO,
                    "stopping early at epoch %d: %s has not improved on %.6g for %d evaluations",
                    epoch,
                    lane.stopper.metric,
                    lane.stopper.best,
                    lane.stopper.patience,
                )
        alive = ok
        if signals.received is None and alive.any():
            _progress(lanes, alive, epoch)
    for i, lane in enumerate(lanes):
        if alive[i]:
            lane.status = "completed" if lane.epoch >= lane.exp.epochs else "interrupted"
    return seconds


def _diverged(lane: Lane, losses: np.ndarray, finite: bool, factor: float | None, first: int) -> bool:
    """Whether a lane's chunk diverged; if so, record it and keep its last good state."""
    limit = np.inf if factor is None or lane.initial_loss is None else factor * lane.initial_loss
    bad = np.flatnonzero(~np.isfinite(losses) | (losses > limit))
    if not bad.size and finite:
        return False
    at = int(bad[0]) if bad.size else losses.shape[0] - 1
    value = losses[at]
    lane.status, lane.diverged_at = "diverged", first + at
    lane.note = (
        "parameters not finite"
        if not bad.size
        else f"loss {value:.4g} is not finite"
        if not np.isfinite(value)
        else f"loss {value:.4g} > {factor:g} x the first loss {lane.initial_loss:.4g}"
    )
    lane.append(first, losses[: at + 1], [])
    if not (lane.dir / CHECKPOINT).exists():
        save(lane)  # the initial state is the last good one
    lane.say(
        logging.WARNING,
        "diverged at step %d (%s); results hold the last good state, epoch %d, step %d",
        lane.diverged_at,
        lane.note,
        lane.epoch,
        lane.epoch * lane.exp.steps_per_epoch,
    )
    return True


def _progress(lanes, alive, epoch):
    if len(lanes) == 1:
        rec = lanes[0].dir.records()[-1]
        acc = "" if rec["test_accuracy"] is None else f"  test accuracy {rec['test_accuracy']:.4f}"
        lanes[0].say(
            logging.INFO,
            "epoch %d/%d  step %d  train loss %.6g%s",
            epoch,
            lanes[0].exp.epochs,
            rec["step"],
            rec["train_loss"] or float("nan"),
            acc,
        )
    else:
        log.info(
            "epoch %d/%d: %d of %d lanes running", epoch, lanes[0].exp.epochs, int(alive.sum()), len(lanes)
        )


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
    """
    if not specs:
        return []
    _check_lanes(specs)
    dir_key = "hydra.run.dir" if len(specs) == 1 and refuse == "raise" else "hydra.sweep.dir"
    lanes = [Lane(s, RunDir(s.out, dir_key)) for s in specs]
    results = {}
    painter = None
    try:
        actions = _open_all(lanes, resume, refuse)
        runnable = [l for l, a in zip(lanes, actions) if a in (_START, _RESUME)]
        painter = Painter(len(runnable) if process_index() == 0 else 0)  # its workers start now
        for lane, action in zip(lanes, actions):
            if action == _KEEP:
                results[id(lane)] = lane.dir.summary()
                if lane.writer and not (lane.dir / PLOT).exists():  # a run killed before its plot
                    painter.draw(lane.dir.path, plot_title(lane.exp))
        for lane in runnable:
            for note in lane.exp.notes:
                lane.say(logging.INFO, "%s", note)
            lane.stopper = EarlyStopping.from_config(lane.exp.config.get("early_stopping"))
            if lane.epoch > 0:
                lane.stopper.replay(lane.dir.records())
            lane.tracker = (
                make_tracker(lane.exp.config, lane.dir.path) if lane.writer else Tracker(lane.dir.path)
            )
            # the keys that decide the result: a resume may change the others (epochs), which a
            # tracker run that continues (MLflow's params are write-once) must not see change
            lane.tracker.start(result_config(lane.exp.config))
        _start([l for l in runnable if l.epoch == 0])
        t_run = time.perf_counter()
        seconds: list[float] = []
        with Signals() as signals:
            try:
                for epoch in sorted({l.epoch for l in runnable}):
                    group = [l for l in runnable if l.epoch == epoch]
                    seconds += _train(group, signals, t_run)
            except Interrupted:
                pass
        wall = time.perf_counter() - t_run
        shared = Finishing()
        for lane in runnable:
            if lane.status == "running":
                lane.status = "interrupted"
            summary = finish(lane, seconds, wall, {"lanes": len(specs), **extra}, painter, shared)
            results[id(lane)] = summary
            report(lane, summary)
        painter.close()  # every plot drawn before the run returns
        if signals.received is not None:
            raise RunInterrupted(signals.received)
    except Exception as err:
        for lane in lanes:  # a tracker run is closed, whatever ended the run
            if lane.tracker is not None and id(lane) not in results and lane.writer:
                try:
                    lane.tracker.finish({"status": "failed", "error": str(err)})
                except Exception:
                    pass
        raise
    finally:
        if painter is not None:
            painter.close()
        for lane in lanes:
            lane.dir.unlock()
    return [results.get(id(l)) for l in lanes]
