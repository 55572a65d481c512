"""Timing for the benchmarks: warm-up, interleaved repeats, medians, table rows."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

Row = dict[str, Any]

# --------------------------------------------------------------------------- timing


def _ready(out):
    """Wait for every JAX array in ``out`` (NumPy results are ready already).

    Without JAX imported there is nothing to wait for (a process benchmark
    never imports it here).
    """
    jax = sys.modules.get("jax")
    if jax is None:
        return out
    for leaf in jax.tree_util.tree_leaves(out):
        if hasattr(leaf, "block_until_ready"):
            leaf.block_until_ready()
    return out


def time_interleaved(
    fns: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 1, settle: int = 0
) -> dict[str, list[float]]:
    """Wall-clock seconds of each function, ``repeats`` times each, interleaved.

    Round r calls the functions in order (reversed on odd rounds, so neither
    side always runs first); every call ends in ``block_until_ready``.
    ``warmup`` untimed rounds come first (compilation, caches, page faults).
    ``settle`` untimed calls precede each timed call, for functions whose
    memory use is so different that one leaves the allocator and caches in a
    state that slows the other.

    Returns:
        name → list of ``repeats`` durations in seconds.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            _ready(fns[name]())
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            for _ in range(settle):
                _ready(fns[name]())
            t0 = time.perf_counter()
            _ready(fns[name]())
            times[name].append(time.perf_counter() - t0)
    return times


def median(xs) -> float:
    return float(statistics.median(xs))


def _summary(times: list[float]) -> dict[str, Any]:
    return {
        "median_s": median(times),
        "min_s": float(min(times)),
        "max_s": float(max(times)),
        "repeats": len(times),
    }


def row(
    target: str, what: str, measured: str, ratio: float | None, goal: str, met: bool | None, **details
) -> Row:
    """One line of the results table; ``met`` None means report-only or not run."""
    return {
        "target": target,
        "what": what,
        "measured": measured,
        "ratio": None if ratio is None else float(ratio),
        "goal": goal,
        "met": None if met is None else bool(met),
        "details": details,
    }
