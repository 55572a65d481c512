"""Every lane of a sweep measured in one compiled call: losses, accuracy, gradient flow."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from ..checks._evaluation import accuracy_of
from ..nn._backprop import backprop_trace, backprop_trace_body, loss_value
from ..nn._network import MLP
from ..nn._padding import LaneMask, masked_forward_trace, masked_loss_value

__all__ = ["measure_lanes"]

Array = jax.Array


def _finite(tree: Any) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def _norms(arrays) -> Array:
    return jnp.stack([jnp.sqrt(jnp.sum(jnp.square(a))) for a in arrays])


def _mean_abs(delta: Array, units: Array | None) -> Array:
    """Mean |δ| of a layer: over its real units only when the network is padded."""
    if units is None:
        return jnp.mean(jnp.abs(delta))
    return jnp.sum(jnp.abs(delta)) / (delta.shape[0] * jnp.sum(units))


@functools.partial(jax.jit, static_argnames=("loss", "one_hot", "diagnostics", "data_axis"))
def _measure(models, masks, x, y, x_test, y_test, *, loss, one_hot, diagnostics, data_axis):
    def one(model, mask, x, y, x_test, y_test):
        if mask is None:
            value, trace = functools.partial(loss_value, model), functools.partial(backprop_trace, model)
            outputs = model(x_test)
        else:  # a padded lane: its own network's numbers, its real layers flagged
            value = functools.partial(masked_loss_value, model, mask)
            trace = functools.partial(backprop_trace_body, model, variant="hadamard", mask=mask)
            outputs = masked_forward_trace(model, mask, x_test).a[-1]
        out = {
            "test_loss": value(x_test, y_test, loss),
            "test_accuracy": accuracy_of(outputs, y_test, one_hot),
            "finite": _finite(model),
        }
        if diagnostics:
            tr = trace(x, y, loss)
            out["train_loss"] = tr.loss
            out["grad_norms"] = _norms(tr.grads.weights)
            if all(b is not None for b in tr.grads.biases):
                out["bias_grad_norms"] = _norms(tr.grads.biases)
            units = [None] * len(tr.delta) if mask is None else mask.units
            out["mean_abs_delta"] = jnp.stack([_mean_abs(d, u) for d, u in zip(tr.delta, units)])
            if mask is not None:
                out["real_layers"] = mask.real
        else:
            out["train_loss"] = value(x, y, loss)
        return out

    return jax.vmap(one, in_axes=(0, 0, data_axis, data_axis, data_axis, data_axis))(
        models, masks, x, y, x_test, y_test
    )


def measure_lanes(
    models: MLP,
    x: Array,
    y: Array,
    x_test: Array,
    y_test: Array,
    *,
    loss: str,
    one_hot: bool,
    diagnostics: bool = True,
    mask: LaneMask | None = None,
) -> dict[str, Array]:
    """Evaluate every lane in one compiled call.

    Arguments:
        models: stacked along a leading lane axis.
        x, y, x_test, y_test: shared (n, width) or per lane (lanes, n, width).
        one_hot: whether the targets are one-hot rows (accuracy by argmax).
        diagnostics: also the gradient flow on the whole training set.

    Returns:
        Arrays with a leading lane axis: ``train_loss``, ``test_loss``,
        ``test_accuracy``, ``finite`` (every parameter finite) and, with
        diagnostics, per layer (first layer first) ``grad_norms`` (‖∂L/∂Wˡ‖_F),
        ``bias_grad_norms`` (‖∂L/∂bˡ‖) and ``mean_abs_delta`` (mean |δˡ|). Padded
        lanes (``mask`` given) measure their own networks; their per-layer arrays
        include identity layers, which ``real_layers`` (lanes, layers) marks False.
    """
    return _measure(
        models,
        mask,
        x,
        y,
        x_test,
        y_test,
        loss=loss,
        one_hot=one_hot,
        diagnostics=diagnostics,
        data_axis=0 if x.ndim == 3 else None,
    )
