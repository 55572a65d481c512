"""The composed config as plain containers, and the checks of its top level.

A run's config reaches the engine as plain Python containers (:func:`plain_config`,
resolved, Hydra's own node left out); :func:`result_config` is the part that decides
its result. :func:`check_top` checks an app's top-level keys, :func:`check_distributed`
the ``distributed`` group; both raise :class:`ConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax.numpy as jnp

from ..config._checks import Check, ConfigError, check_group
from ..config._keys import DISTRIBUTED_KEYS, GROUPS, NOT_RESULT_KEYS, PROCESS_KEYS

__all__ = ["DTYPES", "plain_config", "result_config", "check_top", "check_distributed"]

#: ``dtype`` → the arrays' dtype.
DTYPES = {"float32": jnp.float32, "float64": jnp.float64}


def plain_config(cfg: Mapping) -> dict:
    """The config as plain Python containers, resolved, with Hydra's own node left out."""
    if isinstance(cfg, dict):
        return {k: v for k, v in cfg.items() if k != "hydra"}
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return {
            k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
            for k in cfg.keys()
            if k != "hydra"
        }
    except OmegaConfBaseException as err:  # ${oc.env:UNSET}, ${no.such.key}, a resolver's error
        key = str(getattr(err, "full_key", "") or "config")
        raw = OmegaConf.to_container(cfg, resolve=False)
        for part in key.replace("[", ".").replace("]", "").split("."):
            raw = raw.get(part) if isinstance(raw, dict) else None
        reason = str(err).splitlines()[0].rstrip(".")
        raise ConfigError(key, raw, f"it cannot be resolved ({reason}); set it or give a value") from None


def check_top(cfg: Mapping, schema: Mapping[str, Check], required: Sequence[str] = ()) -> dict:
    """Check an app's top-level keys (groups apart) against its schema."""
    top = {k: v for k, v in cfg.items() if k not in GROUPS}
    for group in GROUPS:
        if group in cfg and not isinstance(cfg[group], Mapping):
            raise ConfigError(group, cfg[group], f"expected the {group} group, e.g. {group}=<name>")
    return check_group("", top, schema, required=required)


def check_distributed(group: Mapping | None) -> dict:
    """Check the ``distributed`` group: its three process keys set, or none; the time limits
    (``initialization_timeout``, ``heartbeat_timeout``: 60 s when not given)."""
    values = {"initialization_timeout": 60, "heartbeat_timeout": 60, **(group or {})}
    values = check_group("distributed", values, DISTRIBUTED_KEYS)
    given = [k for k in PROCESS_KEYS if values.get(k) is not None]
    if given and len(given) < len(PROCESS_KEYS):
        missing = [k for k in PROCESS_KEYS if values.get(k) is None]
        raise ConfigError(
            f"distributed.{missing[0]}",
            None,
            "set distributed.coordinator_address, "
            "distributed.num_processes and distributed.process_id together, or none",
        )
    if given and values["process_id"] >= values["num_processes"]:
        raise ConfigError(
            "distributed.process_id",
            values["process_id"],
            f"expected an integer from 0 to {values['num_processes'] - 1}",
        )
    return values


def result_config(cfg: Mapping) -> dict:
    """The part of a config that decides a run's result (what a resume must not change)."""
    return {k: v for k, v in plain_config(cfg).items() if k not in NOT_RESULT_KEYS}
