"""What the Hydra apps share at their edge: JAX settings from the config, config errors,
the run's Hydra files, and the value a job returns to its sweeper.

The apps (experiments/*.py) compose a config and call into the package; these
helpers are the only place that reads Hydra's runtime state.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import jax

from ..config._objective import METRICS, objective
from ..files._rundir import SUMMARY, finite_or_none, write_json

__all__ = [
    "finite_or_none",
    "write_json",
    "setup_jax",
    "in_multirun",
    "output_dir",
    "job_name",
    "quiet_backend_probe",
    "stop_on_config_error",
    "run_checked",
    "record_config_error",
    "hydra_files",
    "sweep_direction",
    "job_objective",
]


#: JAX's logger of its backends: on a machine without a TPU, each process starting JAX logs
#: (at INFO, which Hydra's log shows) that the TPU backend could not be started.
_BACKEND_LOGGER = "jax._src.xla_bridge"


def quiet_backend_probe() -> None:
    """JAX's INFO lines about probing for backends off (its warnings stay); called before JAX
    starts its backends. Hydra's logging config leaves loggers it does not name as they are."""
    logging.getLogger(_BACKEND_LOGGER).setLevel(logging.WARNING)


def setup_jax(cfg) -> None:
    """Float64 when the config asks for it, JAX's persistent compilation cache, and
    ``jax.distributed`` when the run spans several processes (see :func:`setup_distributed`);
    JAX's backend-probing chatter off (:func:`quiet_backend_probe`).

    Raises:
        ConfigError: a value that cannot be resolved (``${oc.env:UNSET}``).
    """
    quiet_backend_probe()
    from ..runs._config import plain_config

    cfg = plain_config(cfg)
    setup_distributed(cfg.get("distributed"))
    if cfg.get("dtype", "float32") == "float64":
        jax.config.update("jax_enable_x64", True)
    cache = cfg.get("jax_cache_dir")
    if cache and isinstance(cache, str) and usable_cache(cache):
        jax.config.update("jax_compilation_cache_dir", str(Path(cache).expanduser()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@functools.lru_cache
def usable_cache(cache: str) -> bool:
    """Whether ``jax_cache_dir`` is a directory this process can write (created when missing);
    if not, one warning line (once per process) and the run compiles without the cache, where
    JAX would warn with several lines for each program it cannot read or write there."""
    where = Path(cache).expanduser()
    try:
        where.mkdir(parents=True, exist_ok=True)
        if not os.access(where, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "Permission denied", str(where))
    except OSError as err:
        from ..files._safe import os_error_line

        logging.getLogger("backprop_lab.run").warning(
            "jax_cache_dir=%s: %s; compiling without the persistent cache (give a writable "
            "directory, or jax_cache_dir=null)",
            cache,
            os_error_line(err, where),
        )
        return False
    return True


def _slurm_tasks() -> int:
    """Tasks of the SLURM job step this process belongs to (0 outside a step)."""
    if "SLURM_STEP_ID" not in os.environ:
        return 0
    for key in ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"):
        try:
            return int(os.environ[key])
        except (KeyError, ValueError):
            continue
    return 0


def setup_distributed(group) -> bool:
    """Join a multi-process run before JAX computes anything; return whether this is one.

    From ``distributed.coordinator_address``, ``num_processes`` and ``process_id``
    when set; else, inside a SLURM job step with several tasks, from SLURM's
    environment as ``jax.distributed.initialize()`` reads it. On CPU the
    collectives go through gloo. Calling it again is harmless. A process that cannot
    join within ``distributed.initialization_timeout`` seconds (the coordinator not
    reachable, a process that never comes) ends with one line and exit status 2.

    Raises:
        ConfigError: ``jax.distributed`` refused to start (the message says why).
    """
    from ..config._checks import ConfigError
    from ..runs._config import check_distributed

    values = check_distributed(group)
    keys = {
        k: values[k]
        for k in ("coordinator_address", "num_processes", "process_id")
        if values.get(k) is not None
    }
    if not keys and _slurm_tasks() < 2:
        return False
    if jax.distributed.is_initialized():
        return True
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    wait = values["initialization_timeout"]
    where = keys.get("coordinator_address", "the address SLURM gives")
    check = (
        "that every process was started with the same distributed.coordinator_address and "
        "num_processes and its own process_id (distributed.initialization_timeout sets the wait)"
    )
    waited = (
        f"not every process joined the run of process 0 at {where} within {wait} s: check {check}"
        if keys.get("process_id") == 0
        else f"this process could not join the run at {where} within {wait} s: check that process 0 "
        f"runs and can be reached there, and {check}"
    )
    with _deadline(wait, f"jax.distributed: {waited}"):
        try:  # JAX's own limit later than ours: when it passes it aborts the process, with a C++ stack
            jax.distributed.initialize(
                **keys,
                initialization_timeout=wait + 60,
                heartbeat_timeout_seconds=values["heartbeat_timeout"],
            )
        except Exception as err:  # noqa: BLE001 - whatever JAX refuses, as one line
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ConfigError(
                "distributed", keys or "from SLURM", f"jax.distributed did not start: {first}"
            ) from None
    return True


@contextlib.contextmanager
def _deadline(seconds: float, message: str) -> Iterator[None]:
    """End the process with ``message`` (one line on stderr) and exit status 2 if the block
    has not ended within ``seconds``: a call into JAX's C++ that cannot be interrupted."""
    done = threading.Event()

    def watch() -> None:
        if not done.wait(seconds):
            logging.getLogger("backprop_lab.run").error("%s", message)  # (no handler: on stderr)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(2)

    threading.Thread(target=watch, daemon=True).start()
    try:
        yield
    finally:
        done.set()


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
