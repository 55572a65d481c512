"""How each layer kind is padded: its parameters embedded in zeros, taken back out, masked.

A layer kind's embedding, extraction and parameter mask are one entry of
:data:`LAYER_RULES` (see :mod:`._padding`); the dense layer is the only kind so far.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

__all__ = ["LAYER_RULES", "LayerRule"]

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
