"""Config checks: each key with the one rule it must satisfy, and one error that says so.

A schema is a mapping ``key -> Check``; a :class:`Check` normalizes a value
(``3`` for a float key becomes ``3.0``) or raises :class:`ConfigError` with
the key, the bad value and what would be right. Booleans are strict (``maybe``
or ``"abc"`` is not true) and integers are not booleans, so nothing is
silently coerced. :func:`check_group` also refuses keys the schema does not
know, so a misspelt ``+model.activaton=relu`` is an error, not ignored.

Each check also carries its key's type (``kind``: ``int``, ``Optional[float]``,
``List[int]``, ...), from which :mod:`._config_schema` builds the dataclasses
OmegaConf types the composed config with.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Optional


class ConfigError(ValueError):
    """A config value that cannot work; says which key, what value, what would."""

    def __init__(self, key: str, value: Any, expected: str):
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"{key}={show(value)} is invalid: {expected}")


def show(value: Any) -> str:
    """A value as the user would type it on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Check:
    """One key's rule: ``expected`` says it in words, ``convert`` applies it.

    ``convert(value)`` returns the normalized value, or raises ``ValueError``
    / ``TypeError`` (turned into a :class:`ConfigError` naming the key).
    ``kind`` is the key's type as OmegaConf checks it while composing
    (``int``, ``Optional[str]``, ``List[int]``; ``Any`` checks nothing).
    """

    expected: str
    convert: Callable[[Any], Any]
    kind: Any = Any

    def __call__(self, key: str, value: Any) -> Any:
        try:
            return self.convert(value)
        except (ValueError, TypeError, OverflowError):
            raise ConfigError(key, value, f"expected {self.expected}") from None


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def integer(low: int, high: int | None = None) -> Check:
    """An integer in ``[low, high]``."""
    rng = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"

    def convert(v: Any) -> int:
        if not _is_int(v) or v < low or (high is not None and v > high):
            raise ValueError
        return int(v)

    return Check(rng, convert, int)


def number(
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
    example: str = "",
) -> Check:
    """A finite number in the interval given (ends open or closed)."""
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    words = (
        "a finite number"
        if (low, high) == (-math.inf, math.inf)
        else (
            f"a number > {low:g}"
            if high == math.inf and low_open
            else f"a number >= {low:g}"
            if high == math.inf
            else f"a number in {left}{low:g}, {high:g}{right}"
        )
    )
    words += f", e.g. {example}" if example else ""

    def convert(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError
        v = float(v)
        if (
            not math.isfinite(v)
            or v < low
            or v > high
            or (low_open and v == low)
            or (high_open and v == high)
        ):
            raise ValueError
        return v

    return Check(words, convert, float)


def boolean() -> Check:
    """``true`` or ``false``, nothing that merely looks like one."""

    def convert(v: Any) -> bool:
        if not isinstance(v, bool):
            raise TypeError
        return v

    return Check("true or false", convert, bool)


def choice(valid: Collection[str]) -> Check:
    """One of the names in ``valid``."""

    def convert(v: Any) -> str:
        if not isinstance(v, str) or v not in valid:
            raise ValueError
        return v

    return Check(f"one of: {', '.join(sorted(valid))}", convert, str)


def text() -> Check:
    """A non-empty string."""

    def convert(v: Any) -> str:
        if not isinstance(v, str) or not v:
            raise TypeError
        return v

    return Check("a non-empty string", convert, str)


def optional(check: Check, meaning: str) -> Check:
    """``null`` (which means ``meaning``) or a value that passes ``check``."""
    return Check(
        f"null ({meaning}) or {check.expected}",
        lambda v: None if v is None else check.convert(v),
        Optional[check.kind],  # noqa: UP045 (OmegaConf reads typing.Optional)
    )


def check_group(
    prefix: str,
    values: Mapping[str, Any] | None,
    schema: Mapping[str, Check],
    *,
    required: Collection[str] = (),
) -> dict[str, Any]:
    """Check every key of one config group against its schema.

    Arguments:
        prefix: the group's dotted name for messages ("model", "optimizer"), or
            "" for top-level keys.
        values: the group's keys and values.
        schema: key → :class:`Check`; a key missing from ``values`` takes no
            value (its default is the caller's business) unless it is ``required``.
        required: keys that must be present.

    Returns:
        The normalized values (only the keys present).

    Raises:
        ConfigError: for an unknown key, a missing required key or a bad value.
    """
    name = prefix or "the config"
    if not isinstance(values, Mapping):
        raise ConfigError(
            prefix or "config",
            values,
            f"expected a group of keys, e.g. {prefix}.{next(iter(schema), 'name')}=...",
        )
    dotted = (prefix + ".") if prefix else ""
    for key in values:
        if key not in schema:
            raise ConfigError(
                f"{dotted}{key}", values[key], f"{name} has no key {key!r}; its keys are: {', '.join(schema)}"
            )
    for key in required:
        if key not in values:
            raise ConfigError(f"{dotted}{key}", "<missing>", f"this key is required: {schema[key].expected}")
    return {key: schema[key](f"{dotted}{key}", value) for key, value in values.items()}
