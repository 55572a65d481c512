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

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

#: (batch, width) arrays in, one out.
_Elementwise = Callable[[np.ndarray], np.ndarray]
_Pairwise = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# name -> (f(z), f'(z) written with a = f(z))
FUNCTIONS: dict[str, tuple[_Elementwise, _Pairwise]] = {
    "sigmoid": (_sigmoid, lambda z, a: a * (1.0 - a)),
    "tanh": (np.tanh, lambda z, a: 1.0 - a * a),
    "relu": (lambda z: np.where(z > 0, z, 0.0), lambda z, a: (z > 0).astype(z.dtype)),
    "identity": (lambda z: z, lambda z, a: np.ones_like(z)),
}

# name -> (per-example loss(a, y), dloss/da)
COSTS: dict[str, tuple[_Pairwise, _Pairwise]] = {
    "half_sse": (lambda a, y: 0.5 * ((a - y) ** 2).sum(-1), lambda a, y: a - y),
    "sse": (lambda a, y: ((a - y) ** 2).sum(-1), lambda a, y: 2.0 * (a - y)),
    "mse": (lambda a, y: ((a - y) ** 2).mean(-1), lambda a, y: 2.0 * (a - y) / a.shape[-1]),
}


def forward(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray | None],
    x: ArrayLike,
    activation: str,
    output_activation: str,
    dtype: DTypeLike = np.float64,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return (zs, activations): zs[l] and activations[l + 1] of shape (batch, width).

    ``x`` is converted to ``dtype`` (float64 unless a benchmark asks for float32);
    the weights are used as given.
    """
    a = np.asarray(x, dtype)
    zs: list[np.ndarray] = []
    activations = [a]
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


def backprop(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray | None],
    x: np.ndarray,
    y: ArrayLike,
    activation: str,
    output_activation: str,
    loss: str,
    dtype: DTypeLike = np.float64,
) -> tuple[list[np.ndarray], list[np.ndarray | None], float]:
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
    dW: list[np.ndarray] = []  # last layer first, turned round at the end
    db: list[np.ndarray | None] = []
    for l in range(len(weights) - 1, -1, -1):
        dW.append(delta.T @ acts[l] / n)
        db.append(None if biases[l] is None else delta.mean(0))
        if l > 0:
            delta = (delta @ weights[l]) * FUNCTIONS[activation][1](zs[l - 1], acts[l])
    return dW[::-1], db[::-1], float(cost.mean())


def train_sgd(
    weights: Sequence[ArrayLike],
    biases: Sequence[ArrayLike | None],
    x: ArrayLike,
    y: ArrayLike,
    activation: str,
    output_activation: str,
    loss: str,
    lr: float,
    steps: int,
    batch_size: int | None = None,
    seed: int = 0,
    dtype: DTypeLike = np.float64,
) -> tuple[list[np.ndarray], list[np.ndarray | None], np.ndarray]:
    """Plain SGD for ``steps`` steps; minibatches drawn from a seeded permutation per epoch.

    ``dtype`` is the precision of the whole run (float64 by default; the
    benchmarks also race it in float32 against float32 JAX).

    Returns (weights, biases, losses) with one loss per step.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype)
    y = np.asarray(y, dtype)
    Ws = [np.array(w, dtype) for w in weights]  # the run's own copies, in dtype
    Bs = [None if b is None else np.array(b, dtype) for b in biases]
    n = x.shape[0]
    bs = n if batch_size is None else batch_size
    per_epoch = n // bs
    losses = np.empty(steps)
    order = np.arange(n)
    for step in range(steps):
        if step % per_epoch == 0 and bs < n:
            order = rng.permutation(n)
        idx = order[(step % per_epoch) * bs : (step % per_epoch + 1) * bs]
        dW, db, losses[step] = backprop(Ws, Bs, x[idx], y[idx], activation, output_activation, loss, dtype)
        for l in range(len(Ws)):
            Ws[l] -= lr * dW[l]
            b, g = Bs[l], db[l]
            if b is not None and g is not None:  # g is None exactly where b is
                b -= lr * g  # in place: Bs[l] is this array
    return Ws, Bs, losses
