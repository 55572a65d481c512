"""Experiment trackers: where a run's config, losses, evaluations and summary go besides its files.

The run engine makes one tracker per lane with :func:`make_tracker` from the
config group ``logger`` and calls, in order: ``start(config)`` once (a resumed
run included), ``log_losses(first_step, losses)`` after each chunk with every
step's minibatch loss, ``log_record(record)`` with each metrics.jsonl record
(step 0 first), and ``finish(summary)`` at the end, whatever the status.
metrics.jsonl, losses.csv and summary.json are written by the engine whatever
the tracker.

Each entry of :data:`TRACKERS` is a class taking ``(out_dir, **settings)``;
its ``SETTINGS`` schema checks the ``logger`` group's other keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ._schema import Check, ConfigError, check_group


class Tracker:
    """The tracker of ``logger=none``: the run's own files only."""

    SETTINGS: ClassVar[Mapping[str, Check]] = {}

    def __init__(self, out_dir: Path, **settings: Any):
        self.out_dir = Path(out_dir)
        self.settings = settings

    def start(self, config: Mapping[str, Any]) -> None:
        """The run's config, as hyperparameters."""

    def log_losses(self, first_step: int, losses: Sequence[float]) -> None:
        """Every step's minibatch loss, steps ``first_step``, ``first_step + 1``, ..."""

    def log_record(self, record: Mapping[str, Any]) -> None:
        """One evaluation record (as in metrics.jsonl)."""

    def finish(self, summary: Mapping[str, Any]) -> None:
        """The run's summary (as in summary.json); the tracker's last call."""


#: Trackers by ``logger.name``.
TRACKERS: dict[str, type[Tracker]] = {"none": Tracker}


def check_logger_config(logger_cfg: Mapping | None) -> dict:
    """Check the ``logger`` group (``None``: no tracker); return its settings with ``name``."""
    if logger_cfg is None:
        return {"name": "none"}
    if not isinstance(logger_cfg, Mapping):
        raise ConfigError("logger", logger_cfg, f"expected a logger group, e.g. logger=none; "
                          f"valid choices are: {', '.join(sorted(TRACKERS))}")
    name = logger_cfg.get("name", "none")
    if name not in TRACKERS:
        raise ConfigError("logger", name, f"valid choices are: {', '.join(sorted(TRACKERS))}")
    settings = {k: v for k, v in logger_cfg.items() if k != "name"}
    return {"name": name, **check_group("logger", settings, TRACKERS[name].SETTINGS)}


def make_tracker(config: Mapping[str, Any], out_dir: Path) -> Tracker:
    """The tracker a run's config asks for, writing beside (or into) ``out_dir``."""
    settings = check_logger_config(config.get("logger"))
    return TRACKERS[settings.pop("name")](out_dir, **settings)
