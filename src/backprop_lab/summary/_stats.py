"""Sweep rows grouped by what was swept, seeds aggregated to mean ± standard deviation.

A sweep over ``optimizer.lr=… seed=0,1,2`` gives three rows per learning
rate; :func:`aggregate` turns them into one group per learning rate with the
mean and the sample standard deviation (n − 1) of each metric over the runs
that finished. Diverged, missing and unstarted runs are counted, not averaged.
Nothing here imports JAX or matplotlib.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from ._job import Row

#: Override keys that replicate a run rather than change it: aggregated over.
REPLICATE_KEYS = ("seed",)

#: Short names accepted for metrics (``--y test_loss``) and keys (``--x lr``).
ALIASES = {
    "train_loss": "final_train_loss",
    "loss": "final_train_loss",
    "test_loss": "final_test_loss",
    "accuracy": "test_accuracy",
    "acc": "test_accuracy",
    "time": "wall_time",
    "lr": "optimizer.lr",
    "activation": "model.activation",
}

#: Axis and column labels of the usual metrics.
LABELS = {
    "final_train_loss": "final train loss",
    "final_test_loss": "final test loss",
    "test_accuracy": "test accuracy",
    "wall_time": "wall time (s)",
    "samples_per_second": "samples / s",
    "speedup": "speedup",
    "max_rel_error": "max rel error",
}

#: Statuses of runs whose numbers mean something (the others are counted only).
FINISHED = ("completed", "passed", "failed", "interrupted")

_OVERRIDE = "override:"


def canonical(name: str) -> str:
    """A metric or key name with its alias resolved (``test_loss`` → ``final_test_loss``)."""
    return ALIASES.get(name, name)


def label(name: str) -> str:
    """A readable label for a metric or key."""
    return LABELS.get(canonical(name), canonical(name))


def swept_keys(rows: Sequence[Row]) -> list[str]:
    """Override keys whose value differs between rows, in first-seen order (replicates included)."""
    keys: list[str] = []
    for row in rows:
        keys += [
            k[len(_OVERRIDE) :] for k in row if k.startswith(_OVERRIDE) and k[len(_OVERRIDE) :] not in keys
        ]
    return [k for k in keys if len({str(r.get(_OVERRIDE + k)) for r in rows}) > 1]


def value_of(row: Row, key: str) -> Any:
    """A row's value for a swept key or a column: its override, else the column
    (``optimizer.lr`` falls back to ``lr``, ``model.activation`` to ``activation``)."""
    key = canonical(key)
    if _OVERRIDE + key in row:
        return row[_OVERRIDE + key]
    fallback = {"optimizer.lr": "lr", "model.activation": "activation"}.get(key, key)
    return row.get(fallback)


def number(value: Any) -> float | None:
    """A finite float from a number or numeric string, else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


@dataclasses.dataclass(frozen=True)
class Stat:
    """One metric over the runs of a group: mean, sample standard deviation (0 for one run), count."""

    mean: float | None
    std: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat:
        finite = [v for v in values if v is not None]
        if not finite:
            return cls(None, 0.0, 0)
        std = statistics.stdev(finite) if len(finite) > 1 else 0.0
        return cls(statistics.fmean(finite), std, len(finite))


@dataclasses.dataclass
class Group:
    """Runs that differ only in a replicate key (the seed).

    Attributes:
        key: ``((swept key, value), …)`` shared by the runs.
        rows: the runs.
    """

    key: tuple[tuple[str, str], ...]
    rows: list[Row]

    @property
    def label(self) -> str:
        """``a=1 b=x``, or ``all runs`` when nothing but the seed was swept."""
        return " ".join(f"{k}={v}" for k, v in self.key) or "all runs"

    @property
    def short_label(self) -> str:
        """The values alone (``1 x``) for a legend whose title names the keys."""
        return " ".join(v for _, v in self.key) or "all runs"

    @property
    def finished(self) -> list[Row]:
        """The runs whose numbers count (completed, or compare jobs that ran)."""
        return [r for r in self.rows if r.get("status") in FINISHED]

    def stat(self, metric: str) -> Stat:
        """``metric`` over the finished runs."""
        return Stat.of(number(r.get(canonical(metric))) for r in self.finished)

    def count(self, status: str) -> int:
        """How many runs have ``status``."""
        return sum(r.get("status") == status for r in self.rows)


def group_rows(rows: Sequence[Row], by: Sequence[str] | None = None) -> list[Group]:
    """Rows grouped by the values of ``by`` (default: every swept key but the replicate keys).

    Arguments:
        rows: Dicts from ``collect_rows``.
        by: Keys to group by (see :func:`value_of`).

    Returns:
        Groups in the order their first row appears.
    """
    if by is None:
        by = [k for k in swept_keys(rows) if k not in REPLICATE_KEYS]
    groups: dict[tuple, Group] = {}
    for row in rows:
        key = tuple((k, str(value_of(row, k))) for k in by)
        groups.setdefault(key, Group(key, [])).rows.append(row)
    return list(groups.values())


def replicates(groups: Sequence[Group]) -> tuple[int, int]:
    """Fewest and most finished runs in a group (how many seeds each mean is over)."""
    counts = [len(g.finished) for g in groups if g.finished] or [0]
    return min(counts), max(counts)


def replicate_note(groups: Sequence[Group], shown: str = "band") -> str:
    """What the plot's error marks mean, e.g. ``mean ± 1 s.d. over 3 seeds (band)``,
    or ``one run each`` when no group has more than one finished run."""
    low, high = replicates(groups)
    if high <= 1:
        return "one run each"
    runs = f"{high}" if low == high else f"{low}-{high}"
    return f"mean ± 1 s.d. over {runs} seeds ({shown})"
