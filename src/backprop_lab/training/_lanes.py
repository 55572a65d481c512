"""Vectorized sweeps: many learning rates and seeds of one architecture as one program.

Each lane of a sweep is an ordinary training run: its own initial network
(from its seed), its own minibatch order, its own learning rate. The lanes
differ only in array values, never in shapes or code, so ``jax.vmap`` turns N
runs into one compiled program. Networks of different widths, depths or hidden
activations become such lanes too, padded to one shape and masked
(:mod:`._masked`, :mod:`backprop_lab.nn._padding`). The learning rate lives in the optimizer state
(``optax.inject_hyperparams``, as :func:`make_optimizer` builds it), which is
what makes it a vmappable value rather than a compile-time constant.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from ..nn._network import MLP
from ..nn._padding import LaneMask
from ._masked import lane_state, stack_states
from ._optimizers import Static, check_learning_rate
from ._train import check_train_args, scan_steps

Array = jax.Array
#: A pytree (an MLP, an optimizer state): stacking keeps its structure.
Tree = TypeVar("Tree")


def stack_lanes(trees: Sequence[Tree]) -> Tree:
    """Stack pytrees of equal structure along a new leading (lane) axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack_lanes(tree: Tree, n: int) -> list[Tree]:
    """The inverse of :func:`stack_lanes`: a list of n pytrees."""
    return [jax.tree.map(lambda leaf: leaf[i], tree) for i in range(n)]


def with_learning_rate(opt_state: Any, lr: Array) -> Any:
    """An ``inject_hyperparams`` optimizer state with its learning rate replaced."""
    if not hasattr(opt_state, "hyperparams") or "learning_rate" not in opt_state.hyperparams:
        raise ValueError(
            "a sweep needs the learning rate in the optimizer state: build the optimizer with "
            "backprop_lab.make_optimizer(name, lr) or optax.inject_hyperparams(...)"
        )
    old = opt_state.hyperparams["learning_rate"]
    hyper = {**opt_state.hyperparams, "learning_rate": jnp.asarray(lr, old.dtype)}
    return opt_state._replace(hyperparams=hyper)


def init_lanes(models: MLP, optimizer: optax.GradientTransformation, learning_rates: Array) -> optax.OptState:
    """Optimizer states for stacked models, lane i with ``learning_rates[i]``."""
    return jax.vmap(lambda m, lr: with_learning_rate(optimizer.init(m), lr))(models, learning_rates)


@functools.partial(
    jax.jit,
    static_argnames=("loss", "optimizer", "steps", "batch_size", "grad", "data_axis", "batch_sharding"),
)
def _run_lanes(
    models,
    opt_states,
    x,
    y,
    keys,
    start,
    mask,
    *,
    loss,
    optimizer,
    steps,
    batch_size,
    grad,
    data_axis,
    batch_sharding,
):
    run = functools.partial(
        scan_steps,
        loss=loss,
        optimizer=optimizer,
        steps=steps,
        batch_size=batch_size,
        grad=grad,
        batch_sharding=batch_sharding,
    )
    return jax.vmap(run, in_axes=(0, 0, data_axis, data_axis, 0, None, 0))(
        models, opt_states, x, y, keys, start, mask
    )


def run_lanes(
    models: MLP,
    opt_states: optax.OptState,
    x: Array,
    y: Array,
    keys: Array,
    start: int | Array = 0,
    *,
    loss: str,
    optimizer: optax.GradientTransformation,
    steps: int,
    batch_size: int | None = None,
    grad: str = "manual",
    batch_sharding: jax.sharding.Sharding | None = None,
    mask: LaneMask | None = None,
) -> tuple[MLP, optax.OptState, Array]:
    """:func:`run_steps` for every lane at once.

    Arguments:
        models: stacked along a leading lane axis.
        opt_states: stacked along a leading lane axis.
        x: shared inputs (n, in), or per lane (lanes, n, in).
        y: shared targets (n, out), or per lane (lanes, n, out).
        keys: (lanes, 2) PRNG keys for each lane's minibatch order.
        batch_sharding: a ``jax.sharding.Sharding`` for each minibatch (rows over
            devices: data parallel), or None.
        mask: for padded networks of different architectures, their stacked
            :class:`LaneMask` (see :func:`stack_states`); None when the lanes share one.

    Returns:
        ``(models, opt_states, losses)``; losses of shape (lanes, steps).
    """
    data_axis = 0 if x.ndim == 3 else None
    return _run_lanes(
        models,
        opt_states,
        x,
        y,
        keys,
        jnp.asarray(start, jnp.int32),
        mask,
        loss=loss,
        optimizer=Static(optimizer),
        steps=int(steps),
        batch_size=None if batch_size is None else int(batch_size),
        grad=grad,
        data_axis=data_axis,
        batch_sharding=batch_sharding,
    )


def with_hyperparams(opt_state: Any, **values: Any) -> Any:
    """An ``inject_hyperparams`` optimizer state with numeric settings replaced (momentum, b1, …)."""
    hyper = getattr(opt_state, "hyperparams", {})
    for name in values:
        if name not in hyper:
            raise ValueError(
                f"{name!r} is not a numeric setting in the optimizer state "
                f"(it holds: {', '.join(hyper) or 'none'}); build it with make_optimizer"
            )
    return opt_state._replace(
        hyperparams={**hyper, **{k: jnp.asarray(v, hyper[k].dtype) for k, v in values.items()}}
    )


def _per_lane(
    models: MLP | Sequence[MLP], learning_rates: Sequence[float] | ArrayLike, settings: Sequence[dict] | None
) -> tuple[list[MLP], list, list[dict]]:
    """One network, learning rate (each checked) and settings per lane, as :func:`train_sweep`
    takes them."""
    rates = list(np.asarray(learning_rates, dtype=object).reshape(-1))
    if not rates:
        raise ValueError("learning_rates is empty; give one learning rate per lane")
    for lr in rates:
        check_learning_rate(lr.item() if hasattr(lr, "item") else lr)
    lanes = len(rates)
    models = [models] * lanes if isinstance(models, MLP) else list(models)
    settings = [{}] * lanes if settings is None else list(settings)
    if len(models) != lanes or len(settings) != lanes:
        raise ValueError(
            f"got {len(models)} models and {len(settings)} settings for {lanes} learning rates; "
            "give one per lane"
        )
    return models, rates, settings


def _lane_data(models: Sequence[MLP], x: Array, y: Array, **train: Any) -> tuple[Array, Array]:
    """``x`` and ``y`` in the lanes' dtype, once every lane's network is checked against them
    (:func:`check_train_args`)."""
    for model in models:
        check_train_args(model, x, y, **train)
    dtype = models[0].weights[0].dtype
    x = jnp.atleast_2d(jnp.asarray(x, dtype))
    y = jnp.atleast_2d(jnp.asarray(y, dtype))
    return x, y


def _train_lanes(
    models: Sequence[MLP], states: Sequence[Any], x: Array, y: Array, keys: Array, **train: Any
) -> tuple[list[MLP], Array]:
    """The lanes' networks trained from their optimizer states in one program (padded and masked
    when they differ), each returned as its own network."""
    stacked, opt_states, mask = stack_states(models, states)
    stacked, opt_states, losses = run_lanes(
        stacked,
        opt_states,
        x,
        y,
        keys,
        0,
        mask=mask,
        **train,
    )
    host = jax.tree.map(np.asarray, (stacked, opt_states))
    lanes = len(states)
    return [jax.tree.map(jnp.asarray, lane_state(host[0], host[1], mask, i)[0]) for i in range(lanes)], losses


def train_sweep(
    models: MLP | Sequence[MLP],
    x: Array,
    y: Array,
    *,
    loss: str,
    optimizer: optax.GradientTransformation,
    learning_rates: Sequence[float] | ArrayLike,
    steps: int,
    batch_size: int | None = None,
    grad: str = "manual",
    keys: Array | None = None,
    settings: Sequence[dict] | None = None,
) -> tuple[list[MLP], Array]:
    """Train one network per learning rate (and per initial network) in one vmapped program.

    Arguments:
        models: one MLP (every lane starts from it) or one per lane (e.g. one
            per seed). They may differ in hidden widths, depth and hidden
            activation: the lanes are then padded and masked (see
            :func:`stack_states`), each computing its own network.
        x: the training inputs (n, in), shared by every lane.
        y: the training targets (n, out), shared by every lane.
        loss: as :func:`train`.
        steps: as :func:`train`.
        batch_size: as :func:`train`.
        grad: as :func:`train`.
        optimizer: an optimizer with its learning rate in its state, from
            :func:`make_optimizer` (its own rate is replaced lane by lane).
        learning_rates: one per lane.
        keys: (lanes, 2) minibatch-order keys; default ``PRNGKey(0)`` for every lane.
        settings: per lane, numeric optimizer settings that replace the optimizer's
            own (``{"momentum": 0.5}``, ``{"b1": 0.8, "weight_decay": 1e-4}``), or None.

    Returns:
        ``(trained_models, histories)``: a list of MLPs and losses (lanes, steps).
        Lane i equals ``train(models[i], …, optimizer=make_optimizer(name, lr_i, **settings_i))``.
    """
    models, rates, settings = _per_lane(models, learning_rates, settings)
    lanes = len(rates)
    train: dict[str, Any] = dict(
        loss=loss, optimizer=optimizer, steps=steps, batch_size=batch_size, grad=grad
    )
    x, y = _lane_data(models, x, y, **train)
    keys = jnp.stack([jax.random.PRNGKey(0)] * lanes) if keys is None else keys
    states = [
        with_hyperparams(optimizer.init(m), learning_rate=lr, **extra)
        for m, lr, extra in zip(models, rates, settings)
    ]
    return _train_lanes(models, states, x, y, keys, **train)


@jax.jit
def keep_where(ok: Array, new: Tree, old: Tree) -> Tree:
    """Per lane: the new pytree where ``ok`` (lanes,), else the old one."""

    def pick(n: Array, o: Array) -> Array:
        mask = ok.reshape(ok.shape + (1,) * (n.ndim - 1))
        return jnp.where(mask, n, o)

    return jax.tree.map(pick, new, old)
