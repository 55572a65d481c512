"""Evaluation: loss and accuracy of a data set in one compiled call.

:func:`accuracy` and :func:`evaluate` run one compiled program each, cached per
shape, dtype (and loss): whether the targets are one-hot is decided inside the
program, not by reading them on the host, so both also work on tracers (inside
someone else's ``jit``, ``vmap`` or ``grad``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from ..nn._backprop import loss_value
from ..nn._network import MLP

Array = jax.Array


def accuracy_of(a: Array, y: Array, one_hot: bool) -> Array:
    """Fraction right of outputs ``a`` (n, out) against targets ``y`` (n, out): argmax
    when ``one_hot``, otherwise every output thresholded at 0.5. Traceable."""
    if one_hot:
        return jnp.mean(jnp.argmax(a, axis=-1) == jnp.argmax(y, axis=-1))
    return jnp.mean(jnp.all((a > 0.5) == (y > 0.5), axis=-1))


def is_one_hot(y) -> bool:
    """Whether concrete targets (n, out) are one-hot rows of two or more classes."""
    y = np.asarray(y)
    return y.ndim == 2 and y.shape[-1] > 1 and bool(np.all(y.sum(-1) == 1) and np.all((y == 0) | (y == 1)))


def _accuracy_traced(a: Array, y: Array) -> Array:
    """:func:`accuracy_of` with the one-hot test of :func:`is_one_hot` made inside the trace."""
    thresholded = accuracy_of(a, y, False)
    if y.ndim != 2 or y.shape[-1] < 2:
        return thresholded
    one_hot = jnp.all(jnp.sum(y, axis=-1) == 1) & jnp.all((y == 0) | (y == 1))
    return jnp.where(one_hot, accuracy_of(a, y, True), thresholded)


def accuracy(model: MLP, x: Array, y: Array) -> Array:
    """Fraction of examples classified right.

    Argmax against one-hot targets; otherwise every output thresholded at 0.5
    (logic gates, note 004's swap table).

    Arguments:
        model: the network; x: (n, in); y: (n, out).

    Returns:
        A scalar in [0, 1].
    """
    return _accuracy(model, x, y)


@jax.jit
def _accuracy(model: MLP, x: Array, y: Array) -> Array:
    return _accuracy_traced(model(jnp.asarray(x, model.weights[0].dtype)), jnp.asarray(y))


@functools.partial(jax.jit, static_argnames=("loss",))
def _evaluate(model: MLP, x: Array, y: Array, *, loss: str) -> tuple[Array, Array]:
    x = jnp.asarray(x, model.weights[0].dtype)
    return loss_value(model, x, y, loss), _accuracy_traced(model(x), jnp.asarray(y))


def evaluate(model: MLP, x: ArrayLike, y: ArrayLike, loss: str) -> tuple[Array, Array]:
    """``(loss, accuracy)`` of a data set in one compiled call (see :func:`accuracy`).

    Arguments:
        model: the network; x: (n, in); y: (n, out); loss: a loss name (see ``LOSSES``).

    Returns:
        The scalar mean loss and the scalar accuracy.
    """
    return _evaluate(model, x, y, loss=loss)
