"""What a multirun is checked for before Hydra's sweeper and launcher start: a plan the basic
sweeper can list (:func:`backprop_lab.summary._sweep_size.check_sweep_size`), a batch size it accepts,
a directory for each job, and a parallel launcher (joblib) that can run. Each refusal is one line (a ``ValueError``); the
apps' command line and their run-directory callback (which ``experiments/*.py`` pass through)
both call :func:`check_sweep`. Nothing here imports JAX."""

from __future__ import annotations

import os

__all__ = ["WORKERS_PER_CORE", "check_launcher", "check_subdir", "check_sweep"]


#: The most parallel-launcher workers per core: each job is a process of its own, with JAX.
WORKERS_PER_CORE = 4


def check_launcher(launcher) -> None:
    """Raise ValueError for a parallel launcher (joblib) whose ``n_jobs`` joblib refuses
    with a traceback (0) or that would start more processes than the machine can hold (loky
    starts them all at once: ``n_jobs=100000`` hangs the machine)."""
    if not str(launcher.get("_target_", "")).endswith("JoblibLauncher"):
        return
    n_jobs = launcher.get("n_jobs")
    most = WORKERS_PER_CORE * (os.cpu_count() or 1)
    if isinstance(n_jobs, int) and (n_jobs == 0 or n_jobs > most):
        raise ValueError(
            f"hydra.launcher.n_jobs={n_jobs}: expected 1 to {most} jobs at a time ({WORKERS_PER_CORE} "
            f"per core of this machine's {os.cpu_count() or 1}), or a negative number as joblib counts "
            "them (-1: one per core, -2: all cores but one)"
        )


def check_subdir(sweep, jobs: int) -> None:
    """Raise ValueError when the ``jobs`` jobs of a sweep (its ``hydra.sweep`` node) would all
    write into one directory: a ``hydra.sweep.subdir`` the same for every job (no
    interpolation; Hydra's default is each job's number, ``${hydra.job.num}``). The jobs after
    the first would each be refused, one line apiece, after the first one ran.

    >>> from omegaconf import OmegaConf
    >>> check_subdir(OmegaConf.create({"subdir": "${hydra.job.num}"}), 3)
    >>> check_subdir(OmegaConf.create({"subdir": "lr"}), 3)
    Traceback (most recent call last):
    ...
    ValueError: hydra.sweep.subdir='lr' is the same for each of the 3 jobs, which would all write into one directory: leave it out (each job's number, ${hydra.job.num}) or make it differ per job (${hydra.job.override_dirname}, ${optimizer.lr})
    """
    from omegaconf import OmegaConf

    subdir = OmegaConf.to_container(sweep, resolve=False).get("subdir")  # type: ignore[union-attr]
    if jobs > 1 and "${" not in str(subdir or ""):
        raise ValueError(
            f"hydra.sweep.subdir={subdir!r} is the same for each of the {jobs} jobs, which would all "
            "write into one directory: leave it out (each job's number, ${hydra.job.num}) or make it "
            "differ per job (${hydra.job.override_dirname}, ${optimizer.lr})"
        )


def check_sweep(cfg) -> bool:
    """Whether ``cfg``'s sweeper is Hydra's basic sweeper, which lists every job before the first
    runs; raises ValueError when it would list more than ``MAX_PLANNED`` (the count comes
    from each swept key's number of values, nothing listed), its launcher cannot run
    (:func:`check_launcher`) or its jobs would share a directory (:func:`check_subdir`)."""
    check_launcher(cfg.hydra.launcher)
    if not str(cfg.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        trials = cfg.hydra.sweeper.get("n_trials")  # Optuna's; another sweeper: several jobs
        check_subdir(cfg.hydra.sweep, trials if isinstance(trials, int) else 2)
        return False
    batch = cfg.hydra.sweeper.get("max_batch_size")
    if batch is not None and not (isinstance(batch, int) and batch >= 1):
        raise ValueError(  # the basic sweeper's assertion, a traceback
            f"hydra.sweeper.max_batch_size={batch}: expected null (every job in one batch) or an integer >= 1"
        )
    from ..summary._sweep_size import check_sweep_size, sweep_arguments

    jobs = check_sweep_size(sweep_arguments(cfg.hydra.sweeper.get("params"), cfg.hydra.overrides.task))
    check_subdir(cfg.hydra.sweep, jobs)
    return True
