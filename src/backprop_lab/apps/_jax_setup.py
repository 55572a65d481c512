"""JAX's settings from an app's config: float64, the persistent compile cache, host CPU
devices, ``jax.distributed`` for a run of several processes, and JAX's backend chatter off."""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import jax

__all__ = ["quiet_backend_probe", "setup_jax", "setup_distributed", "usable_cache"]


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
