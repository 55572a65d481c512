"""Early stopping: end a run when its evaluation metric stops improving.

With ``early_stopping.metric`` set, every evaluation record (each ``log_every``
epochs) is compared with the best so far; after ``patience`` records in a row
that do not improve on it by more than ``min_delta``, the run ends with
``status: "stopped_early"``, keeping its last state (checkpoint and metrics as
usual). A resumed run replays its records, so it stops where it would have.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping

from ..config._checks import Check, check_group, choice, integer, number, optional

#: Metrics a run can stop on, and whether larger is better.
MAXIMIZE = {"test_loss": False, "train_loss": False, "test_accuracy": True}

#: The ``early_stopping`` group.
EARLY_STOPPING_KEYS: dict[str, Check] = {
    "metric": optional(choice(MAXIMIZE), "never stop early"),
    "patience": integer(1),
    "min_delta": number(0.0),
}


@dataclasses.dataclass
class EarlyStopping:
    """The state of one run's early stopping.

    Attributes:
        metric: a metrics.jsonl key (see :data:`MAXIMIZE`), or None (never stop).
        patience: evaluations without improvement before stopping.
        min_delta: the least change that counts as an improvement.
        best: the best value so far; waited: evaluations since it.
    """

    metric: str | None = None
    patience: int = 5
    min_delta: float = 0.0
    best: float | None = None
    waited: int = 0

    @classmethod
    def from_config(cls, group: Mapping | None) -> EarlyStopping:
        return cls(**check_group("early_stopping", group or {}, EARLY_STOPPING_KEYS))

    def update(self, record: Mapping) -> bool:
        """Take one evaluation record; return whether the run should stop now."""
        if not self.metric:
            return False
        value = record.get(self.metric)
        if value is None or not math.isfinite(value):
            return False
        sign = 1.0 if MAXIMIZE[self.metric] else -1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.waited = value, 0
            return False
        self.waited += 1
        return self.waited >= self.patience

    def replay(self, records: Iterable[Mapping]) -> None:
        """Take the records a resumed run wrote before."""
        for record in records:
            self.update(record)
