"""The rules of the optimizer group's keys: those every optimizer has, the settings they
share, and each optimizer's own (imports neither JAX nor NumPy, as :mod:`._keys`)."""

from __future__ import annotations

from . import _names
from ._checks import Check, boolean, choice, integer, number, optional

__all__ = ["OPTIMIZER_KEYS", "OPTIMIZER_SETTINGS", "SHARED_SETTINGS"]

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
