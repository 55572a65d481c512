"""A run's memory, estimated from its widths and refused before anything is allocated."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
from jax.typing import DTypeLike

from ..config._checks import ConfigError
from ._config import DTYPES

__all__ = ["memory_estimate", "memory_limit", "check_memory"]


def memory_estimate(
    sizes: Sequence[int], batch_size: int, n_rows: int, dtype: DTypeLike, optimizer: str, lanes: int = 1
) -> int:
    """Bytes a run needs at least: parameters, gradients, optimizer slots, activations, data."""
    item = np.dtype(dtype).itemsize
    params = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
    slots = {"sgd": 0, "momentum": 1, "adam": 2}.get(optimizer, 2)
    activations = batch_size * sum(sizes) * 3 + n_rows * sum(sizes)  # forward, δ, evaluation
    return lanes * item * (params * (3 + slots) + activations + n_rows * (sizes[0] + sizes[-1]))


def memory_limit(cfg: Mapping) -> float:
    """The bytes a run may take: ``max_memory_gb``, else this machine's physical memory."""
    gb = cfg.get("max_memory_gb")
    if gb is not None:
        return float(gb) * 2**30
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def check_memory(cfg: Mapping, sizes: Sequence[int], batch_size: int, n_rows: int, lanes: int = 1) -> None:
    """Refuse a run whose memory estimate exceeds the limit, before anything is allocated."""
    optimizer = (cfg.get("optimizer") or {}).get("name", "adam")
    need = memory_estimate(sizes, batch_size, n_rows, DTYPES[cfg.get("dtype", "float32")], optimizer, lanes)
    limit = memory_limit(cfg)
    if need > limit:
        what = f"{lanes} lanes of " if lanes > 1 else ""
        raise ConfigError(
            "model.sizes",
            list(sizes),
            f"{what}this network needs about {need / 2**30:.3g} GB, more than the "
            f"{limit / 2**30:.3g} GB allowed (max_memory_gb); use smaller widths",
        )
