"""From a composed config to a network, data and optimizer, checked before any compute.

Every key of the training config has one rule in a schema (:data:`TRAIN_KEYS`,
:data:`MODEL_KEYS`, each optimizer's settings in ``OPTIMIZERS``; the tables are
in :mod:`._config_keys`); a value that
breaks it, a key no schema knows, or a combination that cannot work (widths
against the data, loss against the output, a network too large for memory)
raises :class:`ConfigError`, whose one-line message names the key, the bad
value and what would be right, so the apps stop before any compute. Each part is
checked where it is built: the top level in :mod:`._config`, the network in
:mod:`._model`, the data set in :mod:`._data`, the memory in :mod:`._memory`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import optax

from ..config._checks import ConfigError, check_group
from ..config._keys import CHECKPOINT_KEYS, GROUPS, PLOT_KEYS, TRAIN_KEYS
from ..config._optimizer_keys import OPTIMIZER_KEYS
from ..data._registry import Dataset
from ..nn._network import MLP
from ..trackers._registry import check_logger_config
from ..training._early_stopping import EARLY_STOPPING_KEYS
from ..training._optimizers import OPTIMIZERS, check_learning_rate, make_optimizer
from ..training._sharding import local_devices
from ._config import DTYPES, check_distributed, check_top, plain_config
from ._data import absolute_data_path, build_data
from ._memory import check_memory
from ._model import _build_model, check_model_config, model_sizes

__all__ = ["ConfigError", "Experiment", "build_experiment", "config_learning_rate"]


@dataclasses.dataclass(frozen=True)
class Experiment:
    """Everything a run needs, built and checked from a config.

    Attributes:
        model: the initial network.
        data: the data set, arrays in the run's dtype.
        optimizer: an optax optimizer whose learning rate lives in its state.
        loss, grad: names; lr: the learning rate; epochs, batch_size,
            steps_per_epoch: the schedule (batch_size already clamped to the data).
        key: PRNG key for the minibatch order.
        config: the checked config as plain containers (no ``hydra`` node).
        notes: what was adjusted on the way (e.g. a batch size clamped), for the log.
    """

    model: MLP
    data: Dataset
    optimizer: optax.GradientTransformation
    loss: str
    grad: str
    lr: float
    epochs: int
    batch_size: int
    steps_per_epoch: int
    key: jax.Array
    config: dict
    notes: tuple[str, ...] = ()


def config_learning_rate(lr: Any) -> float:
    """``optimizer.lr`` checked by :func:`check_learning_rate`, as a :class:`ConfigError`."""
    try:
        check_learning_rate(lr)
    except ValueError:
        raise ConfigError("optimizer.lr", lr, "expected a finite number > 0, e.g. 0.1") from None
    return float(lr)


def _check_groups(cfg: Mapping, top: Mapping) -> None:
    """The groups a training config needs, each checked under its schema (the model, the
    optimizer and the data apart), and ``devices``."""
    for group in GROUPS:  # removed (~group: absent, or empty under its schema) is no group at all
        if not cfg.get(group) and not (group == "logger" and group in cfg):  # logger=none is {}
            hint = f"e.g. {group}=<name>" if group in GROUPS[:4] else f"set {group}.KEY=... instead"
            raise ConfigError(group, "<missing>", f"the {group} group is required; {hint}")
    check_logger_config(cfg["logger"])
    check_distributed(cfg["distributed"])
    if top.get("devices") is not None:
        try:
            local_devices(top["devices"])
        except ValueError as err:
            raise ConfigError("devices", top["devices"], str(err).split(" is ", 1)[-1]) from None
    check_group("early_stopping", cfg["early_stopping"], EARLY_STOPPING_KEYS)
    check_group("checkpoint", cfg["checkpoint"], CHECKPOINT_KEYS)
    check_group("plot", cfg["plot"], PLOT_KEYS)


def _batch_size(batch_size: int | None, data: Dataset) -> tuple[int, list[str]]:
    """``batch_size`` clamped to the training rows (None: the full batch), and the note
    saying so when a given size was clamped."""
    notes = []
    if batch_size is None or batch_size > data.n_train:
        if batch_size is not None:
            notes.append(
                f"batch_size={batch_size} is more than the {data.n_train} training rows of "
                f"{data.name!r}: training on the full batch of {data.n_train}"
            )
        batch_size = data.n_train
    return batch_size, notes


def build_experiment(cfg: Mapping) -> Experiment:
    """Check a composed training config and build the run's objects.

    Arguments:
        cfg: the composed config (an OmegaConf DictConfig or a plain mapping)
            with groups data, model, optimizer and the keys of :data:`TRAIN_KEYS`.

    Raises:
        ConfigError: for the first key that cannot work.
    """
    cfg = absolute_data_path(plain_config(cfg))
    top = check_top(cfg, TRAIN_KEYS, required=("seed", "loss", "grad", "epochs", "dtype"))
    _check_groups(cfg, top)
    dtype = DTYPES[top["dtype"]]
    sizes = check_model_config(cfg["model"], top["loss"])
    opt_cfg = dict(cfg["optimizer"])
    name = OPTIMIZER_KEYS["name"]("optimizer.name", opt_cfg.pop("name", None))
    lr = config_learning_rate(opt_cfg.pop("lr", None))
    settings = check_group("optimizer", opt_cfg, OPTIMIZERS[name].settings)
    data = build_data(cfg, sizes)
    if sizes is None:  # model.hidden: the first and last widths are the data's, recorded as sizes
        sizes = model_sizes(cfg, data)
        cfg = {**cfg, "model": {**cfg["model"], "sizes": list(sizes)}}
    if data.targets == "labels":
        raise ConfigError(
            "data.one_hot",
            False,
            "training compares outputs with target vectors; set data.one_hot=true (one column per class)",
        )

    batch_size, notes = _batch_size(top.get("batch_size"), data)
    check_memory(cfg, sizes, batch_size, data.n_train + data.x_test.shape[0])
    optimizer = make_optimizer(name, lr, **settings)
    model, order_key = _build_model(cfg["model"], sizes, top["seed"], dtype)
    return Experiment(
        model,
        data,
        optimizer,
        top["loss"],
        top["grad"],
        lr,
        top["epochs"],
        batch_size,
        data.n_train // batch_size,
        order_key,
        cfg,
        tuple(notes),
    )
