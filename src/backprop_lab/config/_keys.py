"""The rule of every key of the training config, in tables that import neither JAX nor NumPy.

Each table maps a key to its :class:`~._schema.Check` (what it accepts, in words
and as a type). The modules that build a run check configs with them
(:mod:`._experiment`, :mod:`._optimizers`, :mod:`._data`), and
:mod:`._config_schema` turns them into the dataclasses Hydra composes the
configs with; they live here, away from JAX, so that composing a config (and
``--help``, ``--cfg job``) stays as quick as importing Hydra. The names a key
chooses from are those of :mod:`._names`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from . import _names
from ._checks import Check, boolean, choice, integer, number, optional, text
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
    if not isinstance(v, (list, tuple)) or not v or not all(_is_number(t) and math.isfinite(t) for t in v):
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

#: The keys every optimizer group has: which optimizer, and its (peak) learning rate.
OPTIMIZER_KEYS: dict[str, Check] = {
    "name": choice(_names.OPTIMIZERS),
    "lr": number(0.0, low_open=True, example="0.1"),
}
#: The rules of the settings every optimizer shares (``_optimizers.descent``'s keywords).
SHARED_SETTINGS: dict[str, Check] = {
    "schedule": choice(_names.SCHEDULES),
    "warmup_steps": integer(0),
    "decay_steps": optional(integer(1), "no decay; every schedule but constant needs it"),
    "decay_rate": number(0.0, 1.0, low_open=True, example="0.1"),
    "weight_decay": number(0.0, example="1e-4"),
}


def _unit_interval(example: str) -> Check:
    return number(0.0, 1.0, high_open=True, example=example)


#: Each optimizer's own settings (``_optimizers.OPTIMIZERS[name].own``).
OPTIMIZER_SETTINGS: dict[str, dict[str, Check]] = {
    "sgd": {},
    "momentum": {"momentum": _unit_interval("0.9"), "nesterov": boolean()},
    "adam": {
        "b1": _unit_interval("0.9"),
        "b2": _unit_interval("0.999"),
        "eps": number(0.0, low_open=True, example="1e-8"),
    },
}


def _is_number(v: object) -> TypeGuard[float]:
    """A real number (NumPy's too), not a flag; typed as float, which it compares and converts as."""
    return isinstance(v, numbers.Real) and not _is_flag(v)


def _is_flag(v: object) -> bool:
    return isinstance(v, bool) or type(v).__name__ in ("bool_", "bool")  # NumPy's too


@dataclass(frozen=True)
class DataOption:
    """One option of the data sets: the test a value passes, what a right value looks like,
    and its type (the loaders get ``kind(value)``; ``null`` in a config means the data set's
    default)."""

    accepts: Callable[[object], bool]
    expected: str
    kind: type


#: The data sets' options (``data.KEY``), each with its rule.
DATA_OPTIONS: dict[str, DataOption] = {
    "test_fraction": DataOption(
        lambda v: _is_number(v) and 0 < v < 1, "a number strictly between 0 and 1, e.g. 0.25", float
    ),
    "n_samples": DataOption(
        lambda v: _is_number(v) and float(v).is_integer() and v >= 8,
        "an integer of at least 8, to leave both classes in train and test",
        int,
    ),
    "noise": DataOption(
        lambda v: _is_number(v) and 0 <= v < math.inf, "a standard deviation, a finite number >= 0", float
    ),
    "one_hot": DataOption(_is_flag, "true (one-hot rows) or false (integer labels)", bool),
    "standardize": DataOption(_is_flag, "true or false", bool),
    "path": DataOption(
        lambda v: isinstance(v, str) and v not in ("", "???"),
        "the path of a .npz or .csv file, e.g. data.path=my.csv",
        str,
    ),
    "target": DataOption(
        lambda v: v is None or (isinstance(v, str) and v != ""),
        "a column name of the .csv file, or null",
        str,
    ),
}

_SPLIT: dict[str, object] = {"test_fraction": 0.25, "one_hot": True}
#: The options each data set takes, with their defaults (``_data.DATASETS[name].defaults``);
#: a data set of :data:`._names.DATASETS` not here is a fixed table and takes none.
DATA_DEFAULTS: dict[str, dict[str, object]] = {
    "moons": {"n_samples": 1000, "noise": 0.2, **_SPLIT},
    "circles": {"n_samples": 1000, "noise": 0.1, **_SPLIT},
    "digits": _SPLIT,
    "file": {"path": None, "target": None, **_SPLIT, "standardize": False},
}
