"""Experiment trackers: where a run's config, losses, evaluations and summary go besides its files.

The run engine makes one tracker per lane with :func:`make_tracker` from the
config group ``logger`` and calls, in order: ``start(config)`` once (a resumed
run included), ``log_losses(first_step, losses)`` after each chunk with every
step's minibatch loss, ``log_record(record)`` with each metrics.jsonl record
(step 0 first), and ``finish(summary)`` at the end, whatever the status.
metrics.jsonl, losses.csv and summary.json are written by the engine whatever
the tracker.

Each entry of :data:`TRACKERS` is a class taking ``(out_dir, **settings)``;
its ``SETTINGS`` schema checks the ``logger`` group's other keys. A tracker's
package is imported only when that tracker starts; a missing one stops the run
at its config check, naming the pip extra that installs it.

=============  =====================  ==========================================
logger         package                writes (by default)
=============  =====================  ==========================================
none           —                      nothing besides the run's own files
csv            —                      ``<run>/csv/``: params, metrics, summary
tensorboard    tensorboardX           ``<run>/tensorboard/``: event files
mlflow         mlflow(-skinny)        ``<run>/mlruns/``: an MLflow file store
wandb          wandb                  ``<run>/wandb/``: an offline W&B run
=============  =====================  ==========================================
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config._checks import ConfigError, check_group
from ._base import Tracker
from ._csv import CsvTracker
from ._mlflow import MlflowTracker
from ._tensorboard import TensorBoardTracker
from ._wandb import WandbTracker

__all__ = ["TRACKERS", "Tracker", "check_logger_config", "make_tracker"]

#: Trackers by ``logger.name``.
TRACKERS: dict[str, type[Tracker]] = {
    "none": Tracker,
    "csv": CsvTracker,
    "tensorboard": TensorBoardTracker,
    "mlflow": MlflowTracker,
    "wandb": WandbTracker,
}


def check_logger_config(logger_cfg: Mapping | None) -> dict:
    """Check the ``logger`` group (``None``: no tracker); return its settings with ``name``.

    Raises:
        ConfigError: an unknown logger or key, a bad value, or the logger's
            package not installed.
    """
    if logger_cfg is None:
        return {"name": "none"}
    if not isinstance(logger_cfg, Mapping):
        raise ConfigError(
            "logger",
            logger_cfg,
            f"expected a logger group, e.g. logger=none; valid choices are: {', '.join(sorted(TRACKERS))}",
        )
    name = logger_cfg.get("name", "none")
    if name not in TRACKERS:
        raise ConfigError("logger", name, f"valid choices are: {', '.join(sorted(TRACKERS))}")
    settings = {k: v for k, v in logger_cfg.items() if k != "name"}
    checked = check_group("logger", settings, TRACKERS[name].SETTINGS)
    TRACKERS[name].check_installed(name)
    return {"name": name, **checked}


def make_tracker(config: Mapping[str, Any], out_dir: Path) -> Tracker:
    """The tracker a run's config asks for, writing beside (or into) ``out_dir``."""
    settings = check_logger_config(config.get("logger"))
    return TRACKERS[settings.pop("name")](out_dir, **settings)
