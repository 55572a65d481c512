"""The typed config schemas: the same configs as the YAML files alone, typed, and from the tables.

Every case composes the real ``conf/`` with Hydra's compose API, so the
schemas are found the way the apps find them (the ``hydra_plugins`` module).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from backprop_lab import DATASETS, OPTIMIZERS
from backprop_lab.apps._help import app_help
from backprop_lab.apps._schemas import NESTED, SCHEMAS
from backprop_lab.config import _data_keys, _optimizer_keys
from backprop_lab.config import _keys as _config_keys
from backprop_lab.trackers._registry import TRACKERS
from backprop_lab.training._early_stopping import EARLY_STOPPING_KEYS

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
APPS = ("train", "compare", "explain")
#: The defaults-list lines that name a schema (and the comment above them).
SCHEMA_LINE = re.compile(r"^ *(- (_schema_|schema/)|# The keys' types).*\n", re.M)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_config(conf: Path, app: str, overrides=()) -> dict:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(app, overrides=list(overrides))
    return OmegaConf.to_container(cfg)


def typed(value):
    """A config as comparable data, each leaf with its type, key order apart."""
    if isinstance(value, dict):
        return sorted((k, typed(v)) for k, v in value.items())
    if isinstance(value, list):
        return [typed(v) for v in value]
    return type(value).__name__, value


@pytest.fixture(scope="module")
def untyped_conf(tmp_path_factory) -> Path:
    """conf/ with no schema in the defaults lists: the configs as the YAML files alone make them."""
    conf = tmp_path_factory.mktemp("conf") / "conf"
    shutil.copytree(CONF, conf)
    for app in APPS:
        path = conf / f"{app}.yaml"
        text, n = SCHEMA_LINE.subn("", path.read_text())
        assert n, f"{app}.yaml names no schema"
        path.write_text(text)
    return conf


#: Every option of every group under train; compare and explain (the same group schemas)
#: with each preset, which switches data and optimizer.
CASES = (
    [(app, ()) for app in APPS]
    + [
        ("train", (f"{group}={option}",))
        for group in ("data", "optimizer", "logger")
        for option in options(group)
    ]
    + [(app, (f"experiment={option}",)) for app in APPS for option in options("experiment")]
    + [("train", ("hparams_search=digits_optuna",)), ("train", ("data=file", "data.path=my.csv"))]
)


@pytest.mark.parametrize(("app", "overrides"), CASES, ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_the_schemas_change_no_value_and_no_type(untyped_conf, app, overrides):
    assert typed(compose_config(CONF, app, overrides)) == typed(compose_config(untyped_conf, app, overrides))


@pytest.mark.parametrize(
    ("app", "overrides", "key", "words"),
    [
        ("train", ["model.bias=maybe"], "model.bias", "not a valid bool"),
        ("train", ["model.sizes=[2,x,2]"], "model.sizes[1]", "converted to Integer"),
        ("train", ["optimizer.b1=abc"], "optimizer.b1", "converted to Float"),
        ("train", ["optimizer=sgd", "optimizer.lr=fast"], "optimizer.lr", "converted to Float"),
        ("train", ["optimizer=momentum", "optimizer.nesterov=abc"], "optimizer.nesterov", "not a valid bool"),
        ("train", ["optimizer=sgd", "optimizer.b1=0.9"], "optimizer.b1", "not in 'SgdConfig'"),
        ("train", ["data=moons", "data.n_samples=many"], "data.n_samples", "converted to Integer"),
        ("train", ["logger=csv", "logger.csv.dir=[a,b]"], "logger.csv.dir", "str"),
        ("train", ["logger=[csv,mlflow]", "logger.mlflow.timeout=soon"], "logger.mlflow.timeout", "Float"),
        ("train", ["epochs=abc"], "epochs", "converted to Integer"),
        ("train", ["batch_size=all"], "batch_size", "converted to Integer"),
        ("train", ["divergence_factor=big"], "divergence_factor", "converted to Float"),
        ("train", ["early_stopping.patience=abc"], "early_stopping.patience", "converted to Integer"),
        ("train", ["distributed.num_processes=two"], "distributed.num_processes", "converted to Integer"),
        ("train", ["~early_stopping.patience"], "early_stopping.patience", "does not support deletion"),
        ("compare", ["model.bias=maybe"], "model.bias", "not a valid bool"),
        ("explain", ["optimizer.lr=abc"], "optimizer.lr", "converted to Float"),
    ],
)
def test_a_value_of_the_wrong_type_stops_the_composition_naming_key_and_type(app, overrides, key, words):
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(CONF, app, overrides)
    message = f"{info.value}\n{info.value.__cause__}"
    assert f"full_key: {key}\n" in message + "\n" and words in message, message


def fields(cls) -> dict:
    return {f.name: f.type for f in dataclasses.fields(cls)}


def kinds(table) -> dict:
    return {key: check.kind for key, check in table.items()}


def test_each_schema_has_the_keys_and_types_of_its_table():
    assert fields(SCHEMAS["model"]["mlp"]) == kinds(_config_keys.MODEL_KEYS)
    assert set(SCHEMAS["optimizer"]) == set(OPTIMIZERS)
    for name, optimizer in OPTIMIZERS.items():
        assert fields(SCHEMAS["optimizer"][name]) == kinds(
            {**_optimizer_keys.OPTIMIZER_KEYS, **optimizer.settings}
        )
    assert set(SCHEMAS["data"]) == set(DATASETS)
    for name, spec in DATASETS.items():
        own = fields(SCHEMAS["data"][name])
        assert own.pop("name") is str and set(own) == set(spec.defaults), name
        assert all(kind == _data_keys.DATA_OPTIONS[key].kind | None for key, kind in own.items())
    assert set(SCHEMAS["logger"]) == set(TRACKERS) - {"none"}  # none has no keys
    for name in SCHEMAS["logger"]:
        assert fields(SCHEMAS["logger"][name]) == kinds(TRACKERS[name].SETTINGS), name
    top = fields(SCHEMAS[None]["train"])
    assert set(top) == set(_config_keys.TRAIN_KEYS) | set(_config_keys.GROUPS)
    assert {k: top[k] for k in _config_keys.TRAIN_KEYS} == kinds(_config_keys.TRAIN_KEYS)
    assert fields(top["early_stopping"]) == kinds(EARLY_STOPPING_KEYS)
    assert fields(top["distributed"]) == kinds(_config_keys.DISTRIBUTED_KEYS)
    assert set(NESTED) < set(_config_keys.GROUPS)


def test_every_option_in_conf_has_a_schema_and_every_app_names_them():
    for group in ("data", "model", "optimizer"):
        assert options(group) == sorted(SCHEMAS[group]), group
    for option in SCHEMAS["logger"]:  # each logger's file types its own keys
        text = (CONF / "logger" / f"{option}.yaml").read_text()
        assert f"- /schema/logger@{option}: {option}\n" in text, option
    assert options("logger") == sorted([*SCHEMAS["logger"], "none"])
    for app in APPS:
        text = (CONF / f"{app}.yaml").read_text()
        for group in ("data", "model", "optimizer"):
            assert f"- schema/{group}@{group}: ${{oc.select:{group},_none}}" in text, (app, group)
    assert "- _schema_train\n" in (CONF / "train.yaml").read_text()


def test_help_shows_each_keys_type():
    text = app_help("train", CONF)
    for line in (
        "epochs: 40",
        "batch_size: 32",
        "  lr: 0.001",
        "  sizes: null",
        "  hidden: null",
        "  patience: 5",
    ):
        assert re.search(rf"^{re.escape(line)} +# \S", text, re.M), line
    assert re.search(r"^devices: null +# int or null$", text, re.M)


def test_the_schemas_import_no_jax_or_numpy():
    code = (
        "import sys, backprop_lab.apps._schemas as s; s.register(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'jaxlib', 'numpy', 'optax'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("launcher", ["basic", "vmap"])
def test_a_sweep_with_one_job_of_the_wrong_type_runs_no_job(tmp_path, launcher):
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "train.py"),
            "-m",
            f"hydra/launcher={launcher}",
            f"hydra.sweep.dir={sweep}",
            "epochs=1",
            "optimizer.lr=0.1,0.01",
            "model.bias=true,maybe",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "model.bias=maybe" in result.stderr and "not a valid bool" in result.stderr
    assert [p.name for p in sweep.iterdir() if p.is_dir()] == []  # no job began
