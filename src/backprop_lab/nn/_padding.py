"""Networks of different widths, depths and hidden activations as lanes of one program.

A group of networks with the same input and output widths, output activation and
bias convention is padded to one shape, :func:`group_sizes`, and each lane carries a
:class:`LaneMask` that makes the padded network compute exactly its own network:

- widths: Wˡ and bˡ are embedded in zeros; the lane's unit mask sets every padded
  unit's activation to 0 (a sigmoid would give ½ there), so a padded unit sends
  nothing forward and its δ is 0, and so is every padded entry of ∂L/∂W;
- depths: a lane with d hidden layers uses the first d hidden positions, passes its
  signal through the others unchanged (identity layers: ``aˡ⁺¹ = aˡ`` forward and
  ``∂ℓ/∂aˡ = ∂ℓ/∂aˡ⁺¹`` backward, their W and b all padding), then its own output layer;
- activations: the lane's hidden activation is ``lax.switch`` on its index into the
  group's tuple (under ``jax.vmap`` a select), and its hand-written derivative likewise.

The gradient is masked too (:func:`mask_params`), so that a padded parameter stays
exactly 0 under any optimizer: its gradient, momentum, Adam moments, decoupled weight
decay (λ·0) and update are all 0. On a lane's real units every operation is the one
the unpadded network performs; a padded sum only adds exact zeros, so the results
differ at most by the order XLA sums in (tests/nn/test_padding.py holds them to 1e-6
relative in float32, 1e-12 in float64, through whole training runs).

Layer kinds: a layer kind's embedding, extraction and parameter mask are one entry of
:data:`LAYER_RULES`; the dense layer is the only kind so far.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._activations import Activation, get_activation
from ._backprop import backprop_trace_body
from ._losses import Loss, get_loss
from ._network import MLP, Trace

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class LayerRule:
    """How one layer kind is padded: its parameters embedded in zeros, taken back out,
    and which padded entries are real.

    Attributes:
        embed: ``(w, b, (out, in)) -> (W, B)``, the real block at the top left, zeros elsewhere.
        extract: ``(W, B, (out, in)) -> (w, b)``, the real block.
        mask: ``(out_units, in_units, real) -> (W mask, B mask)``, booleans: True on the
            lane's own parameters (none at all for an identity layer).
    """

    embed: Callable[..., tuple[Any, Any]]
    extract: Callable[..., tuple[Any, Any]]
    mask: Callable[..., tuple[Array, Array]]


def _dense_embed(w, b, shape: tuple[int, int]):
    big = np.zeros(shape, w.dtype)
    big[: w.shape[0], : w.shape[1]] = w
    if b is None:
        return big, None
    bias = np.zeros(shape[:1], b.dtype)
    bias[: b.shape[0]] = b
    return big, bias


def _dense_extract(w, b, shape: tuple[int, int]):
    return w[: shape[0], : shape[1]], None if b is None else b[: shape[0]]


def _dense_mask(out_units, in_units, real) -> tuple[Array, Array]:
    rows = out_units & real
    return rows[:, None] & in_units[None, :], rows


#: Layer kind → its padding rule.
LAYER_RULES: dict[str, LayerRule] = {"dense": LayerRule(_dense_embed, _dense_extract, _dense_mask)}
_DENSE = LAYER_RULES["dense"]


class LaneMask(eqx.Module):
    """Which parts of a padded network are one lane's own network.

    Attributes:
        units: per layer, a boolean (width,) vector: the real units of that layer's
            output as it is passed on (through an identity layer, the units it passes).
        real: (layers,) booleans: False for an identity layer; the output layer is real.
        act: the lane's hidden activation, an index into ``activations``.
        activations: the group's hidden activations (static: part of the program).
    """

    units: tuple[Array | np.ndarray, ...]
    real: Array | np.ndarray
    act: Array | np.ndarray | np.integer
    activations: tuple[str, ...] = eqx.field(static=True)

    def hidden(self) -> Activation:
        """The lane's hidden activation and its hand-written derivative (a select under vmap)."""
        acts = [get_activation(name) for name in self.activations]
        if len(acts) == 1:
            return acts[0]
        derivs = [f.deriv for f in acts if f.deriv is not None]
        if len(derivs) < len(acts):
            raise ValueError(f"hidden activations of lanes must be element-wise; got {self.activations}")
        return Activation(
            "|".join(self.activations),
            lambda z: jax.lax.switch(self.act, [f.fn for f in acts], z),
            lambda z, a: jax.lax.switch(self.act, derivs, z, a),
        )

    def forward(self, model: MLP, x: Array) -> Trace:
        """The padded network forward as the lane's own (:func:`masked_forward_trace`)."""
        return masked_forward_trace(model, self, x)

    def own(self, l: int, delta: Array) -> Array:
        """Hidden layer l's δ on the lane's own units, 0 elsewhere (0 in an identity layer)."""
        return jnp.where((self.units[l] & self.real[l])[None, :], delta, 0.0)

    def passed(self, l: int, g: Array, g_above: Array) -> Array:
        """∂ℓ/∂a below layer l: ``g`` = δˡ Wˡ through a real layer; through an identity layer
        the ∂ℓ/∂a from above, ``g_above``, unchanged."""
        return jnp.where(self.real[l], g, _resize(g_above, g.shape[-1]))

    def params(self, tree: MLP) -> MLP:
        """``tree`` with every entry that is not the lane's own parameter 0 (:func:`mask_params`)."""
        return mask_params(tree, self)


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


def lane_mask(sizes: Sequence[int], activation: str, padded: Sequence[int], activations: Sequence[str]):
    """The :class:`LaneMask` (NumPy arrays) of a network of ``sizes`` inside ``padded``."""
    d, depth = len(sizes) - 2, len(padded) - 2
    units = [np.arange(padded[l + 1]) < sizes[min(l + 1, d)] for l in range(depth)]
    units.append(np.ones(padded[-1], bool))
    real = np.array([l < d for l in range(depth)] + [True])
    act = np.int32(list(activations).index(activation))
    return LaneMask(tuple(units), real, act, tuple(activations))


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


def mask_params(tree: MLP, mask: LaneMask) -> MLP:
    """``tree`` (a gradient or an update of the padded network) with every entry that is not
    the lane's own parameter set to exactly 0."""
    ins = (jnp.ones(tree.weights[0].shape[1], bool), *mask.units[:-1])
    ws, bs = [], []
    for l, (w, b) in enumerate(zip(tree.weights, tree.biases)):
        w_mask, b_mask = _DENSE.mask(mask.units[l], ins[l], mask.real[l])
        ws.append(jnp.where(w_mask, w, 0.0))
        bs.append(None if b is None else jnp.where(b_mask, b, 0.0))
    return eqx.tree_at(
        lambda m: (m.weights, m.biases), tree, (tuple(ws), tuple(bs)), is_leaf=lambda n: n is None
    )


def _resize(a: Array, width: int) -> Array:
    """(batch, w) → (batch, width): cut, or padded with zeros (only padding is cut)."""
    have = a.shape[-1]
    return a[..., :width] if have >= width else jnp.pad(a, ((0, 0), (0, width - have)))


def masked_forward_trace(model: MLP, mask: LaneMask, x: Array) -> Trace:
    """The padded network forward as the lane's own: its :class:`Trace`, ``a[l + 1]`` as
    passed on (f(z) on the lane's units, 0 elsewhere; an identity layer's input unchanged).

    Arguments:
        model: the padded network; mask: the lane's mask; x: (batch, in).
    """
    out = get_activation(model.output_activation, output=True)
    hidden = mask.hidden()
    zs, acts = [], [x]
    a, last = x, len(model.weights) - 1
    for l, (w, b) in enumerate(zip(model.weights, model.biases)):
        z = a @ w.T
        if b is not None:
            z = z + b[None, :]
        if l == last:
            a = out.fn(z)
        else:
            h = jnp.where(mask.units[l][None, :], hidden.fn(z), 0.0)
            a = jnp.where(mask.real[l], h, _resize(a, z.shape[-1]))
        zs.append(z)
        acts.append(a)
    return Trace(tuple(zs), tuple(acts))


def masked_loss_value(model: MLP, mask: LaneMask, x: Array, y: Array, loss: str | Loss) -> Array:
    """The lane's batch loss through the padded network."""
    trace = masked_forward_trace(model, mask, x)
    return jnp.mean(get_loss(loss, model.output_activation).value(trace.z[-1], trace.a[-1], y))


def _manual(model: MLP, mask: LaneMask, x: Array, y: Array, loss: str | Loss) -> tuple[Array, MLP]:
    trace = backprop_trace_body(model, x, y, loss, "hadamard", mask)
    return trace.loss, trace.grads


def _autodiff(model: MLP, mask: LaneMask, x: Array, y: Array, loss: str | Loss) -> tuple[Array, MLP]:
    grads = jax.grad(masked_loss_value)(model, mask, x, y, loss)
    return masked_loss_value(model, mask, x, y, loss), mask_params(grads, mask)


#: Where a padded lane's gradient comes from, as ``training.GRADS``: name → (model, mask, x, y, loss).
MASKED_GRADS: dict[str, Callable[..., tuple[Array, MLP]]] = {"manual": _manual, "autodiff": _autodiff}


def masked_value_and_grad(
    model: MLP, mask: LaneMask, x: Array, y: Array, loss: str | Loss, grad: str = "manual"
) -> tuple[Array, MLP]:
    """The lane's batch loss and its gradient (0 off its own parameters), traceable.

    Arguments:
        model: the padded network; mask: the lane's mask; x: (batch, in); y: (batch, out).
        loss: a loss name; grad: "manual" (hand-written backprop) or "autodiff" (jax.grad).

    >>> import jax, jax.numpy as jnp
    >>> net = MLP([2, 3, 1], "tanh", key=jax.random.PRNGKey(0))
    >>> big, mask = pad_network(net, [2, 6, 1])
    >>> x, y = jnp.ones((4, 2)), jnp.zeros((4, 1))
    >>> value, grads = masked_value_and_grad(big, mask, x, y, "half_sse")
    >>> bool(jnp.all(grads.weights[0][3:] == 0))
    True
    """
    return MASKED_GRADS[grad](model, mask, x, y, loss)
