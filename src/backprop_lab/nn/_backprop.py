"""The hand-written matrix backpropagation of the notes.

For a batch (one example per row), with δ the per-example ∂ℓ/∂z:

    δᴸ     = (∂aᴸ/∂zᴸ)ᵀ ∂ℓ/∂aᴸ          (or a loss's closed form, e.g. (Σy)·a − y)
    δˡ⁻¹   = (δˡ Wˡ) ⊙ f′(zˡ⁻¹)          (row form of (Wˡ)ᵀ δˡ ⊙ f′(zˡ⁻¹))
    ∂L/∂Wˡ = δˡᵀ aˡ⁻¹ / batch           (the notes' δ (aˡ⁻¹)ᵀ, averaged over the batch)
    ∂L/∂bˡ = mean over the batch of δˡ

Only matrix products and the Hadamard product are used: no automatic
differentiation anywhere in this module. ``variant="diagonal"`` multiplies by
the materialised D = diag(f′(z)) instead, as notes 000-002 write it.

Compiled entry points. :func:`manual_grad`, :func:`manual_value_and_grad`,
:func:`loss_value` and :func:`sgd_step` each run one compiled program, cached
by ``jax.jit`` per shape, dtype, loss name and variant (the learning rate is a
traced argument), so a Python loop of them pays one dispatch per call instead
of one per operation, and a new batch size compiles once. Called on tracers
(inside someone else's ``jit``, ``vmap`` or ``grad``) they nest as inner jitted
calls, with no host synchronisation. Argument errors are raised before any
tracing. A :class:`Loss` object (not a name) is not hashable, so it cannot key
the cache: those calls run op by op, as before.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ._activations import Activation, get_activation
from ._losses import Loss, get_loss
from ._network import MLP, check_width, forward_trace

if TYPE_CHECKING:
    from ._padding import LaneMask

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


def check_inputs(model: MLP, x: Array, y: Array, loss: str | Loss) -> Loss:
    """Validate x, y and the loss from their shapes alone (no array operation)."""
    loss_fn = get_loss(loss, model.output_activation)
    check_width("x", x, model.sizes[0], "input")
    check_width("y", y, model.sizes[-1], "output")
    if len(x.shape) != len(y.shape) or (len(x.shape) == 2 and x.shape[0] != y.shape[0]):
        raise ValueError(
            f"x of shape {tuple(x.shape)} and y of shape {tuple(y.shape)} do not pair up: "
            "give one target row per input row"
        )
    if len(x.shape) == 2 and x.shape[0] == 0:
        raise ValueError(
            "x and y have 0 rows: a batch needs at least one example "
            "(the mean loss of no examples is undefined)"
        )
    return loss_fn


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid variants are: {', '.join(VARIANTS)}")


def prepare_inputs(model: MLP, x: Array, y: Array, loss: str | Loss) -> tuple[Loss, Array, Array, bool]:
    """Validate x, y and the loss before any compute; return 2-D x and y."""
    loss_fn = check_inputs(model, x, y, loss)
    dtype = model.weights[0].dtype
    single = len(x.shape) == 1
    x = jnp.asarray(x, dtype)
    y = jnp.asarray(y, dtype)
    if single:
        x, y = x[None, :], y[None, :]
    return loss_fn, x, y, single


def compiled_entry(fn: Callable) -> Callable:
    """``fn(model, x, y, loss, **static)`` as one compiled program per shape, dtype,
    loss name and static argument; checked before tracing; op by op for a Loss object.

    The returned function's ``jitted`` attribute is the ``jax.jit`` object (its
    ``_cache_size()`` counts the compiled programs).
    """
    names = inspect.signature(fn).parameters
    jitted = jax.jit(fn, static_argnames=tuple(n for n in ("loss", "variant") if n in names))

    @functools.wraps(fn)
    def run(model: MLP, x: Array, y: Array, loss: str | Loss, **static: str) -> object:
        if "variant" in static:
            check_variant(static["variant"])
        check_inputs(model, x, y, loss)
        if isinstance(loss, str):
            return jitted(model, x, y, loss=loss, **static)
        return fn(model, x, y, loss, **static)

    # a function keeps its attributes in its __dict__ (functools.wraps's wrapper type declares none)
    run.__dict__["jitted"] = jitted
    return run


def _loss_value(model: MLP, x: Array, y: Array, loss: str | Loss) -> Array:
    loss_fn, x, y, _ = prepare_inputs(model, x, y, loss)
    trace = forward_trace(model, x)
    return jnp.mean(loss_fn.value(trace.z[-1], trace.a[-1], y))


def _manual_grad(model: MLP, x: Array, y: Array, loss: str | Loss, variant: str) -> MLP:
    return backprop_trace_body(model, x, y, loss, variant).grads


def _manual_value_and_grad(
    model: MLP, x: Array, y: Array, loss: str | Loss, variant: str
) -> tuple[Array, MLP]:
    trace = backprop_trace_body(model, x, y, loss, variant)
    return trace.loss, trace.grads


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
    return _compiled_loss_value(model, x, y, loss)


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
    return _compiled_backprop_trace(model, x, y, loss, variant=variant)


def output_delta(
    loss_fn: Loss,
    out: Activation,
    z: Array,
    a: Array,
    y: Array,
    combine: Callable[[Activation, Array, Array, Array], Array] = _hadamard,
) -> Array:
    """δᴸ of the output layer: the loss's closed form for this output, else (∂aᴸ/∂zᴸ)ᵀ ∂ℓ/∂aᴸ."""
    if out.name in loss_fn.fused:
        return loss_fn.fused[out.name](z, a, y)
    if loss_fn.grad_a is not None:
        return combine(out, z, a, loss_fn.grad_a(a, y))
    # calling the missing grad_a raised this TypeError before
    raise TypeError(f"loss {loss_fn.name!r} has no grad_a and no fused rule for {out.name!r}")


def backprop_trace_body(
    model: MLP, x: Array, y: Array, loss: str | Loss, variant: str, mask: LaneMask | None = None
) -> BackpropTrace:
    """:func:`backprop_trace`, traceable; with ``mask``, a padded network's lane: its own
    network's backprop (δ on its own units, ∂ℓ/∂a passed unchanged through its identity
    layers, the gradient 0 off its own parameters; ``nn._padding``)."""
    check_variant(variant)
    combine = VARIANTS[variant]
    loss_fn, x, y, single = prepare_inputs(model, x, y, loss)
    hidden = get_activation(model.activation) if mask is None else mask.hidden()
    out = get_activation(model.output_activation, output=True)
    trace = forward_trace(model, x) if mask is None else mask.forward(model, x)
    z, a = trace.z, trace.a

    delta = output_delta(loss_fn, out, z[-1], a[-1], y, combine)
    deltas = [delta]
    g = delta @ model.weights[-1]  # ∂ℓ/∂a of the last hidden layer
    for l in range(len(model.weights) - 2, -1, -1):
        delta = combine(hidden, z[l], a[l + 1], g)  # δˡ = g ⊙ f′(zˡ)
        if mask is not None:
            delta = mask.own(l, delta)
        deltas.insert(0, delta)
        if l > 0:
            g = delta @ model.weights[l] if mask is None else mask.passed(l, delta @ model.weights[l], g)

    batch = x.shape[0]
    d_weights = tuple(d.T @ a_prev / batch for d, a_prev in zip(deltas, a[:-1]))
    d_biases = tuple(None if b is None else jnp.mean(d, axis=0) for d, b in zip(deltas, model.biases))
    # the gradient has the network's structure: the same module, its arrays replaced
    grads = eqx.tree_at(
        lambda m: (m.weights, m.biases), model, (d_weights, d_biases), is_leaf=lambda node: node is None
    )
    if mask is not None:
        grads = mask.params(grads)
    value = jnp.mean(loss_fn.value(z[-1], a[-1], y))
    if single:
        z, a = tuple(v[0] for v in z), tuple(v[0] for v in a)
        deltas = [d[0] for d in deltas]
    return BackpropTrace(tuple(z), tuple(a), tuple(deltas), grads, value)


_compiled_loss_value = compiled_entry(_loss_value)
_compiled_manual_grad = compiled_entry(_manual_grad)
_compiled_manual_value_and_grad = compiled_entry(_manual_value_and_grad)
_compiled_backprop_trace = compiled_entry(backprop_trace_body)


def manual_grad(model: MLP, x: Array, y: Array, loss: str | Loss, variant: str = "hadamard") -> MLP:
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
    return _compiled_manual_grad(model, x, y, loss, variant=variant)


def manual_value_and_grad(
    model: MLP, x: Array, y: Array, loss: str | Loss, variant: str = "hadamard"
) -> tuple[Array, MLP]:
    """The batch loss and its hand-written gradient from one forward pass.

    Arguments as :func:`manual_grad`.

    Returns:
        ``(L, grads)``: the scalar batch loss and the gradient as an :class:`MLP`.
    """
    return _compiled_manual_value_and_grad(model, x, y, loss, variant=variant)


def sgd_step(model: MLP, grads: MLP, lr: float | Array) -> MLP:
    """The notes' update, W ← W − lr·∂L/∂W (and b likewise).

    Arguments:
        model: the network.
        grads: its gradient, an MLP of the same structure.
        lr: the learning rate (the notes' γ, c or l), a number or a scalar array;
            a traced argument, so a new rate does not recompile.

    Returns:
        The updated network, an :class:`MLP` of the same structure.
    """
    return _sgd_step(model, grads, lr)


@jax.jit
def _sgd_step(model: MLP, grads: MLP, lr: float | Array) -> MLP:
    return jax.tree_util.tree_map(lambda p, g: p - lr * g, model, grads)
