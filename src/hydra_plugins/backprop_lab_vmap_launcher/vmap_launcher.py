"""``hydra/launcher=vmap``: run a training sweep as vmapped programs, one per architecture.

    python experiments/train.py -m optimizer.lr=0.001,0.01,0.1,1 seed=0,1,2,3 hydra/launcher=vmap

The launcher composes every job's config as Hydra would, groups the jobs that
differ only in ``optimizer.lr`` and ``seed`` (the keys in ``vmap_keys``), trains
each group as one ``jax.vmap``-ed program (backprop_lab's train_lanes), and
then lets Hydra create each job's usual output directory (.hydra/, the job log)
and writes into it what experiments/train.py writes: metrics.jsonl,
summary.json, checkpoint.eqx and loss_curve.png. It serves experiments/train.py
only; a vmapped job cannot be resumed (run it again instead).
"""


import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence

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

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from backprop_lab._experiment import build_experiment
        from backprop_lab._runs import setup_jax
        from backprop_lab._sweep import train_lanes

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)

        jobs = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(cfg):
                cfg.hydra.job.id = idx
                cfg.hydra.job.num = idx
            jobs.append((idx, overrides, cfg))
        groups: dict = {}
        for job in jobs:
            groups.setdefault(_group_key(job[2], self.vmap_keys), []).append(job)
        log.info("Launching %d jobs as %d vmapped program(s)", len(jobs), len(groups))

        returns: dict = {}
        for group in groups.values():
            cfgs = [cfg for _, _, cfg in group]
            setup_jax(cfgs[0])
            experiments = [build_experiment(cfg) for cfg in cfgs]
            log_every = int(cfgs[0].get("log_every", 1) or 1)
            t0 = time.perf_counter()
            results, chunk_seconds = train_lanes(experiments, log_every)
            seconds = time.perf_counter() - t0
            for (idx, overrides, cfg), exp, result in zip(group, experiments, results):
                log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
                task = _LaneWriter(exp, result, lanes=len(group), seconds=seconds,
                                   chunk_seconds=chunk_seconds)
                returns[idx] = run_job(hydra_context=self.hydra_context, task_function=task,
                                       config=cfg, job_dir_key="hydra.sweep.dir",
                                       job_subdir_key="hydra.sweep.subdir")
                configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return [returns[idx] for idx, _, _ in jobs]


class _LaneWriter:
    """The task Hydra runs in each job directory: write one lane's results."""

    def __init__(self, exp: Any, result: dict, *, lanes: int, seconds: float, chunk_seconds: list):
        self.exp, self.result = exp, result
        self.lanes, self.seconds, self.chunk_seconds = lanes, seconds, chunk_seconds

    def __call__(self, cfg: DictConfig) -> dict:
        import jax.numpy as jnp

        from backprop_lab import _runs as runs
        from backprop_lab._checkpoint import save_checkpoint

        out = Path(HydraConfig.get().runtime.output_dir)
        exp, res = self.exp, self.result
        x, y = jnp.asarray(exp.data.x_train), jnp.asarray(exp.data.y_train)
        records = res["records"]
        runs.write_metrics(out / runs.METRICS, records)
        steps = res["epochs"] * exp.steps_per_epoch
        save_checkpoint(out / runs.CHECKPOINT, (res["model"], res["opt_state"]), step=steps,
                        epoch=res["epochs"])
        timed = self.chunk_seconds[1:] or self.chunk_seconds
        per_chunk = exp.steps_per_epoch * int(cfg.get("log_every", 1) or 1) * exp.batch_size
        summary = runs.run_summary(
            status=res["status"], steps=steps, epochs=res["epochs"],
            diverged_at_step=res["diverged_at_step"], records=records,
            samples_per_second=per_chunk * len(timed) / sum(timed) if sum(timed) > 0 else None,
            wall_time=self.seconds, grad=exp.grad,
            agreement={"start": runs.grad_agreement(exp.model, x, y, exp.loss),
                       "end": runs.grad_agreement(res["model"], x, y, exp.loss)},
            output_dir=out, launcher="vmap", lanes=self.lanes,
        )
        runs.write_json(out / runs.SUMMARY, summary)
        if records:
            runs.save_loss_plot(records, out / runs.PLOT,
                                f"{exp.data.name}: {list(exp.model.sizes)} {exp.model.activation}, lr {exp.lr}")
        log.info("%s: final train loss %s (lane of %d)", summary["status"],
                 summary["final_train_loss"], self.lanes)
        return summary
