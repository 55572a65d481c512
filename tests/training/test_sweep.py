"""Vectorized sweeps: every lane equals its own sequential run; the vmap launcher writes normal job dirs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import backprop_lab as bl
from backprop_lab import load_dataset
from backprop_lab.apps.cli import main as cli_main
from helpers.train_app import app, cfg_of

ROOT = Path(__file__).resolve().parents[2]


# A vmapped lane runs batched matrix products, which XLA may sum in another
# order than the unbatched ones: float32 results can differ in the last bits.
# SGD and momentum keep that at rounding level; Adam divides by sqrt(v), which
# magnifies it, so its per-step losses are held to 2e-5 (measured: 6e-6) and
# its parameters to 1e-4 absolute (measured: 2.8e-5 on a weight of 0.4).
@pytest.mark.parametrize(
    ("name", "rtol", "param_atol"), [("sgd", 1e-6, 1e-6), ("momentum", 1e-6, 1e-6), ("adam", 2e-5, 1e-4)]
)
@pytest.mark.slow
def test_each_lane_equals_its_sequential_run(name, rtol, param_atol):
    data = load_dataset("moons", dtype=np.float32, n_samples=200)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    lrs = [0.003, 0.03, 0.3]
    models = [
        bl.MLP([2, 8, 2], "tanh", "softmax", key=jax.random.PRNGKey(s), dtype=jnp.float32) for s in range(3)
    ]
    keys = jnp.stack([jax.random.PRNGKey(10 + s) for s in range(3)])
    trained, histories = bl.train_sweep(
        models,
        x,
        y,
        loss="cross_entropy",
        optimizer=bl.make_optimizer(name, 0.1),
        learning_rates=lrs,
        steps=60,
        batch_size=30,
        keys=keys,
    )
    assert histories.shape == (3, 60)
    for lane, lr in enumerate(lrs):
        model, history = bl.train(
            models[lane],
            x,
            y,
            loss="cross_entropy",
            optimizer=bl.make_optimizer(name, lr),
            steps=60,
            batch_size=30,
            key=keys[lane],
        )
        np.testing.assert_allclose(histories[lane], history, rtol=rtol, atol=1e-7)
        for a, b in zip(jax.tree.leaves(trained[lane]), jax.tree.leaves(model)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=param_atol)


def test_sweep_needs_the_learning_rate_in_the_optimizer_state():
    import optax

    model = bl.MLP([2, 3, 1], key=jax.random.PRNGKey(0))
    x, y = jnp.zeros((4, 2)), jnp.zeros((4, 1))
    with pytest.raises(ValueError, match="make_optimizer"):
        bl.train_sweep(
            model, x, y, loss="half_sse", optimizer=optax.sgd(0.1), learning_rates=[0.1, 0.2], steps=3
        )


@pytest.mark.slow
def test_vmap_launcher_writes_every_job_directory(tmp_path):
    sweep = tmp_path / "sweep"
    common = [
        "data=moons",
        "data.n_samples=200",
        "model.sizes=[2,8,2]",
        "model.activation=relu",
        "model.output_activation=identity",
        "loss=mse",
        "epochs=3",
        "batch_size=50",
        "log_every=1",
    ]
    result = subprocess.run(
        [
            sys.executable,
            "experiments/train.py",
            "-m",
            *common,
            "optimizer=sgd",
            "optimizer.lr=0.01,0.1,1e6",
            "seed=0,1",
            "hydra/launcher=vmap",
            f"hydra.sweep.dir={sweep}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "6 jobs as 1 program" in result.stdout + result.stderr
    jobs = sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())
    assert len(jobs) == 6
    statuses = {}
    for job in jobs:
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        summary = json.loads((job / "summary.json").read_text())
        assert summary["launcher"] == "vmap" and summary["lanes"] == 6
        assert (job / "checkpoint.eqx").exists()
        lr = float([o for o in overrides if o.startswith("optimizer.lr=")][0].split("=")[1])
        statuses.setdefault(lr, set()).add(summary["status"])
        if summary["status"] == "completed":
            assert len((job / "metrics.jsonl").read_text().splitlines()) == 4  # step 0, then 3 epochs
    assert statuses[1e6] == {"diverged"}
    assert statuses[0.1] == statuses[0.01] == {"completed"}

    # A vmapped job ends where the same job run on its own (here, in this process) ends.
    job = next(
        j
        for j in jobs
        if {"optimizer.lr=0.1", "seed=1"}
        <= set(yaml.safe_load((j / ".hydra" / "overrides.yaml").read_text()))
    )
    single = tmp_path / "single"
    app.train(cfg_of(*common, "optimizer=sgd", "optimizer.lr=0.1", "seed=1"), out_dir=single)
    vmapped = json.loads((job / "summary.json").read_text())["final_train_loss"]
    sequential = json.loads((single / "summary.json").read_text())["final_train_loss"]
    assert vmapped == pytest.approx(sequential, rel=1e-6)


@pytest.mark.slow
def test_parallel_launcher_runs_jobs_in_fresh_processes(tmp_path, capsys):
    """joblib/loky workers are spawned interpreters, so JAX in the parent cannot deadlock them."""
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable,
            "experiments/train.py",
            "-m",
            "data=xor",
            "model.sizes=[2,4,1]",
            "model.output_activation=sigmoid",
            "loss=binary_cross_entropy",
            "batch_size=null",
            "epochs=50",
            "log_every=25",
            "optimizer=sgd",
            "optimizer.lr=0.1,1.0",
            "hydra/launcher=parallel",
            f"hydra.sweep.dir={sweep}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads((sweep / str(i) / "summary.json").read_text()) for i in range(2)]
    assert [s["status"] for s in summaries] == ["completed", "completed"]
    # the jobs' lines, interleaved on the console, each name their job; so do their own logs
    for i in range(2):
        own = (sweep / str(i) / "train.log").read_text().splitlines()
        assert own and all(f" - [#{i}] " in line for line in own), own
        assert sum(f" - [#{i}] epoch " in line for line in result.stdout.splitlines()) == 2
    # the command's own entry point, in this process (tests/summary runs the script itself)
    assert cli_main(["summarize", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "optimizer.lr=0.1" in out and "optimizer.lr=1.0" in out
    assert (sweep / "summary.csv").exists() and (sweep / "summary.png").exists()


def test_vmap_launcher_derives_each_jobs_config_as_hydra_composes_it():
    """The vmap launcher composes one job per group and derives the others (lr, seed): every
    derived config equals the one Hydra composes for that job, its Hydra node included."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from hydra_plugins.backprop_lab_vmap_launcher.vmap_launcher import SweepConfigs

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("train", ["hydra/launcher=vmap", "data=moons"], RunMode.MULTIRUN)
        derive = SweepConfigs(loader.load_sweep_config, loader.repository, ["optimizer.lr", "seed"])
        jobs = [
            [f"optimizer.lr={lr}", f"seed={seed}", "epochs=3"]
            for lr in ("0.01", "1", "1e-3")
            for seed in (0, 2)
        ]
        jobs += [
            ["optimizer=sgd", "optimizer.lr=0.5", "seed=1"],
            ["optimizer=sgd", "optimizer.lr=2", "seed=3"],
            ["model.activation=relu", "optimizer.lr=0.1", "seed=0"],
        ]
        made = {}
        for overrides in jobs:
            made[tuple(overrides)] = derived = derive(master, overrides)
            composed = loader.load_sweep_config(master, overrides)
            assert OmegaConf.to_container(derived) == OmegaConf.to_container(composed), overrides
            assert OmegaConf.to_yaml(derived) == OmegaConf.to_yaml(composed)
        assert len(derive.bases) == 3  # one composition per group
        # the sweeper validates a batch, then the launcher asks again: the config made, once
        assert derive(master, jobs[0]) is made[tuple(jobs[0])]
        assert derive(master, jobs[0]) is not made[tuple(jobs[0])]


@pytest.mark.parametrize("app", ["train", "compare", "explain"])
def test_job_files_are_the_yaml_omegaconf_writes(app):
    """A job's .hydra/ texts come from PyYAML's C emitter: the texts OmegaConf.to_yaml gives, for
    every app's config with Hydra's node (its help templates, logging configs) and for values
    YAML could read as something else."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from backprop_lab.apps._hydra import hydra_files, to_yaml

    tricky = [
        "yes",
        "null",
        "1e-3",
        "0x10",
        "~",
        "a: b",
        "- x",
        "line\nbreak",
        "ünï",
        "'q'",
        '"d"',
        "",
        " pad ",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(app, overrides=["data=moons"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.tricky = tricky
        cfg.nested = {"deep": {s or "empty": s for s in tricky}}
    HydraConfig.instance().set_config(cfg)
    files = hydra_files(cfg)
    assert files["config.yaml"] == OmegaConf.to_yaml(cfg)
    assert files["hydra.yaml"] == OmegaConf.to_yaml(OmegaConf.create({"hydra": HydraConfig.get()}))
    assert files["overrides.yaml"] == OmegaConf.to_yaml(
        OmegaConf.create(list(HydraConfig.get().overrides.task))
    )
    assert yaml.safe_load(to_yaml(cfg))["tricky"] == tricky


def test_vmap_launcher_checks_a_job_as_its_task_would_resolve_it():
    """The launcher groups jobs by their own config read without Hydra's node, which is that
    config as OmegaConf gives it; a job whose config names Hydra's resolver (``${hydra:job.num}``)
    is checked against its own job's Hydra node, whatever node was set before."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from hydra_plugins.backprop_lab_vmap_launcher.vmap_launcher import _checked, _names_hydra, _unresolved

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["data=moons", "seed=${hydra:job.num}"], return_hydra_config=True)
        other = compose("train", overrides=["data=moons"], return_hydra_config=True)
    whole = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(whole, dict)
    del whole["hydra"]
    assert _unresolved(cfg) == whole and whole["seed"] == "${hydra:job.num}"
    assert _names_hydra(_unresolved(cfg)) and not _names_hydra(_unresolved(other))
    with open_dict(cfg):
        cfg.hydra.job.num = 5
    with open_dict(other):
        other.hydra.job.num = 2
    HydraConfig.instance().set_config(other)  # the node another job left
    exp = _checked(cfg, _names_hydra(_unresolved(cfg)))
    assert exp is not None and exp.config["seed"] == 5
