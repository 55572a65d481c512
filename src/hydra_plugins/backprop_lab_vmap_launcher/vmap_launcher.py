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
architecture: ``model.sizes``, ``model.activation``, ``model.init``; networks of
one group are padded to its largest shape and masked, see docs/architecture-sweeps.md).
A group whose padding would cost more than ``max_padding`` times its real FLOPs is
split by shape. The launcher logs one line naming what tells the programs apart and
one per program with its padded/real FLOPs. Each group goes to the app's
``task.run_lanes``: for experiments/train.py, the same run engine a single run
uses, with every job a lane of one ``jax.vmap``-ed program. The launcher itself
writes nothing. An app without ``run_lanes`` (compare, explain) has its jobs
run one by one, as the basic launcher would.
"""

import copy
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, ValueType
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from backprop_lab.config._keys import LANE_KEYS

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


class SweepConfigs:
    """``load_sweep_config`` of Hydra's config loader for jobs that differ in ``vmap_keys``.

    The first job of a group (the jobs whose overrides differ only in the values
    of ``vmap_keys``) is composed as Hydra composes it; every other job's config
    is a copy of that one with its own values applied as Hydra applies a
    command-line override, and its ``hydra.overrides.task`` and
    ``hydra.job.override_dirname`` made from its own overrides: the config
    Hydra would compose, at the cost of a copy. A job with any other difference
    (a config group, ``+key``, ``~key``, a Hydra key) is composed in full.

    Hydra's sweeper asks for every job's config to validate a batch and drops
    it; the launcher then asks for the same configs. So a config is kept after
    it is made, and the next request with the same overrides gets that object
    (once) instead of a new copy.
    """

    def __init__(self, compose, repository, vmap_keys: Sequence[str]) -> None:
        self.compose, self.repository = compose, repository
        self.vmap_keys = set(vmap_keys)
        self.parser = OverridesParser.create()
        self.parsed: dict[str, Override] = {}
        self.bases: dict = {}
        self.groups: dict = {}
        self.made: dict = {}

    def _parse(self, line: str) -> Override:
        """One override parsed as Hydra parses it, each distinct line once (a sweep's jobs share
        most of theirs); an Override is not changed once parsed."""
        if line not in self.parsed:
            (self.parsed[line],) = self.parser.parse_overrides([line])
        return self.parsed[line]

    def _varies(self, o: Override) -> bool:
        if not (
            o.key_or_group in self.vmap_keys
            and o.type == OverrideType.CHANGE
            and o.value_type == ValueType.ELEMENT
            and o.package is None
            and not o.is_hydra_override()
        ):
            return False
        if o.key_or_group not in self.groups:
            self.groups[o.key_or_group] = self.repository.group_exists(o.key_or_group)
        return not self.groups[o.key_or_group]

    def __call__(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        asked = (id(master_config), tuple(sweep_overrides))
        if asked in self.made:
            return self.made.pop(asked)
        self.made[asked] = cfg = self._make(master_config, sweep_overrides)
        return cfg

    def _make(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        from backprop_lab.compat._hydra import overrides_dirname

        parsed = [self._parse(line) for line in sweep_overrides]
        varies = [self._varies(o) for o in parsed]
        key = (
            id(master_config),
            tuple(o.key_or_group if v else o.input_line for o, v in zip(parsed, varies)),
        )
        base = self.bases.get(key)
        if base is None:
            cfg = self.compose(master_config, list(sweep_overrides))
            self.bases[key] = copy.deepcopy(cfg)
            return cfg
        cfg = copy.deepcopy(base)
        for o, v in zip(parsed, varies):  # key=value of a key the base config has (see _varies)
            if v:
                OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
        app = [o for o in parsed if not o.is_hydra_override()]
        names = cfg.hydra.job.config.override_dirname
        cfg.hydra.overrides.task = [o.input_line for o in app]
        cfg.hydra.job.override_dirname = overrides_dirname(
            app, kv_sep=names.kv_sep, item_sep=names.item_sep, exclude_keys=names.exclude_keys
        )
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
        return cfg


def check_max_padding(max_padding: object) -> None:
    """Exit 2 with one line, before any job, unless ``max_padding`` is a number >= 1."""
    if not (isinstance(max_padding, (int, float)) and not isinstance(max_padding, bool) and max_padding >= 1):
        log.error(
            "hydra.launcher.max_padding=%s: expected a number >= 1, e.g. 4 (1 gives every model.sizes "
            "its own program)",
            max_padding,
        )
        sys.exit(2)


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
        for group in _programs(list(groups.values()), list(groups), self.max_padding, sizes):
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


def _flat(node: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in node.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _labels(keys: Sequence[str]) -> list[str]:
    """Per group (its config minus the lane keys, as JSON), the values that tell it from the
    others: ``data.name=moons``."""
    flat = [_flat(json.loads(k)) for k in keys]
    names = sorted({n for f in flat for n in f})
    differ = [n for n in names if len({json.dumps(f.get(n, "<none>"), default=str) for f in flat}) > 1]
    return [
        " ".join(f"{n}={json.dumps(f.get(n), default=str)}".replace('"', "") for n in differ) for f in flat
    ]


def _ratio(jobs: list, sizes: dict) -> float:
    from backprop_lab.training._masked import padding_ratio

    try:
        return padding_ratio([sizes[idx] for idx, _, _ in jobs])
    except ValueError:  # widths that cannot share a program (no such job passes its checks)
        return float("inf")


def _programs(groups: list[list], keys: Sequence[str], max_padding: float, sizes: dict) -> list[list]:
    """The groups of jobs as programs, a group whose padding costs more than ``max_padding``
    times its real FLOPs split by network shape (``sizes``: job number → the layer widths of
    its network, given by ``model.sizes`` or made from ``model.hidden`` and the data); logs
    what tells the programs apart and each program's padded/real FLOPs."""
    programs: list[tuple[list, str, float]] = []
    for jobs, label in zip(groups, _labels(keys)):
        ratio = _ratio(jobs, sizes)
        if ratio <= max_padding:
            programs.append((jobs, label, ratio))
            continue
        shapes: dict = {}
        for job in jobs:
            shapes.setdefault(sizes[job[0]], []).append(job)
        log.info(
            "padding %s to one shape would cost %.2fx its real FLOPs, more than max_padding=%g: "
            "one program per model.sizes",
            label or "the jobs",
            ratio,
            max_padding,
        )
        for shape, part in shapes.items():
            programs.append((part, f"{label} model.sizes={list(shape)}".strip(), 1.0))
    n = sum(len(jobs) for jobs, _, _ in programs)
    labels = ", ".join(label for _, label, _ in programs) if len(programs) > 1 else ""
    log.info(
        "%d jobs as %d program%s%s", n, len(programs), "s" * (len(programs) != 1), labels and f": {labels}"
    )
    for i, (jobs, _, ratio) in enumerate(programs):
        log.info("program %d: %d lanes, padded/real FLOPs %.3g", i + 1, len(jobs), ratio)
    return [jobs for jobs, _, _ in programs]


def _checked(cfg: DictConfig, names_hydra: bool):
    """The job's experiment when its config passes the app's checks; None for a refused one
    (which runs on its own). The lane's run takes this experiment instead of building it again.

    The config is resolved once, for both JAX's settings and the experiment. A config that
    uses Hydra's resolver (``names_hydra``) is resolved against its own job's Hydra node, as
    its task would resolve it; the others need no Hydra node (setting it copies the node)."""
    from backprop_lab.apps._hydra import setup_jax
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
