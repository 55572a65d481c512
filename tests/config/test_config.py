"""The Hydra configs under conf/ compose, and presets hold what they promise."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from backprop_lab import dataset_names, load_dataset, validate_against_model

CONF = (Path(__file__).resolve().parents[2] / "conf").resolve()
GROUPS = {
    group: sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    for group in ("data", "model", "optimizer", "experiment")
}
TOP_LEVEL = {
    "seed",
    "loss",
    "grad",
    "epochs",
    "batch_size",
    "resume",
    "dtype",
    "log_every",
    "jax_cache_dir",
    "divergence_factor",
    "diagnostics",
    "max_memory_gb",
    "optimized_metric",
    "devices",
}


@pytest.fixture(autouse=True)
def fresh_hydra() -> Iterator[None]:
    """Clear Hydra's global state before and after each test."""
    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None  # type: ignore[assignment]


def compose_train(
    overrides: list[str] | None = None, *, config: str = "train", hydra: bool = False
) -> DictConfig:
    """Compose ``conf/<config>.yaml`` with the given command-line overrides."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=config, overrides=overrides or [], return_hydra_config=hydra)


def test_groups_are_complete() -> None:
    assert GROUPS["data"] == sorted(dataset_names())
    assert GROUPS["model"] == ["mlp"]
    assert GROUPS["optimizer"] == ["adam", "momentum", "sgd"]
    assert GROUPS["experiment"] == ["digits", "moons", "note002", "note003", "note004", "vanishing", "xor"]


def test_default_run() -> None:
    cfg = compose_train()
    assert set(cfg) == TOP_LEVEL | {
        "data",
        "model",
        "optimizer",
        "logger",
        "distributed",
        "early_stopping",
        "checkpoint",
        "plot",
    }
    assert cfg.seed == 0 and cfg.resume is False and cfg.dtype == "float32"
    assert cfg.grad in ("manual", "autodiff")
    assert isinstance(cfg.epochs, int) and isinstance(cfg.batch_size, int)
    assert cfg.data.name == "digits"
    assert cfg.model.sizes is None and cfg.model.hidden is None  # digits' widths around 128
    assert (cfg.model.activation, cfg.model.output_activation, cfg.loss) == (
        "tanh",
        "softmax",
        "cross_entropy",
    )
    assert cfg.model.weights is None and cfg.model.bias_column is None and cfg.model.bias is True
    assert cfg.optimizer.name == "adam"


@pytest.mark.parametrize("name", GROUPS["data"])
def test_every_data_config_loads(name: str, tmp_path) -> None:
    extra = []
    if name == "file":  # the one data set that needs a path: give it a small file of its kind
        np.savez(tmp_path / "d.npz", x=np.eye(4, 2), y=np.eye(4, 2))
        extra = [f"data.path={tmp_path / 'd.npz'}"]
    cfg = compose_train([f"data={name}", *extra])
    kwargs = OmegaConf.to_container(cfg.data)
    assert isinstance(kwargs, dict) and kwargs.pop("name") == name
    assert load_dataset(name, seed=cfg.seed, **kwargs).name == name


@pytest.mark.parametrize("name", GROUPS["optimizer"])
def test_every_optimizer_config(name: str) -> None:
    cfg = compose_train([f"optimizer={name}"])
    assert cfg.optimizer.name == name
    assert isinstance(cfg.optimizer.lr, float) and cfg.optimizer.lr > 0


@pytest.mark.parametrize("name", GROUPS["experiment"])
def test_every_preset_fits_its_data(name: str) -> None:
    cfg = compose_train([f"experiment={name}"])
    assert "experiment" not in cfg
    data_kwargs = OmegaConf.to_container(cfg.data)
    assert isinstance(data_kwargs, dict)
    data = load_dataset(data_kwargs.pop("name"), **data_kwargs)
    validate_against_model(data, cfg.model.sizes[0], cfg.model.sizes[-1])
    assert cfg.batch_size is None or 1 <= cfg.batch_size <= data.n_train
    assert cfg.epochs >= 1 and cfg.log_every >= 1


@pytest.mark.parametrize("name", GROUPS["experiment"])
def test_presets_hold_overrides_only(name: str) -> None:
    text = (CONF / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    assert "hydra:" not in text


def test_note003_has_the_notes_weights() -> None:
    cfg = compose_train(["experiment=note003"])
    assert cfg.data.name == "note003"
    assert cfg.model.sizes == [2, 2, 2]
    assert (cfg.model.activation, cfg.model.output_activation) == ("sigmoid", "sigmoid")
    assert cfg.model.bias_column == "first"
    assert OmegaConf.to_container(cfg.model.weights) == [
        [[0.1, -0.2, 0.3], [-0.4, 0.5, -0.6]],
        [[0.15, -0.25, 0.35], [-0.45, 0.55, -0.65]],
    ]
    assert (cfg.loss, cfg.optimizer.name, cfg.optimizer.lr, cfg.batch_size) == ("half_sse", "sgd", 0.1, 1)


def test_note004_has_the_notes_weights() -> None:
    cfg = compose_train(["experiment=note004"])
    assert cfg.data.name == "swap"
    assert cfg.model.sizes == [2, 4, 3, 2] and cfg.model.bias is False and cfg.model.bias_column is None
    assert OmegaConf.to_container(cfg.model.weights) == [
        [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]],
        [[0.25, 0.30, 0.35, 0.40], [0.45, 0.50, 0.55, 0.60], [0.65, 0.70, 0.75, 0.80]],
        [[0.3, 0.4, 0.5], [0.6, 0.7, 0.8]],
    ]
    assert (cfg.loss, cfg.optimizer.name, cfg.optimizer.lr) == ("half_sse", "sgd", 0.5)


@pytest.mark.parametrize("name", ["note003", "note004"])
def test_note_weights_match_sizes(name: str) -> None:
    cfg = compose_train([f"experiment={name}"])
    extra = 0 if cfg.model.bias_column is None else 1
    for layer, w in enumerate(cfg.model.weights):
        assert len(w) == cfg.model.sizes[layer + 1]
        assert all(len(row) == cfg.model.sizes[layer] + extra for row in w)


def test_note002() -> None:
    cfg = compose_train(["experiment=note002"])
    assert cfg.model.sizes == [2, 4, 3, 2] and cfg.model.bias is True
    assert (cfg.model.init, cfg.loss, cfg.model.weights) == ("uniform3", "sse", None)


def test_sweep_style_overrides_apply() -> None:
    cfg = compose_train(["model.activation=relu", "optimizer.lr=0.01", "model.sizes=[64,32,10]", "seed=3"])
    assert cfg.model.activation == "relu"
    assert cfg.optimizer.lr == 0.01
    assert cfg.model.sizes == [64, 32, 10]
    assert cfg.seed == 3


def test_overrides_apply_on_top_of_a_preset() -> None:
    cfg = compose_train(["experiment=moons", "optimizer=sgd", "optimizer.lr=0.3", "model.activation=relu"])
    assert (cfg.data.name, cfg.optimizer.name, cfg.optimizer.lr, cfg.model.activation) == (
        "moons",
        "sgd",
        0.3,
        "relu",
    )


def test_unknown_key_is_rejected() -> None:
    with pytest.raises(Exception, match="lr_typo"):
        compose_train(["optimizer.lr_typo=0.1"])


@pytest.mark.parametrize(("launcher", "target"), [("parallel", "JoblibLauncher"), ("slurm", "SlurmLauncher")])
def test_launchers_compose(launcher: str, target: str) -> None:
    cfg = compose_train([f"hydra/launcher={launcher}"], hydra=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    assert cfg.hydra.runtime.choices["hydra/launcher"] == launcher


def test_parallel_launcher_is_bounded() -> None:
    cfg = compose_train(["hydra/launcher=parallel"], hydra=True)
    assert cfg.hydra.launcher.n_jobs == 2


def test_slurm_launcher_fields() -> None:
    cfg = compose_train(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"], hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher.partition == "gpu"
    assert launcher.timeout_min > 0 and launcher.cpus_per_task >= 1 and launcher.array_parallelism >= 1


def test_run_and_sweep_dirs() -> None:
    cfg = compose_train(hydra=True)
    raw = OmegaConf.to_container(cfg.hydra, resolve=False)
    assert isinstance(raw, dict)
    assert raw["run"]["dir"] == "outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}"
    assert raw["sweep"] == {"dir": "multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}", "subdir": "${hydra.job.num}"}
    assert raw["job"]["chdir"] is False


def test_jax_cache_dir_default_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache goes under the user's cache directory (the XDG base directory rule), never into
    the launch directory, unless BACKPROP_LAB_CACHE or the key names another."""
    monkeypatch.delenv("BACKPROP_LAB_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert compose_train().jax_cache_dir == "~/.cache/backprop-lab/jax"
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg/cache")
    assert compose_train().jax_cache_dir == "/xdg/cache/backprop-lab/jax"
    assert compose_train(config="compare").jax_cache_dir == "/xdg/cache/backprop-lab/jax"
    monkeypatch.setenv("BACKPROP_LAB_CACHE", "/somewhere/else")
    assert compose_train().jax_cache_dir == "/somewhere/else"
    assert compose_train(["jax_cache_dir=null"]).jax_cache_dir is None


def test_compare_config() -> None:
    cfg = compose_train(config="compare")
    assert cfg.dtype == "float64" and cfg.batch == 16
    assert cfg.data.name == "digits" and cfg.model.sizes is None and cfg.model.hidden is None
    assert compose_train(["experiment=note003"], config="compare").model.bias_column == "first"
    assert compose_train(["hydra/launcher=parallel"], config="compare", hydra=True).hydra.launcher.n_jobs == 2


@pytest.mark.slow
@pytest.mark.parametrize("init", [None, "glorot", "he", "lecun", "uniform3"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_runs_initial_network_is_the_op_by_op_one(init: str | None, dtype: str) -> None:
    """A run draws its initial network and minibatch-order key as one compiled program: the
    same numbers, to the bit, as ``MLP(...)`` and ``jax.random`` called op by op."""
    import jax

    from backprop_lab import MLP
    from backprop_lab.runs._config import DTYPES
    from backprop_lab.runs._model import _build_model

    for seed in (0, 7, 2**32 - 1):
        for sizes, act, bias in [((64, 30, 10), "relu", True), ((3, 5, 4, 2), "sigmoid", False)]:
            model_cfg = {"activation": act, "output_activation": "softmax", "bias": bias, "init": init}
            model, order_key = _build_model(model_cfg, sizes, seed, DTYPES[dtype])
            init_key, order_ref = jax.random.split(jax.random.PRNGKey(seed))
            ref = MLP(sizes, act, "softmax", bias, key=init_key, init=init, dtype=DTYPES[dtype])
            assert jax.tree.structure(model) == jax.tree.structure(ref)
            for mine, theirs in zip(jax.tree.leaves((model, order_key)), jax.tree.leaves((ref, order_ref))):
                assert mine.dtype == theirs.dtype
                np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))
