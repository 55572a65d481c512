"""What the Hydra apps share at their edge: config errors, the run's Hydra files, and the
value a job returns to its sweeper (JAX's settings from the config: :mod:`._jax_setup`).

The apps (experiments/*.py) compose a config and call into the package; these
helpers are the only place that reads Hydra's runtime state.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..config._objective import METRICS, objective
from ..files._rundir import SUMMARY, finite_or_none, write_json
from ._jax_setup import quiet_backend_probe

__all__ = [
    "finite_or_none",
    "write_json",
    "in_multirun",
    "output_dir",
    "job_name",
    "stop_on_config_error",
    "run_checked",
    "record_config_error",
    "hydra_files",
    "sweep_direction",
    "job_objective",
]


def requeued() -> bool:
    """Whether this is a SLURM job started again after a requeue (preemption, ``scontrol requeue``):
    then its run continues from its checkpoint as with ``resume=true``."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0
    except ValueError:
        return False


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun (``-m``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_name() -> str:
    """A sweep job's label for log lines (``#3``, its number); "" outside a multirun."""
    from hydra.core.hydra_config import HydraConfig

    return f"#{HydraConfig.get().job.num}" if in_multirun() else ""


def output_dir() -> Path:
    """The job's output directory, as Hydra chose it."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def stop_on_config_error(err: Exception, kind: str, log: logging.Logger, cfg=None) -> None:
    """What an app does with a config that cannot work: log it, then, inside a
    multirun, record ``status: "config_error"`` in the job's summary.json (and the
    job's ``.hydra/`` files of ``cfg``, so the sweep's summary knows which planned
    job it was) and return so the sweep's other jobs run; in a single run, exit
    with status 2.

    Nothing is written over a directory that holds a run."""
    log.error("%s", err)
    if not in_multirun():
        sys.exit(2)
    record_config_error(output_dir(), kind, err, hydra_files(cfg) if cfg is not None else {})


def run_checked(fn, cfg, kind: str, log: logging.Logger):
    """``fn(cfg)`` as an app's task: JAX's backend-probing chatter off, and a
    :class:`ConfigError` handled by :func:`stop_on_config_error` (None is returned then)."""
    from ..config._checks import ConfigError

    quiet_backend_probe()
    try:
        return fn(cfg)
    except ConfigError as err:
        stop_on_config_error(err, kind, log, cfg)
        return None


def record_config_error(
    out: Path, kind: str, err: Exception, config_files: dict[str, str] | None = None
) -> None:
    """summary.json (and ``config_files`` under .hydra/) of a job refused for its config,
    unless the directory holds a run or is not one the job may write into (the error is logged
    then)."""
    from ..files._rundir import RunDir, RunDirError, claim
    from ..files._safe import os_error_line

    run_dir = RunDir(out)
    if run_dir.holds_run():
        return
    try:
        claim(out, "hydra.sweep.dir", app=kind)
        if config_files:
            run_dir.write_config(config_files)
        write_json(
            out / SUMMARY, {"kind": kind, "status": "config_error", "passed": False, "error": str(err)}
        )
    except RunDirError as refused:  # not a directory this job may write into: the log line is all
        logging.getLogger("backprop_lab").error("%s", refused)
    except OSError as failed:
        logging.getLogger("backprop_lab").error("%s", os_error_line(failed))


def hydra_files(cfg) -> dict[str, str]:
    """The .hydra/ files of a job (config, overrides, Hydra's config) as YAML texts."""
    from hydra.core.hydra_config import HydraConfig

    files = {"config.yaml": to_yaml(_absolute_data_path(cfg))}
    if HydraConfig.initialized():
        # {"hydra": the job's Hydra node} as Hydra holds it (a DictConfig at run time): no copy
        held = HydraConfig.instance().cfg
        files["overrides.yaml"] = to_yaml(HydraConfig.get().overrides.task)
        files["hydra.yaml"] = to_yaml(held)
    return files


def _absolute_data_path(cfg):
    """A copy of ``cfg`` whose relative ``data.path`` is absolute (see ``absolute_data_path``)."""
    from omegaconf import DictConfig, OmegaConf

    from ..runs._data import absolute_path

    path = (
        absolute_path(OmegaConf.select(cfg, "data.path", default=None))
        if isinstance(cfg, DictConfig)
        else None
    )
    if path is None:
        return cfg
    cfg = cfg.copy()
    OmegaConf.update(cfg, "data.path", path, force_add=True)
    return cfg


def to_yaml(node) -> str:
    """``node`` (a config, or a dict or list holding configs) as the YAML text Hydra writes."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(node)


def sweep_direction(metric: str) -> str:
    """``hydra.sweeper.direction`` when the running sweeper has one, else the metric's own.

    Raises:
        ValueError: a multi-objective sweep (more than one direction); a job returns one number.
    """
    from hydra.core.hydra_config import HydraConfig

    direction = None
    if HydraConfig.initialized():
        # HydraConfig.get() is typed as the HydraConf dataclass but is a DictConfig at run time
        sweeper = HydraConfig.get().get("sweeper") or {}  # type: ignore[attr-defined]
        direction = sweeper.get("direction") if isinstance(sweeper, Mapping) else None
    if isinstance(direction, Sequence) and not isinstance(direction, str):
        if len(direction) != 1:
            raise ValueError(
                f"hydra.sweeper.direction={list(direction)}: optimized_metric={metric} "
                "is one number, so the sweep takes one direction"
            )
        direction = direction[0]
    if direction is None:
        return METRICS.get(metric, "minimize")
    return getattr(direction, "name", str(direction))  # Optuna's sweeper may hold an Enum


def job_objective(summary, cfg) -> float | None:
    """What a job returns to its sweeper: :func:`objective` in the running sweep's direction."""
    metric = cfg.get("optimized_metric")
    return objective(summary, cfg, sweep_direction(metric) if metric is not None else None)
