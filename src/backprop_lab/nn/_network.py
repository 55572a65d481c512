"""The fully connected network: an equinox Module whose only leaves are W and b.

W of layer l has shape (out, in), as in the notes; a batch x of shape
(batch, in) goes forward as ``z = x Wᵀ + b``, ``a = f(z)``. The network is a
pure function of this pytree, and gradients are the same pytree type, so
``grads.weights[l]`` is ∂L/∂Wˡ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from ._activations import get_activation

Array = jax.Array


def _glorot(key: Array, n_out: int, n_in: int, dtype: DTypeLike) -> tuple[Array, Array]:
    limit = math.sqrt(6.0 / (n_in + n_out))
    w = jax.random.uniform(key, (n_out, n_in), dtype, -limit, limit)
    return w, jnp.zeros((n_out,), dtype)


# The normal draws pass an optimization barrier before their scale: inside a compiled
# initialisation XLA would otherwise fold the scale into the draw's own constants and
# round differently from the same calls made op by op (the barrier is the identity).
def _he(key: Array, n_out: int, n_in: int, dtype: DTypeLike) -> tuple[Array, Array]:
    w = jax.lax.optimization_barrier(jax.random.normal(key, (n_out, n_in), dtype)) * math.sqrt(2.0 / n_in)
    return w, jnp.zeros((n_out,), dtype)


def _lecun(key: Array, n_out: int, n_in: int, dtype: DTypeLike) -> tuple[Array, Array]:
    w = jax.lax.optimization_barrier(jax.random.normal(key, (n_out, n_in), dtype)) * math.sqrt(1.0 / n_in)
    return w, jnp.zeros((n_out,), dtype)


def _uniform3(key: Array, n_out: int, n_in: int, dtype: DTypeLike) -> tuple[Array, Array]:
    wkey, bkey = jax.random.split(key)
    w = jax.random.uniform(wkey, (n_out, n_in), dtype, -3.0, 3.0)
    return w, jax.random.uniform(bkey, (n_out,), dtype, -3.0, 3.0)


#: Initialisations: name → ``(key, n_out, n_in, dtype) -> (W, b)``.
#: "uniform3" is note 002's uniform(−3, 3) for weights and biases alike.
INITS: dict[str, Callable] = {
    "glorot": _glorot,
    "he": _he,
    "lecun": _lecun,
    "uniform3": _uniform3,
}


class Trace(NamedTuple):
    """A forward pass as the notes write it.

    Attributes:
        z: pre-activations ("net"), one per layer, each (batch, width) or (width,).
        a: activations ("out"): ``a[0]`` is the input, then one per layer.
    """

    z: tuple[Array, ...]
    a: tuple[Array, ...]


def _check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(sizes)
    if len(sizes) < 2:
        raise ValueError(
            f"sizes must list at least an input and an output width, e.g. [2, 2, 2]; got {list(sizes)}"
        )
    for i, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"sizes[{i}] = {s!r}: every width must be an integer >= 1")
    return tuple(int(s) for s in sizes)


def _check_finite(name: str, arr: ArrayLike) -> None:
    if isinstance(arr, jax.core.Tracer):
        return
    if not np.all(np.isfinite(np.asarray(arr))):
        raise ValueError(f"{name} contains NaN or Inf; weights must be finite numbers")


def _as_float(arr: ArrayLike) -> Array:
    arr = jnp.asarray(arr)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    return arr


class MLP(eqx.Module):
    """A fully connected network, W of shape (out, in) per layer.

    Arguments:
        sizes: widths ``[in, hidden..., out]``; at least two entries, each >= 1.
        activation: hidden-layer activation name (see ``ACTIVATIONS``).
        output_activation: output-layer activation name (softmax allowed here).
        bias: whether the layers have bias vectors.
        key: a JAX PRNG key (keyword-only).
        init: "glorot", "he", "lecun" or "uniform3" (note 002's uniform(−3, 3));
            None picks each layer's default from its activation.
        dtype: floating dtype of the parameters; None for JAX's default.
    """

    weights: tuple[Array, ...]
    biases: tuple[Array | None, ...]
    sizes: tuple[int, ...] = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    output_activation: str = eqx.field(static=True)

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "sigmoid",
        output_activation: str = "sigmoid",
        bias: bool = True,
        *,
        key: Array,
        init: str | None = None,
        dtype: DTypeLike | None = None,
    ) -> None:
        sizes = _check_sizes(sizes)
        hidden = get_activation(activation)
        out = get_activation(output_activation, output=True)
        if init is not None and init not in INITS:
            raise ValueError(f"unknown init {init!r}; valid inits are: {', '.join(sorted(INITS))}")
        dtype = jnp.result_type(float) if dtype is None else dtype
        keys = jax.random.split(key, len(sizes) - 1)
        weights, biases = [], []
        for l, (layer_key, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
            is_last = l == len(sizes) - 2
            name = init or (out if is_last else hidden).default_init
            w, b = INITS[name](layer_key, n_out, n_in, dtype)
            weights.append(w)
            biases.append(b if bias else None)
        self.weights = tuple(weights)
        self.biases = tuple(biases)
        self.sizes = sizes
        self.activation = hidden.name
        self.output_activation = out.name

    @classmethod
    def from_weights(
        cls,
        weights: Sequence,
        biases: Sequence | None = None,
        activation: str = "sigmoid",
        output_activation: str = "sigmoid",
    ) -> MLP:
        """Build a network from given matrices, as the notes write them.

        Arguments:
            weights: ``weights[l]`` of shape (out_l, in_l), with in_{l+1} = out_l.
            biases: None for a network without biases (note 004), or one entry
                per layer: an (out_l,) vector, or None for a layer without bias.
            activation: the hidden layers' activation name.
            output_activation: the output layer's activation name.
        """
        if len(weights) == 0:
            raise ValueError("weights is empty; give at least one (out, in) matrix")
        ws = [_as_float(w) for w in weights]
        bs = [None] * len(ws) if biases is None else list(biases)
        if len(bs) != len(ws):
            raise ValueError(f"got {len(ws)} weight matrices but {len(bs)} biases; give one per layer")
        for l, w in enumerate(ws):
            if w.ndim != 2 or min(w.shape) < 1:
                raise ValueError(f"weights[{l}] has shape {w.shape}; expected a 2-D (out, in) matrix")
            if l > 0 and w.shape[1] != ws[l - 1].shape[0]:
                raise ValueError(
                    f"weights[{l}] has shape {w.shape}: its input width {w.shape[1]} must equal "
                    f"the output width {ws[l - 1].shape[0]} of weights[{l - 1}]"
                )
            _check_finite(f"weights[{l}]", w)
            b = bs[l]
            if b is not None:
                bs[l] = b = _as_float(b)
                if b.shape != (w.shape[0],):
                    raise ValueError(f"biases[{l}] has shape {b.shape}; expected ({w.shape[0]},)")
                _check_finite(f"biases[{l}]", b)
        sizes = (ws[0].shape[1],) + tuple(w.shape[0] for w in ws)
        # a network of these widths (its activations checked by the constructor), arrays replaced;
        # built abstractly (shapes only): drawing initial values, only to replace them, would compile
        # the random-number programs for every new shape
        template = jax.eval_shape(
            lambda: cls(
                sizes,
                activation,
                output_activation,
                False,
                key=jax.random.PRNGKey(0),
                init="glorot",
                dtype=ws[0].dtype,
            )
        )
        return eqx.tree_at(
            lambda m: (m.weights, m.biases),
            template,
            (tuple(ws), tuple(bs)),
            is_leaf=lambda node: node is None,
        )

    @classmethod
    def from_augmented(
        cls,
        matrices: Sequence,
        bias_column: str = "first",
        activation: str = "sigmoid",
        output_activation: str = "sigmoid",
    ) -> MLP:
        """Build a network from matrices with the bias folded in as a column.

        Arguments:
            matrices: per layer an (out, in + 1) matrix.
            bias_column: "first" (note 003 prepends the constant 1) or "last"
                (note 001 appends it).
        """
        col = _bias_index(bias_column)
        ms = [_as_float(m) for m in matrices]
        for l, m in enumerate(ms):
            if m.ndim != 2 or m.shape[1] < 2:
                raise ValueError(
                    f"matrices[{l}] has shape {m.shape}; expected (out, in + 1) with the bias as a column"
                )
        ws = [m[:, 1:] if col == 0 else m[:, :-1] for m in ms]
        bs = [m[:, col] for m in ms]
        return cls.from_weights(ws, bs, activation, output_activation)

    def to_augmented(self, bias_column: str = "first") -> tuple[Array, ...]:
        """The matrices with the bias folded in: per layer (out, in + 1).

        A layer without bias gets a zero bias column.
        """
        col = _bias_index(bias_column)
        out = []
        for w, b in zip(self.weights, self.biases):
            b = jnp.zeros((w.shape[0],), w.dtype) if b is None else b
            parts = (b[:, None], w) if col == 0 else (w, b[:, None])
            out.append(jnp.concatenate(parts, axis=1))
        return tuple(out)

    def astype(self, dtype: DTypeLike) -> MLP:
        """The same network with parameters cast to ``dtype``."""
        return jax.tree_util.tree_map(lambda p: p.astype(dtype), self)

    def __call__(self, x: Array) -> Array:
        """x of shape (in,) or (batch, in) → output (out,) or (batch, out)."""
        return forward_trace(self, x).a[-1]


def _bias_index(bias_column: str) -> int:
    if bias_column not in ("first", "last"):
        raise ValueError(f"bias_column must be 'first' or 'last', got {bias_column!r}")
    return 0 if bias_column == "first" else -1


def check_width(name: str, arr: object, width: int, what: str) -> None:
    """Raise a clear error unless ``arr`` is (width,) or (batch, width)."""
    shape = getattr(arr, "shape", None)
    if shape is None or len(shape) not in (1, 2):
        raise ValueError(f"{name} must have shape ({width},) or (batch, {width}); got {shape}")
    if shape[-1] != width:
        raise ValueError(
            f"{name} has width {shape[-1]} but the network's {what} width is {width}; "
            f"pass {name} of shape ({width},) or (batch, {width})"
        )


def forward_trace(model: MLP, x: Array) -> Trace:
    """Run the network forward and keep every layer's z and a.

    Arguments:
        model: the network.
        x: input of shape (in,) or (batch, in).

    Returns:
        A :class:`Trace` with ``z[l]`` and ``a[l + 1]`` of shape (width,) for a
        1-D x, or (batch, width) for a batch.
    """
    check_width("x", x, model.sizes[0], "input")
    x = jnp.asarray(x)
    single = x.ndim == 1
    a = x[None, :] if single else x
    hidden = get_activation(model.activation)
    out = get_activation(model.output_activation, output=True)
    zs, acts = [], [a]
    n = len(model.weights)
    for l, (w, b) in enumerate(zip(model.weights, model.biases)):
        z = a @ w.T
        if b is not None:
            z = z + b[None, :]
        a = (out if l == n - 1 else hidden).fn(z)
        zs.append(z)
        acts.append(a)
    if single:
        zs = [z[0] for z in zs]
        acts = [v[0] for v in acts]
    return Trace(tuple(zs), tuple(acts))
