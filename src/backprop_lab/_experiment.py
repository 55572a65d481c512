"""From a composed config to a network, data and optimizer, checked before any compute.

Every check raises :class:`ConfigError`, whose message names the config key,
the bad value and what would be right, so the Hydra apps can stop with one
clear line instead of a traceback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._activations import ACTIVATIONS
from ._data import DATASETS, Dataset, load_dataset
from ._losses import LOSSES
from ._network import INITS, MLP
from ._training import GRADS, OPTIMIZERS, check_learning_rate, make_optimizer

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}


class ConfigError(ValueError):
    """A config value that cannot work; says which key, what value, what would."""

    def __init__(self, key: str, value: Any, expected: str):
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"{key}={_show(value)} is invalid: {expected}")


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _choice(key: str, value: Any, valid) -> None:
    if value not in valid:
        raise ConfigError(key, value, f"valid choices are: {', '.join(sorted(valid))}")


def _int_at_least(key: str, value: Any, low: int, high: int | None = None) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low
    if ok and (high is None or value <= high):
        return int(value)
    rng = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    raise ConfigError(key, value, f"expected {rng}")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """Everything a run needs, built and checked from a config.

    Attributes:
        model: the initial network.
        data: the data set, arrays in the run's dtype.
        optimizer: an optax optimizer whose learning rate lives in its state.
        loss, grad: names; epochs, batch_size, steps_per_epoch: the schedule.
        key: PRNG key for the minibatch order.
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


def _hidden_names():
    return [n for n, a in ACTIVATIONS.items() if not a.output_only]


def check_model_config(model_cfg: Mapping, loss: str) -> tuple[int, ...]:
    """Check the model group and the loss pairing; return the sizes."""
    sizes = model_cfg.get("sizes")
    if not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
        raise ConfigError("model.sizes", sizes, "expected a list of at least two widths, e.g. [64,128,10]")
    for i, s in enumerate(sizes):
        _int_at_least(f"model.sizes[{i}]", s, 1)
    _choice("model.activation", model_cfg.get("activation"), _hidden_names())
    _choice("model.output_activation", model_cfg.get("output_activation"), list(ACTIVATIONS))
    _choice("loss", loss, LOSSES)
    required = LOSSES[loss].requires
    if required not in (None, model_cfg["output_activation"]):
        raise ConfigError(
            "loss", loss,
            f"it needs model.output_activation={required} (got {model_cfg['output_activation']}); "
            "use that output or one of half_sse, sse, mse",
        )
    init = model_cfg.get("init")
    if init is not None:
        _choice("model.init", init, INITS)
    return tuple(int(s) for s in sizes)


def _build_model(model_cfg: Mapping, sizes: tuple[int, ...], key: jax.Array, dtype) -> MLP:
    act, out = model_cfg["activation"], model_cfg["output_activation"]
    weights = model_cfg.get("weights")
    if weights is None:
        return MLP(sizes, act, out, bool(model_cfg.get("bias", True)), key=key,
                   init=model_cfg.get("init"), dtype=dtype)
    column = model_cfg.get("bias_column")
    arrays = [np.asarray(w, dtype=np.float64) for w in weights]
    extra = 0 if column is None else 1
    expected = [(o, i + extra) for i, o in zip(sizes[:-1], sizes[1:])]
    got = [a.shape for a in arrays]
    if got != expected:
        raise ConfigError("model.weights", f"shapes {got}", f"model.sizes={list(sizes)} needs shapes {expected}")
    try:
        if column is None:
            model = MLP.from_weights(arrays, None, act, out)
        else:
            _choice("model.bias_column", column, ["first", "last"])
            model = MLP.from_augmented(arrays, column, act, out)
    except ValueError as err:
        raise ConfigError("model.weights", "given", str(err)) from None
    return model.astype(dtype)


def config_learning_rate(lr: Any) -> float:
    """``optimizer.lr`` checked by :func:`check_learning_rate`, as a :class:`ConfigError`."""
    try:
        check_learning_rate(lr)
    except ValueError:
        raise ConfigError("optimizer.lr", lr, "expected a finite number > 0, e.g. 0.1") from None
    return float(lr)


def plain_config(cfg: Mapping) -> dict:
    """The config as plain Python containers, resolved, with Hydra's own node left out."""
    if isinstance(cfg, dict):
        return dict(cfg)
    from omegaconf import OmegaConf

    return {
        k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
        for k in cfg.keys()
        if k != "hydra"
    }


def build_model(cfg: Mapping) -> MLP:
    """The configured network alone (no data set), with the initial weights a run would draw.

    Checks the model group, the loss pairing, ``dtype`` and ``seed``.
    """
    cfg = plain_config(cfg)
    _choice("dtype", cfg.get("dtype", "float32"), DTYPES)
    seed = _int_at_least("seed", cfg.get("seed", 0), 0)
    sizes = check_model_config(cfg["model"], cfg["loss"])
    init_key, _ = jax.random.split(jax.random.PRNGKey(seed))  # the key build_experiment uses
    return _build_model(cfg["model"], sizes, init_key, DTYPES[cfg.get("dtype", "float32")])


def build_experiment(cfg: Mapping) -> Experiment:
    """Check a composed config and build the run's objects.

    Arguments:
        cfg: the composed config (an OmegaConf DictConfig or a plain mapping)
            with groups data, model, optimizer and keys loss, grad, seed,
            epochs, batch_size, dtype.

    Raises:
        ConfigError: for the first key that cannot work.
    """
    cfg = plain_config(cfg)
    data_cfg = dict(cfg["data"])
    _choice("data", data_cfg.get("name"), DATASETS)
    _choice("dtype", cfg.get("dtype", "float32"), DTYPES)
    dtype = DTYPES[cfg.get("dtype", "float32")]
    sizes = check_model_config(cfg["model"], cfg["loss"])
    opt_cfg = dict(cfg["optimizer"])
    name = opt_cfg.pop("name", None)
    _choice("optimizer", name, OPTIMIZERS)
    lr = config_learning_rate(opt_cfg.pop("lr", None))
    _choice("grad", cfg.get("grad"), GRADS)
    seed = _int_at_least("seed", cfg.get("seed"), 0)
    epochs = _int_at_least("epochs", cfg.get("epochs"), 1)

    kwargs = {k: v for k, v in data_cfg.items() if k != "name"}
    try:
        data = load_dataset(data_cfg["name"], seed=seed, dtype=np.dtype(cfg.get("dtype", "float32")), **kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError("data", data_cfg["name"], str(err)) from None
    if data.in_width != sizes[0] or data.out_width != sizes[-1]:
        raise ConfigError(
            "model.sizes", list(sizes),
            f"data set {data.name!r} has input width {data.in_width} and output width "
            f"{data.out_width}, so sizes must start with {data.in_width} and end with {data.out_width}",
        )
    batch_size = cfg.get("batch_size")
    batch_size = data.n_train if batch_size is None else _int_at_least("batch_size", batch_size, 1, data.n_train)
    try:
        optimizer = make_optimizer(name, float(lr), **opt_cfg)
    except TypeError as err:
        raise ConfigError("optimizer", name, f"unexpected setting: {err}") from None

    init_key, order_key = jax.random.split(jax.random.PRNGKey(seed))
    model = _build_model(cfg["model"], sizes, init_key, dtype)
    return Experiment(model, data, optimizer, cfg["loss"], cfg["grad"], float(lr), epochs,
                      batch_size, data.n_train // batch_size, order_key)
