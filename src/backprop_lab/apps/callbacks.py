"""Hydra callbacks of the training app: a sweep summarizes itself when its last job ends.

Registered in conf/train.yaml under ``hydra.callbacks``::

    hydra:
      callbacks:
        summarize:
          _target_: backprop_lab.apps.callbacks.SummarizeCallback

:class:`PlainLogs` (``hydra.callbacks.plain_logs``) keeps a sweep's log to the
project's lines: no database set-up chatter, no colour codes.

At the end of a multirun, :class:`SummarizeCallback` writes what ``scripts/summarize SWEEP_DIR`` writes
(summary.csv, summary.md, summary.png, summary_grad_norms.png) and logs one
line. Nothing it does can fail the sweep: an error is logged as one warning
line. This module imports neither JAX nor matplotlib at import time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("backprop_lab.summarize")


class SummarizeCallback(Callback):
    """Summarize the sweep directory in ``on_multirun_end``.

    Arguments:
        x: the swept key of summary.png's x axis (None: the learning rate when
            swept, else the first swept key).
        y: the metric of summary.png (``final_train_loss``, ``test_accuracy``, …); None: the
            metric an Optuna study optimized (``optimized_metric``), its best trial marked,
            else ``final_train_loss``.
        enabled: false turns the callback off (``hydra.callbacks.summarize.enabled=false``).
    """

    def __init__(self, x: str | None = None, y: str | None = None, enabled: bool = True) -> None:
        self.x, self.y, self.enabled = x, y, enabled

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        try:
            sweep_dir = Path(str(config.hydra.sweep.dir))
            from ._summarize import MARKDOWN, summarize

            y, best = self.y, None
            study = study_direction(config)
            if study is not None and y in (None, config.get("optimized_metric")):
                y, best = config.optimized_metric, study
            result = summarize(sweep_dir, x=self.x, y=y or "final_train_loss", best=best)
            log.info("%s; summary in %s", result.counts, sweep_dir / MARKDOWN)
        except Exception as err:  # a summary must never fail the sweep it describes
            log.warning(
                "could not summarize the sweep (%s: %s); run scripts/summarize on it",
                type(err).__name__,
                str(err).splitlines()[0] if str(err) else "",
            )


def _is_optuna(config: DictConfig) -> bool:
    return "optuna" in str(OmegaConf.select(config, "hydra.sweeper._target_", default="")).lower()


def study_direction(config: DictConfig) -> str | None:
    """``maximize`` or ``minimize``: the direction an Optuna sweep optimized its jobs'
    ``optimized_metric`` in; None for another sweeper, no metric, or several directions."""
    if not _is_optuna(config) or config.get("optimized_metric") is None:
        return None
    direction = OmegaConf.select(config, "hydra.sweeper.direction")
    if OmegaConf.is_list(direction) or isinstance(direction, (list, tuple)):
        if len(direction) != 1:
            return None
        direction = direction[0]
    name = getattr(direction, "name", str(direction)).rsplit(".", 1)[-1]
    return name if name in ("maximize", "minimize") else None


class PlainLogs(Callback):
    """A sweep's log in Hydra's plain format, from ``on_multirun_start``, before the sweeper
    starts: the INFO lines of alembic (an Optuna study in a database sets up its schema with it,
    seven "setup plugin" lines) off, and Optuna's own lines passed to Hydra's log instead of
    Optuna's coloured handler (ANSI codes in a log file).

    Arguments:
        enabled: false leaves the loggers as the libraries set them.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        logging.getLogger("alembic").setLevel(logging.WARNING)
        if not _is_optuna(config):
            return  # (importing Optuna costs a sweep that has no study)
        import optuna

        optuna.logging.disable_default_handler()
        optuna.logging.enable_propagation()
