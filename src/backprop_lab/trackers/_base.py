"""The tracker interface, and what every tracker does the same way.

The run engine makes one tracker per lane (see :mod:`backprop_lab.trackers._registry`)
and calls, in order: ``start(config)`` once (a resumed run included),
``log_losses(first_step, losses)`` after each chunk with every step's
minibatch loss, ``log_record(record)`` with each metrics.jsonl record (step 0
first), and ``finish(summary)`` at the end, whatever the status.

Every tracker names things alike, so their outputs compare with the run's own
files: the step losses are the metric ``loss`` at the step losses.csv gives
them; a record's numbers are metrics under their metrics.jsonl names at the
record's ``step`` (a per-layer list such as ``grad_norms`` as ``grad_norms/0``,
``grad_norms/1``, ...); the config goes flat, one dotted key per value
(:func:`flat_config`).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from ..config._checks import Check, ConfigError

#: The pip extra that installs every tracker's package.
EXTRA = "backprop-lab[trackers]"

#: Record fields that are where a value is, not a measurement.
_NOT_METRICS = frozenset({"step"})


class Tracker:
    """The tracker of ``logger=none``: the run's own files only.

    Arguments:
        out_dir: the run directory (the lane's, in a sweep).
        **settings: the ``logger`` group's other keys, checked against ``SETTINGS``.
    """

    #: The logger group's keys (besides ``name``), each with its rule.
    SETTINGS: ClassVar[Mapping[str, Check]] = {}
    #: The module the tracker imports when it starts, or None.
    PACKAGE: ClassVar[str | None] = None

    def __init__(self, out_dir: Path, **settings: Any):
        self.out_dir = Path(out_dir)
        self.settings = settings

    @classmethod
    def check_installed(cls, name: str) -> None:
        """Raise :class:`ConfigError` when the tracker's package is missing (nothing is imported)."""
        if cls.PACKAGE is not None and importlib.util.find_spec(cls.PACKAGE) is None:
            raise missing_package(name, cls.PACKAGE)

    def start(self, config: Mapping[str, Any]) -> None:
        """The run's config, as hyperparameters."""

    def log_losses(self, first_step: int, losses: Sequence[float]) -> None:
        """Every step's minibatch loss, steps ``first_step``, ``first_step + 1``, ..."""

    def log_record(self, record: Mapping[str, Any]) -> None:
        """One evaluation record (as in metrics.jsonl)."""

    def finish(self, summary: Mapping[str, Any]) -> None:
        """The run's summary (as in summary.json); the tracker's last call."""


def missing_package(name: str, package: str) -> ConfigError:
    """The error for ``logger=name`` without its package."""
    return ConfigError(
        "logger", name, f"it needs the {package} package, which is not installed; pip install '{EXTRA}'"
    )


def import_package(name: str, package: str) -> ModuleType:
    """Import a tracker's package when the tracker starts; a missing one is a :class:`ConfigError`."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise missing_package(name, package) from None


def tracker_dir(out_dir: Path, folder: str | None) -> Path:
    """Where a tracker writes: ``folder`` inside the run directory (an absolute path as it is)."""
    return Path(out_dir) if folder is None else Path(out_dir) / Path(folder).expanduser()


def config_value(value: Any) -> str | int | float | bool:
    """A config value as a hyperparameter: numbers, strings and booleans as they are,
    anything else (lists, null) as its JSON text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value)


def config_text(value: Any) -> str:
    """A hyperparameter as text: a string as it is, anything else as its JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, str | int | float | bool]:
    """A nested config as one dotted key per value (``{"model": {"sizes": [2, 8, 2]}}``
    becomes ``{"model.sizes": "[2, 8, 2]"}``)."""
    flat: dict[str, str | int | float | bool] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = config_value(value)
    return flat


def record_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """A metrics record's numbers by metric name: lists as ``name/i``, missing values left out."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in _NOT_METRICS:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for i, v in enumerate(values):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"{key}/{i}" if isinstance(value, (list, tuple)) else key] = float(v)
    return out
