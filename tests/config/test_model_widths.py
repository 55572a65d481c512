"""model.hidden: the first and last widths come from the data; model.sizes still gives them all;
both given must agree. The expected widths are the data sets' own (features, classes)."""

from __future__ import annotations

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from backprop_lab import load_dataset
from backprop_lab.apps import CONF_DIR
from backprop_lab.config._checks import ConfigError
from backprop_lab.runs._config import plain_config
from backprop_lab.runs._experiment import build_experiment
from backprop_lab.runs._model import model_sizes


def _cfg(*overrides: str) -> dict:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["jax_cache_dir=null", *overrides])
    return plain_config(cfg)


@pytest.mark.parametrize(
    ("data", "hidden"), [("digits", [16, 16]), ("moons", [8]), ("xor", []), ("swap", [3, 5, 7])]
)
def test_hidden_widths_take_the_first_and_last_from_the_data(data: str, hidden: list[int]) -> None:
    ds = load_dataset(data)
    expected = (ds.in_width, *hidden, ds.out_width)
    loss = ["loss=mse", "model.output_activation=sigmoid"] if data in ("xor", "swap") else []
    cfg = _cfg(f"data={data}", f"model.hidden={hidden}", *loss)
    assert model_sizes(cfg) == expected
    exp = build_experiment(cfg)
    assert exp.model.sizes == expected and exp.config["model"]["sizes"] == list(expected)


def test_neither_key_gives_one_hidden_layer_of_128() -> None:
    assert model_sizes(_cfg()) == (64, 128, 10)
    assert model_sizes(_cfg("data=moons")) == (2, 128, 2)


def test_sizes_alone_and_both_alike_still_work() -> None:
    assert model_sizes(_cfg("data=moons", "model.sizes=[2,4,2]")) == (2, 4, 2)
    assert model_sizes(_cfg("data=moons", "model.sizes=[2,4,2]", "model.hidden=[4]")) == (2, 4, 2)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.sizes=[64,32,10]", "model.hidden=[16,16]"],
            r"^model.hidden=\[16, 16\] is invalid: model.sizes=\[64, 32, 10\] has the hidden widths \[32\]",
        ),
        (["model.hidden=[0]"], r"^model.hidden=\[0\] is invalid: expected null"),
        (
            ["data=moons", "model.sizes=[3,4,2]"],
            r"^model.sizes=\[3, 4, 2\] is invalid: data set 'moons' has input",
        ),
    ],
)
def test_widths_that_cannot_work_are_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        build_experiment(_cfg(*overrides))
    assert "\n" not in str(info.value)


def test_random_compare_data_needs_sizes() -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("compare", overrides=["jax_cache_dir=null", "data.name=random", "model.hidden=[4]"])
    with pytest.raises(ConfigError, match="data.name=random has no widths of its own; give model.sizes"):
        model_sizes(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    assert np.prod(model_sizes(_cfg("data=moons", "model.hidden=[5]"))) == 2 * 5 * 2
