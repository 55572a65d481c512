"""The tracker interface, and what every tracker does the same way.

The run engine makes the trackers of each lane (see :mod:`backprop_lab.trackers._registry`)
and calls, in order: ``start(config)`` once (a resumed run included),
``log_losses(first_step, losses)`` after each chunk with every step's
minibatch loss, ``log_record(record)`` with each metrics.jsonl record (step 0
first), and ``finish(summary)`` at the end, whatever the status.

Every tracker names things alike, so their outputs compare with the run's own
files: the step losses are the metric ``loss`` at the step losses.csv gives
them; a record's numbers are metrics under their metrics.jsonl names at the
record's ``step`` (a per-layer list such as ``grad_norms`` as ``grad_norms/0``,
``grad_norms/1``, ...); the config goes flat, one dotted key per value
(:func:`flat_config`). A run is known to its tracker by its name, its overrides
(:class:`RunInfo`), and a sweep's runs go together (one MLflow experiment, one
TensorBoard log directory).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import yaml

from ..config._checks import Check, ConfigError, number

#: The pip extra that installs every tracker's package.
EXTRA = "backprop-lab[trackers]"

#: Record fields that are where a value is, not a measurement.
_NOT_METRICS = frozenset({"step"})

#: ``logger.<name>.timeout``: the seconds a tracker may wait for its service when it starts.
TIMEOUT = number(0, low_open=True, example="60")


class TrackerError(ConfigError):
    """A tracker that cannot start (its service unreachable, a login missing, its state file
    not this run's): one line naming the tracker and what to check; the run stops with exit 2."""

    def __init__(self, name: str, message: str):
        ValueError.__init__(self, f"logger={name}: {message}")
        self.key, self.value, self.expected = f"logger.{name}", None, message


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What a tracker calls a run, from the run's Hydra files.

    Attributes:
        name: the run's overrides as Hydra's ``override_dirname`` writes them (in a
            sweep, those that differ between its jobs), else the run directory's name.
        launch_dir: the directory the run was started from (Hydra's ``runtime.cwd``).
        sweep_dir: the sweep's directory for a job of a sweep, else None.
    """

    name: str
    launch_dir: Path
    sweep_dir: Path | None = None

    @property
    def group(self) -> str | None:
        """The sweep directory as the user named it (relative to the launch directory), or None."""
        if self.sweep_dir is None:
            return None
        try:
            return str(self.sweep_dir.relative_to(self.launch_dir))
        except ValueError:
            return str(self.sweep_dir)


#: PyYAML's safe loader, libyaml's when PyYAML was built with it (the same data, parsed in C).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=8)
def _yaml(text: str | None) -> Any:
    """``text`` parsed (None for no text or no YAML); the same text is parsed once (a sweep's
    jobs share their multirun.yaml, a fresh run's hydra.yaml is this start's). Read-only."""
    try:
        return yaml.load(text, Loader=_LOADER) if text else None
    except yaml.YAMLError:
        return None


def _get(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, Mapping) else None
    return tree


def run_info(out_dir: Path, config_files: Mapping[str, str] | None = None) -> RunInfo:
    """The :class:`RunInfo` of the run in ``out_dir``. Where it started and its sweep come from
    ``config_files`` (the ``.hydra/`` texts of this start); its name from the overrides the run
    recorded in ``.hydra/hydra.yaml`` when it has them (a resumed run keeps its name), else from
    this start's; without Hydra, the launch directory is the working directory and the name
    the run directory's."""
    out_dir = Path(out_dir).resolve()
    now = _get(_yaml((config_files or {}).get("hydra.yaml")), "hydra") or {}
    first = _get(_yaml(_read(out_dir / ".hydra" / "hydra.yaml")), "hydra") or now
    launch = Path(_get(now, "runtime.cwd") or Path.cwd())
    sweep = None
    if str(_get(now, "mode")) == "MULTIRUN" and _get(now, "sweep.dir"):
        sweep = (launch / str(_get(now, "sweep.dir"))).resolve()
    overrides = [str(o) for o in (_get(first, "overrides.task") or [])]
    if sweep is not None:  # what every job of the sweep shares names none of them
        shared = _get(_yaml(_read(sweep / "multirun.yaml")), "hydra.overrides.task") or []
        overrides = [o for o in overrides if o not in {str(s) for s in shared}]
    name = ",".join(sorted(overrides))
    if not name:
        base = sweep if sweep is not None else launch
        name = str(out_dir.relative_to(base)) if out_dir.is_relative_to(base) else out_dir.name
    return RunInfo(name, launch, sweep)


def read_state(name: str, path: Path, keys: Sequence[str], tool: str) -> dict | None:
    """A tracker's state file (how a resumed run finds its tracker run): None when there is
    none; a :class:`TrackerError` when it is not a JSON object with a non-empty string at
    each of ``keys``, as the tracker writes it."""
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        state = None
    if not isinstance(state, dict) or not all(isinstance(state.get(k), str) and state[k] for k in keys):
        shape = ", ".join(f'"{k}": ...' for k in keys)
        raise TrackerError(
            name,
            f"{path} is not the file this run wrote ({{{shape}}}); restore it, "
            f"or delete it to log this run to a new {tool} run",
        )
    return state


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def folder_name(name: str) -> str:
    """``name`` as one folder's name: ``/`` written ``%2F`` (``%`` as ``%25``), at most 200 bytes."""
    safe = name.replace("%", "%25").replace("/", "%2F").replace("\0", "")
    if safe in ("", ".", ".."):
        safe = f"run{safe}"
    raw = safe.encode()
    if len(raw) > 200:
        import hashlib

        safe = raw[:180].decode(errors="ignore") + "-" + hashlib.sha1(raw).hexdigest()[:12]
    return safe


class Tracker:
    """The tracker of ``logger=none``: the run's own files only.

    Arguments:
        out_dir: the run directory (the lane's, in a sweep).
        run: the run's name and sweep (default: from its directory, :func:`run_info`).
        **settings: the tracker's keys (``logger.<name>``), checked against ``SETTINGS``.
    """

    #: The logger group's keys (besides ``name``), each with its rule.
    SETTINGS: ClassVar[Mapping[str, Check]] = {}
    #: The module the tracker imports when it starts, or None.
    PACKAGE: ClassVar[str | None] = None
    #: Whether it talks to a service (a server, a database, an account) when it starts.
    REMOTE: ClassVar[bool] = False

    def __init__(self, out_dir: Path, run: RunInfo | None = None, **settings: Any):
        self.out_dir = Path(out_dir)
        self._run = run
        self.settings = settings

    @property
    def run_info(self) -> RunInfo:
        """The run's name and sweep: as given, else read from its directory when first asked."""
        if self._run is None:
            self._run = run_info(self.out_dir)
        return self._run

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


def first_line(err: BaseException) -> str:
    """An exception's message as one line (its type's name when it has none)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


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
