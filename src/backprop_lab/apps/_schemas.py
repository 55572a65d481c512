"""Typed config schemas: dataclasses built from the key tables, stored in Hydra's ConfigStore.

Every key's rule is written once, as a :class:`~._schema.Check` in a table
(:mod:`._config_keys`, each tracker's ``SETTINGS``, ``EARLY_STOPPING_KEYS``);
a check's ``kind`` is the key's type. :func:`schema` turns such a table into a
dataclass with those types, and :data:`SCHEMAS` holds one per config file:
each option of the groups ``data``, ``model``, ``optimizer`` and ``logger``,
and the training app's top level (``train``). :func:`register` stores them in
Hydra's ConfigStore, and the apps' defaults lists merge each group's schema
before its YAML file (``schema/optimizer@optimizer: ${oc.select:optimizer,_none}``:
the schema of whichever optimizer is chosen, :data:`REMOVED` for none;
``_schema_train`` for the top level), so
OmegaConf types the composed config: ``optimizer.b1=abc`` or ``model.bias=maybe`` stops
at composition with OmegaConf's message naming the key and the type (Hydra's
exit status 1), before any job of a sweep runs. What a type cannot say (a
width against the data, a loss against the output, a range) stays with the
checks themselves, which raise the project's one-line config errors.

Every field is required (``???``): the values are the YAML files', the
schema adds only their types. Nothing here imports JAX or NumPy.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, Optional

from ..config._checks import Check
from ..config._data_keys import DATA_DEFAULTS, DATA_OPTIONS
from ..config._keys import CHECKPOINT_KEYS, DISTRIBUTED_KEYS, GROUPS, MODEL_KEYS, PLOT_KEYS, TRAIN_KEYS
from ..config._names import DATASETS
from ..config._optimizer_keys import OPTIMIZER_KEYS, OPTIMIZER_SETTINGS, SHARED_SETTINGS
from ..trackers._registry import TRACKERS
from ..training._early_stopping import EARLY_STOPPING_KEYS

__all__ = ["NESTED", "SCHEMAS", "field_types", "register", "schema", "store_path", "type_name"]

#: OmegaConf's marker of a value still to be given.
MISSING = "???"
#: The schema a group removed with ``~GROUP`` gets (no keys), so that the project's check, not
#: the defaults list, says the group is required.
REMOVED = "_none"


def store_path(group: str | None, option: str) -> tuple[str | None, str]:
    """Where a schema is in the ConfigStore: ``(group, name)``. An option ``adam`` of the group
    ``optimizer`` is ``schema/optimizer/adam``, which the app's defaults list merges into the
    group's node (``schema/optimizer@optimizer: ${optimizer}``); an app's top level is
    ``_schema_<app>``, at the top."""
    return (None, f"_schema_{option}") if group is None else (f"schema/{group}", option)


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_")) + "Config"


def schema(name: str, keys: Mapping[str, Any], doc: str = "") -> type:
    """A dataclass with one required field per key.

    Arguments:
        name: the config's name (``adam``, ``model``); the class is ``<Name>Config``.
        keys: key → its :class:`~._schema.Check` (the field has the check's ``kind``), a
            type, or a dataclass made by :func:`schema` for a nested group (its fields filled
            by the YAML file like any other).
        doc: the class's docstring.
    """
    fields: list[tuple[str, Any, Any]] = []  # (name, type, dataclasses.field(...))
    for key, rule in keys.items():
        if isinstance(rule, type) and dataclasses.is_dataclass(rule):  # a nested schema
            fields.append((key, rule, dataclasses.field(default_factory=rule)))
        else:
            kind = rule.kind if isinstance(rule, Check) else rule
            fields.append((key, kind, dataclasses.field(default=MISSING)))
    cls = dataclasses.make_dataclass(
        _class_name(name), fields, namespace={"__module__": __name__}, repr=False, eq=False
    )  # OmegaConf needs neither; both cost time
    cls.__doc__ = doc or f"The typed keys of the {name!r} config."
    return cls


#: Groups the training config holds inline (not chosen from conf/), with their keys.
NESTED: dict[str, Mapping[str, Check]] = {
    "early_stopping": EARLY_STOPPING_KEYS,
    "distributed": DISTRIBUTED_KEYS,
    "checkpoint": CHECKPOINT_KEYS,
    "plot": PLOT_KEYS,
}


def _data_keys(name: str) -> dict[str, Any]:
    """``data=<name>``'s keys: its name and its options (``null``: the data set's default)."""
    return {"name": str, **{key: Optional[DATA_OPTIONS[key].kind] for key in DATA_DEFAULTS.get(name, {})}}  # noqa: UP045 (OmegaConf reads typing.Optional)


def _train_keys() -> dict[str, Any]:
    """The training config's top level: the groups chosen from conf/ (their own schemas type
    them), the inline groups, and :data:`~._config_keys.TRAIN_KEYS`."""
    chosen = {group: Any for group in GROUPS if group not in NESTED}
    nested = {group: schema(group, NESTED[group]) for group in GROUPS if group in NESTED}
    return {**chosen, **TRAIN_KEYS, **nested}


#: The schemas: group → option → dataclass; group ``None`` holds the apps' top levels.
SCHEMAS: dict[str | None, dict[str, type]] = {
    "data": {name: schema(name, _data_keys(name), f"The typed keys of data={name}.") for name in DATASETS},
    "model": {"mlp": schema("mlp", MODEL_KEYS, "The typed keys of model=mlp.")},
    "optimizer": {
        name: schema(
            name, {**OPTIMIZER_KEYS, **own, **SHARED_SETTINGS}, f"The typed keys of optimizer={name}."
        )
        for name, own in OPTIMIZER_SETTINGS.items()
    },
    # a logger's keys are under its name (logger.csv.dir), typed by its own file's defaults list
    "logger": {
        name: schema(f"{name}_logger", dict(tracker.SETTINGS), f"The typed keys of logger={name}.")
        for name, tracker in TRACKERS.items()
        if tracker.SETTINGS
    },
    None: {"train": schema("train", _train_keys(), "The typed top level of the training config.")},
}


def register() -> None:
    """Store every schema in Hydra's ConfigStore (again is harmless), at :func:`store_path`."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for group, options in SCHEMAS.items():
        for option, cls in options.items():
            where, name = store_path(group, option)
            store.store(name=name, node=cls, group=where, provider="backprop_lab")
        if group is not None:
            store.store(name=REMOVED, node=schema("removed", {}), group=where, provider="backprop_lab")


def type_name(kind: Any) -> str:
    """A type as ``--help`` shows it: ``int``, ``float or null``, ``list of int``, ``any``."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    origin = typing.get_origin(kind)
    if origin is typing.Union:
        return f"{type_name(args[0])} or null"
    if origin is list:
        return f"list of {type_name(args[0])}"
    return "any" if kind is Any else getattr(kind, "__name__", str(kind))


def field_types(cls: type, prefix: str = "") -> dict[str, str]:
    """Dotted key → :func:`type_name` of each field of a schema, nested schemas' fields too
    (a field holding a group chosen from conf/ left out)."""
    out: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        if isinstance(f.type, type) and dataclasses.is_dataclass(f.type):  # a nested schema class
            out.update(field_types(f.type, f"{prefix}{f.name}."))
        elif f.name not in GROUPS or prefix:
            out[prefix + f.name] = type_name(f.type)
    return out
