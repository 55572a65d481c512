"""The layer formulas of one explained step, each result rounded as the notes round it.

Every formula takes ``r``, which rounds an intermediate to k decimals half up
(:func:`round_half_up`, as on paper, note 004) or leaves it as it is (exact
float64, note 003); every result the notes print passes through it once. f, f′
and the output δ come from the ``ACTIVATIONS`` and ``LOSSES`` tables.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..nn._activations import Activation
from ..nn._losses import Loss

Array = jax.Array

__all__ = ["change", "forward", "output_delta", "round_half_up", "rounder", "through", "update"]


def round_half_up(values, decimals: int) -> np.ndarray:
    """Round as on paper: to ``decimals`` places, halves away from zero.

    Float noise is removed first (13 significant digits), so 0.00185 stored as
    0.0018499999… still rounds to 0.0019.

    Arguments:
        values: an array of any shape.
        decimals: places after the point, >= 0.

    Returns:
        A float64 array of the same shape.
    """
    quantum = decimal.Decimal(1).scaleb(-decimals)

    def one(v: float) -> float:
        if not np.isfinite(v):
            return float(v)
        d = decimal.Decimal(f"{v:.12e}").quantize(quantum, rounding=decimal.ROUND_HALF_UP)
        return float(d) + 0.0

    arr = np.asarray(values, dtype=np.float64)
    return np.vectorize(one, otypes=[np.float64])(arr).reshape(arr.shape)


def rounder(decimals: int | None) -> Callable[[Array], Array]:
    if decimals is None:
        return lambda v: v
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)) or decimals < 0:
        raise ValueError(f"round_each_step must be null or an integer >= 0, got {decimals!r}")
    return lambda v: jnp.asarray(round_half_up(np.asarray(v), int(decimals)))


def forward(act: Activation, W: Array, b: Array | None, out_prev: Array, r) -> tuple[Array, Array]:
    net = r(W @ out_prev if b is None else W @ out_prev + b)
    return net, r(act.fn(net))


def output_delta(act: Activation, loss: Loss, net: Array, out: Array, y: Array, r, *, fprime_line: bool):
    """(∂L/∂out or None, f′ or None, Jacobian or None, δ) of the output layer.

    ``fprime_line``: whether f′ is shown on a line of its own (see :func:`through`);
    a rounded walk-through writes δᴸ as one expression instead, as note 004 writes
    (out − target)·out·(1 − out), so there f′ is neither shown nor rounded.
    """
    if act.name in loss.fused:
        return None, None, None, r(loss.fused[act.name](net, out, y))
    assert loss.grad_a is not None, "get_loss pairs a loss without grad_a only with its fused outputs"
    g = r(loss.grad_a(out, y))
    return g, *through(act, net, out, g, r, fprime_line=fprime_line)


def through(act: Activation, net: Array, out: Array, g: Array, r, *, fprime_line: bool = True):
    """(f′ or None, Jacobian or None, δ = (∂out/∂net)ᵀ g) for one layer.

    One rule in every layer: a number shown on a line of its own is rounded and
    used as shown. With ``fprime_line`` (every hidden layer, as note 004 prints
    sig′(net_c)) f′(net) is such a number: rounded, and δ is the product of the
    shown g and f′, rounded. Without it (a rounded walk-through's output layer) δ
    is one expression, g ⊙ f′ (or Jᵀg) from the table, rounded once, and f′ and
    the Jacobian are None.
    """
    if not fprime_line:
        return None, None, r(act.backward(net, out, g))
    if act.deriv is None:
        return None, r(act.jacobian(net, out)), r(act.backward(net, out, g))
    fprime = r(act.deriv(net, out))
    return fprime, None, r(g * fprime)


def change(delta: Array, out_prev: Array, b: Array | None, r) -> tuple[Array, Array | None]:
    return r(jnp.outer(delta, out_prev)), None if b is None else delta


def update(p: Array | None, grad: Array | None, lr: float, r):
    if p is None or grad is None:
        return None, None
    step = r(lr * grad)
    return step, r(p - step)
