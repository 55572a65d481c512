"""Optimizers by config name, with the learning rate as a traced value in their state.

:func:`make_optimizer` wraps each optax optimizer in
``optax.inject_hyperparams``, so the learning rate is an array in the
optimizer state (a sweep can ``jax.vmap`` over it) rather than a constant
baked into the compiled program. :class:`Static` lets ``jax.jit`` compare two
optimizers by structure, so an equal one built afresh reuses the compiled
program.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax
import numpy as np
import optax

from ._schema import Check, boolean, check_group, number


@dataclass(frozen=True)
class Optimizer:
    """One optimizer: its optax constructor and, beside it, the rule of each setting.

    Calling it builds the optax optimizer (``OPTIMIZERS["adam"](learning_rate=1e-3)``).
    """

    build: Callable[..., optax.GradientTransformation]
    settings: Mapping[str, Check]

    def __call__(self, learning_rate, **kwargs) -> optax.GradientTransformation:
        return self.build(learning_rate, **kwargs)


#: Optimizers by config name, each with its own settings and their rules.
OPTIMIZERS: dict[str, Optimizer] = {
    "sgd": Optimizer(lambda learning_rate: optax.sgd(learning_rate), {}),
    "momentum": Optimizer(
        lambda learning_rate, momentum=0.9, nesterov=False: optax.sgd(
            learning_rate, momentum=momentum, nesterov=nesterov),
        {"momentum": number(0.0, 1.0, high_open=True, example="0.9"), "nesterov": boolean()},
    ),
    "adam": Optimizer(
        lambda learning_rate, b1=0.9, b2=0.999, eps=1e-8: optax.adam(
            learning_rate, b1=b1, b2=b2, eps=eps),
        {"b1": number(0.0, 1.0, high_open=True, example="0.9"),
         "b2": number(0.0, 1.0, high_open=True, example="0.999"),
         "eps": number(0.0, low_open=True, example="1e-8")},
    ),
}


def make_optimizer(name: str, lr: float, **kwargs) -> optax.GradientTransformation:
    """An optax optimizer whose learning rate is a traced value in its state.

    Arguments:
        name: "sgd", "momentum" or "adam".
        lr: the learning rate, a positive finite number.
        **kwargs: the optimizer's own settings (momentum, b1, b2, …), each
            checked against its rule in :data:`OPTIMIZERS`.

    Returns:
        ``optax.inject_hyperparams(...)`` of the optimizer: its state holds
        ``hyperparams["learning_rate"]``, which sweeps replace lane by lane.

    Raises:
        ValueError: an unknown optimizer or setting, or a value outside its rule.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid optimizers are: {', '.join(OPTIMIZERS)}")
    check_learning_rate(lr)
    settings = check_group(f"optimizer ({name})", kwargs, OPTIMIZERS[name].settings)
    return optax.inject_hyperparams(OPTIMIZERS[name].build)(learning_rate=lr, **settings)


def check_learning_rate(lr) -> None:
    """Raise unless lr is a finite number > 0."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)):
        raise ValueError(f"learning rate must be a number > 0, got {lr!r}")
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"learning rate must be finite and > 0, got {lr!r}")


def _fingerprint(obj, depth: int = 0):
    """A hashable description of an optimizer's structure and settings.

    Two ``optax.sgd(0.1)`` built separately have equal fingerprints; anything
    not understood falls back to its identity, which is always safe.
    """
    if depth > 40:
        return ("id", id(obj))
    fp = functools.partial(_fingerprint, depth=depth + 1)
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, type)):
        return (type(obj).__name__, obj)
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, tuple(fp(o) for o in obj))
    if isinstance(obj, dict):
        return ("dict", tuple(sorted((repr(k), fp(v)) for k, v in obj.items())))
    if isinstance(obj, functools.partial):
        return ("partial", fp(obj.func), fp(obj.args), fp(obj.keywords))
    if isinstance(obj, types.FunctionType):
        cells = tuple(fp(c.cell_contents) for c in obj.__closure__ or ())
        return ("fn", obj.__module__, obj.__code__, cells, fp(obj.__defaults__), fp(obj.__kwdefaults__))
    if isinstance(obj, types.BuiltinFunctionType | types.ModuleType):
        return ("id", id(obj))
    if isinstance(obj, types.MethodType):
        return ("method", fp(obj.__func__), fp(obj.__self__))
    if isinstance(obj, (np.ndarray, np.generic)) or (
        isinstance(obj, jax.Array) and not isinstance(obj, jax.core.Tracer)
    ):
        arr = np.asarray(obj)
        return ("array", arr.shape, str(arr.dtype), arr.tobytes())
    return ("id", id(obj))


class Static:
    """Wrap an optimizer so jit's cache compares it by structure, not identity."""

    def __init__(self, value):
        self.value = value
        self._key = _fingerprint(value)

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, Static) and self._key == other._key


