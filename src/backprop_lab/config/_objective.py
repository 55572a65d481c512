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
from collections.abc import Mapping

__all__ = ["METRICS", "SCORED", "WORST", "objective"]

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


def objective(summary: Mapping | None, cfg: Mapping, direction: str | None = None) -> float | None:
    """The value a job returns to its sweeper.

    Arguments:
        summary: the run's summary (as in summary.json), or None when the run
            was refused (config error, unusable run directory).
        cfg: the job's config; ``cfg["optimized_metric"]`` names the field.
        direction: "minimize" or "maximize"; default the metric's own (:data:`METRICS`).

    Returns:
        The metric of a completed run, the worst value for the direction for
        any other run, or None when ``optimized_metric`` is null.
    """
    metric = cfg.get("optimized_metric")
    if metric is None:
        return None
    direction = direction or METRICS.get(metric, "minimize")
    value = summary.get(metric) if summary and summary.get("status") in SCORED else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return WORST[direction]
