"""Vectorized sweeps: many learning rates and seeds of one architecture as one program.

Each lane of a sweep is an ordinary training run: its own initial network
(from its seed), its own minibatch order, its own learning rate. The lanes
differ only in array values, never in shapes or code, so ``jax.vmap`` turns N
runs into one compiled program. The learning rate lives in the optimizer state
(``optax.inject_hyperparams``, as :func:`make_optimizer` builds it), which is
what makes it a vmappable value rather than a compile-time constant.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

from ._network import MLP
from ._optimizers import Static, check_learning_rate
from ._training import _run_impl, check_train_args

Array = jax.Array


def stack_lanes(trees: Sequence) -> object:
    """Stack pytrees of equal structure along a new leading (lane) axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack_lanes(tree, n: int) -> list:
    """The inverse of :func:`stack_lanes`: a list of n pytrees."""
    return [jax.tree.map(lambda leaf: leaf[i], tree) for i in range(n)]


def with_learning_rate(opt_state, lr: Array):
    """An ``inject_hyperparams`` optimizer state with its learning rate replaced."""
    if not hasattr(opt_state, "hyperparams") or "learning_rate" not in opt_state.hyperparams:
        raise ValueError(
            "a sweep needs the learning rate in the optimizer state: build the optimizer with "
            "backprop_lab.make_optimizer(name, lr) or optax.inject_hyperparams(...)"
        )
    old = opt_state.hyperparams["learning_rate"]
    hyper = {**opt_state.hyperparams, "learning_rate": jnp.asarray(lr, old.dtype)}
    return opt_state._replace(hyperparams=hyper)


def init_lanes(models, optimizer: optax.GradientTransformation, learning_rates: Array):
    """Optimizer states for stacked models, lane i with ``learning_rates[i]``."""
    return jax.vmap(lambda m, lr: with_learning_rate(optimizer.init(m), lr))(models, learning_rates)


@functools.partial(
    jax.jit, static_argnames=("loss", "optimizer", "steps", "batch_size", "grad", "data_axis")
)
def _run_lanes(models, opt_states, x, y, keys, start, *, loss, optimizer, steps, batch_size, grad,
               data_axis):
    run = functools.partial(_run_impl, loss=loss, optimizer=optimizer, steps=steps,
                            batch_size=batch_size, grad=grad)
    return jax.vmap(run, in_axes=(0, 0, data_axis, data_axis, 0, None))(
        models, opt_states, x, y, keys, start
    )


def run_lanes(models, opt_states, x: Array, y: Array, keys: Array, start: int | Array = 0, *,
              loss: str, optimizer: optax.GradientTransformation, steps: int,
              batch_size: int | None = None, grad: str = "manual"):
    """:func:`run_steps` for every lane at once.

    Arguments:
        models, opt_states: stacked along a leading lane axis.
        x, y: shared data (n, in) / (n, out), or per lane (lanes, n, in) / (lanes, n, out).
        keys: (lanes, 2) PRNG keys for each lane's minibatch order.

    Returns:
        ``(models, opt_states, losses)``; losses of shape (lanes, steps).
    """
    data_axis = 0 if x.ndim == 3 else None
    return _run_lanes(models, opt_states, x, y, keys, jnp.asarray(start, jnp.int32), loss=loss,
                      optimizer=Static(optimizer), steps=int(steps),
                      batch_size=None if batch_size is None else int(batch_size), grad=grad,
                      data_axis=data_axis)


def train_sweep(models: MLP | Sequence[MLP], x: Array, y: Array, *, loss: str,
                optimizer: optax.GradientTransformation, learning_rates: Sequence[float] | Array,
                steps: int, batch_size: int | None = None, grad: str = "manual",
                keys: Array | None = None) -> tuple[list[MLP], Array]:
    """Train one network per learning rate (and per initial network) in one vmapped program.

    Arguments:
        models: one MLP (every lane starts from it) or one per lane (e.g. one
            per seed), all of the same architecture.
        x, y: the training data, shared by every lane.
        loss, steps, batch_size, grad: as :func:`train`.
        optimizer: an optimizer with its learning rate in its state, from
            :func:`make_optimizer` (its own rate is replaced lane by lane).
        learning_rates: one per lane.
        keys: (lanes, 2) minibatch-order keys; default ``PRNGKey(0)`` for every lane.

    Returns:
        ``(trained_models, histories)``: a list of MLPs and losses (lanes, steps).
        Lane i equals ``train(models[i], …, optimizer=make_optimizer(name, lr_i))``.
    """
    lrs = jnp.asarray(learning_rates)
    lanes = lrs.shape[0]
    models = [models] * lanes if isinstance(models, MLP) else list(models)
    if len(models) != lanes:
        raise ValueError(f"got {len(models)} models for {lanes} learning rates; give one per lane")
    check_train_args(models[0], x, y, loss=loss, optimizer=optimizer, steps=steps,
                     batch_size=batch_size, grad=grad)
    dtype = models[0].weights[0].dtype
    x = jnp.atleast_2d(jnp.asarray(x, dtype))
    y = jnp.atleast_2d(jnp.asarray(y, dtype))
    keys = jnp.stack([jax.random.PRNGKey(0)] * lanes) if keys is None else keys
    stacked = stack_lanes(models)
    opt_states = init_lanes(stacked, optimizer, lrs)
    stacked, _, losses = run_lanes(stacked, opt_states, x, y, keys, 0, loss=loss,
                                   optimizer=optimizer, steps=steps, batch_size=batch_size, grad=grad)
    return unstack_lanes(stacked, lanes), losses


@functools.partial(jax.jit, static_argnames=("loss", "one_hot", "data_axis"))
def _evaluate_lanes(models, x, y, *, loss, one_hot, data_axis):
    from ._evaluation import _evaluate

    def one(m, x, y):
        return _evaluate(m, x, y, loss=loss, one_hot=one_hot)

    return jax.vmap(one, in_axes=(0, data_axis, data_axis))(models, x, y)


def _keep_where(ok: Array, new, old):
    """Per lane: the new pytree where ok, else the old one (a diverged lane keeps its last good state)."""
    def pick(n, o):
        mask = ok.reshape(ok.shape + (1,) * (n.ndim - 1))
        return jnp.where(mask, n, o)

    return jax.tree.map(pick, new, old)


def train_lanes(experiments: Sequence, log_every: int = 1):
    """Run several :class:`~backprop_lab._experiment.Experiment` that differ only in
    learning rate and seed as one vmapped program, chunk by chunk.

    Returns:
        A list with, per lane, a dict: ``model``, ``opt_state`` (the last finite
        ones), ``records`` (metrics.jsonl rows), ``status`` ("completed" or
        "diverged"), ``diverged_at_step``, ``epochs``; and the seconds each
        chunk took (the first includes compilation).
    """
    import time

    import numpy as np

    from ._runs import metrics_record
    from ._evaluation import _is_one_hot

    base = experiments[0]
    for e in experiments[1:]:
        same = (e.model.sizes, e.model.activation, e.model.output_activation, e.loss, e.grad,
                e.epochs, e.batch_size, e.data.x_train.shape, e.data.x_test.shape)
        if same != (base.model.sizes, base.model.activation, base.model.output_activation, base.loss,
                    base.grad, base.epochs, base.batch_size, base.data.x_train.shape,
                    base.data.x_test.shape):
            raise ValueError("lanes of one vectorized sweep must differ only in optimizer.lr and seed")
    lanes = len(experiments)

    def data(attr):
        arrays = [np.asarray(getattr(e.data, attr)) for e in experiments]
        shared = all(np.array_equal(a, arrays[0]) for a in arrays)
        return jnp.asarray(arrays[0]) if shared else jnp.asarray(np.stack(arrays))

    x, y, x_test, y_test = (data(a) for a in ("x_train", "y_train", "x_test", "y_test"))
    models = stack_lanes([e.model for e in experiments])
    opt_states = stack_lanes([e.optimizer.init(e.model) for e in experiments])
    keys = jnp.stack([e.key for e in experiments])
    spe, bs, n = base.steps_per_epoch, base.batch_size, base.data.n_train
    one_hot = _is_one_hot(base.data.y_test)
    classify = base.data.n_classes is not None
    alive = np.ones(lanes, bool)
    diverged_at: list[int | None] = [None] * lanes
    records: list[list[dict]] = [[] for _ in range(lanes)]
    chunk_seconds, epoch, t_run = [], 0, time.perf_counter()
    while epoch < base.epochs and alive.any():
        n_epochs = min(log_every, base.epochs - epoch)
        t0 = time.perf_counter()
        new_models, new_opts, losses = run_lanes(
            models, opt_states, x, y, keys, epoch * spe, loss=base.loss, optimizer=base.optimizer,
            steps=n_epochs * spe, batch_size=None if bs == n else bs, grad=base.grad)
        losses = np.asarray(losses)
        chunk_seconds.append(time.perf_counter() - t0)
        finite = np.isfinite(losses)
        ok = alive & finite.all(axis=1)
        for lane in np.flatnonzero(alive & ~ok):
            diverged_at[lane] = int(epoch * spe + np.argmin(finite[lane]))
        alive = ok
        mask = jnp.asarray(ok)
        models = _keep_where(mask, new_models, models)
        opt_states = _keep_where(mask, new_opts, opt_states)
        epoch += n_epochs
        test_loss, test_acc = (np.asarray(v) for v in _evaluate_lanes(
            models, x_test, y_test, loss=base.loss, one_hot=one_hot,
            data_axis=0 if x_test.ndim == 3 else None))
        for lane in np.flatnonzero(ok):
            records[lane].append(metrics_record(
                epoch, epoch * spe, losses[lane].mean(), test_loss[lane],
                test_acc[lane] if classify else None, time.perf_counter() - t_run))
    results = []
    for lane in range(lanes):
        last_epoch = records[lane][-1]["epoch"] if records[lane] else 0
        results.append({
            "model": jax.tree.map(lambda leaf: leaf[lane], models),
            "opt_state": jax.tree.map(lambda leaf: leaf[lane], opt_states),
            "records": records[lane],
            "status": "diverged" if diverged_at[lane] is not None else "completed",
            "diverged_at_step": diverged_at[lane],
            "epochs": last_epoch,
        })
    return results, chunk_seconds
