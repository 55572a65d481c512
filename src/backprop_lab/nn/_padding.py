"""Networks of different widths, depths and hidden activations as lanes of one program.

A group of networks with the same input and output widths, output activation and
bias convention is padded to one shape, :func:`._group.group_sizes`, and each lane carries a
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
:data:`._layer_rules.LAYER_RULES`; the dense layer is the only kind so far. Padding a
group of networks and taking a lane's own back out is :mod:`._group`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._activations import Activation, get_activation
from ._backprop import backprop_trace_body
from ._layer_rules import LAYER_RULES
from ._losses import Loss, get_loss
from ._network import MLP, Trace

Array = jax.Array

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


def lane_mask(sizes: Sequence[int], activation: str, padded: Sequence[int], activations: Sequence[str]):
    """The :class:`LaneMask` (NumPy arrays) of a network of ``sizes`` inside ``padded``."""
    d, depth = len(sizes) - 2, len(padded) - 2
    units = [np.arange(padded[l + 1]) < sizes[min(l + 1, d)] for l in range(depth)]
    units.append(np.ones(padded[-1], bool))
    real = np.array([l < d for l in range(depth)] + [True])
    act = np.int32(list(activations).index(activation))
    return LaneMask(tuple(units), real, act, tuple(activations))


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
    >>> from backprop_lab.nn._group import pad_network
    >>> net = MLP([2, 3, 1], "tanh", key=jax.random.PRNGKey(0))
    >>> big, mask = pad_network(net, [2, 6, 1])
    >>> x, y = jnp.ones((4, 2)), jnp.zeros((4, 1))
    >>> value, grads = masked_value_and_grad(big, mask, x, y, "half_sse")
    >>> bool(jnp.all(grads.weights[0][3:] == 0))
    True
    """
    return MASKED_GRADS[grad](model, mask, x, y, loss)
