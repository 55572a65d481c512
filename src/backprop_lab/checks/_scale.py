"""The scale a gradient check measures errors against: the gradient's terms, summed in absolute value.

A gradient entry is a sum, over the batch and over the units of the layers above,
of products like δ·a. Computed in floating point by two different routes (the
notes' backprop and ``jax.grad``), two such sums differ by a few eps(dtype)
times the sum of the *absolute values* of their terms, not times the sum
itself: where the terms cancel (a trained network, whose mean gradient is
small while each example's is not; an output a ≈ y, where a − y is small while
a and y are not) the result is much smaller than its rounding. So each tensor's
errors are divided by the same backward pass taken in absolute values::

    δ̂ᴸ     = |a| + |y|                          (the terms of a − y; for a loss without
                                                 a closed form, |∂ℓ/∂a|'s terms through |f′|)
    δ̂ˡ⁻¹   = (δ̂ˡ |Wˡ|) ⊙ (|f′(zˡ⁻¹)| + eps)
    scale(Wˡ) = max over the tensor of δ̂ˡᵀ |aˡ⁻¹| / batch,   scale(bˡ) = max of mean(δ̂ˡ)

which bounds every entry of the gradient (|∂L/∂Wˡ| ≤ δ̂ˡᵀ|aˡ⁻¹|/batch, entry by
entry) and equals it when nothing cancels. The ``+ eps`` is the absolute error
of f′ written as 1 − a² or a(1 − a), as ``jax.grad`` differentiates tanh and
sigmoid: a unit saturated to f′ ≈ eps still passes on rounding of that size.
f′ here is ``jax.grad`` of the activation, not the table's derivative under
test, so the scale does not depend on the hand-written backprop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from ..nn._activations import Activation, get_activation
from ..nn._backprop import compiled_entry, prepare_inputs
from ..nn._losses import Loss
from ..nn._network import MLP, forward_trace

if TYPE_CHECKING:
    from ..nn._padding import LaneMask

__all__ = ["term_scales"]

Array = jax.Array


def _slope(act: Activation, z: Array, eps: float) -> Array:
    """|f′(z)| + eps by ``jax.grad`` of the activation, element by element."""
    fprime = jax.vmap(jax.grad(lambda t: act.fn(t[None])[0]))(jnp.ravel(z)).reshape(z.shape)
    return jnp.abs(fprime) + eps


def _output_terms(loss_fn: Loss, out: Activation, z: Array, a: Array, y: Array, eps: float) -> Array:
    """δ̂ᴸ, (batch, out): the terms of the output layer's δ in absolute value."""
    if out.name in loss_fn.fused:  # (Σy)·a − y or a − y
        return jnp.abs(a) * jnp.sum(jnp.abs(y), axis=-1, keepdims=True) + jnp.abs(y)
    assert loss_fn.grad_a is not None  # get_loss refused the pair otherwise
    # every grad_a is c·(a − y): its terms are |c|·|a| and |c|·|y|
    zero = jnp.zeros_like(a)
    g = jnp.abs(loss_fn.grad_a(jnp.abs(a), zero)) + jnp.abs(loss_fn.grad_a(zero, jnp.abs(y)))
    if out.deriv is None:  # softmax: a ⊙ (g − ⟨g, a⟩)
        return jnp.abs(a) * (g + jnp.sum(g * jnp.abs(a), axis=-1, keepdims=True))
    return g * _slope(out, z, eps)


def _term_scales(model: MLP, x: Array, y: Array, loss: str | Loss, mask: LaneMask | None = None) -> Array:
    """The scales, traceable; with ``mask``, of a padded network's lane: the same backward pass
    as its backprop's (``backprop_trace_body``), every padded entry 0 (so a tensor's max is
    its real block's)."""
    loss_fn, x2, y2, _ = prepare_inputs(model, x, y, loss)
    eps = float(jnp.finfo(model.weights[0].dtype).eps)
    trace = forward_trace(model, x2) if mask is None else mask.forward(model, x2)
    hidden = get_activation(model.activation) if mask is None else mask.hidden()
    out = get_activation(model.output_activation, output=True)
    delta = _output_terms(loss_fn, out, trace.z[-1], trace.a[-1], y2, eps)
    deltas = [delta]
    g = delta @ jnp.abs(model.weights[-1])
    for l in range(len(model.weights) - 2, -1, -1):
        delta = g * _slope(hidden, trace.z[l], eps)
        if mask is not None:
            delta = mask.own(l, delta)
        deltas.insert(0, delta)
        if l > 0:
            g_below = delta @ jnp.abs(model.weights[l])
            g = g_below if mask is None else mask.passed(l, g_below, g)
    batch = x2.shape[0]
    scales = []
    for d, a_prev, b in zip(deltas, trace.a[:-1], model.biases):
        scales.append(jnp.max(d.T @ jnp.abs(a_prev), initial=0.0) / batch)
        if b is not None:
            scales.append(jnp.max(jnp.sum(d, axis=0), initial=0.0) / batch)
    return jnp.stack(scales)


_compiled_term_scales = compiled_entry(_term_scales)


def term_scales(model: MLP, x: Array, y: Array, loss: str | Loss) -> list[float]:
    """The scale of each parameter tensor, in the order of ``_report._tensors``.

    One compiled program per shape, dtype and loss name (a :class:`Loss` runs op by op).

    Arguments:
        model: the network; x: (in,) or (batch, in); y: (out,) or (batch, out).
        loss: a loss name or :class:`Loss`.

    Returns:
        One float per tensor (W¹, b¹, W², …, b omitted where the layer has none):
        the largest entry of the gradient taken in absolute values (module docstring).
    """
    return [float(v) for v in np.asarray(_compiled_term_scales(model, x, y, loss))]
