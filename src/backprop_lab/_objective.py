"""What a training job returns to a sweeper: one number, the summary field ``optimized_metric``.

A hyperparameter search (``-m hydra/sweeper=optuna``) takes each job's return
value as its trial's result. :func:`objective` is that value, for a single run
(``task``) and for each lane of a vmapped group (``train_lanes``) alike:

- a completed or early-stopped run: its summary's ``optimized_metric`` field;
- any other run (diverged, interrupted, refused for its config or its run
  directory) and a completed run without a finite value there: the worst value
  for the sweep's direction, ``+inf`` when minimizing and ``-inf`` when
  maximizing, so the trial never wins and the sweep goes on;
- ``optimized_metric: null``: None (the job returns nothing).

The direction is the sweeper's (``hydra.sweeper.direction``, as Optuna's
sweeper has it); under a sweeper without one, the metric's own (:data:`METRICS`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["METRICS", "SCORED", "WORST", "objective", "sweep_direction"]

#: Summary fields a sweep may optimize, each with the direction in which it gets better.
METRICS: dict[str, str] = {
    "test_accuracy": "maximize",
    "final_test_loss": "minimize",
    "final_train_loss": "minimize",
}
#: A run that did not complete, by direction.
WORST: dict[str, float] = {"minimize": math.inf, "maximize": -math.inf}
#: The summary statuses whose metric counts (an early-stopped run ended normally, with
#: its last state); any other scores :data:`WORST`.
SCORED = frozenset({"completed", "stopped_early"})


def sweep_direction(metric: str) -> str:
    """``hydra.sweeper.direction`` when the running sweeper has one, else the metric's own.

    Raises:
        ValueError: a multi-objective sweep (more than one direction); a job returns one number.
    """
    from hydra.core.hydra_config import HydraConfig

    direction = None
    if HydraConfig.initialized():
        sweeper = HydraConfig.get().get("sweeper") or {}
        direction = sweeper.get("direction") if isinstance(sweeper, Mapping) else None
    if isinstance(direction, Sequence) and not isinstance(direction, str):
        if len(direction) != 1:
            raise ValueError(f"hydra.sweeper.direction={list(direction)}: optimized_metric={metric} "
                             "is one number, so the sweep takes one direction")
        direction = direction[0]
    if direction is None:
        return METRICS.get(metric, "minimize")
    return getattr(direction, "name", str(direction))  # Optuna's sweeper may hold an Enum


def objective(summary: Mapping | None, cfg: Mapping, direction: str | None = None) -> float | None:
    """The value a job returns to its sweeper.

    Arguments:
        summary: the run's summary (as in summary.json), or None when the run
            was refused (config error, unusable run directory).
        cfg: the job's config; ``cfg["optimized_metric"]`` names the field.
        direction: "minimize" or "maximize"; default :func:`sweep_direction`.

    Returns:
        The metric of a completed run, the worst value for the direction for
        any other run, or None when ``optimized_metric`` is null.
    """
    metric = cfg.get("optimized_metric")
    if metric is None:
        return None
    direction = direction or sweep_direction(metric)
    value = summary.get(metric) if summary and summary.get("status") in SCORED else None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else WORST[direction]
