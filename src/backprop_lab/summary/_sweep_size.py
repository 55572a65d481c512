"""How many jobs a basic-sweeper sweep plans, counted from its overrides without listing them.

A sweep of ``seed=range(0,200000000)`` is 200 million jobs: listing them (as Hydra's basic
sweeper does before its first job) takes minutes and gigabytes. :func:`check_sweep_size`
refuses a plan of more than :data:`MAX_PLANNED` jobs from the number of values of each
swept key alone, so that the apps and ``summarize`` stop such a plan at once.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

__all__ = ["MAX_PLANNED", "check_sweep_size", "sweep_arguments", "sweep_counts"]

#: The most jobs one sweep may plan (the apps refuse more; ``summarize`` does not expand more).
MAX_PLANNED = 100_000


def sweep_arguments(params: Mapping | None, task: Iterable) -> list[str]:
    """The overrides the basic sweeper expands: ``hydra.sweeper.params`` (``key: values``), then
    the command line's ``hydra.overrides.task``.

    >>> sweep_arguments({"seed": "0,1"}, ["optimizer.lr=0.1,0.2"])
    ['seed=0,1', 'optimizer.lr=0.1,0.2']
    """
    return [f"{k}={v}" for k, v in (params or {}).items()] + [str(t) for t in task]


def _count(override) -> int:
    """How many values one parsed override gives (1 for a plain value; a glob of a config
    group's options counts 1: a group holds few)."""
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

    if not override.is_sweep_override():
        return 1
    value = override.value()
    if isinstance(value, RangeSweep):
        if not value.step:
            raise ValueError(f"{override.input_line}: a range's step must not be 0")
        if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            return len(range(value.start, value.stop, value.step))  # type: ignore[arg-type]
        # a float range steps in Decimal from the floats' exact values, as Hydra's FloatRange does
        span = (Decimal(value.stop) - Decimal(value.start)) / Decimal(value.step)  # type: ignore[arg-type]
        return 0 if span.is_nan() or span <= 0 else math.ceil(span) if span.is_finite() else sys.maxsize
    if isinstance(value, ChoiceSweep):
        return len(value.list)
    return len(value) if isinstance(value, list) else 1


def sweep_counts(arguments: Sequence[str]) -> dict[str, tuple[str, int]]:
    """Per key, its last override and how many values it sweeps, each counted without listing
    the values; the plan is the product of the counts.

    Raises:
        ValueError: an override Hydra cannot parse, or a range whose step is 0.

    >>> sweep_counts(["seed=range(0,200000000)", "optimizer.lr=0.1,0.2", "epochs=3"])["seed"]
    ('seed=range(0,200000000)', 200000000)
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(arguments))
    except Exception as err:  # noqa: BLE001 - Hydra's parse errors, as one message
        raise ValueError(
            str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        ) from None
    return {o.get_key_element(): (str(o.input_line), _count(o)) for o in parsed}


def check_sweep_size(arguments: Sequence[str]) -> int:
    """The number of jobs the basic sweeper makes of ``arguments``, or ValueError (one line)
    when it passes :data:`MAX_PLANNED` or is 0 (an empty range).

    >>> check_sweep_size(["seed=range(0,4)", "optimizer.lr=0.1,0.2"])
    8
    >>> check_sweep_size(["seed=range(0,200000000)"])
    Traceback (most recent call last):
    ...
    ValueError: a sweep of 200,000,000 jobs (seed=range(0,200000000): 200,000,000 values); one sweep plans at most 100,000 jobs: sweep fewer values, or split it into several sweeps
    """
    counts = sweep_counts(arguments)
    total = math.prod(n for _, n in counts.values())
    if 0 < total <= MAX_PLANNED:
        return total
    if total == 0:
        empty = ", ".join(line for line, n in counts.values() if n == 0)
        raise ValueError(f"{empty}: no values, so the sweep has no jobs; give a range or list with values")
    swept = sorted((c for c in counts.values() if c[1] > 1), key=lambda c: -c[1])
    what = ", ".join(f"{line}: {_many(n)} values" for line, n in swept[:3])
    raise ValueError(
        f"a sweep of {_many(total)} jobs ({what}); one sweep plans at most {MAX_PLANNED:,} jobs: "
        "sweep fewer values, or split it into several sweeps"
    )


def _many(n: int) -> str:
    return f"{n:,}" if n < sys.maxsize else f"more than {MAX_PLANNED:,}"
