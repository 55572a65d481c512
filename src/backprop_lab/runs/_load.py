"""Runs you can load back: a run directory (or its checkpoint alone) as a network you can call.

A checkpoint's header records the network's architecture and the config that
decides the run (``meta.architecture``, ``meta.config``), so
:func:`load_checkpoint_state` rebuilds the structure to read it into from the
header alone: an :class:`MLP` of that architecture (any key; the weights are
read over it) and the optimizer of that config. :func:`load_run` adds what the
run directory says besides, and :func:`evaluate_run` measures the loaded
network on its data set (or another). Both read the last checkpoint
(``checkpoint.eqx``) unless told ``checkpoint="best"`` (``checkpoint_best.eqx``,
the best evaluation by the optimized metric), and say which they read.

A checkpoint is loaded only when it is this directory's run's (the run id in its
header is the one in the directory's mark) and of the network the run's
``.hydra/config.yaml`` describes; anything else is refused with one line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..checks._evaluation import evaluate
from ..config._checks import ConfigError
from ..files._checkpoint import CheckpointError, load_checkpoint, read_header
from ..files._rundir import BEST, CHECKPOINT, CONFIG_DIR, RunDir, RunDirError, finite_or_none
from ..files._safe import read_regular
from ..nn._network import MLP
from ..training._optimizers import make_optimizer
from ._config import DTYPES
from ._data import build_data
from ._lane import architecture_of
from ._model import check_model_config

__all__ = ["Run", "load_run", "load_checkpoint_state", "evaluate_run"]


@dataclasses.dataclass(frozen=True)
class Run:
    """A run loaded back from its directory.

    Attributes:
        path: the run directory.
        model: the network at the checkpoint.
        opt_state: the optimizer state at the checkpoint (continue with
            ``run_steps(run.model, run.opt_state, ..., start=run.step)``).
        step, epoch: where the checkpoint was taken.
        config: the composed config (``.hydra/config.yaml``, interpolations
            resolved), or the checkpoint's own record of the keys that decide
            the result when that file is missing.
        summary: summary.json, or None while the run has not ended.
        records: the metrics.jsonl records, step 0 first.
        losses: losses.csv as an array of shape (steps, 2): step, loss.
        checkpoint: which checkpoint ``model`` is: ``"last"`` or ``"best"``.
    """

    path: Path
    model: MLP
    opt_state: Any
    step: int
    epoch: int
    config: dict
    summary: dict | None
    records: tuple[dict, ...]
    losses: np.ndarray
    checkpoint: str = "last"


#: The checkpoint files :func:`load_run` reads, by name.
CHECKPOINTS = {"last": CHECKPOINT, "best": BEST}


def _structure(header: Mapping, path: Path) -> tuple[MLP, Any]:
    """A ``(model, opt_state)`` of the shapes and types the header describes."""
    meta = header.get("meta") or {}
    arch, config = meta.get("architecture"), meta.get("config")
    if not isinstance(arch, Mapping) or not isinstance(config, Mapping) or "optimizer" not in config:
        raise CheckpointError(
            f"checkpoint {path} does not record its network and optimizer "
            "(meta.architecture, meta.config); it was not written by a run"
        )
    dtype_name = arch.get("dtype")
    dtype = DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
    if dtype is None:
        raise CheckpointError(
            f"checkpoint {path} has parameters of dtype {arch.get('dtype')!r}; "
            f"this version reads {', '.join(DTYPES)}"
        )
    if jax.dtypes.canonicalize_dtype(dtype) != dtype:  # float64 without jax_enable_x64
        raise CheckpointError(
            f"checkpoint {path} holds float64 parameters: call "
            "jax.config.update('jax_enable_x64', True) before loading it"
        )
    try:
        model_cfg = {k: arch.get(k) for k in ("sizes", "activation", "output_activation", "bias")}
        sizes = check_model_config(model_cfg, "half_sse")
        if sizes is None:
            raise ValueError("the header records no widths (sizes)")
        model = MLP(
            sizes,
            arch["activation"],
            arch["output_activation"],
            arch["bias"],
            key=jax.random.PRNGKey(0),
            dtype=dtype,
        )
        opt = dict(config["optimizer"])
        optimizer = make_optimizer(opt.pop("name"), opt.pop("lr"), **opt)
    except (ConfigError, ValueError, TypeError, KeyError) as err:
        raise CheckpointError(
            f"checkpoint {path} records a network or optimizer this version cannot build "
            f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); it was not written by a run"
        ) from None
    return model, optimizer.init(model)


def load_checkpoint_state(path: str | os.PathLike) -> tuple[MLP, Any, dict]:
    """A checkpoint file alone as ``(model, opt_state, header)``.

    Raises:
        CheckpointError: the file is missing, truncated, altered, or does not
            record its architecture.
    """
    path = Path(path)
    like = _structure(read_header(path), path)
    (model, opt_state), header = load_checkpoint(path, like)
    return model, opt_state, header


def _config(path: Path, header: Mapping) -> dict:
    """The run's composed config (``.hydra/config.yaml``), or the header's record of it."""
    from omegaconf import OmegaConf

    file = path / CONFIG_DIR / "config.yaml"
    if not file.exists():
        return dict(header["meta"]["config"])
    try:
        cfg = OmegaConf.create(read_regular(file).decode())
        try:
            config = OmegaConf.to_container(cfg, resolve=True)
        except Exception:  # an interpolation that cannot be resolved here (e.g. ${hydra:...})
            config = OmegaConf.to_container(cfg, resolve=False)
    except Exception as err:  # not YAML, not text, not a file
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RunDirError(f"{file} is not a readable config ({first}); it is not a run's") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise RunDirError(f"{file} holds no run's config (no model group); it is not a run's")
    return config


def _check_belongs(path: Path, file: Path, header: Mapping, config: dict) -> None:
    """Refuse a checkpoint that is not the run's in ``path``: another run's id, or a network
    or config that differ from the run's config."""
    meta = header["meta"]
    mine = RunDir(path).run_id
    if mine is not None and meta.get("run") != mine:
        raise CheckpointError(
            f"{file} belongs to another run than the one in {path} (run id {meta.get('run')!r})"
        )
    if (path / CONFIG_DIR / "config.yaml").exists():
        dtype = config.get("dtype", "float32")
        expected = architecture_of(config["model"], dtype)
        recorded = {k: meta["architecture"].get(k) for k in expected}
        differ = [k for k, v in expected.items() if v not in (None, []) and recorded[k] != v]
        if differ:
            key = differ[0]
            raise CheckpointError(
                f"{file} holds a network of {key}={recorded[key]!r}, but the run's config in {path} "
                f"says {expected[key]!r}; it is not this run's checkpoint"
            )


def load_run(path: str | os.PathLike, checkpoint: str = "last") -> Run:
    """Load a run directory: its network, optimizer state, config, summary and metrics.

    Arguments:
        path: a run directory (as ``experiments/train.py`` writes it), finished
            or not, as long as it holds a checkpoint.
        checkpoint: ``"last"`` (the default: the state the run ended, or was
            stopped, with) or ``"best"`` (the best evaluation by the optimized
            metric, kept with ``checkpoint.keep=[last,best]``).

    Returns:
        A :class:`Run`; ``run.checkpoint`` says which checkpoint it holds.

    Raises:
        CheckpointError: no such checkpoint in ``path`` (not a run directory, or a
            run that stopped before its first one), or one that cannot be read or
            is not this run's.
        RunDirError: a run directory whose ``.hydra/config.yaml`` cannot be read.
        ValueError: ``checkpoint`` is neither ``"last"`` nor ``"best"``.
    """
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint={checkpoint!r}: expected 'last' or 'best'")
    path = Path(path)
    file = path / CHECKPOINTS[checkpoint]
    if not file.exists():
        what = "does not exist" if not path.exists() else f"holds no {file.name}"
        raise CheckpointError(
            f"{path} {what}: load_run reads a run directory that "
            "experiments/train.py (or the run engine) wrote, once it has checkpointed"
            + (" (the best one with checkpoint.keep=[last,best])" if checkpoint == "best" else "")
        )
    header = read_header(file)
    config = _config(path, header)
    _check_belongs(path, file, header, config)
    model, opt_state, header = load_checkpoint_state(file)
    run = RunDir(path)
    losses = np.array(run.losses(), dtype=np.float64).reshape(-1, 2)
    return Run(
        path,
        model,
        opt_state,
        header["step"],
        header["epoch"],
        config,
        run.summary(),
        tuple(run.records()),
        losses,
        checkpoint,
    )


def evaluate_run(path: str | os.PathLike, data_cfg: Mapping | None = None, checkpoint: str = "last") -> dict:
    """Measure a run's network (at its checkpoint) on its data set, or another.

    Arguments:
        path: the run directory.
        data_cfg: a ``data`` group (e.g. ``{"name": "moons", "n_samples": 2000}``)
            to use instead of the run's; its widths must fit the network. The
            run's seed and dtype apply, so the run's own data set splits as it did.
        checkpoint: ``"last"`` (default) or ``"best"`` (see :func:`load_run`).

    Returns:
        ``{"path", "checkpoint", "step", "epoch", "data", "loss", "n_train", "n_test",
        "train_loss", "test_loss", "train_accuracy", "test_accuracy"}``; the
        accuracies are None for data that is not classification, a test value
        None for an empty test split.

    Raises:
        CheckpointError: see :func:`load_run`.
        ConfigError: a data group that cannot be loaded or does not fit the network.
    """
    run = load_run(path, checkpoint)
    cfg = dict(run.config)
    if data_cfg is not None:
        cfg["data"] = dict(data_cfg)
    data = build_data(cfg, run.model.sizes)
    if data.targets == "labels":
        raise ConfigError(
            "data.one_hot",
            False,
            "the network's outputs compare with target vectors; set one_hot: true (one column per class)",
        )
    loss = cfg["loss"]
    out = {
        "path": str(run.path),
        "checkpoint": run.checkpoint,
        "step": run.step,
        "epoch": run.epoch,
        "data": data.name,
        "loss": loss,
        "n_train": data.n_train,
        "n_test": int(data.x_test.shape[0]),
    }
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        value, acc = evaluate(run.model, x, y, loss) if len(x) else (None, None)
        out[f"{split}_loss"] = None if value is None else finite_or_none(value)
        out[f"{split}_accuracy"] = float(acc) if acc is not None and data.n_classes is not None else None
    return out
