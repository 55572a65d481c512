"""The rule of every key of the training config, in tables that import neither JAX nor NumPy.

Each table maps a key to its :class:`~._schema.Check` (what it accepts, in words
and as a type); the optimizer group's tables are in :mod:`._optimizer_keys`, the
data sets' options in :mod:`._data_keys`. The modules that build a run check
configs with them (:mod:`._experiment`, :mod:`._optimizers`, :mod:`._data`), and
:mod:`._config_schema` turns them into the dataclasses Hydra composes the
configs with; they live here, away from JAX, so that composing a config (and
``--help``, ``--cfg job``) stays as quick as importing Hydra. The names a key
chooses from are those of :mod:`._names`.
"""

from __future__ import annotations

import math
from typing import Any

from . import _names
from ._checks import Check, boolean, choice, integer, number, optional, text
from ._data_keys import is_number
from ._objective import METRICS

#: Keys that do not change a run's result: resume accepts new values for them.
NOT_RESULT_KEYS = frozenset(
    {
        "epochs",
        "log_every",
        "resume",
        "jax_cache_dir",
        "max_memory_gb",
        "diagnostics",
        "logger",
        "optimized_metric",
        "devices",
        "distributed",
        "checkpoint",
        "plot",
    }
)

#: Largest seed: PRNGKey takes 32 bits here; the split takes the same seed.
MAX_SEED = 2**32 - 1


def _sizes(v: Any) -> tuple[int, ...]:
    if not isinstance(v, (list, tuple)) or len(v) < 2:
        raise ValueError
    width = integer(1)
    return tuple(width.convert(s) for s in v)


def _matrices(v: Any) -> list:
    import numpy as np

    if not isinstance(v, (list, tuple)) or not v:
        raise ValueError
    arrays = [np.asarray(w, dtype=np.float64) for w in v]  # ValueError/TypeError if not numeric
    if any(a.ndim != 2 or not np.isfinite(a).all() for a in arrays):
        raise ValueError
    return [a.tolist() for a in arrays]


def _hidden(v: Any) -> tuple[int, ...]:
    if not isinstance(v, (list, tuple)):
        raise ValueError
    width = integer(1)
    return tuple(width.convert(s) for s in v)


#: Hidden widths when neither ``model.sizes`` nor ``model.hidden`` is given.
DEFAULT_HIDDEN = (128,)

#: The model group: key → rule.
MODEL_KEYS: dict[str, Check] = {
    "sizes": optional(
        Check("a list of at least two integer widths >= 1, e.g. [64,128,10]", _sizes, list[int]),
        "the data's widths around model.hidden",
    ),
    "hidden": optional(
        Check("a list of hidden widths >= 1, e.g. [16,16] ([] for none)", _hidden, list[int]),
        f"model.sizes' hidden widths, else {list(DEFAULT_HIDDEN)}",
    ),
    "activation": choice(_names.ACTIVATIONS),
    "output_activation": choice(_names.ACTIVATIONS + _names.OUTPUT_ONLY_ACTIVATIONS),
    "bias": boolean(),
    "init": optional(choice(_names.INITS), "each layer's default for its activation"),
    "weights": optional(
        Check("a list of matrices of finite numbers, one per layer, e.g. [[[0.1,0.2]]]", _matrices),
        "random initial weights",
    ),
    "bias_column": optional(choice(["first", "last"]), "weights without a bias column"),
}

#: Keys every app built on these groups shares.
COMMON_KEYS: dict[str, Check] = {
    "seed": integer(0, MAX_SEED),
    "loss": choice(_names.LOSSES),
    "dtype": choice(_names.DTYPES),
    "jax_cache_dir": optional(text(), "no persistent compilation cache"),
}

#: The training app's top-level keys (the groups data, model, optimizer apart).
TRAIN_KEYS: dict[str, Check] = {
    **COMMON_KEYS,
    "grad": choice(_names.GRADS),
    "epochs": integer(1, 10**8),
    "batch_size": optional(integer(1), "full batch"),
    "resume": boolean(),
    "log_every": integer(1),
    "divergence_factor": optional(number(1.0, low_open=True, example="1e4"), "only non-finite values"),
    "max_memory_gb": optional(number(0.0, low_open=True, example="16"), "this machine's memory"),
    "diagnostics": boolean(),
    "optimized_metric": optional(choice(METRICS), "the job returns nothing to a sweeper"),
    "devices": optional(integer(1), "every local device"),
}


def _numbers(v: Any) -> list:
    if not isinstance(v, (list, tuple)) or not v or not all(is_number(t) and math.isfinite(t) for t in v):
        raise ValueError
    return list(v)


_A_ROW = "a row of the data set, picked by example"
#: The explain app's top-level keys: its own, and the training keys (an experiment preset sets
#: some; they are checked, though one explained step uses only seed, loss and dtype of them).
EXPLAIN_KEYS: dict[str, Check] = {
    **TRAIN_KEYS,
    "example": Check("a row index >= 0 of the data set's training rows", integer(0).convert, int),
    "x": optional(
        Check("a list of finite numbers, one per input (model.sizes[0]), e.g. [1,0]", _numbers, list[float]),
        _A_ROW,
    ),
    "y": optional(
        Check(
            "a list of finite numbers, one per output (model.sizes[-1]), e.g. [0,1]", _numbers, list[float]
        ),
        _A_ROW,
    ),
    "round_each_step": optional(integer(0, 12), "exact arithmetic; note 004 rounds to 4"),
    "decimals": optional(integer(0, 16), "8, or round_each_step when rounding"),
    "names": choice(["numbers", "letters"]),
}

#: The compare app's top-level keys: its own, and the training keys (an experiment preset sets
#: some; they are checked, though a comparison uses only seed, loss and dtype of them).
COMPARE_KEYS: dict[str, Check] = {
    **TRAIN_KEYS,
    "batch": integer(1),
    "repeats": integer(1),
    "numerical": optional(boolean(), "automatic: on for float64 networks small enough"),
}


def _host_port(v: Any) -> str:
    """``HOST:PORT`` (an IPv6 host in brackets), the port from 1 to 65535."""
    if not isinstance(v, str):
        raise TypeError
    host, sep, port = v.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if (
        not sep
        or not host.strip("[]")
        or any(c.isspace() or c in "/@" for c in v)
        or (":" in host and not bracketed)
        or not port.isdigit()
        or not 1 <= int(port) <= 65535
    ):
        raise ValueError
    return v


#: The ``distributed`` group's keys that say how this process joins a multi-process run (all
#: null: it doesn't, unless it is one task of a SLURM job step with several tasks).
PROCESS_KEYS: dict[str, Check] = {
    "coordinator_address": optional(
        Check("HOST:PORT of process 0, e.g. 10.0.0.1:1234", _host_port, str), "not set"
    ),
    "num_processes": optional(integer(1), "not set"),
    "process_id": optional(integer(0), "not set"),
}
#: The ``distributed`` group: :data:`PROCESS_KEYS` and its time limits, in seconds: for every
#: process to join (``initialization_timeout``), and for a process to go silent before the
#: others give up on it (``heartbeat_timeout``).
DISTRIBUTED_KEYS: dict[str, Check] = {
    **PROCESS_KEYS,
    "initialization_timeout": integer(1, 86400),
    "heartbeat_timeout": integer(1, 86400),
}
GROUPS = ("data", "model", "optimizer", "logger", "distributed", "early_stopping", "checkpoint", "plot")


def _keep(v: Any) -> list[str]:
    if not isinstance(v, (list, tuple)) or "last" not in v or not set(v) <= {"last", "best"}:
        raise ValueError
    return sorted(set(v), key=["last", "best"].index)


#: The ``checkpoint`` group: which checkpoints a run keeps.
CHECKPOINT_KEYS: dict[str, Check] = {
    "keep": Check(
        "[last] or [last, best]: the last state is always kept (resume continues from it); best "
        "also keeps the best evaluation by optimized_metric",
        _keep,
        list[str],
    ),
}

#: The ``plot`` group: how a run's plots are drawn (not part of its result).
PLOT_KEYS: dict[str, Check] = {
    # log: a log axis (values <= 0 left out); linear; auto: log when the positive values span a
    # decade, symlog (linear near 0, log above) when some are 0 as well, else linear
    "scale": choice(_names.PLOT_SCALES),
}

#: The keys whose values may differ between the lanes of one vmapped program (the vmap
#: launcher's default ``vmap_keys``): what a lane holds as array values, and its architecture.
LANE_KEYS: tuple[str, ...] = (
    "optimizer.lr",
    "seed",
    "model.sizes",
    "model.hidden",
    "model.activation",
    "model.init",
    "optimizer.momentum",
    "optimizer.b1",
    "optimizer.b2",
    "optimizer.eps",
    "optimizer.weight_decay",
)
