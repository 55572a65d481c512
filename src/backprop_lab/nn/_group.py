"""A group of networks padded to one shape, and each lane's own network taken back out.

Networks with the same input and output widths, output activation and bias convention
are embedded in the group's widths (:func:`group_sizes`) with the layer rules of
:mod:`._layer_rules`, each with its :class:`LaneMask` (:mod:`._padding`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import numpy as np

from ._layer_rules import LAYER_RULES
from ._network import MLP
from ._padding import LaneMask, lane_mask

__all__ = ["group_sizes", "pad_network", "unpad_network"]

_DENSE = LAYER_RULES["dense"]


def group_sizes(sizes: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """The padded widths ``[in, hidden..., out]`` of a group of networks.

    Hidden position p is as wide as the widest lane there; a lane with fewer hidden
    layers counts there with the width it passes through (its last hidden width).

    >>> group_sizes([[2, 16, 2], [2, 4, 8, 2]])
    (2, 16, 16, 2)
    """
    shapes = [tuple(int(w) for w in s) for s in sizes]
    if not shapes:
        raise ValueError("give at least one network's sizes")
    if len({(s[0], s[-1]) for s in shapes}) > 1:
        raise ValueError(
            f"networks of one group must share input and output widths; got {[list(s) for s in shapes]}"
        )
    depth = max(len(s) - 2 for s in shapes)
    hidden = tuple(max(s[min(p + 1, len(s) - 2)] for s in shapes) for p in range(depth))
    return (shapes[0][0], *hidden, shapes[0][-1])


@functools.lru_cache(maxsize=256)
def _structure(sizes: tuple[int, ...], activation: str, output_activation: str, bias: bool):
    """The pytree structure of an MLP of these settings (traced abstractly: nothing drawn)."""
    shape = jax.eval_shape(
        lambda: MLP(sizes, activation, output_activation, bias, key=jax.random.PRNGKey(0), init="glorot")
    )
    return jax.tree.structure(shape)


def _assemble(weights, biases, activation: str, output_activation: str) -> MLP:
    sizes = (weights[0].shape[1], *(w.shape[0] for w in weights))
    bias = biases[0] is not None
    leaves = list(weights) + ([*biases] if bias else [])
    return jax.tree.unflatten(_structure(sizes, activation, output_activation, bias), leaves)


def pad_network(
    model: MLP, padded: Sequence[int], activations: Sequence[str] | None = None
) -> tuple[MLP, LaneMask]:
    """``model`` embedded in a network of widths ``padded``, and its lane mask (host arrays).

    Arguments:
        model: the lane's own network.
        padded: the group's widths (:func:`group_sizes`).
        activations: the group's hidden activations (default: the model's own).

    >>> import jax
    >>> net = MLP([2, 3, 2], "tanh", key=jax.random.PRNGKey(0))
    >>> big, mask = pad_network(net, [2, 5, 5, 2], ["relu", "tanh"])
    >>> big.sizes, int(mask.act), mask.real.tolist()
    ((2, 5, 5, 2), 1, [True, False, True])
    """
    padded = tuple(padded)
    activations = (model.activation,) if activations is None else tuple(activations)
    d, depth = len(model.sizes) - 2, len(padded) - 2
    ws, bs = [], []
    for l in range(depth + 1):
        shape = (padded[l + 1], padded[l])
        src = l if l < d else d if l == depth else None  # None: an identity layer, all padding
        if src is None:
            w, b = _DENSE.embed(np.zeros((0, 0), model.weights[0].dtype), None, shape)
            b = None if model.biases[0] is None else np.zeros(shape[:1], w.dtype)
        else:
            b_src = model.biases[src]
            w, b = _DENSE.embed(
                np.asarray(model.weights[src]), None if b_src is None else np.asarray(b_src), shape
            )
        ws.append(w)
        bs.append(b)
    mask = lane_mask(model.sizes, model.activation, padded, activations)
    return _assemble(ws, bs, activations[0], model.output_activation), mask


def unpad_network(model: MLP, mask: LaneMask) -> MLP:
    """The lane's own network out of its padded one (one lane, host arrays): the inverse
    of :func:`pad_network`.

    >>> import jax
    >>> net = MLP([2, 3, 2], "tanh", key=jax.random.PRNGKey(0))
    >>> back = unpad_network(*pad_network(net, [2, 5, 5, 2], ["relu", "tanh"]))
    >>> back.sizes, back.activation, bool((back.weights[1] == net.weights[1]).all())
    ((2, 3, 2), 'tanh', True)
    """
    real = np.asarray(mask.real)
    d = int(real[:-1].sum())
    sizes = (model.sizes[0], *(int(np.sum(mask.units[l])) for l in range(d)), model.sizes[-1])
    layers = [*range(d), len(real) - 1]
    ws, bs = [], []
    for j, l in enumerate(layers):
        b = model.biases[l]
        w, b = _DENSE.extract(
            np.asarray(model.weights[l]), None if b is None else np.asarray(b), (sizes[j + 1], sizes[j])
        )
        ws.append(w)
        bs.append(b)
    return _assemble(ws, bs, mask.activations[int(mask.act)], model.output_activation)
