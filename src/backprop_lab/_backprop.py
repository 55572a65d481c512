"""The hand-written matrix backpropagation of the notes.

For a batch (one example per row), with δ the per-example ∂ℓ/∂z:

    δᴸ     = (∂aᴸ/∂zᴸ)ᵀ ∂ℓ/∂aᴸ          (or a loss's closed form, e.g. (Σy)·a − y)
    δˡ⁻¹   = (δˡ Wˡ) ⊙ f′(zˡ⁻¹)          (row form of (Wˡ)ᵀ δˡ ⊙ f′(zˡ⁻¹))
    ∂L/∂Wˡ = δˡᵀ aˡ⁻¹ / batch           (the notes' δ (aˡ⁻¹)ᵀ, averaged over the batch)
    ∂L/∂bˡ = mean over the batch of δˡ

Only matrix products and the Hadamard product are used: no automatic
differentiation anywhere in this module. ``variant="diagonal"`` multiplies by
the materialised D = diag(f′(z)) instead, as notes 000-002 write it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._activations import Activation, get_activation
from ._losses import Loss, get_loss
from ._network import MLP, check_width, forward_trace

Array = jax.Array


def _hadamard(act: Activation, z: Array, a: Array, g: Array) -> Array:
    return act.backward(z, a, g)


def _diagonal(act: Activation, z: Array, a: Array, g: Array) -> Array:
    d = act.jacobian(z, a)  # (batch, width, width)
    return (jnp.swapaxes(d, -1, -2) @ g[..., None])[..., 0]


#: How a layer's δ is formed from the incoming ∂ℓ/∂a: name → (act, z, a, g) → δ.
VARIANTS: dict[str, Callable[[Activation, Array, Array, Array], Array]] = {
    "hadamard": _hadamard,
    "diagonal": _diagonal,
}


class BackpropTrace(NamedTuple):
    """Everything the hand-written backward pass computes, in the notes' names.

    Attributes:
        z: pre-activations per layer ("net").
        a: activations, ``a[0]`` = x, then one per layer ("out").
        delta: δ = ∂ℓ/∂z per layer and per example, shaped like ``z``.
        grads: the gradient of the batch loss, an :class:`MLP` (``grads.weights[l]``
            is ∂L/∂Wˡ of shape (out, in)).
        loss: the batch loss, the mean of the per-example losses.
    """

    z: tuple[Array, ...]
    a: tuple[Array, ...]
    delta: tuple[Array, ...]
    grads: MLP
    loss: Array


def _prepare(model: MLP, x: Array, y: Array, loss: str | Loss) -> tuple[Loss, Array, Array, bool]:
    """Validate x, y and the loss before any compute; return 2-D x and y."""
    loss_fn = get_loss(loss, model.output_activation)
    check_width("x", x, model.sizes[0], "input")
    check_width("y", y, model.sizes[-1], "output")
    if len(x.shape) != len(y.shape) or (len(x.shape) == 2 and x.shape[0] != y.shape[0]):
        raise ValueError(
            f"x of shape {tuple(x.shape)} and y of shape {tuple(y.shape)} do not pair up: "
            "give one target row per input row"
        )
    dtype = model.weights[0].dtype
    single = len(x.shape) == 1
    x = jnp.asarray(x, dtype)
    y = jnp.asarray(y, dtype)
    if single:
        x, y = x[None, :], y[None, :]
    return loss_fn, x, y, single


def loss_value(model: MLP, x: Array, y: Array, loss: str | Loss) -> Array:
    """The batch loss: the mean over the batch of the per-example loss.

    Arguments:
        model: the network.
        x: inputs, (in,) or (batch, in).
        y: targets, (out,) or (batch, out).
        loss: a loss name (see ``LOSSES``).

    Returns:
        A scalar.
    """
    loss_fn, x, y, _ = _prepare(model, x, y, loss)
    trace = forward_trace(model, x)
    return jnp.mean(loss_fn.value(trace.z[-1], trace.a[-1], y))


def backprop_trace(
    model: MLP, x: Array, y: Array, loss: str | Loss, variant: str = "hadamard"
) -> BackpropTrace:
    """Forward and hand-written backward pass, keeping every z, a and δ.

    Arguments:
        model: the network.
        x: inputs, (in,) or (batch, in).
        y: targets, (out,) or (batch, out).
        loss: a loss name (see ``LOSSES``).
        variant: "hadamard" (f′ ⊙) or "diagonal" (materialised diag(f′) products).

    Returns:
        A :class:`BackpropTrace`; its z, a and delta entries are 1-D for a 1-D x.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid variants are: {', '.join(VARIANTS)}")
    combine = VARIANTS[variant]
    loss_fn, x, y, single = _prepare(model, x, y, loss)
    hidden = get_activation(model.activation)
    out = get_activation(model.output_activation, output=True)
    trace = forward_trace(model, x)
    z, a = trace.z, trace.a

    if out.name in loss_fn.fused:
        delta = loss_fn.fused[out.name](z[-1], a[-1], y)
    else:
        delta = combine(out, z[-1], a[-1], loss_fn.grad_a(a[-1], y))
    deltas = [delta]
    for l in range(len(model.weights) - 1, 0, -1):
        delta = combine(hidden, z[l - 1], a[l], delta @ model.weights[l])
        deltas.insert(0, delta)

    batch = x.shape[0]
    d_weights = tuple(d.T @ a_prev / batch for d, a_prev in zip(deltas, a[:-1]))
    d_biases = tuple(
        None if b is None else jnp.mean(d, axis=0) for d, b in zip(deltas, model.biases)
    )
    grads = MLP._build(d_weights, d_biases, model.activation, model.output_activation)
    value = jnp.mean(loss_fn.value(z[-1], a[-1], y))
    if single:
        z, a, deltas = ([v[0] for v in seq] for seq in (z, a, deltas))
    return BackpropTrace(tuple(z), tuple(a), tuple(deltas), grads, value)


def manual_grad(
    model: MLP, x: Array, y: Array, loss: str | Loss, variant: str = "hadamard"
) -> MLP:
    """∂L/∂θ by the hand-written matrix backpropagation of the notes.

    Arguments:
        model: the network.
        x: inputs, (in,) or (batch, in).
        y: targets, (out,) or (batch, out).
        loss: a loss name (see ``LOSSES``).
        variant: "hadamard" or "diagonal" (see :data:`VARIANTS`).

    Returns:
        The gradient as an :class:`MLP`: ``grads.weights[l]`` of shape (out, in),
        ``grads.biases[l]`` of shape (out,) or None.
    """
    return backprop_trace(model, x, y, loss, variant).grads


def manual_value_and_grad(
    model: MLP, x: Array, y: Array, loss: str | Loss, variant: str = "hadamard"
) -> tuple[Array, MLP]:
    """The batch loss and its hand-written gradient from one forward pass."""
    trace = backprop_trace(model, x, y, loss, variant)
    return trace.loss, trace.grads


def sgd_step(model: MLP, grads: MLP, lr: float | Array) -> MLP:
    """The notes' update, W ← W − lr·∂L/∂W (and b likewise).

    Arguments:
        model: the network.
        grads: its gradient, an MLP of the same structure.
        lr: the learning rate (the notes' γ, c or l).
    """
    return jax.tree_util.tree_map(lambda p, g: p - lr * g, model, grads)
