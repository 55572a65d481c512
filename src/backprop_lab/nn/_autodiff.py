"""Second and third opinions on the gradient: jax.grad and central differences."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._backprop import check_inputs, loss_value
from ._losses import Loss
from ._network import MLP

Array = jax.Array


def autodiff_grad(model: MLP, x: Array, y: Array, loss: str | Loss) -> MLP:
    """∂L/∂θ of :func:`loss_value` through ``jax.grad``.

    One compiled program per shape, dtype and loss name, like :func:`manual_grad`
    (a :class:`Loss` object runs op by op). ``jax.grad`` is looked up at each
    call and keys the cache too, so a patched ``jax.grad`` (the no-autodiff
    guard of ``tests/test_batching.py``) is called as it would be eagerly.

    Arguments and returns as :func:`manual_grad`.
    """
    check_inputs(model, x, y, loss)  # same errors as manual_grad, before any tracing
    if isinstance(loss, str):
        return _autodiff_grad(model, x, y, loss=loss, grad=jax.grad)
    return jax.grad(loss_value)(model, x, y, loss)


@functools.partial(jax.jit, static_argnames=("loss", "grad"))
def _autodiff_grad(model: MLP, x: Array, y: Array, *, loss: str, grad: Callable) -> MLP:
    return grad(loss_value)(model, x, y, loss)


@functools.partial(jax.jit, static_argnames=("loss", "eps"))
def _central_differences(model: MLP, x: Array, y: Array, *, loss: str | Loss, eps: float) -> MLP:
    theta, unravel = ravel_pytree(model)

    def one(i: Array) -> Array:
        step = jnp.zeros_like(theta).at[i].set(eps)
        up = loss_value(unravel(theta + step), x, y, loss)
        down = loss_value(unravel(theta - step), x, y, loss)
        return (up - down) / (2.0 * eps)

    return unravel(jax.lax.map(one, jnp.arange(theta.size)))


def numerical_grad(model: MLP, x: Array, y: Array, loss: str | Loss, eps: float = 1e-6) -> MLP:
    """∂L/∂θ by central differences in float64, one parameter at a time.

    ``(L(θ + eps·eᵢ) − L(θ − eps·eᵢ)) / (2 eps)`` for every coordinate i. The
    error is O(eps²) from truncation plus O(ε_machine / eps) from rounding, about
    1e-10 relative for eps = 1e-6 in float64. Runs in float64 whatever the
    model's dtype (switching JAX's x64 mode on for the computation if needed).
    The compiled program is cached per shape, loss and eps.

    Arguments:
        model: as :func:`manual_grad`.
        x: as :func:`manual_grad`.
        y: as :func:`manual_grad`.
        loss: as :func:`manual_grad`.
        eps: the step.

    Returns:
        The gradient as a float64 :class:`MLP`.
    """
    check_inputs(model, x, y, loss)
    with jax.enable_x64(True):
        return _central_differences(
            model.astype(jnp.float64),
            jnp.asarray(x, jnp.float64),
            jnp.asarray(y, jnp.float64),
            loss=loss,
            eps=float(eps),
        )
