"""Optimizers by config name: a direction, decoupled weight decay and a learning-rate schedule.

Every optimizer is the same optax chain around its own direction ``u_t``::

    u_t     = direction(g_t)                  sgd: g_t;  momentum: μ m_{t-1} + g_t;  adam: m̂_t / (√v̂_t + ε)
    w_{t+1} = w_t − η_t (u_t + λ w_t)         η_t = lr · s(t),  λ = weight_decay

(``optax.chain(direction, optax.add_decayed_weights(λ), optax.scale_by_learning_rate(η))``;
for adam that is exactly ``optax.adamw``). The decay is decoupled: ``λ w`` never
enters momentum or Adam's moments. ``s(t)`` is one of :data:`SCHEDULES`, optax's
own schedule with peak 1.

:func:`make_optimizer` wraps the chain in ``optax.inject_hyperparams``, so the
peak rate ``lr`` is an array in the optimizer state (a sweep replaces it lane
by lane and ``jax.vmap`` runs the lanes) and the schedule is built from it
inside each update. :class:`Static` lets ``jax.jit`` compare two optimizers by
structure, so an equal one built afresh reuses the compiled program.
"""

from __future__ import annotations

import functools
import inspect
import math
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from inspect import Parameter
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..config._checks import Check, ConfigError, check_group
from ..config._optimizer_keys import OPTIMIZER_SETTINGS, SHARED_SETTINGS


@dataclass(frozen=True)
class Schedule:
    """One learning-rate schedule: ``s(t)``, the rate at step t as a fraction of the peak.

    Attributes:
        unit: ``unit(warmup_steps=…, decay_steps=…, decay_rate=…)`` → optax's schedule
            with peak 1, or None for a constant rate.
        needs: settings that must not be null for this schedule.
        rule: cross-setting check, returning ``(key, what is wrong)`` or None.
    """

    unit: Callable[..., optax.Schedule | None]
    needs: tuple[str, ...] = ()
    rule: Callable[[dict], tuple[str, str] | None] = lambda s: None


def _warmup_inside_decay(s: dict) -> tuple[str, str] | None:
    if s["warmup_steps"] >= s["decay_steps"]:
        return "warmup_steps", (
            f"must be less than optimizer.decay_steps={s['decay_steps']} "
            "(the schedule's whole length, warmup included)"
        )
    return None


#: Schedules by config name. ``t`` counts optimizer steps from 0; ``T`` is decay_steps.
SCHEDULES: dict[str, Schedule] = {
    # s(t) = 1
    "constant": Schedule(lambda **_: None),
    # s(t) = ½ (1 + cos(π min(t, T) / T))
    "cosine": Schedule(
        lambda decay_steps, **_: optax.cosine_decay_schedule(1.0, decay_steps), ("decay_steps",)
    ),
    # s(t) = t / W for t < W, then ½ (1 + cos(π min(t − W, T − W) / (T − W)))
    "warmup_cosine": Schedule(
        lambda warmup_steps, decay_steps, **_: optax.warmup_cosine_decay_schedule(
            0.0, 1.0, warmup_steps, decay_steps
        ),
        ("decay_steps",),
        _warmup_inside_decay,
    ),
    # s(t) = decay_rate^(t / T)
    "exponential": Schedule(
        lambda decay_steps, decay_rate, **_: optax.exponential_decay(1.0, decay_steps, decay_rate),
        ("decay_steps",),
    ),
}


def descent(
    direction: optax.GradientTransformation,
    learning_rate: float | jax.Array,
    *,
    schedule: str = "constant",
    warmup_steps: int = 0,
    decay_steps: int | None = None,
    decay_rate: float = 0.1,
    weight_decay: float | jax.Array = 0.0,
) -> optax.GradientTransformation:
    """``w ← w − η_t (u_t + λ w)`` with ``u_t = direction(g_t)`` and ``η_t = learning_rate · s(t)``.

    Arguments:
        direction: an optax transformation of the gradients (``optax.scale_by_adam()``, …).
        learning_rate: the peak rate; a number or a traced array.
        schedule: a name in :data:`SCHEDULES`; warmup_steps, decay_steps,
            decay_rate: its settings (W, T and the exponential's rate).
        weight_decay: λ, decoupled from the direction.
    """
    unit = SCHEDULES[schedule].unit(warmup_steps=warmup_steps, decay_steps=decay_steps, decay_rate=decay_rate)
    # The step count in the rate's own dtype: a float32 s(t) would cost a float64 run precision.
    rate = (
        learning_rate
        if unit is None
        else (lambda count: learning_rate * unit(jnp.asarray(count, jnp.result_type(learning_rate))))
    )
    return optax.chain(direction, optax.add_decayed_weights(weight_decay), optax.scale_by_learning_rate(rate))


#: The settings every optimizer shares, with their defaults (those of :func:`descent`).
SHARED_DEFAULTS: dict = {
    p.name: p.default
    for p in inspect.signature(descent).parameters.values()
    if p.kind is Parameter.KEYWORD_ONLY
}
#: Settings read while building, not traced: the schedule's shape is part of the program.
STATIC_SETTINGS = ("schedule", "warmup_steps", "decay_steps", "decay_rate")


def _factory(
    direction: Callable[..., optax.GradientTransformation],
) -> Callable[..., optax.GradientTransformation]:
    """``descent(direction(**own), learning_rate, **shared)`` as one function with a flat
    signature ``(learning_rate, *, <own settings>, <shared settings>)``, which
    ``optax.inject_hyperparams`` reads to find the hyperparameters."""
    own = [p.replace(kind=Parameter.KEYWORD_ONLY) for p in inspect.signature(direction).parameters.values()]
    names = tuple(p.name for p in own)

    def build(learning_rate: Any, **settings: Any) -> optax.GradientTransformation:
        return descent(
            direction(**{k: settings.pop(k) for k in names if k in settings}), learning_rate, **settings
        )

    # What inspect.signature reads; a function keeps its attributes in its __dict__
    # (typeshed's FunctionType does not declare this one).
    build.__dict__["__signature__"] = inspect.Signature(
        [
            Parameter("learning_rate", Parameter.POSITIONAL_OR_KEYWORD),
            *own,
            *(Parameter(k, Parameter.KEYWORD_ONLY, default=v) for k, v in SHARED_DEFAULTS.items()),
        ]
    )
    return build


@dataclass(frozen=True)
class Optimizer:
    """One optimizer: its direction and the rules of its own settings.

    ``settings`` adds the shared ones (schedule, weight decay); calling it builds
    the optax optimizer (``OPTIMIZERS["adam"](learning_rate=1e-3)``).
    """

    direction: Callable[..., optax.GradientTransformation]
    own: Mapping[str, Check]

    @property
    def settings(self) -> dict[str, Check]:
        return {**self.own, **SHARED_SETTINGS}

    @functools.cached_property
    def build(self) -> Callable[..., optax.GradientTransformation]:
        return _factory(self.direction)

    def __call__(self, learning_rate: float | jax.Array, **kwargs: Any) -> optax.GradientTransformation:
        return self.build(learning_rate, **kwargs)


def _momentum(momentum: float = 0.9, nesterov: bool = False) -> optax.GradientTransformation:
    return optax.trace(decay=momentum, nesterov=nesterov)


def _adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
    return optax.scale_by_adam(b1=b1, b2=b2, eps=eps)


#: Optimizers by config name, each with its own settings and their rules.
OPTIMIZERS: dict[str, Optimizer] = {
    "sgd": Optimizer(optax.identity, OPTIMIZER_SETTINGS["sgd"]),
    "momentum": Optimizer(_momentum, OPTIMIZER_SETTINGS["momentum"]),
    "adam": Optimizer(_adam, OPTIMIZER_SETTINGS["adam"]),
}


def check_schedule(settings: Mapping) -> None:
    """Raise :class:`ConfigError` unless the schedule has the settings it needs."""
    s = {**SHARED_DEFAULTS, **settings}
    sched = SCHEDULES[s["schedule"]]
    for key in sched.needs:
        if s[key] is None:
            raise ConfigError(
                f"optimizer.{key}",
                None,
                f"schedule={s['schedule']} needs a number of steps here, e.g. optimizer.{key}=1000",
            )
    problem = sched.rule(s)
    if problem is not None:
        raise ConfigError(f"optimizer.{problem[0]}", s[problem[0]], problem[1])


def make_optimizer(name: str, lr: float, **kwargs: Any) -> optax.GradientTransformation:
    """An optax optimizer whose peak learning rate is a traced value in its state.

    Arguments:
        name: "sgd", "momentum" or "adam".
        lr: the (peak) learning rate, a positive finite number.
        **kwargs: the optimizer's own settings (momentum, b1, b2, …) and the
            shared ones (schedule, warmup_steps, decay_steps, decay_rate,
            weight_decay), each checked against its rule in :data:`OPTIMIZERS`.

    Returns:
        ``optax.inject_hyperparams(...)`` of the optimizer: its state holds
        ``hyperparams["learning_rate"]`` (the peak), which sweeps replace lane by lane.

    Raises:
        ValueError: an unknown optimizer or setting, or a value outside its rule
            (a :class:`ConfigError` for the settings).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid optimizers are: {', '.join(OPTIMIZERS)}")
    check_learning_rate(lr)
    settings = check_group(f"optimizer ({name})", kwargs, OPTIMIZERS[name].settings)
    check_schedule(settings)
    return optax.inject_hyperparams(OPTIMIZERS[name].build, static_args=STATIC_SETTINGS)(
        learning_rate=lr, **settings
    )


def check_learning_rate(lr: object) -> None:
    """Raise unless lr is a finite number > 0."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)):
        raise ValueError(f"learning rate must be a number > 0, got {lr!r}")
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"learning rate must be finite and > 0, got {lr!r}")


def _fingerprint(obj: Any, depth: int = 0) -> tuple[Any, ...]:
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

    def __init__(self, value: Any) -> None:
        self.value = value
        self._key = _fingerprint(value)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Static) and self._key == other._key
