"""Evaluation: loss and accuracy of a data set in one compiled call."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ._backprop import loss_value
from ._network import MLP

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


def accuracy(model: MLP, x: Array, y: Array) -> Array:
    """Fraction of examples classified right.

    Argmax against one-hot targets; otherwise every output thresholded at 0.5
    (logic gates, note 004's swap table).

    Arguments:
        model: the network; x: (n, in); y: (n, out).
    """
    return accuracy_of(model(jnp.asarray(x, model.weights[0].dtype)), jnp.asarray(y), is_one_hot(y))


@functools.partial(jax.jit, static_argnames=("loss", "one_hot"))
def _evaluate(model, x, y, *, loss, one_hot):
    return loss_value(model, x, y, loss), accuracy_of(model(x), y, one_hot)


def evaluate(model: MLP, x: Array, y: Array, loss: str) -> tuple[Array, Array]:
    """``(loss, accuracy)`` of a data set in one compiled call (see :func:`accuracy`)."""
    return _evaluate(model, jnp.asarray(x, model.weights[0].dtype), jnp.asarray(y), loss=loss,
                     one_hot=is_one_hot(y))
