"""Experiment trackers: where a run's config, losses, evaluations and summary go besides its files.

The run engine makes each lane's trackers with :func:`make_tracker` from the
config group ``logger`` and calls, in order: ``start(config)`` once (a resumed
run included), ``log_losses(first_step, losses)`` after each chunk with every
step's minibatch loss, ``log_record(record)`` with each metrics.jsonl record
(step 0 first), and ``finish(summary)`` at the end, whatever the status.
metrics.jsonl, losses.csv and summary.json are written by the engine whatever
the trackers.

Each option of the group puts its keys under its own name, so several go
together: ``logger=csv`` is ``{"csv": {"dir": "csv"}}``, ``logger=[csv,tensorboard]``
both, ``logger=none`` nothing. Each entry of :data:`TRACKERS` is a class taking
``(out_dir, run, **settings)``; its ``SETTINGS`` schema checks its keys. A
tracker's package is imported only when that tracker starts; a missing one stops
the run at its config check, naming the pip extra that installs it.

=============  =====================  ==========================================
logger         package                writes (by default)
=============  =====================  ==========================================
none           —                      nothing besides the run's own files
csv            —                      ``<run>/csv/``: params, metrics, summary
tensorboard    tensorboardX           ``<run>/tensorboard/<name>/``: event files
mlflow         mlflow(-skinny)        ``<launch dir>/mlflow.db``: one SQLite store
wandb          wandb                  ``<run>/wandb/``: an offline W&B run
=============  =====================  ==========================================
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config._checks import ConfigError, check_group
from ._base import RunInfo, Tracker, TrackerError, first_line, run_info
from ._csv import CsvTracker
from ._mlflow import MlflowTracker
from ._tensorboard import TensorBoardTracker
from ._wandb import WandbTracker

__all__ = ["TRACKERS", "Tracker", "TrackerError", "Trackers", "check_logger_config", "make_tracker"]

log = logging.getLogger("backprop_lab.trackers")

#: Trackers by name (``logger=NAME``); ``none`` is the run's own files only.
TRACKERS: dict[str, type[Tracker]] = {
    "none": Tracker,
    "csv": CsvTracker,
    "tensorboard": TensorBoardTracker,
    "mlflow": MlflowTracker,
    "wandb": WandbTracker,
}


def _unknown(name: Any) -> ConfigError:
    return ConfigError(
        "logger",
        name,
        f"valid choices are: {', '.join(sorted(TRACKERS))}, or several, e.g. logger=[csv,tensorboard]",
    )


def check_logger_config(logger_cfg: Mapping | None) -> dict[str, dict]:
    """Check the ``logger`` group (``None``: no tracker); return each chosen tracker's checked
    keys by its name (``{}`` for none).

    Raises:
        ConfigError: an unknown tracker or key, a bad value, or a tracker's package
            not installed.
    """
    if logger_cfg is None:
        return {}
    if not isinstance(logger_cfg, Mapping):
        raise _unknown(logger_cfg)
    chosen: dict[str, dict] = {}
    for name, settings in logger_cfg.items():
        if name not in TRACKERS:
            raise _unknown(name)
        if name == "none":
            continue
        chosen[name] = check_group(f"logger.{name}", settings or {}, TRACKERS[name].SETTINGS)
        TRACKERS[name].check_installed(name)
    return chosen


class Trackers(Tracker):
    """Several trackers as one: each gets every call. Those that talk to a service start
    first, so a refusal comes before anything is written. One that fails after it started
    (a server gone) is reported in one line and left out; the run and the others go on."""

    def __init__(self, out_dir: Path, trackers: Mapping[str, Tracker]):
        super().__init__(out_dir, next((t.run_info for t in trackers.values()), None))
        self.trackers = dict(sorted(trackers.items(), key=lambda item: not item[1].REMOTE))
        self.started: dict[str, Tracker] = {}

    def start(self, config: Mapping[str, Any]) -> None:
        for name, tracker in self.trackers.items():
            try:
                tracker.start(config)
            except ConfigError:
                raise
            except Exception as err:  # noqa: BLE001 - whatever the tool raised, as one line
                raise TrackerError(name, first_line(err)) from None
            self.started[name] = tracker

    def _each(self, method: str, *args: Any) -> None:
        for name, tracker in list(self.started.items()):
            try:
                getattr(tracker, method)(*args)
            except Exception as err:  # noqa: BLE001 - a tracker's failure must not end the run
                del self.started[name]
                log.error("logger=%s stopped logging this run: %s", name, first_line(err))

    def log_losses(self, first_step: int, losses: Sequence[float]) -> None:
        self._each("log_losses", first_step, losses)

    def log_record(self, record: Mapping[str, Any]) -> None:
        self._each("log_record", record)

    def finish(self, summary: Mapping[str, Any]) -> None:
        self._each("finish", summary)
        self.started.clear()


def make_tracker(
    config: Mapping[str, Any], out_dir: Path, config_files: Mapping[str, str] | None = None
) -> Trackers:
    """The trackers a run's config asks for (``logger``), as one, writing beside (or into)
    ``out_dir``; ``config_files`` are the run's ``.hydra/`` texts (its name, its sweep)."""
    chosen = check_logger_config(config.get("logger"))
    if not chosen:  # logger=none: nothing asks for the run's name
        return Trackers(out_dir, {})
    run: RunInfo = run_info(out_dir, config_files)
    return Trackers(out_dir, {name: TRACKERS[name](out_dir, run, **keys) for name, keys in chosen.items()})
