"""Hydra callbacks of the apps: the output directory checked before Hydra writes into it, and a
sweep that summarizes itself when its last job ends.

Registered in the apps' configs under ``hydra.callbacks``::

    hydra:
      callbacks:
        run_dir:
          _target_: backprop_lab.apps.callbacks.RunDirCallback
        summarize:
          _target_: backprop_lab.apps.callbacks.SummarizeCallback

:class:`PlainLogs` (``hydra.callbacks.plain_logs``) keeps a sweep's log to the
project's lines: no database set-up chatter, no colour codes.

At the end of a multirun, :class:`SummarizeCallback` writes what ``scripts/summarize SWEEP_DIR`` writes
(summary.csv, summary.md, summary.png, summary_grad_norms.png) and logs one
line. Nothing it does can fail the sweep: an error is logged as one warning
line. Jobs refused because another process holds their directory (a run still
going there) are named in one error line, and the sweep exits with status 2.
This module imports neither JAX nor matplotlib at import time.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("backprop_lab.summarize")

#: The directory of the sweep this process launches, once it has started (a signal that stops
#: the launching process marks the jobs it stopped there).
running: list[Path] = []


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

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        running.append(Path(str(config.hydra.sweep.dir)))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if self.enabled:
            self._summarize(sweep_dir, config)
        busy = _in_use(sweep_dir)
        if busy:
            log.error(
                "%d job(s) of this sweep were refused: %s in use by another run; "
                "run the sweep again when that run has ended",
                len(busy),
                ", ".join(busy),
            )
            sys.exit(2)

    def _summarize(self, sweep_dir: Path, config: DictConfig) -> None:
        try:
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


def sweep_identity(config: DictConfig) -> list[str]:
    """What makes a sweep the same sweep: its app and its command-line overrides, but those of
    keys a resume may change (``resume``, ``epochs``, ``log_every``, ...) unless swept."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from ..config._keys import NOT_RESULT_KEYS

    given = [str(o) for o in config.hydra.overrides.task]
    kept = [
        str(o.input_line)
        for o in OverridesParser.create().parse_overrides(given)
        if o.is_sweep_override() or o.key_or_group.split(".")[0].lstrip("+~") not in NOT_RESULT_KEYS
    ]
    return [str(config.hydra.job.name), *sorted(kept)]


class RunDirCallback(Callback):
    """Check the run's (or sweep's) directory before Hydra writes into it, and mark it.

    A run writes only into an empty directory or its own; a sweep directory holds
    one sweep (the same overrides again, ``resume=true`` or more ``epochs``
    included, continue it). A directory that cannot be used (a file, under a
    file, in /proc, read-only, full) or is empty (``hydra.run.dir=''``: the
    launch directory) stops the app with one line on stderr and exit status 2, and so does
    a directory of another app (a train run into a compare's directory).

    Arguments:
        app: the app whose directory it is (``train``, ``compare``, ``explain``), recorded in
            the directory's mark; None: ``hydra.job.name``.
    """

    def __init__(self, app: str | None = None) -> None:
        self.app = app

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config, "hydra.run.dir", "run")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from ._launch import check_sweep

        try:  # before the sweeper lists its jobs: a plan too large to list ends here
            check_sweep(config)
        except ValueError as err:
            print(f"backprop-lab {config.hydra.job.name}: {err}", file=sys.stderr)
            sys.exit(2)
        self._claim(config, "hydra.sweep.dir", "sweep")

    def _claim(self, config: DictConfig, key: str, kind: str) -> None:
        from ..files._claim import RunDirError, claim

        app = self.app or str(config.hydra.job.name)
        try:
            where = config.hydra.run.dir if kind == "run" else config.hydra.sweep.dir
            if where is None or not str(where).strip():
                raise RunDirError(f"{key}={where!r} is empty: give a directory for the {kind}'s files")
            identity = sweep_identity(config) if kind == "sweep" else None
            fields = {"sweep": identity} if identity else {}
            mark = claim(str(where), key, kind, app=app, **fields)
            if identity and mark.get("sweep") != identity:
                raise RunDirError(
                    f"{key}={str(where)!r} holds another sweep ({' '.join(mark.get('sweep') or [])}); "
                    f"a sweep directory holds one sweep: choose another {key} (the same overrides "
                    "again, resume=true included, continue that one)"
                )
        except RunDirError as err:
            print(f"backprop-lab {app}: {err}", file=sys.stderr)
            sys.exit(2)


def _in_use(sweep_dir: Path) -> list[str]:
    """The job directories of ``sweep_dir`` whose lock another process holds now (with its pid)."""
    busy = []
    for lock in sorted(sweep_dir.glob("*/.lock")):
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            busy.append(f"{lock.parent.name} (pid {holder})" if holder else lock.parent.name)
        finally:
            os.close(fd)
    return busy


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
