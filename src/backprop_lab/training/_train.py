"""Jit-compiled training: many optimizer steps inside one ``lax.scan``.

One step is gradient → ``optimizer.update`` → ``optax.apply_updates``, with
the gradient from the hand-written backprop ("manual") or from jax.grad
("autodiff"). A whole run of steps is one compiled program, so small networks
are not bound by Python dispatch. The compiled program is cached on the shapes
and on the *structure* of the optimizer, so calling :func:`train` again with
an equal optimizer (``optax.sgd(0.1)`` built afresh, say) reuses it.

The step index and the PRNG key are traced values, and so is anything an
optimizer keeps in its state (the learning rate of an
``optax.inject_hyperparams`` optimizer, as :func:`make_optimizer` builds them),
so a sweep can ``jax.vmap`` over learning rates and seeds without recompiling.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..nn._autodiff import autodiff_grad
from ..nn._backprop import check_inputs, loss_value, manual_value_and_grad
from ..nn._losses import Loss
from ..nn._network import MLP
from ..nn._padding import MASKED_GRADS, LaneMask, mask_params
from ._optimizers import Static

Array = jax.Array


def _autodiff_value_and_grad(model: MLP, x: Array, y: Array, loss: str | Loss) -> tuple[Array, MLP]:
    return loss_value(model, x, y, loss), autodiff_grad(model, x, y, loss)


#: Where gradients come from: name → ``(model, x, y, loss) -> (L, grads)``.
GRADS: dict[str, Callable] = {
    "manual": manual_value_and_grad,
    "autodiff": _autodiff_value_and_grad,
}


def batch_indices(key: Array, step: Array, n: int, batch_size: int) -> Array:
    """The example indices of a step: epoch e reads a permutation seeded by (key, e).

    Arguments:
        key: the run's PRNG key.
        step: the global step number (traced).
        n: number of examples; batch_size: examples per step (the remainder of
            an epoch is dropped).

    Returns:
        int array of shape (batch_size,).
    """
    per_epoch = n // batch_size
    perm = _epoch_permutation(key, step // per_epoch, n)
    return jax.lax.dynamic_slice_in_dim(perm, (step % per_epoch) * batch_size, batch_size)


def _epoch_permutation(key: Array, epoch: Array, n: int) -> Array:
    return jax.random.permutation(jax.random.fold_in(key, epoch), n)


def _minibatch(
    x: Array, y: Array, key: Array, i: Array, perm: Array, batch_size: int | None, per_epoch: int
) -> tuple[Array, Array, Array]:
    """Step ``i``'s minibatch and the epoch's permutation carried to the next step (traceable).

    The batches are those of batch_indices, but the epoch's permutation (a sort
    of n random keys, costlier than a small network's whole step) is drawn once
    per epoch and carried, not redrawn every step."""
    if batch_size is None:
        return x, y, perm
    n = x.shape[0]
    if per_epoch == 1:  # every step is an epoch of its own
        order = _epoch_permutation(key, i, n)
    else:
        perm = jax.lax.cond(
            i % per_epoch == 0, lambda: _epoch_permutation(key, i // per_epoch, n), lambda: perm
        )
        order = perm
    idx = jax.lax.dynamic_slice_in_dim(order, (i % per_epoch) * batch_size, batch_size)
    return x[idx], y[idx], perm


def scan_steps(
    model: MLP,
    opt_state: optax.OptState,
    x: Array,
    y: Array,
    key: Array,
    start: Array,
    mask: LaneMask | None = None,
    *,
    loss: str,
    optimizer: Static,
    steps: int,
    batch_size: int | None,
    grad: str,
    batch_sharding: jax.sharding.Sharding | None = None,
) -> tuple[MLP, optax.OptState, Array]:
    """``steps`` optimizer steps from global step ``start`` as one ``lax.scan`` (traceable; the
    body :func:`run_steps` compiles and the sweeps vmap). ``optimizer`` is a :class:`Static`;
    ``batch_sharding`` shards each minibatch's rows over devices (data parallel) or is None.
    ``mask``: a padded network's :class:`LaneMask` (its gradients and updates masked), or None.

    Returns:
        ``(model, opt_state, losses)``, losses of shape (steps,).
    """
    value_and_grad = GRADS[grad]
    opt = optimizer.value
    n = x.shape[0]
    per_epoch = 1 if batch_size is None else n // batch_size

    def step(carry, i):
        model, opt_state, perm = carry
        xb, yb, perm = _minibatch(x, y, key, i, perm, batch_size, per_epoch)
        if batch_sharding is not None:  # data parallel: each device takes its rows of the batch
            xb = jax.lax.with_sharding_constraint(xb, batch_sharding)
            yb = jax.lax.with_sharding_constraint(yb, batch_sharding)
        if mask is None:
            value, grads = value_and_grad(model, xb, yb, loss)
            updates, opt_state = opt.update(grads, opt_state, model)
        else:  # a padded lane: its gradient and update are 0 off its own parameters
            value, grads = MASKED_GRADS[grad](model, mask, xb, yb, loss)
            updates, opt_state = opt.update(grads, opt_state, model)
            updates = mask_params(updates, mask)
        return (optax.apply_updates(model, updates), opt_state, perm), value

    if batch_size is None or per_epoch == 1:
        perm = jnp.zeros((0,), jnp.int32)  # unused placeholder
    else:
        perm = _epoch_permutation(key, start // per_epoch, n)
    (model, opt_state, _), losses = jax.lax.scan(step, (model, opt_state, perm), start + jnp.arange(steps))
    return model, opt_state, losses


_run = jax.jit(scan_steps, static_argnames=("loss", "optimizer", "steps", "batch_size", "grad"))


def check_train_args(
    model: MLP,
    x: Array,
    y: Array,
    *,
    loss: str | Loss,
    optimizer: object,
    steps: object,
    batch_size: object,
    grad: object,
) -> None:
    """All the checks :func:`train` makes before compiling anything (from shapes and types
    alone: no array operation)."""
    check_inputs(model, x, y, loss)
    if grad not in GRADS:
        raise ValueError(f"unknown grad {grad!r}; valid choices are: {', '.join(GRADS)}")
    if not hasattr(optimizer, "init") or not hasattr(optimizer, "update"):
        raise ValueError(f"optimizer must be an optax GradientTransformation, got {type(optimizer).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    n = 1 if len(x.shape) == 1 else x.shape[0]
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or not 1 <= batch_size <= n
    ):
        raise ValueError(
            f"batch_size must be None (full batch) or an integer from 1 to {n}, got {batch_size!r}"
        )


def run_steps(
    model: MLP,
    opt_state: optax.OptState,
    x: Array,
    y: Array,
    key: Array,
    start: int | Array = 0,
    *,
    loss: str,
    optimizer: optax.GradientTransformation,
    steps: int,
    batch_size: int | None = None,
    grad: str = "manual",
) -> tuple[MLP, optax.OptState, Array]:
    """Continue training for ``steps`` steps from global step ``start``.

    Arguments:
        model: the network; opt_state: ``optimizer.init(model)`` or a saved state.
        x: (n, in); y: (n, out), both already in the model's dtype.
        key: PRNG key for the minibatch order; start: the first step's number,
            so a resumed run draws the same batches as an uninterrupted one.

    Returns:
        ``(model, opt_state, losses)`` with ``losses`` of shape (steps,).
    """
    return _run(
        model,
        opt_state,
        x,
        y,
        key,
        np.int32(start) if isinstance(start, (int, np.integer)) else jnp.asarray(start, jnp.int32),
        loss=loss,
        optimizer=Static(optimizer),
        steps=int(steps),
        batch_size=None if batch_size is None else int(batch_size),
        grad=grad,
    )


@functools.cache
def _default_key() -> Array:
    """``PRNGKey(0)``, made once: a key is an array, and making one is a computation of its own."""
    return jax.random.PRNGKey(0)


def _as_rows(a: Array, dtype: np.dtype) -> Array:
    """``a`` as a 2-D JAX array of ``dtype``; one that is one already goes as it is (a small
    network's run is so short that converting it again would cost a sizeable part of it)."""
    if isinstance(a, jax.Array) and a.dtype == dtype and a.ndim == 2:
        return a
    return jnp.atleast_2d(jnp.asarray(a, dtype))


def train(
    model: MLP,
    x: Array,
    y: Array,
    *,
    loss: str,
    optimizer: optax.GradientTransformation,
    steps: int,
    batch_size: int | None = None,
    grad: str = "manual",
    key: Array | None = None,
) -> tuple[MLP, Array]:
    """Train ``model`` for ``steps`` optimizer steps in one compiled program.

    Arguments:
        model: the network.
        x: inputs (n, in) (or one example (in,)); y: targets (n, out).
        loss: a loss name (see ``LOSSES``).
        optimizer: an optax GradientTransformation, e.g. ``optax.sgd(0.5)``.
        steps: number of optimizer steps.
        batch_size: None for full batch; else minibatches from a fresh
            permutation per epoch (the remainder of an epoch is dropped).
        grad: "manual" (hand-written backprop) or "autodiff" (jax.grad).
        key: PRNG key for the minibatch order (default ``PRNGKey(0)``).

    Returns:
        ``(trained_model, history)``: history is the loss of each step,
        shape (steps,), taken before that step's update.
    """
    check_train_args(
        model, x, y, loss=loss, optimizer=optimizer, steps=steps, batch_size=batch_size, grad=grad
    )
    dtype = model.weights[0].dtype
    x, y = _as_rows(x, dtype), _as_rows(y, dtype)
    key = _default_key() if key is None else key
    model, _, losses = run_steps(
        model,
        optimizer.init(model),
        x,
        y,
        key,
        0,
        loss=loss,
        optimizer=optimizer,
        steps=steps,
        batch_size=batch_size,
        grad=grad,
    )
    return model, losses
