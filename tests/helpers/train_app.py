"""The training app as the tests drive it: loaded from experiments/train.py, configs composed
from the repository's conf/, and run as a process."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[2]
CONF = str(ROOT / "conf")
TRAIN = ROOT / "experiments" / "train.py"


def _load_app():
    spec = importlib.util.spec_from_file_location("train_app", TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


app = _load_app()


def cfg_of(*overrides: str):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=["jax_cache_dir=null", *overrides])


TINY = ("data=moons", "model.sizes=[2,8,2]", "epochs=3", "batch_size=50", "log_every=1")
#: Long enough to stop mid-run at a moment its records mark: 30 epochs of 168 steps, a record each.
#: The tests signal it once its first records are written (epoch 2 or so); the epochs left are
#: the runway in which the signal must arrive: about 10 ms an epoch on a quiet machine, so the
#: whole run is a fraction of a second of training, and fewer epochs would leave a loaded
#: machine's scheduling delays room to let the run finish first.
SLOW_EPOCHS = 30
SLOW = ("data=digits", "model.sizes=[64,32,10]", f"epochs={SLOW_EPOCHS}", "batch_size=8", "log_every=1")


def trained_run(tmp_path_factory, *overrides: str) -> Path:
    """A run of ``overrides`` trained once into a fresh directory (a module fixture's run)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    app.train(cfg_of(*overrides), out_dir=run)
    return run


def moved_run(run: Path, tmp_path: Path) -> Path:
    """``run`` copied into ``tmp_path``: the same run (its mark comes along) in a directory of its
    own, its files keeping their modes."""
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def run_cli(tmp_path: Path, *overrides: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(TRAIN), f"hydra.run.dir={tmp_path}", *overrides],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )
