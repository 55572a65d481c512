"""A plain NumPy float64 backpropagation, written straight from the notes.

This is an independent second implementation: the oracle the tests compare
the JAX code with, and the baseline the benchmarks race. It shares no code with
the rest of the package on purpose, so it covers only what the notes and the
benchmarks need: sigmoid, tanh, relu and identity hidden layers; those or
softmax on the output; half_sse, sse, mse and cross_entropy losses.

Conventions as in the package: ``weights[l]`` of shape (out, in), x of shape
(batch, in), a batch's loss is the mean of the per-example losses.

Example:
    >>> import numpy as np
    >>> from backprop_lab import reference
    >>> W = [np.array([[0.1, 0.2], [0.3, 0.4]])]
    >>> dW, db, L = reference.backprop(W, [None], np.array([[1.0, 0.0]]),
    ...                                np.array([[0.0, 1.0]]), "sigmoid", "sigmoid", "half_sse")
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# name -> (f(z), f'(z) written with a = f(z))
FUNCTIONS = {
    "sigmoid": (_sigmoid, lambda z, a: a * (1.0 - a)),
    "tanh": (np.tanh, lambda z, a: 1.0 - a * a),
    "relu": (lambda z: np.where(z > 0, z, 0.0), lambda z, a: (z > 0).astype(z.dtype)),
    "identity": (lambda z: z, lambda z, a: np.ones_like(z)),
}

# name -> (per-example loss(a, y), dloss/da)
COSTS = {
    "half_sse": (lambda a, y: 0.5 * ((a - y) ** 2).sum(-1), lambda a, y: a - y),
    "sse": (lambda a, y: ((a - y) ** 2).sum(-1), lambda a, y: 2.0 * (a - y)),
    "mse": (lambda a, y: ((a - y) ** 2).mean(-1), lambda a, y: 2.0 * (a - y) / a.shape[-1]),
}


def forward(
    weights: Sequence[np.ndarray],
    biases,
    x: np.ndarray,
    activation: str,
    output_activation: str,
    dtype=np.float64,
):
    """Return (zs, activations): zs[l] and activations[l + 1] of shape (batch, width).

    ``x`` is converted to ``dtype`` (float64 unless a benchmark asks for float32);
    the weights are used as given.
    """
    a = np.asarray(x, dtype)
    zs, activations = [], [a]
    for l, (w, b) in enumerate(zip(weights, biases)):
        z = a @ w.T if b is None else a @ w.T + b
        last = l == len(weights) - 1
        if last and output_activation == "softmax":
            a = _softmax(z)
        else:
            a = FUNCTIONS[output_activation if last else activation][0](z)
        zs.append(z)
        activations.append(a)
    return zs, activations


def backprop(weights, biases, x, y, activation: str, output_activation: str, loss: str, dtype=np.float64):
    """Return (dW, db, L) of the batch-mean loss L; db[l] is None where biases[l] is.

    x and y are converted to ``dtype`` (default float64, the oracle's precision).
    """
    y = np.asarray(y, dtype)
    zs, acts = forward(weights, biases, x, activation, output_activation, dtype)
    a_out = acts[-1]
    if loss == "cross_entropy":
        assert output_activation == "softmax", "cross_entropy pairs with softmax here"
        cost = -(y * np.log(a_out)).sum(-1)
        delta = y.sum(-1, keepdims=True) * a_out - y  # note 003
    else:
        cost_fn, dcost = COSTS[loss]
        cost = cost_fn(a_out, y)
        g = dcost(a_out, y)
        if output_activation == "softmax":
            delta = a_out * (g - (g * a_out).sum(-1, keepdims=True))
        else:
            delta = g * FUNCTIONS[output_activation][1](zs[-1], a_out)
    n = x.shape[0]
    dW = [None] * len(weights)
    db = [None] * len(weights)
    for l in range(len(weights) - 1, -1, -1):
        dW[l] = delta.T @ acts[l] / n
        if biases[l] is not None:
            db[l] = delta.mean(0)
        if l > 0:
            delta = (delta @ weights[l]) * FUNCTIONS[activation][1](zs[l - 1], acts[l])
    return dW, db, float(cost.mean())


def train_sgd(
    weights,
    biases,
    x,
    y,
    activation: str,
    output_activation: str,
    loss: str,
    lr: float,
    steps: int,
    batch_size: int | None = None,
    seed: int = 0,
    dtype=np.float64,
):
    """Plain SGD for ``steps`` steps; minibatches drawn from a seeded permutation per epoch.

    ``dtype`` is the precision of the whole run (float64 by default; the
    benchmarks also race it in float32 against float32 JAX).

    Returns (weights, biases, losses) with one loss per step.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype)
    y = np.asarray(y, dtype)
    weights = [np.array(w, dtype) for w in weights]
    biases = [None if b is None else np.array(b, dtype) for b in biases]
    n = x.shape[0]
    bs = n if batch_size is None else batch_size
    per_epoch = n // bs
    losses = np.empty(steps)
    order = np.arange(n)
    for step in range(steps):
        if step % per_epoch == 0 and bs < n:
            order = rng.permutation(n)
        idx = order[(step % per_epoch) * bs : (step % per_epoch + 1) * bs]
        dW, db, losses[step] = backprop(
            weights, biases, x[idx], y[idx], activation, output_activation, loss, dtype
        )
        for l in range(len(weights)):
            weights[l] -= lr * dW[l]
            if biases[l] is not None:
                biases[l] -= lr * db[l]
    return weights, biases, losses
