#!/usr/bin/env python3
"""Train a network from a Hydra config.

    python experiments/train.py                                  # digits, hand-written backprop
    python experiments/train.py experiment=note003               # a preset from the notes
    python experiments/train.py -m model.activation=sigmoid,tanh,relu optimizer.lr=0.01,0.1,1.0
    python experiments/train.py -m optimizer.lr=0.001,0.01,0.1 seed=0,1,2 hydra/launcher=vmap

The run engine (backprop_lab.runs._engine) does the work and writes the run
directory: .hydra/, metrics.jsonl, losses.csv, summary.json, checkpoint.eqx and
the plots. ``resume=true`` into the same directory continues the same run.
Exit status: 0 when the run ends (completed or diverged), 2 for a config or
run-directory error, 128 + the signal number when interrupted.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from . import CONF_DIR

log = logging.getLogger("backprop_lab.train")


def train(cfg: DictConfig, out_dir: str | Path | None = None) -> dict | None:
    """Run one training job from a composed config; return its summary (None if refused in a sweep).

    Raises:
        ConfigError: a config value that cannot work (before any compute).
        RunDirError, CheckpointError: the directory cannot take this run.
        RunInterrupted: SIGINT, SIGTERM or SIGHUP ended the run (its files say so).
    """
    from backprop_lab.apps import _hydra as apps
    from backprop_lab.apps import _jax_setup
    from backprop_lab.runs._engine import RunSpec, run_experiments
    from backprop_lab.runs._experiment import build_experiment

    _jax_setup.setup_jax(cfg)
    exp = build_experiment(cfg)
    out = Path(out_dir) if out_dir is not None else apps.output_dir()
    refuse = "skip" if apps.in_multirun() else "raise"
    resume = exp.config.get("resume", False) or apps.requeued()
    spec = RunSpec(exp, out, apps.hydra_files(cfg), name=apps.job_name())  # a sweep's lines name their job
    (summary,) = run_experiments([spec], resume=resume, refuse=refuse)
    return summary


def train_lanes(jobs) -> list[float | None]:
    """``hydra/launcher=vmap``'s way in: jobs ``(cfg, out_dir, hydra_files, name, log_file,
    experiment)`` that differ only in lane values (learning rate, seed, numeric optimizer settings,
    architecture), run as the lanes of one program;
    each job's objective (as ``task`` returns it). ``experiment`` is the job's checked
    experiment when the launcher built it already, or None. A signal ends the sweep as it
    ends a run: the lanes record ``status: "interrupted"``, the exit status is 128 + n."""
    from backprop_lab.apps import _hydra as apps
    from backprop_lab.apps import _jax_setup
    from backprop_lab.runs._engine import RunInterrupted, RunSpec, run_experiments
    from backprop_lab.runs._experiment import ConfigError, build_experiment
    from backprop_lab.training._masked import padding_ratio

    _jax_setup.setup_jax(jobs[0][0])
    specs = [
        RunSpec(build_experiment(cfg) if exp is None else exp, Path(out), files, name, log_file)
        for cfg, out, files, name, log_file, exp in jobs
    ]
    resume = specs[0].exp.config.get("resume", False) or apps.requeued()
    padding = padding_ratio([s.exp.model.sizes for s in specs])  # the program's padded/real FLOPs
    try:
        summaries = run_experiments(
            specs, resume=resume, refuse="skip", launcher="vmap", padding=round(padding, 4)
        )
    except RunInterrupted as err:
        sys.exit(128 + err.signum)
    except ConfigError as err:  # a tracker that cannot start: the program's jobs stop, the sweep goes on
        log.error("%s", err)
        for _, out, files, *_ in jobs:
            apps.record_config_error(Path(out), "train", err, files)
        summaries = [None] * len(jobs)
    return [apps.job_objective(summary, cfg) for summary, (cfg, *_) in zip(summaries, jobs)]


def task(cfg: DictConfig) -> float | None:
    """One job; returns its objective: the summary's ``optimized_metric``, the worst value
    for the sweep's direction when the run did not complete, None when the key is null."""
    from backprop_lab.apps import _hydra as apps
    from backprop_lab.apps import _jax_setup
    from backprop_lab.files._checkpoint import CheckpointError
    from backprop_lab.files._rundir import RunDirError
    from backprop_lab.runs._engine import RunInterrupted
    from backprop_lab.runs._experiment import ConfigError

    _jax_setup.quiet_backend_probe()
    try:
        return apps.job_objective(train(cfg), cfg)
    except ConfigError as err:
        apps.stop_on_config_error(err, "train", log, cfg)
    except (CheckpointError, RunDirError) as err:
        log.error("%s", err)
        sys.exit(2)
    except OSError as err:  # a directory the filesystem refuses (read-only, full) before the run
        from backprop_lab.files._safe import os_error_line

        log.error("%s", os_error_line(err))
        sys.exit(2)
    except RunInterrupted as err:
        sys.exit(128 + err.signum)
    return apps.job_objective(None, cfg)


# hydra/launcher=vmap hands its groups of jobs here (it looks the attribute up on the task)
setattr(task, "run_lanes", train_lanes)  # noqa: B010 - a function attribute, which mypy does not model
main = hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")(task)

if __name__ == "__main__":  # python -m backprop_lab.apps.train, as backprop-lab train
    from backprop_lab.apps.cli import run_app

    sys.exit(run_app("train"))
