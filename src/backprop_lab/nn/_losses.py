"""Losses, each with its hand-written output delta beside it.

A loss is per example: it maps the output layer's ``z`` and ``a`` (shape
(..., out)) and the target ``y`` (same shape) to one number per example. The
loss of a batch is the mean of the per-example losses.

Each entry supplies ``grad_a(a, y) = ∂ℓ/∂a``; the backward pass turns it into
δᴸ = (∂a/∂z)ᵀ ∂ℓ/∂a through the output activation's own rule. Where the
pairing has a simpler closed form, the loss supplies it in ``fused`` (note 003's
δ = (Σy)·a − y for softmax + cross-entropy; a − y for sigmoid + binary
cross-entropy). Losses whose value is computed from ``z`` for numerical
stability name the output activation they require in ``requires``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Loss:
    """A per-example loss with its hand-written derivative.

    Attributes:
        name: the name used in configs and error messages.
        value: ``(z, a, y) -> ℓ`` of shape (...,), one number per example.
        grad_a: ``(a, y) -> ∂ℓ/∂a``, same shape as ``a``; None where only a
            fused rule exists (losses computed from ``z``).
        fused: output-activation name → ``(z, a, y) -> δᴸ`` closed forms.
        requires: the output activation this loss is defined for, or None.
    """

    name: str
    value: Callable[[Array, Array, Array], Array]
    grad_a: Callable[[Array, Array], Array] | None
    fused: Mapping[str, Callable[[Array, Array, Array], Array]] = dataclasses.field(default_factory=dict)
    requires: str | None = None


def _half_sse(z: Array, a: Array, y: Array) -> Array:
    return 0.5 * jnp.sum((a - y) ** 2, axis=-1)


def _sse(z: Array, a: Array, y: Array) -> Array:
    return jnp.sum((a - y) ** 2, axis=-1)


def _mse(z: Array, a: Array, y: Array) -> Array:
    return jnp.mean((a - y) ** 2, axis=-1)


def _cross_entropy(z: Array, a: Array, y: Array) -> Array:
    return -jnp.sum(y * jax.nn.log_softmax(z, axis=-1), axis=-1)


def _binary_cross_entropy(z: Array, a: Array, y: Array) -> Array:
    # −[y log σ(z) + (1 − y) log(1 − σ(z))] = softplus(z) − y z, stable for any z.
    return jnp.sum(jax.nn.softplus(z) - y * z, axis=-1)


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("half_sse", _half_sse, lambda a, y: a - y),
        Loss("sse", _sse, lambda a, y: 2.0 * (a - y)),
        Loss("mse", _mse, lambda a, y: 2.0 * (a - y) / a.shape[-1]),
        Loss(
            "cross_entropy",
            _cross_entropy,
            None,
            fused={"softmax": lambda z, a, y: jnp.sum(y, axis=-1, keepdims=True) * a - y},
            requires="softmax",
        ),
        Loss(
            "binary_cross_entropy",
            _binary_cross_entropy,
            None,
            fused={"sigmoid": lambda z, a, y: a - y},
            requires="sigmoid",
        ),
    )
}


def get_loss(name: str | Loss, output_activation: str | None = None) -> Loss:
    """Look up a loss by name and check that it fits the output activation.

    Arguments:
        name: a key of :data:`LOSSES`, or a :class:`Loss` (returned as is).
        output_activation: the network's output activation name, checked
            against the loss's ``requires``.

    Raises:
        ValueError: unknown name (the message lists the valid ones), or a loss
            that is not defined for this output activation.
    """
    if isinstance(name, Loss):
        loss = name
    else:
        if name not in LOSSES:
            valid = ", ".join(sorted(LOSSES))
            raise ValueError(f"unknown loss {name!r}; valid losses are: {valid}")
        loss = LOSSES[name]
    if output_activation is not None and loss.requires not in (None, output_activation):
        raise ValueError(
            f"loss {loss.name!r} needs output_activation={loss.requires!r}, "
            f"got {output_activation!r}; use output_activation={loss.requires!r} "
            f"or a loss that works with any output (half_sse, sse, mse)"
        )
    return loss
