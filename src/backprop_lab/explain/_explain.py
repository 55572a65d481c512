"""One step of backpropagation on one example, written out the way the notes do it.

:func:`explain` runs a small network forward and backward on a single example
and keeps every quantity the notes print: each layer's ``net`` and ``out``, the
output error ∂L/∂out, every δ, every gradient ("change") matrix δ·outᵀ and the
weights after one gradient-descent step. The renderings live in ``_render``
(from the document of ``_document``).

The step is computed by the same few layer formulas (``_formulas``) in both of
its modes, with f, f′ and the output δ read from the ``ACTIVATIONS``/``LOSSES`` tables:

* exact (``round_each_step=None``): float64 arithmetic, as note 003 works;
* ``round_each_step=k``: every printed intermediate is rounded to k decimals
  (half up, as on paper) before it is used again, as note 004 does with k = 4.
  One rule in every layer: a number shown on a line of its own is rounded and
  used as shown. A hidden layer shows f′(net) (note 004 prints sig′(net_c)), so
  its δ = ∂L/∂out ⊙ f′ multiplies the two shown vectors; the output layer writes
  δ as one expression, (out − target)·out·(1 − out) in the note, so there f′ is
  not shown and enters δ unrounded. That is how the note's δ values come out
  (0.0549 · 0.1266 → 0.0070 in layer c, 0.7199 · 0.20164 → 0.1452 at d), and
  the walk-through states the rule (``_document.ROUNDED_RULE``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ..nn._activations import Activation, get_activation
from ..nn._losses import Loss, get_loss
from ..nn._network import MLP, check_width
from ._formulas import change, forward, output_delta, round_half_up, rounder, through, update

Array = jax.Array

#: The largest network :func:`explain` writes out: neurons per layer (input included).
MAX_WIDTH = 8
#: The largest network :func:`explain` writes out: weight layers.
MAX_LAYERS = 6

__all__ = [
    "MAX_LAYERS",
    "MAX_WIDTH",
    "Explanation",
    "LayerExplanation",
    "TooLargeToExplain",
    "check_explainable",
    "explain",
    "round_half_up",
]


class TooLargeToExplain(ValueError):
    """The network is too large to write out by hand; the message names the limit."""


@dataclasses.dataclass(frozen=True)
class LayerExplanation:
    """Everything one layer l computes, single example, column vectors as in the notes.

    Attributes:
        activation: the name of f for this layer.
        W: weights before the step, (out, in); b: bias (out,) or None.
        net: W·out_prev + b, (out,); out: f(net), (out,).
        dL_dout: ∂L/∂out of this layer, (out,): the loss derivative at the output
            layer (None when the loss supplies δ in closed form), (W_next)ᵀ δ_next below it.
        dL_dconst: for a layer below a biased one, the entry of ∂L/∂X_next for the
            constant input 1 (b_nextᵀ δ_next), which the notes drop as redundant; else None.
        fprime: f′(net), (out,), for element-wise f; else None.
        jacobian: ∂out/∂net, (out, out), for a non-element-wise f whose δ is not in closed form.
        delta: δ = ∂L/∂net, (out,).
        dW: δ·out_prevᵀ, (out, in); db: δ or None.
        step_W, step_b: lr·dW and lr·db.
        W_new, b_new: the weights after W ← W − lr·dW.
    """

    activation: str
    W: np.ndarray
    b: np.ndarray | None
    net: np.ndarray
    out: np.ndarray
    dL_dout: np.ndarray | None
    dL_dconst: float | None
    fprime: np.ndarray | None
    jacobian: np.ndarray | None
    delta: np.ndarray
    dW: np.ndarray
    db: np.ndarray | None
    step_W: np.ndarray
    step_b: np.ndarray | None
    W_new: np.ndarray
    b_new: np.ndarray | None


@dataclasses.dataclass(frozen=True)
class Explanation:
    """One worked example: input, target, the layers, the loss, the step.

    Attributes:
        x: the input (in,); y: the target (out,).
        loss: the loss name; loss_value: L at the current weights.
        fused: True when δ of the output layer is the loss's closed form
            (e.g. (Σy)·a − y for softmax + cross-entropy) instead of ∂L/∂out ⊙ f′.
        lr: the learning rate of the step.
        round_each_step: the decimals every intermediate was rounded to, or None.
        layers: one :class:`LayerExplanation` per layer, l = 1..L.
    """

    x: np.ndarray
    y: np.ndarray
    loss: str
    loss_value: float
    fused: bool
    lr: float
    round_each_step: int | None
    layers: tuple[LayerExplanation, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Widths [in, hidden..., out]."""
        return (self.x.shape[0],) + tuple(layer.net.shape[0] for layer in self.layers)

    def out(self, l: int) -> np.ndarray:
        """out of layer l, with out[0] the input x."""
        return self.x if l == 0 else self.layers[l - 1].out

    def elementwise(self, l: int) -> bool:
        """Whether layer l's activation is element-wise (has an f′; softmax has a Jacobian)."""
        return get_activation(self.layers[l - 1].activation, output=True).deriv is not None


def check_explainable(sizes) -> None:
    """Raise :class:`TooLargeToExplain` unless the network is small enough to write out.

    Arguments:
        sizes: widths [in, hidden..., out].
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) - 1 > MAX_LAYERS:
        raise TooLargeToExplain(
            f"network {sizes} has {len(sizes) - 1} layers; the explainer writes out at most "
            f"{MAX_LAYERS} layers (MAX_LAYERS) with at most {MAX_WIDTH} neurons each (MAX_WIDTH)"
        )
    widest = max(sizes)
    if widest > MAX_WIDTH:
        at = sizes.index(widest)
        raise TooLargeToExplain(
            f"network {sizes} has {widest} neurons in layer {at}; the explainer writes out at most "
            f"{MAX_WIDTH} neurons per layer (MAX_WIDTH), input and output included, "
            f"and at most {MAX_LAYERS} layers (MAX_LAYERS)"
        )


def _f64(v) -> Array:
    return jnp.asarray(np.asarray(v, np.float64))


def _example(model: MLP, x, y) -> tuple[Array, Array]:
    """x (in,) and y (out,) as float64 arrays, checked against the network's widths."""
    x64, y64 = _f64(x), _f64(y)
    for name, v, width in (("x", x64, model.sizes[0]), ("y", y64, model.sizes[-1])):
        check_width(name, v, width, "input" if name == "x" else "output")
        if v.ndim != 1:
            raise ValueError(f"{name} must be one example of shape ({width},), got {v.shape}")
    return x64, y64


def _forward_pass(
    acts: list[Activation], Ws: list[Array], bs: list[Array | None], x: Array, r
) -> tuple[list[Array], list[Array]]:
    """The forward pass: ``nets`` (net of layers 1..L) and ``outs`` (out of layers 0..L, out[0] = x)."""
    outs, nets = [x], []
    for act, W, b in zip(acts, Ws, bs):
        net, out = forward(act, W, b, outs[-1], r)
        nets.append(net)
        outs.append(out)
    return nets, outs


def _backward_pass(
    acts: list[Activation],
    loss_fn: Loss,
    params: tuple[list[Array], list[Array | None]],
    nets: list[Array],
    outs: list[Array],
    y: Array,
    lr: float,
    r,
    rounded: bool,
) -> list[dict]:
    """The backward pass from the output layer down: per layer (index l - 1), its ∂L/∂out,
    ∂L/∂(constant 1 input of the layer above), f′ or Jacobian, δ, change matrices and step;
    ``rounded``: whether ``r`` rounds (the output layer's f′ then has no line of its own)."""
    Ws, bs = params
    n = len(Ws)
    rows: list[dict] = [{} for _ in range(n)]
    g, fprime, jac, delta = output_delta(acts[-1], loss_fn, nets[-1], outs[-1], y, r, fprime_line=not rounded)
    for l in range(n - 1, -1, -1):
        if l < n - 1:
            up_b = bs[l + 1]
            g = r(Ws[l + 1].T @ delta)
            rows[l]["dL_dconst"] = None if up_b is None else r(up_b @ delta)
            fprime, jac, delta = through(acts[l], nets[l], outs[l + 1], g, r)
        dW, db = change(delta, outs[l], bs[l], r)
        step_W, W_new = update(Ws[l], dW, lr, r)
        step_b, b_new = update(bs[l], db, lr, r)
        rows[l].update(
            dL_dout=g,
            fprime=fprime,
            jacobian=jac,
            delta=delta,
            dW=dW,
            db=db,
            step_W=step_W,
            W_new=W_new,
            step_b=step_b,
            b_new=b_new,
        )
    return rows


def _npf(v) -> np.ndarray | None:
    return None if v is None else np.asarray(v, np.float64)


def _layer(act: Activation, W: Array, b: Array | None, net: Array, out: Array, row: dict) -> LayerExplanation:
    """One layer's quantities as NumPy float64 arrays."""
    f64 = lambda v: np.asarray(v, np.float64)  # noqa: E731
    return LayerExplanation(
        activation=act.name,
        W=f64(W),
        b=_npf(b),
        net=f64(net),
        out=f64(out),
        dL_dout=_npf(row["dL_dout"]),
        dL_dconst=None if row.get("dL_dconst") is None else float(row["dL_dconst"]),
        fprime=_npf(row["fprime"]),
        jacobian=_npf(row["jacobian"]),
        delta=f64(row["delta"]),
        dW=f64(row["dW"]),
        db=_npf(row["db"]),
        step_W=f64(row["step_W"]),
        step_b=_npf(row["step_b"]),
        W_new=f64(row["W_new"]),
        b_new=_npf(row["b_new"]),
    )


def explain(
    model: MLP,
    x,
    y,
    loss: str | Loss,
    lr: float,
    *,
    round_each_step: int | None = None,
) -> Explanation:
    """Compute one gradient-descent step on one example, keeping every intermediate.

    Arguments:
        model: a network of at most :data:`MAX_LAYERS` layers and :data:`MAX_WIDTH`
            neurons per layer; its weights are taken in float64.
        x: the input, (in,).
        y: the target, (out,).
        loss: a loss name (see ``LOSSES``), checked against the output activation.
        lr: the learning rate of the step W ← W − lr·∂L/∂W.
        round_each_step: None for exact float64 arithmetic, or k to round every
            intermediate to k decimals as it goes (note 004 uses 4).

    Returns:
        An :class:`Explanation` (numpy float64 arrays).

    Raises:
        TooLargeToExplain: the network exceeds the limits, named in the message.
        ValueError: x or y of the wrong width, a loss that does not fit the output.
    """
    check_explainable(model.sizes)
    loss_fn = get_loss(loss, model.output_activation)
    r = rounder(round_each_step)
    output = get_activation(model.output_activation, output=True)
    acts = [get_activation(model.activation)] * (len(model.weights) - 1) + [output]
    with jax.enable_x64(True):
        x64, y64 = _example(model, x, y)
        Ws = [_f64(w) for w in model.weights]
        bs = [None if b is None else _f64(b) for b in model.biases]
        nets, outs = _forward_pass(acts, Ws, bs, x64, r)
        value = float(loss_fn.value(nets[-1], outs[-1], y64))
        rows = _backward_pass(acts, loss_fn, (Ws, bs), nets, outs, y64, lr, r, round_each_step is not None)
        layers = tuple(_layer(*parts) for parts in zip(acts, Ws, bs, nets, outs[1:], rows))
    return Explanation(
        x=np.asarray(x64, np.float64),
        y=np.asarray(y64, np.float64),
        loss=loss_fn.name,
        loss_value=value,
        fused=output.name in loss_fn.fused,
        lr=float(lr),
        round_each_step=round_each_step,
        layers=layers,
    )
