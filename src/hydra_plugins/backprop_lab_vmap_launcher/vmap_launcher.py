"""``hydra/launcher=vmap``: run a training sweep as vmapped programs, architectures as lanes.

    python experiments/train.py -m optimizer.lr=0.001,0.01,0.1,1 seed=0,1,2,3 hydra/launcher=vmap

The launcher composes every job's config as Hydra would and lets Hydra set up
each job (its output directory and log) exactly as the basic launcher does.
Composing is the costly part of a job's set-up (about 0.3 s, and Hydra's
sweeper composes each job once more to validate the batch), so from its
``setup`` on, the sweep's configs come from :class:`SweepConfigs`: the first
job of each group composed in full, the others derived from it.
Jobs whose config is refused run through the app's own task function, which
records ``config_error``. The others are grouped by everything but the keys in
``vmap_keys`` (the learning rate, the seed, the numeric optimizer settings and the
architecture: ``model.sizes``, ``model.hidden``, ``model.activation``, ``model.init``; networks of
one group are padded to its largest shape and masked, see docs/architecture-sweeps.md).
A group whose padding would cost more than ``max_padding`` times its real FLOPs is
split by shape. The launcher logs one line naming what tells the programs apart and
one per program with its padded/real FLOPs. Each group goes to the app's
``task.run_lanes``: for experiments/train.py, the same run engine a single run
uses, with every job a lane of one ``jax.vmap``-ed program. The launcher itself
writes nothing. An app without ``run_lanes`` (compare, explain) has its jobs
run one by one, as the basic launcher would.
"""

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from backprop_lab.config._keys import LANE_KEYS

from ._programs import check_max_padding, check_vmap_keys, programs
from ._sweep_configs import SweepConfigs

__all__ = ["SweepConfigs", "VmapLauncher", "VmapLauncherConf", "check_max_padding", "check_vmap_keys"]

log = logging.getLogger(__name__)


@dataclass
class VmapLauncherConf:
    _target_: str = "hydra_plugins.backprop_lab_vmap_launcher.vmap_launcher.VmapLauncher"
    # Config keys whose values may differ between the lanes of one program.
    vmap_keys: list[str] = field(default_factory=lambda: list(LANE_KEYS))
    # Split a group by model.sizes when its padded FLOPs exceed this many times its real FLOPs.
    max_padding: float = 4.0


ConfigStore.instance().store(
    group="hydra/launcher", name="vmap", node=VmapLauncherConf, provider="backprop_lab"
)


def _unresolved(cfg: DictConfig) -> dict:
    """The job's own config (Hydra's node left out, not copied) as plain containers, its
    interpolations unresolved."""
    return {
        k: OmegaConf.to_container(v, resolve=False) if OmegaConf.is_config(v) else v
        for k, v in cfg.items_ex(resolve=False)
        if k != "hydra"
    }


def _names_hydra(node) -> bool:
    """Whether an unresolved config uses Hydra's resolver (``${hydra:job.num}``) anywhere."""
    if isinstance(node, dict):
        return any(_names_hydra(v) for v in node.values())
    if isinstance(node, list):
        return any(_names_hydra(v) for v in node)
    return isinstance(node, str) and "${hydra:" in node


def _group_key(plain: dict, vmap_keys: Sequence[str]) -> str:
    """What a job shares with the others of its program: its config (:func:`_unresolved`,
    which this changes) without the keys of ``vmap_keys``, as JSON."""
    for dotted in vmap_keys:
        node = plain
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return json.dumps(plain, sort_keys=True, default=str)


class VmapLauncher(Launcher):
    def __init__(self, vmap_keys: Sequence[str] = LANE_KEYS, max_padding: float = 4.0) -> None:
        super().__init__()
        self.vmap_keys = list(vmap_keys)
        self.max_padding = max_padding
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        loader = hydra_context.config_loader
        repository = getattr(loader, "repository", None)
        if repository is not None and not isinstance(loader.load_sweep_config, SweepConfigs):
            # installed on the loader, so the sweeper's validation of each batch composes through it too
            sweep_configs = SweepConfigs(loader.load_sweep_config, repository, self.vmap_keys)
            setattr(loader, "load_sweep_config", sweep_configs)  # noqa: B010 - an instance's method replaced

    def _run(self, task, cfg: DictConfig, restore_log: bool = True) -> JobReturn:
        assert self.config is not None and self.hydra_context is not None  # set up before any launch
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=task,
            config=cfg,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        if restore_log:  # the job's logging config back to the launcher's
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
        check_max_padding(self.max_padding)
        check_vmap_keys(self.vmap_keys)
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
            log.info(
                "hydra/launcher=vmap: this app has no vectorized form; running its %d jobs one by one",
                len(jobs),
            )
            return [self._run(self.task_function, cfg) for _, _, cfg in jobs]

        returns: dict = {}
        groups: dict = {}
        built: dict = {}
        for idx, overrides, cfg in jobs:
            plain = _unresolved(cfg)
            built[idx] = _checked(cfg, _names_hydra(plain))
            if built[idx] is not None:
                groups.setdefault(_group_key(plain, self.vmap_keys), []).append((idx, overrides, cfg))
            else:  # the app's own task records the config error, as under any launcher
                log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
                returns[idx] = self._run(self.task_function, cfg)
        sizes = {idx: tuple(exp.model.sizes) for idx, exp in built.items() if exp is not None}
        for group in programs(list(groups.values()), list(groups), self.max_padding, sizes):
            lanes: list[tuple] = []
            rets: list[JobReturn] = []
            for idx, overrides, _ in group:
                log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            try:
                for idx, _overrides, cfg in group:  # the jobs' set-up only: the launcher's log comes after
                    rets.append(self._run(_Collect(lanes, f"#{idx}", built.pop(idx)), cfg, restore_log=False))
                configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
                values = run_lanes(lanes)  # each lane's return value, as the app's task gives it
            except SystemExit:  # a signal: every job directory made says so
                _interrupted([out for out in map(_job_dir, (cfg for _, _, cfg in group)) if out is not None])
                raise
            for (idx, _, _), ret, value in zip(group, rets, values):
                ret.return_value = value
                returns[idx] = ret
        return [returns[idx] for idx, _, _ in jobs]


def _checked(cfg: DictConfig, names_hydra: bool):
    """The job's experiment when its config passes the app's checks; None for a refused one
    (which runs on its own). The lane's run takes this experiment instead of building it again.

    The config is resolved once, for both JAX's settings and the experiment. A config that
    uses Hydra's resolver (``names_hydra``) is resolved against its own job's Hydra node, as
    its task would resolve it; the others need no Hydra node (setting it copies the node)."""
    from backprop_lab.apps._jax_setup import setup_jax
    from backprop_lab.runs._config import plain_config
    from backprop_lab.runs._experiment import ConfigError, build_experiment

    if names_hydra:
        HydraConfig.instance().set_config(cfg)
    try:
        resolved = plain_config(cfg)
        setup_jax(resolved)
        return build_experiment(resolved)
    except ConfigError:
        return None


def _job_dir(cfg: DictConfig) -> Path | None:
    """The job's output directory once Hydra's ``run_job`` has set it (before it makes the
    directory); None for a job not set up yet."""
    out = OmegaConf.select(cfg, "hydra.runtime.output_dir", default=None, throw_on_missing=False)
    return None if out is None else Path(str(out))


def _interrupted(outs: Sequence[Path]) -> None:
    from backprop_lab.apps._interrupted import record_interrupted

    for out in outs:
        record_interrupted(out, "train", runs=True)


class _Collect:
    """The task Hydra runs in each job's directory: note the job as a lane, run nothing yet."""

    def __init__(self, lanes: list, name: str, experiment=None):
        self.lanes, self.name, self.experiment = lanes, name, experiment

    def __call__(self, cfg: DictConfig) -> None:
        from backprop_lab.apps._hydra import hydra_files

        hc = HydraConfig.get()
        out = Path(hc.runtime.output_dir)
        self.lanes.append(
            (cfg, out, hydra_files(cfg), self.name, out / f"{hc.job.name}.log", self.experiment)
        )
