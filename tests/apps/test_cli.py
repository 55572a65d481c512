"""The ``backprop-lab`` console command: help without JAX, a run from another directory,
evaluate, one-line errors, the names its help lists, and a wheel that carries the configs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from backprop_lab.apps import CONF_DIR
from backprop_lab.apps._compose import one_line
from backprop_lab.config import _names

ROOT = Path(__file__).resolve().parents[2]
COMMAND = Path(sys.executable).parent / "backprop-lab"
TINY = [
    "data=xor",
    "model.sizes=[2,4,1]",
    "model.output_activation=sigmoid",
    "loss=binary_cross_entropy",
    "epochs=5",
    "log_every=5",
]


def cli(
    *args: str, cwd: Path, timeout: float = 300, python: list[str] | None = None
) -> subprocess.CompletedProcess:
    """Run the installed console script from ``cwd`` (outside the checkout)."""
    if not COMMAND.exists():
        pytest.fail(f"{COMMAND} is missing: install the project (pip install -e .) to get the command")
    return subprocess.run(
        [*(python or []), str(COMMAND), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )


def test_names_equal_the_tables() -> None:
    from backprop_lab import ACTIVATIONS, DATASETS, GRADS, INITS, LOSSES, OPTIMIZERS
    from backprop_lab.runs._config import DTYPES
    from backprop_lab.trackers._registry import TRACKERS
    from backprop_lab.training._early_stopping import MAXIMIZE
    from backprop_lab.training._optimizers import SCHEDULES

    assert _names.ACTIVATIONS == tuple(n for n, a in ACTIVATIONS.items() if not a.output_only)
    assert _names.OUTPUT_ONLY_ACTIVATIONS == tuple(n for n, a in ACTIVATIONS.items() if a.output_only)
    assert _names.LOSSES == {n: loss.requires for n, loss in LOSSES.items()}
    assert _names.OPTIMIZERS == tuple(OPTIMIZERS) and _names.SCHEDULES == tuple(SCHEDULES)
    assert _names.INITS == tuple(INITS) and _names.GRADS == tuple(GRADS)
    assert _names.DTYPES == tuple(DTYPES) and _names.DATASETS == tuple(DATASETS)
    assert _names.LOGGERS == tuple(TRACKERS) and _names.EARLY_STOPPING_METRICS == tuple(MAXIMIZE)


def test_the_apps_read_the_repositorys_configs() -> None:
    assert Path(CONF_DIR) == ROOT / "conf"
    assert (ROOT / "src" / "backprop_lab" / "conf").resolve() == ROOT / "conf"


def test_one_line_joins_hydras_option_lists() -> None:
    err = Exception(
        "In 'train': Could not find 'data/nope'\n\nAvailable options in 'data':\n\tand\n\txor\n"
        "Config search path:\n\tprovider=hydra, path=pkg://hydra.conf"
    )
    assert one_line(err) == "In 'train': Could not find 'data/nope'; Available options in 'data': and, xor"


@pytest.mark.parametrize("app", ["train", "compare", "explain"])
def test_app_help_lists_groups_keys_and_choices_without_jax_or_hydra(app: str, tmp_path: Path) -> None:
    result = cli(app, "--help", cwd=tmp_path, python=[sys.executable, "-X", "importtime"])
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert out.startswith(f"backprop-lab {app}: ")
    assert "model:          mlp*" in out and "optimizer:" in out and "experiment:" in out
    assert ", ".join(_names.ACTIVATIONS) in out and "binary_cross_entropy (needs sigmoid output)" in out
    assert ", ".join(_names.DATASETS) in out
    assert "\nseed: 0" in out and "  hidden: null" in out and "  sizes: " in out  # the keys, from the files
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line
    }
    assert "yaml" in imported and not imported & {"jax", "jaxlib", "hydra", "omegaconf", "numpy"}


def test_help_with_overrides_shows_the_composed_config(tmp_path: Path) -> None:
    result = cli("train", "experiment=xor", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "composed with the overrides" in result.stdout and "name: xor" in result.stdout
    bad = cli("train", "model.activaton=tanh", "--help", cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, text",
    [
        (["--help"], "usage: backprop-lab COMMAND"),
        (["evaluate", "--help"], "usage: backprop-lab evaluate"),
        (["summarize", "--help"], "sweep_dir"),
    ],
)
def test_command_and_tool_help(args: list[str], text: str, tmp_path: Path) -> None:
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert text in result.stdout


def test_bench_is_not_in_the_package(tmp_path: Path) -> None:
    """The benchmarks stay in the repository (scripts/bench); the command says so in one line."""
    result = cli("bench", "--quick", cwd=tmp_path)
    assert result.returncode == 2 and not result.stdout and not list(tmp_path.iterdir())
    assert result.stderr.strip().splitlines() == [
        "backprop-lab bench: the benchmarks are run by scripts/bench in a checkout"
    ]
    assert " bench " not in cli("--help", cwd=tmp_path).stdout


def test_unknown_command_and_bad_overrides_are_one_line_and_status_2(tmp_path: Path) -> None:
    unknown = cli("trian", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown command 'trian'" in unknown.stderr
    for args, says in (
        (["train", "model.activaton=tanh"], "Could not override 'model.activaton'"),
        (["train", "data=nope"], "Available options in 'data': and, circles"),
        (["train", "-m", "data=xor,nope", "model.sizes=[2,4,1]"], "Could not find 'data/nope'"),
        (["compare", "model.sizes=[2,"], "model.sizes=[2,"),
        (["train", "--cfg", "nope"], "argument --cfg/-c: invalid choice: 'nope'"),  # Hydra: its usage
        (["explain", "epochs=1", "--bogus"], "unrecognized arguments: --bogus"),
    ):
        result = cli(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"backprop-lab {args[0]}: ") and says in lines[0], (
            lines
        )
        assert "Traceback" not in result.stderr and not list(tmp_path.iterdir())  # nothing ran


def test_flags_after_overrides_read_as_flags_first(tmp_path: Path) -> None:
    """Hydra's parser takes the overrides as one run of words (``seed=1 -m lr=...`` is its usage
    message): the words are read as Hydra reads them with the flags first."""
    from backprop_lab.apps._compose import UsageError, check_app_overrides, flags_first, hydra_args
    from backprop_lab.compat._hydra import args_parser

    words = ["seed=1", "-m", "optimizer.lr=0.1,0.2", "--cfg", "job", "epochs=2"]
    first = ["-m", "--cfg", "job", "seed=1", "optimizer.lr=0.1,0.2", "epochs=2"]
    assert flags_first(words) == first
    assert vars(hydra_args(words)) == vars(args_parser().parse_args(first))
    check_app_overrides("train", words[:3])
    with pytest.raises(UsageError, match="Could not override 'optimizer.lrr'"):  # after -m: composed
        check_app_overrides("train", ["seed=1", "-m", "optimizer.lrr=0.1,0.2"])
    shown = cli("train", "seed=7", "--cfg", "job", "epochs=3", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "\nseed: 7\n" in shown.stdout and "\nepochs: 3\n" in shown.stdout


@pytest.mark.slow
def test_train_from_another_directory_then_evaluate(tmp_path: Path, capsys) -> None:
    """The console script trains from outside the checkout and its evaluate reads that run, each
    a process of its own; evaluate's table and its one-line refusals are the same ``main`` called
    here (each process would start JAX again for them)."""
    from backprop_lab.apps.cli import main

    run = tmp_path / "run"
    result = cli("train", *TINY, f"hydra.run.dir={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 5

    measured = cli("evaluate", str(run), "--json", cwd=tmp_path)
    assert measured.returncode == 0, measured.stderr[-3000:]
    values = json.loads(measured.stdout)
    assert values["data"] == "xor" and values["step"] == 5 and values["n_test"] == 4
    assert values["test_loss"] == pytest.approx(summary["final_test_loss"], rel=1e-5)
    assert values["test_accuracy"] == summary["test_accuracy"]

    capsys.readouterr()
    assert main(["evaluate", str(run), "data=and"]) == 0
    table = capsys.readouterr().out
    assert "data and" in table and table.splitlines()[-1].split()[0] == "test"

    for args, says in (
        ([str(run), "data=moons"], "sizes must start with 2 and end with 2"),
        ([str(run), "model.sizes=[2,2]"], "evaluate takes the data group only"),
        ([str(tmp_path / "nowhere")], "does not exist"),
    ):
        status = main(["evaluate", *args])
        lines = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(lines) == 1 and says in lines[0], lines


@pytest.mark.slow
def test_wheel_carries_the_configs_and_the_command(tmp_path: Path) -> None:
    # Built from a copy of the sources: pip builds in the tree, and a build/ left in the
    # checkout by an earlier build would lend the wheel its stale files.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "outputs", "multirun"),
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("backprop_lab-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    confs = {
        f"backprop_lab/conf/{p.relative_to(ROOT / 'conf').as_posix()}"
        for p in (ROOT / "conf").rglob("*.yaml")
    }
    assert confs <= names and "backprop_lab/py.typed" in names
    assert {
        "backprop_lab/apps/train.py",
        "backprop_lab/apps/cli.py",
        "hydra_plugins/backprop_lab_vmap_launcher/vmap_launcher.py",
    } <= names
    assert "backprop-lab = backprop_lab.apps.cli:console" in entry_points
    assert not [n for n in names if n.split("/")[0] in ("benchmarks", "backprop_lab_bench")]  # beside it

    # The wheel's package, not the checkout's, from a directory outside it.
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    code = (
        "import sys, backprop_lab.apps as a; from backprop_lab.apps.cli import main; "
        "print(a.CONF_DIR); sys.exit(main(['train', '--cfg', 'job', 'data=xor']))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert shown.stdout.splitlines()[0] == str(target / "backprop_lab" / "conf")
    assert "name: xor" in shown.stdout


def test_a_sweep_too_large_to_list_is_refused_before_it_is_listed(tmp_path: Path, capsys) -> None:
    """Checked from the command line (backprop-lab) and in the apps' callback (experiments/*.py,
    whose overrides go to Hydra unchecked): one line, exit status 2, no sweep directory."""
    from backprop_lab.apps._compose import UsageError, check_app_overrides, compose
    from backprop_lab.apps.callbacks import RunDirCallback

    sweep = tmp_path / "sweep"
    argv = ["seed=range(0,1000)", "optimizer.lr=range(0,101)", f"hydra.sweep.dir={sweep}"]
    with pytest.raises(UsageError, match=r"^a sweep of 101,000 jobs \(seed=range\(0,1000\): 1,000 values"):
        check_app_overrides("train", ["-m", *argv])
    cfg = compose("compare", ["seed=range(0,200000000)", f"hydra.sweep.dir={sweep}"], multirun=True)
    with pytest.raises(SystemExit) as stopped:
        RunDirCallback().on_multirun_start(cfg)
    assert stopped.value.code == 2 and not sweep.exists()
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("backprop-lab compare: a sweep of 200,000,000 jobs"), line


def test_a_cache_directory_that_cannot_be_one_is_one_warning(tmp_path: Path, caplog) -> None:
    """jax_cache_dir where no directory can be (a file in the way, a path in /proc): one warning,
    once, and JAX's cache left as it was (JAX would warn in several lines per program)."""
    import jax
    from omegaconf import OmegaConf

    from backprop_lab.apps._jax_setup import setup_jax, usable_cache

    (tmp_path / "file").write_text("mine")
    before = jax.config.jax_compilation_cache_dir
    for bad in (str(tmp_path / "file"), "/proc/self/no-cache"):
        for _ in range(2):
            setup_jax(OmegaConf.create({"jax_cache_dir": bad}))
        (record,) = [r for r in caplog.records if bad in r.getMessage()]
        assert (
            record.levelname == "WARNING" and "compiling without the persistent cache" in record.getMessage()
        )
    assert jax.config.jax_compilation_cache_dir == before and (tmp_path / "file").read_text() == "mine"
    assert usable_cache(str(tmp_path / "new" / "cache")) and (tmp_path / "new" / "cache").is_dir()


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("hydra.launcher.n_jobs=0", r"expected 1 to \d+ jobs at a time"),
        ("hydra.launcher.n_jobs=100000", r"expected 1 to \d+ jobs at a time"),
        ("hydra.sweeper.max_batch_size=0", r"expected null \(every job in one batch\) or an integer >= 1"),
    ],
)
def test_a_sweep_its_launcher_or_sweeper_cannot_run_is_one_line(
    override: str, says: str, tmp_path: Path, capsys
) -> None:
    """n_jobs=0 (joblib's traceback), more workers than the machine holds (loky starts them all:
    the machine hangs) and a batch size of 0 (the basic sweeper's assertion), from the command
    line and in the callback, before anything starts."""
    from backprop_lab.apps._compose import UsageError, check_app_overrides, compose
    from backprop_lab.apps.callbacks import RunDirCallback

    sweep = tmp_path / "sweep"
    argv = ["hydra/launcher=parallel", override, "seed=0,1", f"hydra.sweep.dir={sweep}"]
    with pytest.raises(UsageError, match=f"^{re.escape(override)}: {says}"):
        check_app_overrides("train", ["-m", *argv])
    with pytest.raises(SystemExit) as stopped:
        RunDirCallback().on_multirun_start(compose("train", argv, multirun=True))
    (line,) = capsys.readouterr().err.splitlines()
    assert stopped.value.code == 2 and f"{override}:" in line and not sweep.exists()


@pytest.mark.parametrize(
    ("sweep", "jobs"),
    [(["seed=0,1,2"], 3), (["hydra/sweeper=optuna", "hydra.sweeper.n_trials=4"], 4)],
    ids=["basic", "optuna"],
)
def test_jobs_that_would_share_one_directory_are_refused_before_any_runs(
    sweep: list[str], jobs: int, tmp_path: Path, capsys
) -> None:
    """A ``hydra.sweep.subdir`` the same for every job: each job after the first was refused,
    one line apiece, after the first had run, and the sweep ended with status 0."""
    from backprop_lab.apps._compose import UsageError, check_app_overrides, compose
    from backprop_lab.apps.callbacks import RunDirCallback

    dirs = [f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    same = f"is the same for each of the {jobs} jobs, which would all write into one directory"
    with pytest.raises(UsageError, match=f"^hydra.sweep.subdir='same' {same}"):
        check_app_overrides("train", ["-m", *sweep, "hydra.sweep.subdir=same", *dirs])
    with pytest.raises(SystemExit) as stopped:
        RunDirCallback().on_multirun_start(compose("train", [*sweep, "hydra.sweep.subdir=", *dirs], True))
    assert stopped.value.code == 2 and same in capsys.readouterr().err
    for subdir in ("${seed}", "lr${optimizer.lr}", "${hydra.job.override_dirname}"):
        check_app_overrides("train", ["-m", *sweep, f"hydra.sweep.subdir={subdir}", *dirs])
    check_app_overrides("train", ["-m", "seed=0", "hydra.sweep.subdir=one", *dirs])  # one job
    assert not (tmp_path / "sweep").exists()


def test_a_signal_while_the_command_line_is_read_ends_the_app() -> None:
    """Ctrl-C while Hydra's parser is imported and run (the first second of every command) is the
    app's Interrupted, not a command line left to Hydra: swallowed, it left Hydra half imported and
    the app ended in a traceback. The signal comes as the overrides are read."""
    import signal

    from backprop_lab.apps.cli import check_app_overrides
    from backprop_lab.runs._signals import Interrupted, _stop

    class Argv:
        def __iter__(self):
            signal.raise_signal(signal.SIGINT)
            return iter([])

    before = signal.signal(signal.SIGINT, _stop)
    try:
        with pytest.raises(Interrupted) as stopped:
            check_app_overrides("train", Argv())  # type: ignore[arg-type]
    finally:
        signal.signal(signal.SIGINT, before)
    assert stopped.value.code == 128 + signal.SIGINT
