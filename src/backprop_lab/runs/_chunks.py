"""Training one group of lanes (runs that start at the same epoch) chunk by chunk.

The lanes' data, keys and states are placed on their devices once; then each
chunk of ``log_every`` epochs is one call of the vmapped scan, after which the
lanes that diverged keep their last good state and stop, and each lane that
went on records its losses, its evaluation and its checkpoint, and asks its
early stopping whether to go on.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import NamedTuple

import jax
import numpy as np
import optax

from ..checks._evaluation import is_one_hot
from ..files._rundir import CHECKPOINT, finite_or_none
from ..nn._network import MLP
from ..nn._padding import LaneMask
from ..training._lanes import keep_where, run_lanes
from ..training._masked import lane_state, stack_states
from ..training._measure import measure_lanes
from ..training._sharding import Placement, plan
from ._experiment import Experiment
from ._lane import Lane, record, save
from ._progress import Progress
from ._signals import Signals

log = logging.getLogger("backprop_lab.run")

#: Default of ``divergence_factor``: a loss this many times the first is divergence.
DIVERGENCE_FACTOR = 1e4


def _data(lanes, attr) -> np.ndarray:
    """One data array shared by the lanes (n, width), or one per lane (lanes, n, width)."""
    arrays = [np.asarray(getattr(l.exp.data, attr)) for l in lanes]
    if all(a is arrays[0] or np.array_equal(a, arrays[0]) for a in arrays):
        return arrays[0]
    return np.stack(arrays)


@dataclasses.dataclass
class _Program:
    """A group of lanes laid out for their compiled program: the placement, the data and keys
    on the devices, the lanes' states stacked (lane 0 repeated to fill the placement), and the
    settings every lane shares."""

    exp: Experiment
    place: Placement
    x: jax.Array
    y: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    keys: jax.Array
    models: MLP  # the lanes' networks stacked: each array has a leading lanes axis
    opts: optax.OptState
    measure: dict
    masks: tuple[LaneMask, LaneMask] | None = None  # lanes of several architectures: (host, devices)


def _program(lanes: list[Lane], width: int, like: list[MLP] | None = None) -> _Program:
    """Place the lanes' data, keys and states on the devices the plan gives them, in a program
    at least ``width`` lanes wide (lane 0 repeated), laid out for the networks ``like``
    (default: the lanes' own; see ``stack_states``)."""
    base = lanes[0].exp
    place, note = plan(max(len(lanes), width), base.batch_size, base.config.get("devices"))
    place = dataclasses.replace(place, lanes=len(lanes), pad=place.lanes + place.pad - len(lanes))
    if note:
        lanes[0].say(logging.INFO, "%s", note)
    for lane in lanes:
        lane.devices = place.devices
    padded = lanes + [lanes[0]] * place.pad
    data = {a: _data(padded, a) for a in ("x_train", "y_train", "x_test", "y_test")}
    x, y, x_test, y_test = (place.put_lanes(v) if v.ndim == 3 else place.replicate(v) for v in data.values())
    keys = place.put_lanes(np.stack([np.asarray(l.exp.key) for l in padded]))
    # stacked on the host (the placement copies from there): no program to build for it; lanes
    # of several architectures padded to one shape, with their masks
    models, opts, mask = stack_states([l.model for l in padded], [l.opt_state for l in padded], like)
    models, opts = place.put_lanes(models), place.put_lanes(opts)
    measure = dict(
        loss=base.loss,
        diagnostics=bool(base.config.get("diagnostics", False)),
        one_hot=is_one_hot(np.asarray(base.data.y_test)),
    )
    masks = None if mask is None else (mask, place.put_lanes(mask))
    return _Program(base, place, x, y, x_test, y_test, keys, models, opts, measure, masks)


def _measure(prog: _Program, models) -> dict:
    """Each lane's evaluation of ``models`` (train and test loss, accuracy, ...), on the host."""
    mask = None if prog.masks is None else prog.masks[1]
    return prog.place.gather(
        measure_lanes(models, prog.x, prog.y, prog.x_test, prog.y_test, **prog.measure, mask=mask)
    )


def _record_start(lanes: list[Lane], prog: _Program, t_run: float) -> None:
    """The step-0 record of lanes at epoch 0: the untrained network, the first value to beat.
    Its checkpoint comes first, so a run stopped at any moment from here on has one to resume
    from; a run resumed at step 0 (stopped before its first chunk ended) starts over."""
    m = _measure(prog, prog.models)
    for i, lane in enumerate(lanes):
        lane.initial_loss = finite_or_none(m["train_loss"][i])
        rec = record(lane, m, i, None, time.perf_counter() - t_run)
        save(lane)
        lane.append(0, [], [rec])
        lane.stopper.update(rec)


class _Chunk(NamedTuple):
    """A chunk of epochs ``start`` to ``end``: every lane's new state (stacked, on the devices),
    its evaluation and every step's loss (lanes, steps), the last two on the host."""

    start: int
    end: int
    models: MLP
    opts: optax.OptState
    m: dict
    losses: np.ndarray


def _run_chunk(prog: _Program, epoch: int, n_epochs: int) -> _Chunk:
    """``n_epochs`` epochs of every lane from ``epoch``."""
    exp = prog.exp
    models, opts, losses = run_lanes(
        prog.models,
        prog.opts,
        prog.x,
        prog.y,
        prog.keys,
        epoch * exp.steps_per_epoch,
        loss=exp.loss,
        optimizer=exp.optimizer,
        steps=n_epochs * exp.steps_per_epoch,
        batch_size=None if exp.batch_size == exp.data.n_train else exp.batch_size,
        grad=exp.grad,
        batch_sharding=prog.place.batch,
        mask=None if prog.masks is None else prog.masks[1],
    )
    return _Chunk(epoch, epoch + n_epochs, models, opts, _measure(prog, models), prog.place.gather(losses))


def _keep_good(lanes: list[Lane], prog: _Program, alive: np.ndarray, chunk: _Chunk) -> np.ndarray:
    """The lanes whose chunk did not diverge take their new states; the others keep their last
    good ones and stop. Returns which lanes go on."""
    factor = prog.exp.config.get("divergence_factor", DIVERGENCE_FACTOR)
    first = chunk.start * prog.exp.steps_per_epoch
    ok = alive.copy()
    for i, lane in enumerate(lanes):
        if alive[i] and _diverged(lane, chunk.losses[i], bool(chunk.m["finite"][i]), factor, first):
            ok[i] = False
    if ok.all():  # (keep_where would return the new states unchanged)
        prog.models, prog.opts = chunk.models, chunk.opts
    else:
        mask = prog.place.put_lanes(np.concatenate([ok, np.zeros(prog.place.pad, bool)]))
        prog.models, prog.opts = keep_where(mask, (chunk.models, chunk.opts), (prog.models, prog.opts))
    return ok


def _record_chunk(lanes: list[Lane], prog: _Program, ok: np.ndarray, chunk: _Chunk, t_run: float) -> None:
    """Each lane that went on through the chunk: its state, losses, record and checkpoint, and
    its early stopping (which may stop it: ``ok`` is updated)."""
    spe = prog.exp.steps_per_epoch
    host_models, host_opts = prog.place.gather((prog.models, prog.opts))
    for i, lane in enumerate(lanes):
        if not ok[i]:
            continue
        lane.epoch = chunk.end
        lane.model, lane.opt_state = lane_state(host_models, host_opts, prog.masks and prog.masks[0], i)
        rec = record(lane, chunk.m, i, chunk.losses[i, -spe:].mean(), time.perf_counter() - t_run)
        lane.append(chunk.start * spe, chunk.losses[i], [rec])
        save(lane, rec)
        if lane.stopper.update(rec) and lane.epoch < lane.exp.epochs:
            ok[i], lane.status = False, "stopped_early"
            lane.say(
                logging.INFO,
                "stopping early at epoch %d: %s has not improved on %.6g for %d evaluations",
                lane.epoch,
                lane.stopper.metric,
                lane.stopper.best,
                lane.stopper.patience,
            )


def train_group(
    lanes: list[Lane], signals: Signals, t_run: float, width: int = 1, like: list[MLP] | None = None
) -> list[float]:
    """Train lanes that start at the same epoch together, in a program at least ``width`` lanes
    wide and laid out for the networks ``like`` (default: the lanes' own), chunk by chunk
    until the last epoch, the last lane stops or a signal comes; return the seconds of each
    chunk."""
    exp = lanes[0].exp
    log_every = exp.config.get("log_every", 1)
    if signals.received is not None:
        return []
    prog = _program(lanes, width, like)
    if lanes[0].epoch == 0:
        _record_start(lanes, prog, t_run)
    alive = np.array([l.status == "running" for l in lanes])
    seconds = []
    epoch = lanes[0].epoch
    platform = prog.place.mesh.devices.flat[0].platform
    with Progress(lanes, prog.place.devices, platform, writer=lanes[0].writer) as bar:
        while epoch < exp.epochs and alive.any() and signals.received is None:
            n_epochs = min(log_every, exp.epochs - epoch)
            t0 = time.perf_counter()
            chunk = _run_chunk(prog, epoch, n_epochs)
            seconds.append(time.perf_counter() - t0)
            alive = _keep_good(lanes, prog, alive, chunk)
            _record_chunk(lanes, prog, alive, chunk, t_run)
            epoch = chunk.end
            bar.update(epoch, chunk.m, alive)
            if signals.received is None and alive.any():
                _progress(lanes, alive, epoch, chunk.m)
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


def _progress(lanes: list[Lane], alive: np.ndarray, epoch: int, m: dict) -> None:
    """Each chunk's log line, from the chunk's evaluation ``m``: a single run's epoch line; for a
    program of several lanes one line in the log, and each running lane's epoch line in its
    own log file."""
    for i, lane in enumerate(lanes):
        if not alive[i]:
            continue
        acc = "" if lane.exp.data.n_classes is None else f"  test accuracy {float(m['test_accuracy'][i]):.4f}"
        loss = finite_or_none(m["train_loss"][i])
        args = (
            epoch,
            lane.exp.epochs,
            epoch * lane.exp.steps_per_epoch,
            np.nan if loss is None else loss,
            acc,
        )
        (lane.say if len(lanes) == 1 else lane.write_log)(
            logging.INFO, "epoch %d/%d  step %d  train loss %.6g%s", *args
        )
    if len(lanes) > 1:
        log.info(
            "epoch %d/%d: %d of %d lanes running", epoch, lanes[0].exp.epochs, int(alive.sum()), len(lanes)
        )
