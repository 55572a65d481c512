"""Lanes of different architectures: their states padded and stacked, each lane's own state
taken back out, and what the padding costs.

Networks that differ in widths, depth or hidden activation go into one program padded to
the group's shape (:mod:`backprop_lab.nn._padding`); so do their optimizer states, every
network-shaped part of a state (momentum, Adam's moments) padded with zeros, which is
what a padded parameter's state is. Everything outside the program (checkpoints,
summaries, the agreement checks) sees each lane's own, unpadded network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from ..nn._group import group_sizes, pad_network, unpad_network
from ..nn._network import MLP
from ..nn._padding import LaneMask


def _is_net(node: object) -> bool:
    return isinstance(node, MLP)


def architecture(model: MLP) -> tuple:
    """What a lane's program depends on in its network: widths and hidden activation."""
    return (model.sizes, model.activation)


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *leaves: np.stack([np.asarray(leaf) for leaf in leaves]), *trees)


def stack_states(
    models: Sequence[Any], opt_states: Sequence[Any], like: Sequence[MLP] | None = None
) -> tuple[MLP, Any, LaneMask | None]:
    """The lanes' networks and optimizer states stacked on the host along a leading lane axis.

    Networks of one architecture are stacked as they are (mask None); of several, each is
    padded to the group's :func:`group_sizes` first, with its optimizer state, and the
    stacked :class:`LaneMask` says which parts are each lane's own. The group's hidden
    activations are in the order they first appear. ``like`` (default ``models``): the
    networks whose shapes and activations lay the program out; some lanes of a program
    resumed apart from the others are laid out as the whole program was.

    >>> import jax, optax
    >>> nets = [MLP([2, 3, 2], "tanh", key=jax.random.PRNGKey(0)), MLP([2, 5, 4, 2], "relu", key=jax.random.PRNGKey(1))]
    >>> opt = optax.adam(1e-2)
    >>> models, states, mask = stack_states(nets, [opt.init(n) for n in nets])
    >>> models.sizes, models.weights[1].shape, mask.activations
    ((2, 5, 4, 2), (2, 4, 5), ('tanh', 'relu'))
    """
    nets, mask = stack_networks(models, like)
    if mask is None:
        return nets, _stack(opt_states), None
    padded, activations = nets.sizes, mask.activations

    def pad(node: Any) -> Any:
        return pad_network(node, padded, activations)[0] if _is_net(node) else node

    return nets, _stack([jax.tree.map(pad, state, is_leaf=_is_net) for state in opt_states]), mask


def stack_networks(models: Sequence[MLP], like: Sequence[MLP] | None = None) -> tuple[MLP, LaneMask | None]:
    """The lanes' networks stacked on the host as :func:`stack_states` stacks them: as they
    are (mask None) when they and ``like`` share one architecture, else padded to the shape
    of all of them, with their stacked masks.

    >>> import jax
    >>> nets = [MLP([2, 3, 2], "tanh", key=jax.random.PRNGKey(0)), MLP([2, 2], "relu", key=jax.random.PRNGKey(1))]
    >>> models, mask = stack_networks(nets)
    >>> models.sizes, mask.real.tolist()
    ((2, 3, 2), [[True, True], [False, True]])
    """
    layout = [*(like or ()), *models]
    if len({architecture(m) for m in layout}) == 1:
        return _stack(models), None
    padded = group_sizes([m.sizes for m in layout])
    activations = tuple(dict.fromkeys(m.activation for m in layout))
    nets, masks = zip(*(pad_network(m, padded, activations) for m in models))
    return _stack(nets), _stack(masks)


def lane_state(models: MLP, opt_states: Any, mask: LaneMask | None, i: int) -> tuple[MLP, Any]:
    """Lane ``i``'s own network and optimizer state out of stacked (host) ones: the inverse of
    :func:`stack_states`."""

    def take(tree: Any) -> Any:
        return jax.tree.map(lambda leaf: leaf[i], tree)

    model, state = take(models), take(opt_states)
    if mask is None:
        return model, state
    own = take(mask)

    def unpad(node: Any) -> Any:
        return unpad_network(node, own) if _is_net(node) else node

    return unpad_network(model, own), jax.tree.map(unpad, state, is_leaf=_is_net)


def _flops(sizes: Sequence[int]) -> int:
    return sum(int(i) * int(o) for i, o in zip(sizes[:-1], sizes[1:]))


def padding_ratio(sizes: Sequence[Sequence[int]]) -> float:
    """Padded FLOPs / real FLOPs of lanes of these widths (one entry per lane) in one program.

    Each lane's matrix products cost in·out per layer and example; padded, every lane
    costs what the group's :func:`group_sizes` cost. 1.0: no waste.

    >>> padding_ratio([[2, 16, 2], [2, 16, 2], [2, 64, 2]])
    2.0
    """
    padded = _flops(group_sizes(sizes))
    return len(sizes) * padded / sum(_flops(s) for s in sizes)
