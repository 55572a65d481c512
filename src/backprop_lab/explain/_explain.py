"""One step of backpropagation on one example, written out the way the notes do it.

:func:`explain` runs a small network forward and backward on a single example
and keeps every quantity the notes print: each layer's ``net`` and ``out``, the
output error ∂L/∂out, every δ, every gradient ("change") matrix δ·outᵀ and the
weights after one gradient-descent step. The renderings live in
``_explain_render``.

The step is computed by the same few layer formulas in both of its modes,
with f, f′ and the output δ read from the ``ACTIVATIONS``/``LOSSES`` tables:

* exact (``round_each_step=None``): float64 arithmetic, as note 003 works;
* ``round_each_step=k``: every printed intermediate is rounded to k decimals
  (half up, as on paper) before it is used again, as note 004 does with k = 4.
  In a hidden layer f′(net) is printed, so it is rounded and δ = ∂L/∂out ⊙ f′
  multiplies the two printed vectors; at the output the note writes δ as one
  expression, (out − target)·out·(1 − out), so there f′ is not rounded before
  the product. That is how the note's δ values come out.
"""

from __future__ import annotations

import dataclasses
import decimal
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..nn._activations import Activation, get_activation
from ..nn._losses import Loss, get_loss
from ..nn._network import MLP, check_width

Array = jax.Array

#: The largest network :func:`explain` writes out: neurons per layer (input included).
MAX_WIDTH = 8
#: The largest network :func:`explain` writes out: weight layers.
MAX_LAYERS = 6


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


def _rounder(decimals: int | None) -> Callable[[Array], Array]:
    if decimals is None:
        return lambda v: v
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)) or decimals < 0:
        raise ValueError(f"round_each_step must be null or an integer >= 0, got {decimals!r}")
    return lambda v: jnp.asarray(round_half_up(np.asarray(v), int(decimals)))


# The layer formulas. ``r`` rounds (or does nothing); every result the notes print
# passes through it once.


def _forward(act: Activation, W: Array, b: Array | None, out_prev: Array, r) -> tuple[Array, Array]:
    net = r(W @ out_prev if b is None else W @ out_prev + b)
    return net, r(act.fn(net))


def _output_delta(act: Activation, loss: Loss, net: Array, out: Array, y: Array, r):
    """(∂L/∂out or None, f′ or None, Jacobian or None, δ) of the output layer."""
    if act.name in loss.fused:
        return None, None, None, r(loss.fused[act.name](net, out, y))
    g = r(loss.grad_a(out, y))
    return g, *_through(act, net, out, g, r, printed_fprime=False)


def _through(act: Activation, net: Array, out: Array, g: Array, r, *, printed_fprime: bool):
    """(f′ or None, Jacobian or None, δ = (∂out/∂net)ᵀ g) for one layer.

    With ``printed_fprime`` f′(net) is a printed intermediate: it is rounded and
    δ is the Hadamard product of the printed g and f′ (note 004's hidden layers).
    Otherwise δ is one expression, g ⊙ f′ from the table, rounded once (note
    004's output layer, (out − target)·out·(1 − out)).
    """
    if act.deriv is None:
        return None, r(act.jacobian(net, out)), r(act.backward(net, out, g))
    if printed_fprime:
        fprime = r(act.deriv(net, out))
        return fprime, None, r(g * fprime)
    return r(act.deriv(net, out)), None, r(act.backward(net, out, g))


def _change(delta: Array, out_prev: Array, b: Array | None, r) -> tuple[Array, Array | None]:
    return r(jnp.outer(delta, out_prev)), None if b is None else delta


def _update(p: Array | None, grad: Array | None, lr: float, r):
    if p is None:
        return None, None
    step = r(lr * grad)
    return step, r(p - step)


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
    r = _rounder(round_each_step)
    hidden = get_activation(model.activation)
    output = get_activation(model.output_activation, output=True)
    n = len(model.weights)
    acts = [hidden] * (n - 1) + [output]
    with jax.enable_x64(True):
        f64 = lambda v: None if v is None else jnp.asarray(np.asarray(v, np.float64))  # noqa: E731
        x64, y64 = f64(x), f64(y)
        for name, v, width in (("x", x64, model.sizes[0]), ("y", y64, model.sizes[-1])):
            check_width(name, v, width, "input" if name == "x" else "output")
            if v.ndim != 1:
                raise ValueError(f"{name} must be one example of shape ({width},), got {v.shape}")
        Ws = [f64(w) for w in model.weights]
        bs = [f64(b) for b in model.biases]

        outs, nets = [x64], []
        for act, W, b in zip(acts, Ws, bs):
            net, out = _forward(act, W, b, outs[-1], r)
            nets.append(net)
            outs.append(out)
        value = float(loss_fn.value(nets[-1], outs[-1], y64))

        rows: list[dict] = [{} for _ in range(n)]
        g, fprime, jac, delta = _output_delta(output, loss_fn, nets[-1], outs[-1], y64, r)
        for l in range(n - 1, -1, -1):
            if l < n - 1:
                g = r(Ws[l + 1].T @ delta)
                const = None if bs[l + 1] is None else r(bs[l + 1] @ delta)
                fprime, jac, delta = _through(acts[l], nets[l], outs[l + 1], g, r, printed_fprime=True)
                rows[l]["dL_dconst"] = const
            dW, db = _change(delta, outs[l], bs[l], r)
            step_W, W_new = _update(Ws[l], dW, lr, r)
            step_b, b_new = _update(bs[l], db, lr, r)
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

        def npf(v):
            return None if v is None else np.asarray(v, np.float64)

        layers = tuple(
            LayerExplanation(
                activation=acts[l].name,
                W=npf(Ws[l]),
                b=npf(bs[l]),
                net=npf(nets[l]),
                out=npf(outs[l + 1]),
                dL_dout=npf(rows[l]["dL_dout"]),
                dL_dconst=None if rows[l].get("dL_dconst") is None else float(rows[l]["dL_dconst"]),
                **{
                    k: npf(rows[l][k])
                    for k in ("fprime", "jacobian", "delta", "dW", "db", "step_W", "step_b", "W_new", "b_new")
                },
            )
            for l in range(n)
        )
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
