"""``hydra/launcher=vmap``: run a training sweep as vmapped programs, one per architecture.

    python experiments/train.py -m optimizer.lr=0.001,0.01,0.1,1 seed=0,1,2,3 hydra/launcher=vmap

The launcher composes every job's config as Hydra would and lets Hydra set up
each job (its output directory and log) exactly as the basic launcher does.
Jobs whose config is refused run through the app's own task function, which
records ``config_error``. The others are grouped by everything but the keys in
``vmap_keys`` (``optimizer.lr`` and ``seed``), and each group goes to the app's
``task.run_lanes``: for experiments/train.py, the same run engine a single run
uses, with every job a lane of one ``jax.vmap``-ed program. The launcher itself
writes nothing. An app without ``run_lanes`` (compare, explain) has its jobs
run one by one, as the basic launcher would.
"""


import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass
class VmapLauncherConf:
    _target_: str = "hydra_plugins.backprop_lab_vmap_launcher.vmap_launcher.VmapLauncher"
    # Config keys whose values may differ between the lanes of one program.
    vmap_keys: List[str] = field(default_factory=lambda: ["optimizer.lr", "seed"])


ConfigStore.instance().store(
    group="hydra/launcher", name="vmap", node=VmapLauncherConf, provider="backprop_lab"
)


def _group_key(cfg: DictConfig, vmap_keys: Sequence[str]) -> str:
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)
    for dotted in vmap_keys:
        node = plain
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return json.dumps(plain, sort_keys=True, default=str)


class VmapLauncher(Launcher):
    def __init__(self, vmap_keys: Sequence[str] = ("optimizer.lr", "seed")) -> None:
        super().__init__()
        self.vmap_keys = list(vmap_keys)
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def _run(self, task, cfg: DictConfig) -> JobReturn:
        ret = run_job(hydra_context=self.hydra_context, task_function=task, config=cfg,
                      job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        return self.launch_numbered([(initial_job_idx + i, o) for i, o in enumerate(job_overrides)])

    def launch_numbered(self, numbered: Sequence[tuple]) -> Sequence[JobReturn]:
        """``launch`` for jobs ``(job number, overrides)`` whose numbers need not be consecutive:
        hydra/launcher=slurm_vmap runs each group here, inside its SLURM job."""
        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)

        jobs = []
        for idx, overrides in numbered:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(cfg):
                cfg.hydra.job.id = idx
                cfg.hydra.job.num = idx
            jobs.append((idx, overrides, cfg))
        run_lanes = getattr(self.task_function, "run_lanes", None)
        if run_lanes is None:
            log.info("hydra/launcher=vmap: this app has no vectorized form; running its %d jobs one by one",
                     len(jobs))
            return [self._run(self.task_function, cfg) for _, _, cfg in jobs]

        returns: dict = {}
        groups: dict = {}
        for idx, overrides, cfg in jobs:
            if _checks_out(cfg):
                groups.setdefault(_group_key(cfg, self.vmap_keys), []).append((idx, overrides, cfg))
            else:  # the app's own task records the config error, as under any launcher
                log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
                returns[idx] = self._run(self.task_function, cfg)
        log.info("Launching %d jobs as %d vmapped program(s)", sum(map(len, groups.values())), len(groups))
        for group in groups.values():
            lanes, rets = [], []
            for idx, overrides, cfg in group:
                log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
                rets.append(self._run(_Collect(lanes, f"#{idx}"), cfg))
            values = run_lanes(lanes)  # each lane's return value, as the app's task gives it
            for (idx, _, _), ret, value in zip(group, rets, values):
                ret.return_value = value
                returns[idx] = ret
        return [returns[idx] for idx, _, _ in jobs]


def _checks_out(cfg: DictConfig) -> bool:
    """Whether a job's config passes the app's checks (a refused one runs on its own)."""
    from backprop_lab._apps import setup_jax
    from backprop_lab._experiment import ConfigError, build_experiment

    HydraConfig.instance().set_config(cfg)
    try:
        setup_jax(cfg)
        build_experiment(cfg)
    except ConfigError:
        return False
    return True


class _Collect:
    """The task Hydra runs in each job's directory: note the job as a lane, run nothing yet."""

    def __init__(self, lanes: list, name: str):
        self.lanes, self.name = lanes, name

    def __call__(self, cfg: DictConfig) -> None:
        from backprop_lab._apps import hydra_files

        hc = HydraConfig.get()
        out = Path(hc.runtime.output_dir)
        self.lanes.append((cfg, out, hydra_files(cfg), self.name, out / f"{hc.job.name}.log"))
