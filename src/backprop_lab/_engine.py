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

import dataclasses
import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from . import _plots
from ._checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ._experiment import Experiment, result_config
from ._resume import resume_point
from ._signals import Interrupted, RunInterrupted, Signals
from ._rundir import CHECKPOINT, GRAD_PLOT, PLOT, SUMMARY, RunDir, RunDirError, finite_or_none, write_json
from ._trackers import Tracker, make_tracker
from ._early_stopping import EarlyStopping
from ._evaluation import is_one_hot
from ._sharding import agree, plan, process_index
from ._sweep import keep_where, measure_lanes, run_lanes, stack_lanes

log = logging.getLogger("backprop_lab.run")

#: Default of ``divergence_factor``: a loss this many times the first is divergence.
DIVERGENCE_FACTOR = 1e4


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
class _Lane:
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
    stopper: EarlyStopping = dataclasses.field(default_factory=EarlyStopping)

    @property
    def exp(self) -> Experiment:
        return self.spec.exp

    def say(self, level: int, msg: str, *args) -> None:
        log.log(level, "%s" + msg, f"[{self.spec.name}] " if self.spec.name else "", *args)
        if self.spec.log_file is not None and self.writer:
            line = f"[{time.strftime('%Y-%m-%d %H:%M:%S')}][{log.name}][{logging.getLevelName(level)}] - "
            with open(self.spec.log_file, "a") as f:
                f.write(line + (msg % args if args else msg) + "\n")

    def append(self, first_step: int, losses, records: list[dict]) -> None:
        """Every step's loss and the evaluation records, to the files and the tracker."""
        if not self.writer:
            return
        if len(losses):
            self.dir.append_losses(first_step, losses)
            self.tracker.log_losses(first_step, [float(v) for v in losses])
        if records:
            self.dir.append_records(records)
            for rec in records:
                self.tracker.log_record(rec)


def _check_lanes(specs: Sequence[RunSpec]) -> None:
    def shape(e: Experiment):
        return (e.model.sizes, e.model.activation, e.model.output_activation, e.loss, e.grad,
                e.epochs, e.batch_size, e.data.x_train.shape, e.data.x_test.shape,
                str(e.model.weights[0].dtype), e.config.get("log_every", 1),
                e.config.get("divergence_factor", DIVERGENCE_FACTOR),
                e.config.get("diagnostics", False), jax.tree.structure(e.optimizer.init(e.model)))

    first = shape(specs[0].exp)
    for s in specs[1:]:
        if shape(s.exp) != first:
            raise ValueError("lanes of one program must differ only in array values "
                             "(learning rate, seed); group the runs by everything else")


_START, _RESUME, _KEEP, _REFUSED = range(4)


def _open(lane: _Lane, resume: bool) -> int:
    """Lock and inspect the lane's directory (process 0 only); return what to do."""
    lane.dir.lock()
    point = resume_point(lane.dir, lane.exp, resume)
    if point.message:
        lane.say(logging.INFO, "%s", point.message)
    if point.action == "resume":
        lane.model, lane.opt_state = point.model, point.opt_state
        lane.epoch, lane.initial_loss = point.epoch, point.initial_loss
    return {"start": _START, "resume": _RESUME, "keep": _KEEP}[point.action]


def _follow(lane: _Lane, action: int) -> None:
    """Another process's lane: take the state process 0 decided on (it reads, never writes)."""
    if action == _RESUME:
        like = (lane.exp.model, lane.exp.optimizer.init(lane.exp.model))
        (lane.model, lane.opt_state), header = load_checkpoint(lane.dir / CHECKPOINT, like)
        lane.epoch, lane.initial_loss = header["epoch"], header["meta"].get("initial_loss")


def _open_all(lanes: list[_Lane], resume: bool, refuse: str) -> list[int]:
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


def _start(lanes: list[_Lane]) -> None:
    """Fresh lanes: config files and the initial state."""
    for lane in lanes:
        if lane.writer:
            lane.dir.write_config(lane.spec.config_files)
        lane.model, lane.opt_state = lane.exp.model, lane.exp.optimizer.init(lane.exp.model)


def _data(lanes, attr):
    arrays = [np.asarray(getattr(l.exp.data, attr)) for l in lanes]
    if all(a is arrays[0] or np.array_equal(a, arrays[0]) for a in arrays):
        return jnp.asarray(arrays[0])
    return jnp.asarray(np.stack(arrays))


def _record(lane: _Lane, m: dict, i: int, epoch_loss, wall: float) -> dict:
    exp = lane.exp
    rec = {"epoch": lane.epoch, "step": lane.epoch * exp.steps_per_epoch,
           "train_loss": finite_or_none(m["train_loss"][i]),
           "epoch_loss": None if epoch_loss is None else finite_or_none(epoch_loss),
           "test_loss": finite_or_none(m["test_loss"][i]),
           "test_accuracy": float(m["test_accuracy"][i]) if exp.data.n_classes is not None else None,
           "wall_time": round(wall, 4)}
    for key in ("grad_norms", "bias_grad_norms", "mean_abs_delta"):
        if key in m:
            rec[key] = [finite_or_none(v) for v in m[key][i]]
    return rec


def _save(lane: _Lane) -> None:
    if not lane.writer:
        return
    exp = lane.exp
    meta = {"config": result_config(exp.config), "epochs": exp.epochs, "initial_loss": lane.initial_loss,
            "architecture": {"sizes": list(exp.model.sizes), "activation": exp.model.activation,
                             "output_activation": exp.model.output_activation,
                             "bias": exp.model.biases[0] is not None,
                             "dtype": str(exp.model.weights[0].dtype)}}
    save_checkpoint(lane.dir / CHECKPOINT, (lane.model, lane.opt_state),
                    step=lane.epoch * exp.steps_per_epoch, epoch=lane.epoch, meta=meta)


def _train(lanes: list[_Lane], signals: Signals, t_run: float) -> list[float]:
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
    models = place.put_lanes(stack_lanes([l.model for l in padded]))
    opts = place.put_lanes(stack_lanes([l.opt_state for l in padded]))
    measure = dict(loss=base.loss, diagnostics=bool(cfg.get("diagnostics", False)),
                   one_hot=is_one_hot(np.asarray(base.data.y_test)))
    alive = np.array([l.status == "running" for l in lanes])
    if lanes[0].epoch == 0:
        m = place.gather(measure_lanes(models, x, y, x_test, y_test, **measure))
        for i, lane in enumerate(lanes):
            lane.initial_loss = finite_or_none(m["train_loss"][i])
            rec = _record(lane, m, i, None, time.perf_counter() - t_run)
            lane.append(0, [], [rec])
            lane.stopper.update(rec)  # the untrained network is the first value to beat
    seconds = []
    epoch = lanes[0].epoch
    while epoch < base.epochs and alive.any() and signals.received is None:
        n_epochs = min(log_every, base.epochs - epoch)
        t0 = time.perf_counter()
        new_models, new_opts, losses = run_lanes(
            models, opts, x, y, keys, epoch * spe, loss=base.loss, optimizer=base.optimizer,
            steps=n_epochs * spe, batch_size=None if bs == n else bs, grad=base.grad,
            batch_sharding=place.batch)
        m = place.gather(measure_lanes(new_models, x, y, x_test, y_test, **measure))
        losses = place.gather(losses)
        seconds.append(time.perf_counter() - t0)
        ok = alive.copy()
        for i, lane in enumerate(lanes):
            if alive[i] and _diverged(lane, losses[i], bool(m["finite"][i]), factor, epoch * spe):
                ok[i] = False
        mask = place.put_lanes(np.concatenate([ok, np.zeros(place.pad, bool)]))
        models, opts = keep_where(mask, new_models, models), keep_where(mask, new_opts, opts)
        host_models, host_opts = place.gather((models, opts))
        epoch += n_epochs
        for i, lane in enumerate(lanes):
            if not ok[i]:
                continue
            lane.epoch = epoch
            lane.model = jax.tree.map(lambda leaf: leaf[i], host_models)
            lane.opt_state = jax.tree.map(lambda leaf: leaf[i], host_opts)
            rec = _record(lane, m, i, losses[i, -spe:].mean(), time.perf_counter() - t_run)
            lane.append((epoch - n_epochs) * spe, losses[i], [rec])
            _save(lane)
            if lane.stopper.update(rec) and epoch < base.epochs:
                ok[i], lane.status = False, "stopped_early"
                lane.say(logging.INFO, "stopping early at epoch %d: %s has not improved on %.6g for %d "
                         "evaluations", epoch, lane.stopper.metric, lane.stopper.best, lane.stopper.patience)
        alive = ok
        if signals.received is None and alive.any():
            _progress(lanes, alive, epoch)
    for i, lane in enumerate(lanes):
        if alive[i]:
            lane.status = "completed" if lane.epoch >= lane.exp.epochs else "interrupted"
    return seconds


def _diverged(lane: _Lane, losses: np.ndarray, finite: bool, factor: float | None, first: int) -> bool:
    """Whether a lane's chunk diverged; if so, record it and keep its last good state."""
    limit = np.inf if factor is None or lane.initial_loss is None else factor * lane.initial_loss
    bad = np.flatnonzero(~np.isfinite(losses) | (losses > limit))
    if not bad.size and finite:
        return False
    at = int(bad[0]) if bad.size else losses.shape[0] - 1
    value = losses[at]
    lane.status, lane.diverged_at = "diverged", first + at
    lane.note = ("parameters not finite" if not bad.size else
                 f"loss {value:.4g} is not finite" if not np.isfinite(value) else
                 f"loss {value:.4g} > {factor:g} x the first loss {lane.initial_loss:.4g}")
    lane.append(first, losses[:at + 1], [])
    if not (lane.dir / CHECKPOINT).exists():
        _save(lane)  # the initial state is the last good one
    lane.say(logging.WARNING, "diverged at step %d (%s); results hold the last good state, epoch %d, "
             "step %d", lane.diverged_at, lane.note, lane.epoch, lane.epoch * lane.exp.steps_per_epoch)
    return True


def _progress(lanes, alive, epoch):
    if len(lanes) == 1:
        rec = lanes[0].dir.records()[-1]
        acc = "" if rec["test_accuracy"] is None else f"  test accuracy {rec['test_accuracy']:.4f}"
        lanes[0].say(logging.INFO, "epoch %d/%d  step %d  train loss %.6g%s", epoch,
                     lanes[0].exp.epochs, rec["step"], rec["train_loss"] or float("nan"), acc)
    else:
        log.info("epoch %d/%d: %d of %d lanes running", epoch, lanes[0].exp.epochs, int(alive.sum()),
                 len(lanes))


def _report(lane: _Lane, summary: dict) -> None:
    """The run's last log line: what happened, what the results hold, where they are."""
    acc = summary["test_accuracy"]
    state = (f"train loss {summary['final_train_loss']:.6g}" if summary["final_train_loss"] is not None
             else "no finite train loss") + ("" if acc is None else f", test accuracy {acc:.4f}")
    if lane.status == "diverged":
        what = (f"diverged at step {lane.diverged_at}; kept the last good state, step "
                f"{summary['steps']}: {state}")
    elif lane.status == "interrupted":
        what = f"interrupted at step {summary['steps']}: {state}; resume=true continues it"
    elif lane.status == "stopped_early":
        what = f"stopped early after {summary['steps']} steps: {state}"
    else:
        what = f"completed {summary['steps']} steps: {state}"
    lane.say(logging.INFO if lane.status in ("completed", "stopped_early") else logging.WARNING,
             "%s; results in %s",
             what, lane.dir.path)


def _finish(lane: _Lane, seconds: list[float], wall: float, extra: dict, painter: "_Painter") -> dict:
    from ._apps import grad_agreement
    from ._environment import environment

    exp = lane.exp
    records = lane.dir.records()
    last = records[-1] if records else {}
    x, y = jnp.asarray(exp.data.x_train), jnp.asarray(exp.data.y_train)
    timed = seconds[1:] if len(seconds) > 1 else seconds
    steps_timed = sum(timed) and len(timed) * exp.config.get("log_every", 1) * exp.steps_per_epoch
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
        "samples_per_second": steps_timed * exp.batch_size / sum(timed) if sum(timed) > 0 else None,
        "wall_time": wall,
        "first_chunk_seconds": seconds[0] if seconds else None,
        "grad": exp.grad,
        "batch_size": exp.batch_size,
        "devices": lane.devices,
        "processes": jax.process_count(),
        "grad_agreement": {"start": grad_agreement(exp.model, x, y, exp.loss),
                           "end": grad_agreement(lane.model, x, y, exp.loss)},
        "output_dir": str(lane.dir.path),
        "environment": environment(),
        **extra,
    }
    if not lane.writer:
        return summary
    write_json(lane.dir / SUMMARY, summary)
    lane.tracker.finish(summary)
    title = (f"{exp.data.name}: {list(exp.model.sizes)} {exp.model.activation}, "
             f"{exp.config['optimizer']['name']} lr {exp.lr:g}, grad {exp.grad}")
    painter.draw(records, lane.dir.losses(), lane.dir.path, title)
    return summary


def _draw(records: list[dict], losses: list, folder: str, title: str) -> None:
    _plots.loss_curve(records, losses, Path(folder) / PLOT, title)
    _plots.grad_norms(records, Path(folder) / GRAD_PLOT, title)


def _quiet_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine decides what an interrupt does


def _warm() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (a worker's first plot then costs what the others do)


class _Painter:
    """Draws each lane's plots: here for a few lanes; for many, in two worker processes
    started with the run (their start overlaps training), since plotting is the costliest
    part of finishing a lane."""

    POOL_LANES = 8

    def __init__(self, lanes: int):
        self.pool, self.futures = None, []
        if lanes >= self.POOL_LANES:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_quiet_worker)
            self.futures = [self.pool.submit(_warm) for _ in range(2)]

    def draw(self, *args) -> None:
        if self.pool is None:
            _draw(*args)
        else:
            self.futures.append(self.pool.submit(_draw, *args))

    def close(self) -> None:
        if self.pool is not None:
            for f in self.futures:
                try:
                    f.result()
                except Exception as err:  # a plot is not worth losing the sweep's results
                    log.warning("a plot could not be drawn: %s", err)
            self.pool.shutdown()


def run_experiments(specs: Sequence[RunSpec], *, resume: bool = False, refuse: str = "raise",
                    **extra) -> list[dict | None]:
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
    lanes = [_Lane(s, RunDir(s.out, dir_key)) for s in specs]
    results = {}
    try:
        actions = _open_all(lanes, resume, refuse)
        runnable = [l for l, a in zip(lanes, actions) if a in (_START, _RESUME)]
        for lane, action in zip(lanes, actions):
            if action == _KEEP:
                results[id(lane)] = lane.dir.summary()
        for lane in runnable:
            for note in lane.exp.notes:
                lane.say(logging.INFO, "%s", note)
            lane.stopper = EarlyStopping.from_config(lane.exp.config.get("early_stopping"))
            if lane.epoch > 0:
                lane.stopper.replay(lane.dir.records())
            lane.tracker = make_tracker(lane.exp.config, lane.dir.path) if lane.writer else Tracker(lane.dir.path)
            lane.tracker.start(lane.exp.config)
        _start([l for l in runnable if l.epoch == 0])
        painter = _Painter(len(runnable) if process_index() == 0 else 0)
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
        for lane in runnable:
            if lane.status == "running":
                lane.status = "interrupted"
            summary = _finish(lane, seconds, wall, {"lanes": len(specs), **extra}, painter)
            results[id(lane)] = summary
            _report(lane, summary)
        painter.close()
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
        for lane in lanes:
            lane.dir.unlock()
    return [results.get(id(l)) for l in lanes]
