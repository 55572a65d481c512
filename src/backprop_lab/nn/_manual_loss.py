"""The hand-written backprop as a JAX gradient: a loss whose VJP is the notes' δ rule.

:func:`manual_loss` returns ``f(model, x, y) -> L``, the batch loss, defined as a
``jax.custom_vjp``: its value is :func:`loss_value`'s, and its reverse-mode
derivative is :func:`manual_grad`'s, not JAX's differentiation of the forward
pass. ``jax.grad``, ``jax.value_and_grad``, ``eqx.filter_grad``, ``jax.vjp``
and therefore optax training loops and ``jax.test_util.check_grads`` all see
the hand-written gradient. ``jit`` and ``vmap`` over ``f`` work as for any
function.

Cotangents of the three arguments:

* model: ∂L/∂θ, the hand-written backprop, bit for bit :func:`manual_grad`
  (times the incoming cotangent, 1 under ``jax.grad``).
* x: ∂L/∂x = δ¹ W¹ / batch, the notes' rule carried one step further, through
  the first layer's weights (δ¹ W¹ for a single 1-D example). No activation
  sits on the input, so no f′ multiplies it.
* y: ∂L/∂y, which the notes never need, is ``jax.vjp`` of the loss formula
  (the :data:`LOSSES` entry's ``value``) with respect to y at the network's
  output, so the loss table stays the only place a loss is written. It is the
  only automatic differentiation here, and touches nothing of the network.

Integer x or y (labels) get a zero cotangent. Forward mode (``jax.jvp``,
``jax.jacfwd``) is not defined for a ``custom_vjp`` and raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ._backprop import backprop_trace_body, check_variant, compiled_entry, loss_value, prepare_inputs
from ._losses import Loss, get_loss
from ._network import MLP

Array = jax.Array


def _vjp_parts(
    model: MLP, x: Array, y: Array, loss: str | Loss, variant: str
) -> tuple[Array, MLP, Array | None, Array | None]:
    """The batch loss and the three cotangents for an incoming cotangent of 1."""
    loss_fn, x2, y2, single = prepare_inputs(model, x, y, loss)
    trace = backprop_trace_body(model, x2, y2, loss, variant)
    d_x = trace.delta[0] @ model.weights[0] / x2.shape[0]  # (batch, in)
    d_y = jax.grad(lambda t: jnp.mean(loss_fn.value(trace.z[-1], trace.a[-1], t)))(y2)
    if single:
        d_x, d_y = d_x[0], d_y[0]
    return trace.loss, trace.grads, _cotangent(d_x, x), _cotangent(d_y, y)


def _cotangent(d: Array, primal: Array) -> Array | None:
    """``d`` in the primal's dtype; None (a zero cotangent) for an integer primal."""
    dtype = jnp.result_type(primal)
    return d.astype(dtype) if jnp.issubdtype(dtype, jnp.inexact) else None


_compiled_vjp_parts = compiled_entry(_vjp_parts)


@jax.jit
def _scale(g: Array, tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda t: (g * t).astype(t.dtype), tree)


def manual_loss(loss: str | Loss, variant: str = "hadamard") -> Callable[[MLP, Array, Array], Array]:
    """The batch loss as a function whose JAX gradient is the hand-written backprop.

    Arguments:
        loss: a loss name (see ``LOSSES``) or a :class:`Loss`.
        variant: how each layer's δ is formed, "hadamard" or "diagonal" (see
            :data:`VARIANTS`).

    Returns:
        ``f(model, x, y) -> L``: model an :class:`MLP`, x of shape (in,) or
        (batch, in), y of shape (out,) or (batch, out), L a scalar equal to
        :func:`loss_value`. Under ``jax.grad(f)`` (and every other reverse-mode
        transformation) the model's cotangent is :func:`manual_grad`'s result,
        x's is δ¹ W¹ / batch and y's comes from the loss formula (see the
        module docstring). With a loss name, the forward and backward passes
        run as programs compiled once per shape, dtype, loss and variant.

    Example::

        grads = jax.grad(bl.manual_loss("cross_entropy"))(model, x, y)
    """
    get_loss(loss)
    check_variant(variant)

    @jax.custom_vjp
    def batch_loss(model: MLP, x: Array, y: Array) -> Array:
        """The batch loss; its reverse-mode gradient is the hand-written backprop."""
        return loss_value(model, x, y, loss)

    def batch_loss_fwd(model: MLP, x: Array, y: Array) -> tuple[Array, tuple[Any, ...]]:
        value, *cotangents = _compiled_vjp_parts(model, x, y, loss, variant=variant)
        return value, tuple(cotangents)

    def batch_loss_bwd(cotangents: tuple[Any, ...], g: Array) -> tuple[Any, ...]:
        return tuple(None if c is None else _scale(g, c) for c in cotangents)

    batch_loss.defvjp(batch_loss_fwd, batch_loss_bwd)
    return batch_loss
