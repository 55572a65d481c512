"""Optuna sweeps (hydra/sweeper=optuna) through the real CLI under the basic and the vmap
launcher: the best value Optuna records is the best trial's summary metric, and a trial
refused for its config returns the worst value without stopping the sweep."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from backprop_lab.apps._hydra import job_objective
from backprop_lab.config._objective import METRICS, WORST, objective

ROOT = Path(__file__).resolve().parents[2]
CONF = str(ROOT / "conf")
TRAIN = ROOT / "experiments" / "train.py"
TINY = (
    "data=moons",
    "model.sizes=[2,8,2]",
    "epochs=3",
    "batch_size=50",
    "log_every=1",
    "hydra.sweeper.n_jobs=2",
)


@pytest.fixture(autouse=True)
def _clear_hydra():
    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None  # type: ignore[assignment]


def _sweep(sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [
            sys.executable,
            str(TRAIN),
            "-m",
            "hydra/sweeper=optuna",
            f"hydra.sweep.dir={sweep_dir}",
            *TINY,
            *overrides,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _jobs(sweep_dir: Path) -> list[tuple[dict, dict]]:
    """(overrides as a dict, summary) of every job directory; a job refused for its config
    has no .hydra/ (nothing ran), so no overrides."""
    jobs = []
    for summary in sorted(sweep_dir.glob("*/summary.json")):
        path = summary.parent / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(path.read_text()) if path.exists() else []
        jobs.append((dict(o.split("=", 1) for o in overrides), json.loads(summary.read_text())))
    return jobs


#: The sweep of each launcher: its launcher, its direction and the metric it optimizes. Each
#: direction under one launcher: a direction the sweep ignored would make the refused trial's
#: worst value the best one in one of the two.
STUDIES = {
    "basic": ([], "minimize", "final_test_loss"),
    "vmap": (["hydra/launcher=vmap"], "maximize", "test_accuracy"),
}
#: a grid of four learning rates, two trials per batch; the config refuses lr=-1.0
RATES = ("0.001", "0.03", "0.3", "-1.0")


@pytest.fixture(
    scope="module",
    params=[pytest.param(name, marks=pytest.mark.xdist_group(f"optuna-{name}")) for name in STUDIES],
)
def study(request, tmp_path_factory) -> dict:
    """One Optuna sweep per launcher, its trials stored in SQLite; the tests of a launcher
    share it (one xdist group each)."""
    launcher, direction, metric = STUDIES[request.param]
    tmp = tmp_path_factory.mktemp(f"optuna-{request.param}")
    sweep, db = tmp / "sweep", f"sqlite:///{tmp / 'study.db'}"
    proc = _sweep(
        sweep,
        *launcher,
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.n_trials=4",
        f"optimized_metric={metric}",
        f"hydra.sweeper.direction={direction}",
        f"hydra.sweeper.storage={db}",
        "hydra.sweeper.study_name=t",
        f"optimizer.lr=choice({','.join(RATES)})",
    )
    return {
        "launcher": request.param,
        "direction": direction,
        "metric": metric,
        "sweep": sweep,
        "db": db,
        "log": proc.stdout + proc.stderr,
    }


@pytest.mark.slow
def test_best_value_is_the_best_trials_summary_metric(study):
    """Four trials over the grid, two per batch; the refused one counts as the worst."""
    sweep, metric = study["sweep"], study["metric"]
    jobs = _jobs(sweep)
    assert len(jobs) == 4
    worst = math.inf if study["direction"] == "minimize" else -math.inf
    values = [s[metric] if s["status"] == "completed" else worst for _, s in jobs]
    best = (min if study["direction"] == "minimize" else max)(values)
    assert best not in (math.inf, -math.inf)
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(best, rel=1e-12)
    # the best parameters are a best trial's (test accuracies may tie)
    assert results["best_params"]["optimizer.lr"] in [
        pytest.approx(float(o["optimizer.lr"])) for (o, _), v in zip(jobs, values) if v == best
    ]
    if study["launcher"] == "vmap":
        assert all(s["launcher"] == "vmap" for _, s in jobs if s["status"] == "completed")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Deprecated API features detected")  # optuna 2's SQLAlchemy 1.4 models
def test_a_refused_trial_scores_worst_and_the_sweep_finishes(study):
    """The trial with a learning rate the config refuses scores the worst value of the sweep's
    direction, and the others run."""
    import optuna

    sweep, metric = study["sweep"], study["metric"]
    jobs = _jobs(sweep)
    refused = [s for _, s in jobs if s["status"] == "config_error"]
    done = {float(o["optimizer.lr"]): s for o, s in jobs if s["status"] == "completed"}
    assert len(refused) == 1 and "optimizer.lr=-1.0" in refused[0]["error"]
    assert sorted(done) == sorted(float(r) for r in RATES if r != "-1.0")
    trials = {
        t.params["optimizer.lr"]: t for t in optuna.load_study(study_name="t", storage=study["db"]).trials
    }
    worst = math.inf if study["direction"] == "minimize" else -math.inf
    assert trials[-1.0].state.name == "COMPLETE" and trials[-1.0].value == worst
    for lr, summary in done.items():
        assert trials[lr].state.name == "COMPLETE"
        assert trials[lr].value == pytest.approx(summary[metric], rel=1e-12)
    # the sweep's log: Optuna's lines in Hydra's plain format, no database set-up, no TPU probe
    log = study["log"]
    assert "A new study created in RDB" in log  # Optuna's own line, kept
    assert "\x1b[" not in log and "setup plugin" not in log and "Unable to initialize backend" not in log
    if study["launcher"] == "vmap":  # a lane's log file holds its banner and epoch lines, not only its end
        job_logs = [p.parent / "train.log" for p in sweep.glob("*/checkpoint.eqx")]
        assert len(job_logs) == len(done)
        for job_log in job_logs:
            lines = job_log.read_text().splitlines()
            # its program's banner: one lane's, or the batch's two lanes'
            assert re.search(r" - training( 2 lanes as one program)?: data moons", lines[0]), lines[0]
            assert [line.split(" - ", 1)[1].split("  step")[0] for line in lines[1:4]] == [
                f"epoch {e}/3" for e in (1, 2, 3)
            ]


@pytest.mark.parametrize(
    ("summary", "direction", "expected"),
    [
        ({"status": "completed", "test_accuracy": 0.75}, "maximize", 0.75),
        ({"status": "stopped_early", "test_accuracy": 0.5}, "maximize", 0.5),
        ({"status": "completed", "test_accuracy": None}, "maximize", -math.inf),  # no classes
        ({"status": "diverged", "test_accuracy": 0.9}, "maximize", -math.inf),
        ({"status": "interrupted", "test_accuracy": 0.9}, "minimize", math.inf),
        ({"status": "config_error"}, "minimize", math.inf),
        (None, "maximize", -math.inf),  # a refused run directory
    ],
)
def test_objective_of_a_summary(summary, direction, expected):
    assert objective(summary, {"optimized_metric": "test_accuracy"}, direction) == expected


def test_objective_of_a_loss_and_of_no_metric():
    done = {"status": "completed", "final_train_loss": 0.25, "final_test_loss": float("nan")}
    assert objective(done, {"optimized_metric": "final_train_loss"}) == 0.25
    assert objective(done, {"optimized_metric": "final_test_loss"}) == math.inf  # its own direction
    assert objective(done, {"optimized_metric": None}) is None
    assert set(WORST) == set(METRICS.values())


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("hydra.sweeper.direction=maximize", -math.inf),
        ("hydra.sweeper.direction=[maximize]", -math.inf),
        ("hydra.sweeper.direction=minimize", math.inf),
    ],
)
def test_worst_value_follows_the_sweepers_direction(direction, expected):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hydra/sweeper=optuna", direction, "optimized_metric=final_test_loss"],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    assert job_objective({"status": "diverged"}, cfg) == expected


def test_digits_preset_searches_rate_and_width_for_accuracy():
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=["hparams_search=digits_optuna"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and str(sweeper.direction).endswith("maximize")
    assert cfg.optimized_metric == "test_accuracy" and cfg.data.name == "digits"
    assert set(sweeper.params) == {"optimizer.lr", "model.sizes"} and "log" in sweeper.params["optimizer.lr"]
    assert sweeper.n_trials >= sweeper.n_jobs >= 2
