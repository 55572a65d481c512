"""The configured network: its widths checked against the loss and the data, its initial
weights drawn from the seed (or given in ``model.weights``)."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import numpy as np
from jax.typing import DTypeLike

from ..config._checks import ConfigError, check_group, choice
from ..config._keys import COMMON_KEYS, DEFAULT_HIDDEN, MODEL_KEYS
from ..data._registry import Dataset
from ..nn._losses import LOSSES
from ..nn._network import MLP
from ._config import DTYPES, plain_config
from ._data import build_data
from ._memory import check_memory

__all__ = ["check_model_config", "model_sizes", "build_model"]


def _widths(model: Mapping, data: Dataset | None) -> tuple[int, ...] | None:
    """``model.sizes``; else the data's input width, ``model.hidden`` (or :data:`DEFAULT_HIDDEN`)
    and the data's output width (None without data). Both keys given must agree."""
    sizes, hidden = model.get("sizes"), model.get("hidden")
    if sizes is not None and hidden is not None and tuple(sizes[1:-1]) != tuple(hidden):
        raise ConfigError(
            "model.hidden",
            list(hidden),
            f"model.sizes={list(sizes)} has the hidden widths {list(sizes[1:-1])}; give model.hidden "
            "alone (the first and last widths then come from the data), model.sizes alone, or both alike",
        )
    if sizes is not None or data is None:
        return sizes
    return (data.in_width, *(DEFAULT_HIDDEN if hidden is None else hidden), data.out_width)


def check_model_config(
    model_cfg: object, loss: object, data: Dataset | None = None
) -> tuple[int, ...] | None:
    """Check the model group (a mapping) and the loss (a name) and their pairing; return the sizes:
    ``model.sizes``, or the widths of ``data`` around ``model.hidden`` (None when they come from a
    data set and ``data`` is not given)."""
    if not isinstance(model_cfg, Mapping):
        raise ConfigError("model", model_cfg, "expected the model group, e.g. model=mlp")
    model = check_group("model", model_cfg, MODEL_KEYS, required=("activation", "output_activation"))
    loss_name: str = choice(LOSSES)("loss", loss)  # the name, as given
    sizes, out = _widths(model, data), model["output_activation"]
    if sizes is not None and out == "softmax" and sizes[-1] < 2:
        raise ConfigError(
            "model.output_activation",
            out,
            f"softmax over {sizes[-1]} output is always 1; use sigmoid for one "
            "output (with binary_cross_entropy) or give model.sizes two outputs or more",
        )
    required = LOSSES[loss_name].requires
    if required not in (None, out):
        raise ConfigError(
            "loss",
            loss,
            f"it needs model.output_activation={required} (got {out}); "
            "use that output or one of half_sse, sse, mse",
        )
    return sizes


def model_sizes(cfg: Mapping, data: Dataset | None = None) -> tuple[int, ...]:
    """The network's widths of a config (:func:`check_model_config`), from ``data`` when
    ``model.hidden`` leaves the first and last to it; the data set is loaded when needed."""
    sizes = check_model_config(cfg.get("model"), cfg.get("loss"), data)
    if sizes is None:
        if (cfg.get("data") or {}).get("name") == "random":
            raise ConfigError(
                "model.hidden",
                cfg["model"].get("hidden"),
                "data.name=random has no widths of its own; give model.sizes=[in,...,out]",
            )
        sizes = check_model_config(cfg["model"], cfg.get("loss"), build_data(cfg, None))
        assert sizes is not None
    return sizes


def _build_model(
    model_cfg: Mapping, sizes: tuple[int, ...], seed: int, dtype: DTypeLike
) -> tuple[MLP, jax.Array]:
    """The configured network and the seed's minibatch-order key."""
    act, out = model_cfg["activation"], model_cfg["output_activation"]
    weights = model_cfg.get("weights")
    if weights is None:
        return _initial(
            np.uint32(seed),
            sizes=sizes,
            activation=act,
            output_activation=out,
            bias=model_cfg.get("bias", True),
            init=model_cfg.get("init"),
            dtype=dtype,
        )
    return _given_model(model_cfg, sizes, act, out).astype(dtype), _keys(seed)[1]


@functools.partial(
    jax.jit, static_argnames=("sizes", "activation", "output_activation", "bias", "init", "dtype")
)
def _initial(
    seed: jax.Array,
    *,
    sizes: tuple[int, ...],
    activation: str,
    output_activation: str,
    bias: bool,
    init: str | None,
    dtype: DTypeLike,
) -> tuple[MLP, jax.Array]:
    """A seed's initial network and minibatch-order key as one compiled program: drawn op by op
    they are a dozen small programs, each traced and lowered in every process. The same numbers
    as :func:`_keys` and ``MLP(...)`` op by op, to the bit (tests compare)."""
    init_key, order_key = _keys(seed)
    return MLP(sizes, activation, output_activation, bias, key=init_key, init=init, dtype=dtype), order_key


def _given_model(model_cfg: Mapping, sizes: tuple[int, ...], act: str, out: str) -> MLP:
    """The network of ``model.weights`` (and ``model.bias_column``), checked against the sizes."""
    weights = model_cfg["weights"]
    column = model_cfg.get("bias_column")
    arrays = [np.asarray(w, dtype=np.float64) for w in weights]
    extra = 0 if column is None else 1
    expected = [(o, i + extra) for i, o in zip(sizes[:-1], sizes[1:])]
    got = [a.shape for a in arrays]
    if got != expected:
        raise ConfigError(
            "model.weights", f"shapes {got}", f"model.sizes={list(sizes)} needs shapes {expected}"
        )
    try:
        if column is None:
            model = MLP.from_weights(arrays, None, act, out)
        else:
            model = MLP.from_augmented(arrays, column, act, out)
    except ValueError as err:
        raise ConfigError("model.weights", "given", str(err)) from None
    return model


def _keys(seed: int | jax.Array) -> tuple[jax.Array, jax.Array]:
    """The initial-weights key and the minibatch-order key of a seed."""
    init_key, order_key = jax.random.split(jax.random.PRNGKey(seed))
    return init_key, order_key


def build_model(cfg: Mapping) -> MLP:
    """The configured network alone (no data set), with the initial weights a run would draw.

    Checks the model group, the loss pairing, ``dtype`` and ``seed``.
    """
    cfg = plain_config(cfg)
    dtype = choice(DTYPES)("dtype", cfg.get("dtype", "float32"))
    seed = COMMON_KEYS["seed"]("seed", cfg.get("seed", 0))
    sizes = model_sizes(cfg)
    check_memory(cfg, sizes, 1, 0)
    return _build_model(cfg["model"], sizes, seed, DTYPES[dtype])[0]
