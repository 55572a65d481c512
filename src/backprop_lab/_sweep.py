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
from ._training import _run_impl, _Static, check_train_args

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
                      optimizer=_Static(optimizer), steps=int(steps),
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
