"""From a composed config to a network, data and optimizer, checked before any compute.

Every key of the training config has one rule in a schema (:data:`TRAIN_KEYS`,
:data:`MODEL_KEYS`, each optimizer's settings in ``OPTIMIZERS``; the tables are
in :mod:`._config_keys`); a value that
breaks it, a key no schema knows, or a combination that cannot work (widths
against the data, loss against the output, a network too large for memory)
raises :class:`ConfigError`, whose one-line message names the key, the bad
value and what would be right, so the apps stop before any compute.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import DTypeLike

from ..config._checks import Check, ConfigError, check_group, choice
from ..config._keys import (
    CHECKPOINT_KEYS,
    COMMON_KEYS,
    DEFAULT_HIDDEN,
    DISTRIBUTED_KEYS,
    GROUPS,
    MODEL_KEYS,
    NOT_RESULT_KEYS,
    OPTIMIZER_KEYS,
    PLOT_KEYS,
    PROCESS_KEYS,
    TRAIN_KEYS,
)
from ..data._registry import DATASETS, Dataset, load_dataset
from ..nn._losses import LOSSES
from ..nn._network import MLP
from ..trackers._registry import check_logger_config
from ..training._early_stopping import EARLY_STOPPING_KEYS
from ..training._optimizers import OPTIMIZERS, check_learning_rate, make_optimizer
from ..training._sharding import local_devices

__all__ = [
    "ConfigError",
    "Experiment",
    "build_experiment",
    "build_model",
    "check_model_config",
    "model_sizes",
    "config_learning_rate",
    "plain_config",
    "result_config",
    "TRAIN_KEYS",
    "MODEL_KEYS",
]

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}


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


def _widths(model: Mapping, data: Dataset | None) -> tuple[int, ...] | None:
    """``model.sizes``; else the data's input width, ``model.hidden`` (or :data:`DEFAULT_HIDDEN`)
    and the data's output width (None without data). Both keys given must agree."""
    sizes, hidden = model.get("sizes"), model.get("hidden")
    if sizes is not None and hidden is not None and tuple(sizes[1:-1]) != tuple(hidden):
        raise ConfigError(
            "model.hidden",
            list(hidden),
            f"model.sizes={list(sizes)} has the hidden widths {list(sizes[1:-1])}; give model.hidden "
            "alone (the first and last widths then come from the data), model.sizes alone, or both alike",
        )
    if sizes is not None or data is None:
        return sizes
    return (data.in_width, *(DEFAULT_HIDDEN if hidden is None else hidden), data.out_width)


def check_model_config(
    model_cfg: object, loss: object, data: Dataset | None = None
) -> tuple[int, ...] | None:
    """Check the model group (a mapping) and the loss (a name) and their pairing; return the sizes:
    ``model.sizes``, or the widths of ``data`` around ``model.hidden`` (None when they come from a
    data set and ``data`` is not given)."""
    if not isinstance(model_cfg, Mapping):
        raise ConfigError("model", model_cfg, "expected the model group, e.g. model=mlp")
    model = check_group("model", model_cfg, MODEL_KEYS, required=("activation", "output_activation"))
    loss_name: str = choice(LOSSES)("loss", loss)  # the name, as given
    sizes, out = _widths(model, data), model["output_activation"]
    if sizes is not None and out == "softmax" and sizes[-1] < 2:
        raise ConfigError(
            "model.output_activation",
            out,
            f"softmax over {sizes[-1]} output is always 1; use sigmoid for one "
            "output (with binary_cross_entropy) or give model.sizes two outputs or more",
        )
    required = LOSSES[loss_name].requires
    if required not in (None, out):
        raise ConfigError(
            "loss",
            loss,
            f"it needs model.output_activation={required} (got {out}); "
            "use that output or one of half_sse, sse, mse",
        )
    return sizes


def model_sizes(cfg: Mapping, data: Dataset | None = None) -> tuple[int, ...]:
    """The network's widths of a config (:func:`check_model_config`), from ``data`` when
    ``model.hidden`` leaves the first and last to it; the data set is loaded when needed."""
    sizes = check_model_config(cfg.get("model"), cfg.get("loss"), data)
    if sizes is None:
        if (cfg.get("data") or {}).get("name") == "random":
            raise ConfigError(
                "model.hidden",
                cfg["model"].get("hidden"),
                "data.name=random has no widths of its own; give model.sizes=[in,...,out]",
            )
        sizes = check_model_config(cfg["model"], cfg.get("loss"), build_data(cfg, None))
        assert sizes is not None
    return sizes


def _build_model(
    model_cfg: Mapping, sizes: tuple[int, ...], seed: int, dtype: DTypeLike
) -> tuple[MLP, jax.Array]:
    """The configured network and the seed's minibatch-order key."""
    act, out = model_cfg["activation"], model_cfg["output_activation"]
    weights = model_cfg.get("weights")
    if weights is None:
        return _initial(
            np.uint32(seed),
            sizes=sizes,
            activation=act,
            output_activation=out,
            bias=model_cfg.get("bias", True),
            init=model_cfg.get("init"),
            dtype=dtype,
        )
    return _given_model(model_cfg, sizes, act, out).astype(dtype), _keys(seed)[1]


@functools.partial(
    jax.jit, static_argnames=("sizes", "activation", "output_activation", "bias", "init", "dtype")
)
def _initial(
    seed: jax.Array,
    *,
    sizes: tuple[int, ...],
    activation: str,
    output_activation: str,
    bias: bool,
    init: str | None,
    dtype: DTypeLike,
) -> tuple[MLP, jax.Array]:
    """A seed's initial network and minibatch-order key as one compiled program: drawn op by op
    they are a dozen small programs, each traced and lowered in every process. The same numbers
    as :func:`_keys` and ``MLP(...)`` op by op, to the bit (tests compare)."""
    init_key, order_key = _keys(seed)
    return MLP(sizes, activation, output_activation, bias, key=init_key, init=init, dtype=dtype), order_key


def _given_model(model_cfg: Mapping, sizes: tuple[int, ...], act: str, out: str) -> MLP:
    """The network of ``model.weights`` (and ``model.bias_column``), checked against the sizes."""
    weights = model_cfg["weights"]
    column = model_cfg.get("bias_column")
    arrays = [np.asarray(w, dtype=np.float64) for w in weights]
    extra = 0 if column is None else 1
    expected = [(o, i + extra) for i, o in zip(sizes[:-1], sizes[1:])]
    got = [a.shape for a in arrays]
    if got != expected:
        raise ConfigError(
            "model.weights", f"shapes {got}", f"model.sizes={list(sizes)} needs shapes {expected}"
        )
    try:
        if column is None:
            model = MLP.from_weights(arrays, None, act, out)
        else:
            model = MLP.from_augmented(arrays, column, act, out)
    except ValueError as err:
        raise ConfigError("model.weights", "given", str(err)) from None
    return model


def config_learning_rate(lr: Any) -> float:
    """``optimizer.lr`` checked by :func:`check_learning_rate`, as a :class:`ConfigError`."""
    try:
        check_learning_rate(lr)
    except ValueError:
        raise ConfigError("optimizer.lr", lr, "expected a finite number > 0, e.g. 0.1") from None
    return float(lr)


def _keys(seed: int | jax.Array) -> tuple[jax.Array, jax.Array]:
    """The initial-weights key and the minibatch-order key of a seed."""
    init_key, order_key = jax.random.split(jax.random.PRNGKey(seed))
    return init_key, order_key


def build_model(cfg: Mapping) -> MLP:
    """The configured network alone (no data set), with the initial weights a run would draw.

    Checks the model group, the loss pairing, ``dtype`` and ``seed``.
    """
    cfg = plain_config(cfg)
    dtype = choice(DTYPES)("dtype", cfg.get("dtype", "float32"))
    seed = COMMON_KEYS["seed"]("seed", cfg.get("seed", 0))
    sizes = model_sizes(cfg)
    check_memory(cfg, sizes, 1, 0)
    return _build_model(cfg["model"], sizes, seed, DTYPES[dtype])[0]


@functools.lru_cache(maxsize=16)
def _load(name: str, seed: Any, dtype: str, kwargs: str, stamp: tuple = ()) -> Dataset:
    """load_dataset, once per process for the same arguments (a sweep's jobs share data) and,
    for a file, the same ``stamp`` (its :func:`_file_stamp`: a changed file is read again)."""
    return load_dataset(name, seed=seed, dtype=np.dtype(dtype), **json.loads(kwargs))


def _file_stamp(path: object) -> tuple:
    """A file's identity and modification time, or () when it cannot be read."""
    try:
        st = os.stat(os.path.expanduser(str(path)))
    except (OSError, ValueError):
        return ()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def absolute_path(path: object) -> str | None:
    """A relative file path made absolute (from the current directory, ``~`` expanded); None
    for a path that is absolute already, or for no path."""
    if not isinstance(path, str) or path in ("", "???") or os.path.isabs(os.path.expanduser(path)):
        return None
    return os.path.abspath(os.path.expanduser(path))


def absolute_data_path(cfg: dict) -> dict:
    """``cfg`` with a relative ``data.path`` made absolute (:func:`absolute_path`), so the run's
    record names the file from anywhere (``evaluate``, ``load_run``)."""
    data = cfg.get("data")
    path = absolute_path(data.get("path")) if isinstance(data, Mapping) else None
    return cfg if path is None else {**cfg, "data": {**dict(data or {}), "path": path}}


def build_data(cfg: Mapping, sizes: tuple[int, ...] | None) -> Dataset:
    """The configured data set, checked against the network's widths (unless None)."""
    data_cfg = cfg.get("data")
    if not isinstance(data_cfg, Mapping) or "name" not in data_cfg:
        raise ConfigError(
            "data",
            data_cfg,
            f"expected a data set, e.g. data=digits; valid choices are: {', '.join(sorted(DATASETS))}",
        )
    name = choice(DATASETS)("data.name", data_cfg["name"])
    kwargs = {k: v for k, v in data_cfg.items() if k != "name"}
    try:
        data = _load(
            name,
            cfg.get("seed", 0),
            str(cfg.get("dtype", "float32")),
            json.dumps(kwargs, sort_keys=True, default=str),
            _file_stamp(kwargs["path"]) if "path" in kwargs else (),
        )
    except (ValueError, TypeError) as err:
        raise ConfigError("data", name, str(err)) from None
    if data.n_train < 1:
        raise ConfigError("data", name, "it has no training rows")
    if sizes is not None and (data.in_width != sizes[0] or data.out_width != sizes[-1]):
        raise ConfigError(
            "model.sizes",
            list(sizes),
            f"data set {data.name!r} has input width {data.in_width} and output width "
            f"{data.out_width}, so sizes must start with {data.in_width} and end with {data.out_width}",
        )
    return data


def memory_estimate(
    sizes: Sequence[int], batch_size: int, n_rows: int, dtype: DTypeLike, optimizer: str, lanes: int = 1
) -> int:
    """Bytes a run needs at least: parameters, gradients, optimizer slots, activations, data."""
    item = np.dtype(dtype).itemsize
    params = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
    slots = {"sgd": 0, "momentum": 1, "adam": 2}.get(optimizer, 2)
    activations = batch_size * sum(sizes) * 3 + n_rows * sum(sizes)  # forward, δ, evaluation
    return lanes * item * (params * (3 + slots) + activations + n_rows * (sizes[0] + sizes[-1]))


def memory_limit(cfg: Mapping) -> float:
    """The bytes a run may take: ``max_memory_gb``, else this machine's physical memory."""
    gb = cfg.get("max_memory_gb")
    if gb is not None:
        return float(gb) * 2**30
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def check_memory(cfg: Mapping, sizes: Sequence[int], batch_size: int, n_rows: int, lanes: int = 1) -> None:
    """Refuse a run whose memory estimate exceeds the limit, before anything is allocated."""
    optimizer = (cfg.get("optimizer") or {}).get("name", "adam")
    need = memory_estimate(sizes, batch_size, n_rows, DTYPES[cfg.get("dtype", "float32")], optimizer, lanes)
    limit = memory_limit(cfg)
    if need > limit:
        what = f"{lanes} lanes of " if lanes > 1 else ""
        raise ConfigError(
            "model.sizes",
            list(sizes),
            f"{what}this network needs about {need / 2**30:.3g} GB, more than the "
            f"{limit / 2**30:.3g} GB allowed (max_memory_gb); use smaller widths",
        )


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

    notes = []
    batch_size = top.get("batch_size")
    if batch_size is None or batch_size > data.n_train:
        if batch_size is not None:
            notes.append(
                f"batch_size={batch_size} is more than the {data.n_train} training rows of "
                f"{data.name!r}: training on the full batch of {data.n_train}"
            )
        batch_size = data.n_train
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


def result_config(cfg: Mapping) -> dict:
    """The part of a config that decides a run's result (what a resume must not change)."""
    return {k: v for k, v in plain_config(cfg).items() if k not in NOT_RESULT_KEYS}
