"""``hydra/launcher=slurm_vmap``: each vmap group of a sweep as one SLURM job.

    python experiments/train.py -m hydra/launcher=slurm_vmap \\
        optimizer.lr=0.001,0.01,0.1,1 seed=0,1,2,3

The jobs of the sweep whose overrides differ only in ``vmap_keys`` (by default
hydra/launcher=vmap's: learning rate, seed, architecture and the numeric optimizer
settings) form a group, and each group is submitted as one SLURM job (the groups together as one job
array, through submitit as ``hydra/launcher=slurm`` does): a 64-lane
learning-rate x seed sweep is one allocation, not 64. Inside its job a group
runs through ``VmapLauncher`` itself (which composes each job's config and
groups them again: into one padded program, split by shape past ``max_padding``), so every job directory gets
what ``hydra/launcher=vmap`` gives it, and a job whose config is refused
records ``config_error`` while the others run. ``lanes_per_job`` splits a
larger group over several SLURM jobs.

Requeues (see docs/slurm.md): a job requeued by SLURM (``scontrol requeue``,
preemption) runs again with ``SLURM_RESTART_COUNT`` > 0 and the engine resumes
each run from its checkpoint. Near its time limit submitit's signal (USR2)
requeues the job itself, up to ``max_num_timeout`` times. Both launchers here
let the run stop after its current chunk on the SIGTERM the requeue brings,
where submitit alone would exit wherever the signal found the job, and keep the
job's log file to process 0 when a job has several tasks.

``SlurmLauncher`` (``hydra/launcher=slurm``, conf/hydra/launcher/slurm.yaml) is
hydra-submitit-launcher's with those two changes.
"""

import contextlib
import io
import logging
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides, setup_globals
from omegaconf import OmegaConf

from backprop_lab.config._keys import LANE_KEYS
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf

from ._programs import check_max_padding, check_vmap_keys
from .vmap_launcher import VmapLauncher

log = logging.getLogger(__name__)


@dataclass
class SlurmVmapLauncherConf(SlurmQueueConf):
    """hydra-submitit-launcher's SLURM fields, and the keys whose values may differ within a job."""

    _target_: str = "hydra_plugins.backprop_lab_vmap_launcher.slurm_vmap_launcher.SlurmVmapLauncher"
    vmap_keys: list[str] = field(default_factory=lambda: list(LANE_KEYS))
    # As hydra/launcher=vmap's: a group padded beyond this many times its real FLOPs is split by shape.
    max_padding: float = 4.0
    # At most this many jobs (lanes) per SLURM job: a larger group is split; None: no limit.
    lanes_per_job: int | None = None
    # Requeue on timeout through submitit, up to this many times; the runs resume.
    max_num_timeout: int = 3
    # sbatch --requeue: SLURM may requeue the job (preemption, scontrol requeue).
    additional_parameters: dict[str, Any] = field(default_factory=lambda: {"requeue": True})


ConfigStore.instance().store(
    group="hydra/launcher", name="submitit_slurm_vmap", node=SlurmVmapLauncherConf, provider="backprop_lab"
)


@contextlib.contextmanager
def _in_job(launcher):
    """What a launcher's callable runs in, inside its SLURM job.

    Requeues: submitit's USR2 handler (time limit near, or preempted) checkpoints
    the submission and runs ``scontrol requeue``, then exits at once, wherever the
    job is. All but that exit is kept: the requeue's SIGTERM stops the run after
    its current chunk (the engine records it and saves its checkpoint), and the
    job runs again from there.

    Tasks other than 0 of a multi-task job log to their own submitit log only:
    the job's log file (as the run's other files) is process 0's.
    """
    import submitit

    env = submitit.JobEnvironment()
    signum = env._usr_sig()
    handler = signal.getsignal(signum)
    task = launcher.task_function

    if callable(handler):

        def requeue(sig, frame):
            try:
                handler(sig, frame)
            except SystemExit:
                log.warning(
                    "job requeued: the run stops after its current chunk and resumes from "
                    "its checkpoint when the job runs again"
                )

        signal.signal(signum, requeue)
    if env.global_rank != 0:
        launcher.task_function = _WithoutLogFile(task)
    try:
        yield
    finally:
        launcher.task_function = task
        if callable(handler):
            signal.signal(signum, handler)


class _WithoutLogFile:
    """The app's task, minus the log files Hydra opened for the job (run_lanes and all)."""

    def __init__(self, task):
        self.task = task

    def __getattr__(self, name):
        return getattr(self.task, name)

    def __call__(self, cfg):
        root = logging.getLogger()
        for h in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(h)
            h.close()
        return self.task(cfg)


def _exit_if_interrupted(run):
    """Run ``run()``; a run the requeue's SIGTERM ended exits as the app does (128 + signal),
    so submitit writes no result and the launcher waits for the job's next run."""
    from backprop_lab.runs._engine import RunInterrupted

    try:
        return run()
    except RunInterrupted as err:
        sys.exit(128 + err.signum)


def _overrides_key(overrides: Sequence[str], vmap_keys: Sequence[str]) -> tuple:
    """A job's overrides but those of ``vmap_keys``: jobs alike in these are one VmapLauncher
    group (composing each job's config to compare them, as VmapLauncher does inside the job,
    costs about 0.3 s a job here: an hour for a 10,000-job sweep before anything is submitted)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return tuple(sorted(o.input_line for o in parsed if o.key_or_group not in vmap_keys))


def _require_slurm(launcher: str) -> None:
    """End the sweep with one line and exit status 2 where SLURM's commands are missing
    (submitit's own error is a traceback), before anything is submitted."""
    missing = [command for command in ("sbatch", "srun") if shutil.which(command) is None]
    if missing:
        print(
            f"hydra/launcher={launcher}: SLURM's {' and '.join(missing)} not found on PATH; run the sweep "
            "where SLURM is installed (a login node), or choose hydra/launcher=basic, parallel or vmap",
            file=sys.stderr,
        )
        sys.exit(2)


def _submitted(submit: Callable[[], Any]) -> Any:
    """``submit()``, a submission SLURM refuses (a partition, account or QOS that does not exist)
    ending the sweep with sbatch's own line and exit status 2, not submitit's traceback.

    submitit prints a refused sbatch's stderr before it raises; that text, held back here, is
    the error's own (the line says it), and what a submission that succeeds writes is passed on.
    """
    import submitit

    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):
            return submit()
    except submitit.core.utils.FailedJobError as err:
        held = io.StringIO()  # sbatch's lines: the one below holds them
        lines = [line.strip() for line in str(err).splitlines() if "error" in line.lower()]
        said = str(err).strip().splitlines() or ["sbatch failed and said nothing"]
        reason = lines[-1] if lines else said[0]
        print(
            f"SLURM refused the sweep's jobs ({reason}); check hydra.launcher.partition, account and "
            "qos against `sinfo` and `sacctmgr show assoc`",
            file=sys.stderr,
        )
        sys.exit(2)
    finally:
        sys.stderr.write(held.getvalue())


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher, its jobs run in :func:`_in_job`."""

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        with _in_job(self):
            return super().__call__(*args, **kwargs)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        _require_slurm("slurm")
        return _submitted(lambda: super(SlurmLauncher, self).launch(job_overrides, initial_job_idx))


class SlurmVmapLauncher(submitit_launcher.SlurmLauncher):
    """Each group of jobs that differ only in ``vmap_keys`` as one SLURM job running VmapLauncher."""

    def __init__(
        self,
        vmap_keys: Sequence[str] = LANE_KEYS,
        lanes_per_job: int | None = None,
        max_padding: float = 4.0,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.vmap_keys = list(vmap_keys)
        self.lanes_per_job = lanes_per_job
        self.max_padding = max_padding

    def __call__(self, numbered: list[tuple], singleton_state: dict[type, Singleton]) -> list[JobReturn]:
        """Inside the SLURM job: the group's jobs ``(job number, overrides)`` through VmapLauncher."""
        Singleton.set_state(singleton_state)
        setup_globals()
        with _in_job(self):
            vmap = VmapLauncher(self.vmap_keys, self.max_padding)
            vmap.setup(hydra_context=self.hydra_context, task_function=self.task_function, config=self.config)
            return _exit_if_interrupted(lambda: vmap.launch_numbered(numbered))

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        check_max_padding(self.max_padding)  # before anything is submitted, not inside each job
        check_vmap_keys(self.vmap_keys)
        _require_slurm("slurm_vmap")
        by_key: dict = {}
        for i, overrides in enumerate(job_overrides):
            key = _overrides_key(overrides, self.vmap_keys)
            by_key.setdefault(key, []).append((initial_job_idx + i, list(overrides)))
        n = self.lanes_per_job or max(map(len, by_key.values()))
        groups = [jobs[k : k + n] for jobs in by_key.values() for k in range(0, len(jobs), n)]

        executor = submitit.AutoExecutor(
            cluster="slurm",
            folder=self.params["submitit_folder"],
            slurm_max_num_timeout=self.params.get("max_num_timeout", 0),
        )
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                k if k in base else f"slurm_{k}": v
                for k, v in self.params.items()
                if k not in ("submitit_folder", "max_num_timeout")
            }
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            sweep_dir.chmod(int(str(self.config.hydra.sweep.mode), 8))
        log.info("Submitit 'slurm' sweep output dir : %s", sweep_dir)
        log.info(
            "Launching %d jobs as %d SLURM job(s), one vmapped program each", len(job_overrides), len(groups)
        )
        for task, group in enumerate(groups):
            for idx, overrides in group:
                log.info("\t[%d] #%d : %s", task, idx, " ".join(filter_overrides(overrides)))
        state = Singleton.get_state()
        jobs = _submitted(lambda: executor.map_array(self, groups, [state] * len(groups)))
        returns: dict[int, JobReturn] = {}  # each job returns its group's JobReturns in the group's order
        for group, job in zip(groups, jobs):
            returns.update((idx, ret) for (idx, _), ret in zip(group, job.results()[0]))
        return [returns[initial_job_idx + i] for i in range(len(job_overrides))]
