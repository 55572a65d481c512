"""Tests for the sweep summary: rows from fake multirun directories (planned jobs included),
seeds aggregated, tables, CSV, Markdown, plots, the script and the end-of-sweep callback."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from backprop_lab.apps._summarize import main, summarize
from backprop_lab.apps.callbacks import SummarizeCallback
from backprop_lab.plots._sweep import default_x, plot_grad_flow, plot_metric
from backprop_lab.summary._job import parse_overrides, read_job
from backprop_lab.summary._job_dirs import find_job_dirs
from backprop_lab.summary._plan import MAX_PLANNED, planned_jobs
from backprop_lab.summary._rows import NOT_STARTED, collect_rows
from backprop_lab.summary._stats import group_rows, replicate_note
from backprop_lab.summary._sweep_size import check_sweep_size
from backprop_lab.summary._table import format_groups, format_table, status_counts, write_csv

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "summarize"
PNG = b"\x89PNG\r\n\x1a\n"


def train_summary(loss: float | None = 0.1, status: str = "completed", acc: float | None = 0.9) -> dict:
    return {
        "kind": "train",
        "status": status,
        "steps": 100,
        "final_train_loss": loss,
        "final_test_loss": None if loss is None else loss * 1.5,
        "test_accuracy": acc,
        "samples_per_second": 12345.6,
        "wall_time": 1.25,
        "diverged_at_step": 42 if status == "diverged" else None,
        "grad_agreement": {
            "start": {"passed": True, "max_rel_error": 1e-7, "max_abs_error": 1e-9, "tolerance": 7.6e-6},
            "end": {
                "passed": status != "diverged",
                "max_rel_error": 2e-7,
                "max_abs_error": 3e-9,
                "tolerance": 7.6e-6,
                "min_cosine": 1.0,
            },
        },
    }


COMPARE = {
    "kind": "compare",
    "passed": True,
    "max_abs_error": 1e-12,
    "max_rel_error": 3e-10,
    "min_cosine": 1.0,
    "manual_time_ms": 0.5,
    "autodiff_time_ms": 0.6,
    "speedup": 1.2,
}


def make_job(
    root: Path, name: str, overrides: list[str], summary: dict | str | None, config: str | None = None
) -> Path:
    """A fake job directory; ``summary`` None leaves summary.json out, a str is written raw."""
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if config is not None:
        (job / ".hydra" / "config.yaml").write_text(config)
    if summary is not None:
        text = summary if isinstance(summary, str) else json.dumps(summary)
        (job / "summary.json").write_text(text)
    return job


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A sweep over activation x lr with one diverged, one missing and one corrupt job."""
    root = tmp_path / "multirun" / "2024-01-01" / "12-00-00"
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    jobs = [
        (["model.activation=tanh", "optimizer.lr=0.01"], train_summary(0.5)),
        (["model.activation=tanh", "optimizer.lr=0.1"], train_summary(0.05)),
        (["model.activation=tanh", "optimizer.lr=10"], train_summary(None, "diverged", None)),
        (["model.activation=relu", "optimizer.lr=0.01"], train_summary(0.4)),
        (["model.activation=relu", "optimizer.lr=0.1"], None),
        (["model.activation=relu", "optimizer.lr=10"], "{not json"),
    ]
    for i, (overrides, summary) in enumerate(jobs):
        make_job(root, str(i), overrides, summary)
    make_job(root, "10", ["model.activation=relu", "optimizer.lr=1.0"], train_summary(0.3))
    return root


def test_parse_overrides() -> None:
    assert parse_overrides(["a.b=1", "+c=[1,2]", "++d=x=y", "~e"]) == {
        "a.b": "1",
        "c": "[1,2]",
        "d": "x=y",
        "e": "",
    }


def test_find_job_dirs_numeric_order(sweep: Path) -> None:
    assert [p.name for p in find_job_dirs(sweep)] == ["0", "1", "2", "3", "4", "5", "10"]


def test_find_job_dirs_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a directory"):
        find_job_dirs(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no job directories"):
        find_job_dirs(tmp_path)


def test_rows_statuses_and_fields(sweep: Path) -> None:
    rows = collect_rows(sweep)
    assert [r["status"] for r in rows] == [
        "completed",
        "completed",
        "diverged",
        "completed",
        "missing",
        "corrupt",
        "completed",
    ]
    first = rows[0]
    assert first["job"] == "0" and first["kind"] == "train"
    assert first["overrides"] == "model.activation=tanh optimizer.lr=0.01"
    assert first["override:optimizer.lr"] == "0.01"
    assert (first["activation"], first["lr"]) == ("tanh", 0.01)
    assert first["final_train_loss"] == 0.5 and first["test_accuracy"] == 0.9
    assert first["grad_start_passed"] is True and first["grad_end_max_rel_error"] == 2e-7
    assert rows[2]["diverged_at_step"] == 42 and rows[2]["grad_end_passed"] is False
    assert rows[4]["kind"] is None and rows[4]["lr"] == 0.1
    assert "grad_agreement" not in first
    assert "final_train_loss" not in rows[5]


def test_the_gradient_checks_numbers_and_tolerances_are_columns(sweep: Path, tmp_path: Path) -> None:
    rows = collect_rows(sweep)
    assert (rows[0]["grad_end_tolerance"], rows[0]["grad_end_max_abs_error"]) == (7.6e-6, 3e-9)
    assert rows[0]["grad_end_min_cosine"] == 1.0 and rows[0]["grad_start_min_cosine"] is None
    header, _, first_job, *_ = format_table(rows).splitlines()
    assert header.split()[-6:] == ["grad", "ok", "grad", "rel", "err", "grad", "tol"][-6:]
    assert header.index("grad ok") < header.index("grad rel err") < header.index("grad tol")
    assert first_job.split()[-3:] == ["yes", "2.000e-07", "7.600e-06"]
    with open(write_csv(rows, tmp_path / "out.csv"), newline="") as f:
        first = next(csv.DictReader(f))
    assert float(first["grad_end_tolerance"]) == 7.6e-6 and float(first["grad_start_max_rel_error"]) == 1e-7


def test_only_the_jobs_own_summaries_count(sweep: Path) -> None:
    """MLflow's copy of a job's summary.json (an artifact, in a store inside the job or beside
    the sweep) is not a job."""
    for store in (sweep / "0" / "mlruns", sweep.parents[1] / "mlruns", sweep / "mlartifacts"):
        artifacts = store / "1" / "0123abcd" / "artifacts"
        artifacts.mkdir(parents=True)
        (artifacts / "summary.json").write_text((sweep / "0" / "summary.json").read_text())
    (sweep / "1" / "copy").mkdir()
    (sweep / "1" / "copy" / "summary.json").write_text((sweep / "1" / "summary.json").read_text())
    assert [p.name for p in find_job_dirs(sweep)] == ["0", "1", "2", "3", "4", "5", "10"]
    assert [p.name for p in find_job_dirs(sweep.parents[1])] == [p.name for p in find_job_dirs(sweep)]
    assert status_counts(collect_rows(sweep)) == "7 jobs: 4 completed, 1 corrupt, 1 diverged, 1 missing"


def test_activation_and_lr_from_config_when_not_overridden(tmp_path: Path) -> None:
    config = "model:\n  activation: sigmoid\noptimizer:\n  lr: 0.003\n"
    job = make_job(tmp_path, "0", ["seed=1"], train_summary(), config=config)
    row = read_job(job, tmp_path)
    assert (row["activation"], row["lr"]) == ("sigmoid", 0.003)


def test_extra_scalars_are_kept(tmp_path: Path) -> None:
    job = make_job(tmp_path, "0", [], {**train_summary(), "epochs": 7, "grad": "manual", "nested": {"a": 1}})
    row = read_job(job, tmp_path)
    assert (row["epochs"], row["grad"]) == (7, "manual") and "nested" not in row


def test_compare_rows(tmp_path: Path) -> None:
    make_job(tmp_path, "0", ["model.activation=relu"], COMPARE)
    make_job(tmp_path, "1", ["model.activation=gelu"], {**COMPARE, "passed": False})
    rows = collect_rows(tmp_path)
    assert [r["status"] for r in rows] == ["passed", "failed"]
    assert rows[0]["speedup"] == 1.2 and rows[0]["kind"] == "compare"
    table = format_table(rows)
    assert "speedup" in table and "max rel err" in table and "train loss" not in table


def test_single_run_directory(tmp_path: Path) -> None:
    run = make_job(tmp_path, "12-00-00", [], train_summary())
    rows = collect_rows(run)
    assert len(rows) == 1 and rows[0]["job"] == "12-00-00" and rows[0]["status"] == "completed"


def test_summary_json_that_is_not_an_object_is_corrupt(tmp_path: Path) -> None:
    make_job(tmp_path, "0", [], "[1, 2]")
    assert collect_rows(tmp_path)[0]["status"] == "corrupt"


def test_unreadable_hydra_files_do_not_stop_the_summary(tmp_path: Path) -> None:
    """A job whose .hydra files are not text or not YAML is summarized from what is left."""
    make_job(tmp_path, "0", ["optimizer.lr=0.1"], train_summary())
    bad = make_job(tmp_path, "1", ["optimizer.lr=0.2"], train_summary(), config="model: [unclosed\n")
    (bad / ".hydra" / "overrides.yaml").write_bytes(b"\xff\xfe- optimizer.lr=\x80\n")
    rows = collect_rows(tmp_path)
    assert [r["status"] for r in rows] == ["completed", "completed"]
    assert rows[0]["lr"] == 0.1 and rows[1]["lr"] is None and "override:optimizer.lr" not in rows[1]


def test_table(sweep: Path) -> None:
    table = format_table(collect_rows(sweep))
    lines = table.splitlines()
    assert len(lines) == 2 + 7
    assert lines[0].split()[:3] == ["job", "overrides", "status"]
    for word in ("missing", "corrupt", "diverged", "0.05", "train loss", "test acc", "time s"):
        assert word in table
    assert "speedup" not in table
    assert format_table([]) == "(no jobs)"


def test_table_lists_common_overrides_once(tmp_path: Path) -> None:
    for i, lr in enumerate(["0.1", "1"]):
        make_job(tmp_path, str(i), ["optimizer=sgd", f"optimizer.lr={lr}", "epochs=5"], train_summary())
    lines = format_table(collect_rows(tmp_path)).splitlines()
    assert lines[0] == "same in every job: optimizer=sgd epochs=5"
    assert lines[3].split()[:3] == ["0", "optimizer.lr=0.1", "completed"]
    single = format_table(collect_rows(tmp_path / "0")).splitlines()
    assert "optimizer=sgd optimizer.lr=0.1 epochs=5" in single[2]


def test_csv(sweep: Path, tmp_path: Path) -> None:
    path = write_csv(collect_rows(sweep), tmp_path / "out.csv")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7
    assert rows[1]["final_train_loss"] == "0.05" and rows[4]["status"] == "missing"
    assert rows[4]["final_train_loss"] == ""
    assert rows[0]["override:model.activation"] == "tanh"


def test_plot(sweep: Path, tmp_path: Path) -> None:
    rows = collect_rows(sweep)
    assert default_x(rows) == "optimizer.lr"
    path = plot_metric(rows, tmp_path / "plot.png")
    assert path is not None and path.read_bytes()[:8] == PNG
    named = plot_metric(rows, tmp_path / "acc.png", x="model.activation", y="test_accuracy")
    assert named is not None and named.read_bytes()[:8] == PNG


def test_plot_needs_a_swept_key(tmp_path: Path) -> None:
    for seed in (0, 1):
        make_job(tmp_path, str(seed), [f"seed={seed}"], train_summary())
    rows = collect_rows(tmp_path)
    assert default_x(rows) is None
    assert plot_metric(rows, tmp_path / "plot.png") is None
    assert plot_metric(rows, tmp_path / "plot.png", x="model.activation") is None
    assert not (tmp_path / "plot.png").exists()


@pytest.mark.slow
def test_script_writes_csv_and_plot(sweep: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(sweep)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stderr
    assert "missing" in result.stdout and "corrupt" in result.stdout
    assert "7 jobs:" in result.stdout
    assert (sweep / "summary.csv").exists() and (sweep / "summary.png").exists()


@pytest.mark.slow
def test_script_reports_bad_directory(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "nope")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "not a directory" in result.stderr


# --- planned jobs, seeds, Markdown, plots, callback ---------------------------------------

BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
TASK = ["model.activation=tanh,relu", "optimizer.lr=0.01,0.1", "seed=0,1,2", "epochs=5"]
KILLED = {4, 8}  # planned jobs without a directory
DIVERGED = 9


def hydras_plan(task: list[str]) -> list[list[str]]:
    """The jobs Hydra's own basic sweeper makes of these overrides."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(task), None)[0]


def write_multirun(root: Path, task: list[str], sweeper: str = BASIC) -> None:
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "hydra": {
            "sweeper": {"_target_": sweeper, "max_batch_size": None, "params": None},
            "overrides": {"hydra": ["hydra.mode=MULTIRUN"], "task": task},
        }
    }
    (root / "multirun.yaml").write_text(yaml.safe_dump(config))


def seed_loss(number: int) -> float:
    return 0.1 + 0.05 * number + 0.01 * number**2 % 0.07


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    """activation x lr x 3 seeds as Hydra plans it; job 9 diverged, jobs 4 and 8 never started,
    each finished job with metrics.jsonl holding grad_norms."""
    root = tmp_path / "seeded"
    write_multirun(root, TASK)
    for number, overrides in enumerate(hydras_plan(TASK)):
        if number in KILLED:
            continue
        summary = (
            train_summary(None, "diverged", None)
            if number == DIVERGED
            else train_summary(seed_loss(number), acc=1 - seed_loss(number))
        )
        job = make_job(root, str(number), overrides, summary)
        norms = [[0.01 * (number + 1), 0.1, 1.0], [0.02, 0.2, 1.0]]
        (job / "metrics.jsonl").write_text(
            "".join(
                json.dumps({"epoch": e, "step": 10 * e, "grad_norms": g}) + "\n" for e, g in enumerate(norms)
            )
        )
    return root


def test_planned_jobs_are_hydras_plan(seeded: Path, tmp_path: Path) -> None:
    assert planned_jobs(seeded) == hydras_plan(TASK)
    params = tmp_path / "params"
    write_multirun(params, ["epochs=5"])
    config = yaml.safe_load((params / "multirun.yaml").read_text())
    config["hydra"]["sweeper"]["params"] = {"optimizer.lr": "0.1,1"}
    (params / "multirun.yaml").write_text(yaml.safe_dump(config))
    assert planned_jobs(params) == hydras_plan(["optimizer.lr=0.1,1", "epochs=5"])


def test_no_plan_from_another_sweeper_or_a_bad_file(tmp_path: Path) -> None:
    write_multirun(tmp_path / "optuna", TASK, sweeper="hydra_plugins.hydra_optuna_sweeper.OptunaSweeper")
    assert planned_jobs(tmp_path / "optuna") is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "multirun.yaml").write_text("hydra: [unclosed\n")
    assert planned_jobs(tmp_path / "bad") is None
    assert planned_jobs(tmp_path) is None


def test_killed_sweep_lists_the_jobs_it_never_started(seeded: Path) -> None:
    rows = collect_rows(seeded)
    plan = hydras_plan(TASK)
    assert [r["job"] for r in rows] == [str(n) for n in range(len(plan))]
    for number in KILLED:
        row = rows[number]
        assert row["status"] == NOT_STARTED and row["kind"] is None
        assert row["overrides"] == " ".join(plan[number])
        assert row["override:seed"] == parse_overrides(plan[number])["seed"]
    assert rows[DIVERGED]["status"] == "diverged"
    finished = len(plan) - len(KILLED) - 1
    assert (
        status_counts(rows)
        == f"{len(plan)} jobs: {finished} completed, 1 diverged, {len(KILLED)} not started"
    )
    assert sum(NOT_STARTED in line for line in format_table(rows).splitlines()) == len(KILLED)


def test_a_sweep_rerun_to_resume_counts_each_job_once(seeded: Path) -> None:
    """The rerun's plan says resume=true and more epochs; its jobs' directories hold the
    overrides they started with: each is still the planned job it is, and the killed ones
    are still missing, once each."""
    write_multirun(seeded, [o.replace("epochs=5", "epochs=9") for o in TASK] + ["resume=true"])
    rows = collect_rows(seeded)
    plan = hydras_plan(TASK)
    assert len(rows) == len(plan)
    assert sorted(int(r["job"]) for r in rows if r["status"] == NOT_STARTED) == sorted(KILLED)


def test_jobs_alike_but_for_epochs_are_counted_apart(tmp_path: Path) -> None:
    """Two planned jobs that are one run but for epochs: one directory stands for one of them."""
    task = ["epochs=5,9", "seed=1"]
    write_multirun(tmp_path, task)
    make_job(tmp_path, "0", hydras_plan(task)[0], train_summary(0.1))
    assert [r["status"] for r in collect_rows(tmp_path)] == ["completed", NOT_STARTED]


def test_a_sweep_killed_before_its_first_job(tmp_path: Path) -> None:
    write_multirun(tmp_path, TASK)
    rows = collect_rows(tmp_path)
    assert len(rows) == len(hydras_plan(TASK)) and {r["status"] for r in rows} == {NOT_STARTED}


def test_seeds_are_aggregated(seeded: Path) -> None:
    rows = collect_rows(seeded)
    groups = group_rows(rows)
    plan = hydras_plan(TASK)
    assert [g.label for g in groups] == [
        f"model.activation={a} optimizer.lr={lr}" for a in ("tanh", "relu") for lr in ("0.01", "0.1")
    ]
    table = format_groups(rows)
    for group in groups:
        numbers = [int(r["job"]) for r in group.rows]
        assert all(parse_overrides(plan[n])["model.activation"] == group.key[0][1] for n in numbers)
        losses = [seed_loss(n) for n in numbers if n not in KILLED and n != DIVERGED]
        stat = group.stat("train_loss")
        assert stat.n == len(losses)
        assert stat.mean == pytest.approx(statistics.fmean(losses))
        assert stat.std == pytest.approx(float(np.std(losses, ddof=1)))
        assert f"{stat.mean:.4g} ± {stat.std:.4g}" in table
        line = next(line for line in table.splitlines() if line.startswith(group.label))
        assert f"{len(losses)}/3" in line and ("not finished" in line) == (len(losses) < 3)
    assert table.splitlines()[0] == "mean ± 1 s.d. over the seeds (2-3 finished runs per group)"


def test_no_aggregate_without_replicates(sweep: Path) -> None:
    rows = collect_rows(sweep)
    assert format_groups(rows) is None
    assert replicate_note(group_rows(rows, ["model.activation", "optimizer.lr"])) == "one run each"


def test_plot_says_what_the_band_is(seeded: Path, tmp_path: Path) -> None:
    rows = collect_rows(seeded)
    cells = group_rows(rows, ["model.activation", "optimizer.lr"])
    assert replicate_note(cells) == "mean ± 1 s.d. over 2-3 seeds (band)"
    assert plot_metric(rows, tmp_path / "lr.png").read_bytes()[:8] == PNG
    assert plot_metric(rows, tmp_path / "act.png", x="activation", y="test_accuracy").read_bytes()[:8] == PNG


def test_grad_flow_plot(seeded: Path, sweep: Path, tmp_path: Path) -> None:
    path = plot_grad_flow(collect_rows(seeded), seeded, tmp_path / "flow.png")
    assert path is not None and path.read_bytes()[:8] == PNG
    assert plot_grad_flow(collect_rows(sweep), sweep, tmp_path / "none.png") is None  # no metrics.jsonl
    assert not (tmp_path / "none.png").exists()


def test_summarize_writes_everything(seeded: Path) -> None:
    result = summarize(seeded, x="model.activation", y="test_accuracy")
    names = {p.name for p in result.files}
    assert names == {"summary.csv", "summary.md", "summary.png", "summary_grad_norms.png"}
    md = (seeded / "summary.md").read_text()
    assert "## Mean ± 1 s.d. over the seeds" in md and "![summary](summary.png)" in md
    assert md.count(f"| {NOT_STARTED} |") == len(KILLED)
    assert result.counts in md and "mean ± 1 s.d." in result.text


def test_a_plot_worker_draws_the_sweeps_plots_as_this_process_does(seeded: Path, monkeypatch) -> None:
    """In a sweep's process the summary plots are drawn by its plot worker (the process never
    imports matplotlib): the same files, and the same summary.md, as drawing them here."""
    from backprop_lab.plots import _sweep
    from backprop_lab.plots import _worker as _painter

    here = summarize(seeded, x="model.activation", y="test_accuracy")
    files = {p.name: p.read_bytes() for p in here.files}
    for p in here.files:
        p.unlink()
    monkeypatch.setattr(_sweep, "plot_metric", None)  # not drawn here from now on
    _painter.stop_workers()
    _painter.start_workers(1)
    try:
        there = summarize(seeded, x="model.activation", y="test_accuracy")
    finally:
        _painter.stop_workers()
    assert [p.name for p in there.files] == [p.name for p in here.files]
    assert {p.name: p.read_bytes() for p in there.files} == files
    assert (there.text, there.counts, there.notes) == (here.text, here.counts, here.notes)


def test_cli_options_and_notes(seeded: Path) -> None:
    lines: list[str] = []
    assert main([str(seeded), "--x", "model.activation", "--y", "grad_start_passed"], out=lines.append) == 0
    assert any(
        line.startswith("no summary.png: no finished job has both model.activation and grad_start_passed")
        for line in lines
    )
    lines.clear()
    assert main([str(seeded), "--no-plot"], out=lines.append) == 0
    assert not any(".png" in line for line in lines) and lines[-1].startswith("12 jobs:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--plot", "{tmp}/missing/x.png"],
            "--plot {tmp}/missing/x.png: its directory {tmp}/missing does not exist",
        ),
        (
            ["--csv", "{tmp}/missing/x.csv"],
            "--csv {tmp}/missing/x.csv: its directory {tmp}/missing does not exist",
        ),
        (["--plot", "{tmp}/x.jpg"], "--plot {tmp}/x.jpg: expected a .png file name"),
    ],
)
def test_cli_refuses_output_files_it_cannot_write(
    seeded: Path, tmp_path: Path, capsys, args, message
) -> None:
    """A --plot or --csv that cannot be written is one line and status 2, before anything is written."""
    before = sorted(p.name for p in seeded.iterdir())
    assert main([str(seeded), *(a.format(tmp=tmp_path) for a in args)], out=lambda line: None) == 2
    assert capsys.readouterr().err == f"summarize: {message.format(tmp=tmp_path)}\n"
    assert sorted(p.name for p in seeded.iterdir()) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--x", "optimizer.momentum"], "--x optimizer.momentum: no job has this key; swept keys: "),
        (["--y", "test_acuracy"], "--y test_acuracy: no job has this metric; numeric columns: "),
    ],
)
def test_cli_refuses_keys_no_job_has(seeded: Path, capsys, args, message) -> None:
    before = sorted(p.name for p in seeded.iterdir())
    assert main([str(seeded), *args], out=lambda line: None) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"summarize: {message}") and err.count("\n") == 1, err
    assert sorted(p.name for p in seeded.iterdir()) == before


@pytest.fixture
def read_only_dir(tmp_path: Path):
    """A directory on a read-only file system (a tmpfs mounted read-only where this runs as root;
    else a directory without write permission)."""
    where = tmp_path / "ro"
    where.mkdir()
    if os.geteuid() == 0 and shutil.which("mount"):
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(where)]).returncode == 0:
            yield where
            subprocess.run(["umount", str(where)], check=True)
            return
    where.chmod(0o500)
    yield where
    where.chmod(0o700)


@pytest.mark.parametrize("option", ["--plot", "--csv"])
def test_cli_refuses_an_output_on_a_read_only_file_system(seeded: Path, read_only_dir: Path, capsys, option):
    name = read_only_dir / ("x.png" if option == "--plot" else "x.csv")
    before = sorted(p.name for p in seeded.iterdir())
    assert main([str(seeded), option, str(name)], out=lambda line: None) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"summarize: {option} {name}: cannot be written (") and err.count("\n") == 1, err
    assert sorted(p.name for p in seeded.iterdir()) == before


def test_a_plan_of_200_million_jobs_is_not_expanded(tmp_path: Path) -> None:
    root = tmp_path / "huge"
    write_multirun(root, ["seed=range(0,200000000)", "optimizer.lr=0.1,1"])
    assert planned_jobs(root) is None
    write_multirun(root, [f"seed=range(0,{MAX_PLANNED})", "optimizer.lr=0.1,1"])  # the product is over
    assert planned_jobs(root) is None
    write_multirun(root, ["seed=range(0,3)", "optimizer.lr=0.1,1"])
    assert planned_jobs(root) == hydras_plan(["seed=range(0,3)", "optimizer.lr=0.1,1"])
    assert main([str(root), "--no-plot"], out=lambda line: None) == 0


@pytest.mark.parametrize("worker", [False, True])
def test_a_plot_that_fails_is_a_note_and_the_tables_are_written(
    seeded: Path, tmp_path: Path, worker: bool
) -> None:
    """Drawn here or by a plot worker, a summary plot that cannot be written (its directory is
    gone) is a note; summary.csv and summary.md are written all the same."""
    from backprop_lab.plots import _worker as _painter

    _painter.stop_workers()
    if worker:
        _painter.start_workers(1)
    try:
        result = summarize(seeded, png=tmp_path / "gone" / "summary.png")
    finally:
        _painter.stop_workers()
    assert {p.name for p in result.files} == {"summary.csv", "summary.md"}
    (note,) = result.notes
    assert note.startswith(f"no plots: the plots of {seeded.resolve()} could not be drawn: [Errno 2]"), note


def test_callback_summarizes_a_sweep(seeded: Path, caplog) -> None:
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(seeded)}}})
    with caplog.at_level(logging.INFO, logger="backprop_lab.summarize"):
        SummarizeCallback().on_multirun_end(config)
    assert (seeded / "summary.md").exists() and (seeded / "summary_grad_norms.png").exists()
    assert [r.levelno for r in caplog.records] == [logging.INFO] and "12 jobs" in caplog.records[0].message


def test_callback_never_fails_the_sweep(tmp_path: Path, caplog, monkeypatch) -> None:
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "nowhere")}}})
    with caplog.at_level(logging.INFO, logger="backprop_lab.summarize"):
        SummarizeCallback().on_multirun_end(config)
        monkeypatch.setattr("backprop_lab.apps._summarize.summarize", lambda *a, **k: 1 / 0)
        SummarizeCallback().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert [r.levelno for r in caplog.records] == [logging.WARNING] * 2
    assert (
        "FileNotFoundError" in caplog.records[0].message and "ZeroDivisionError" in caplog.records[1].message
    )
    assert all("\n" not in r.getMessage() for r in caplog.records)
    SummarizeCallback(enabled=False).on_multirun_end(config)


@pytest.mark.slow
def test_summary_code_imports_no_jax(seeded: Path) -> None:
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.find_spec('backprop_lab')\n"
        "sys.modules['backprop_lab'] = importlib.util.module_from_spec(spec)\n"
        "import backprop_lab.apps.callbacks, backprop_lab.apps._summarize as cli\n"
        f"cli.summarize({str(seeded)!r})\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib')], 'jax imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    script = subprocess.run(
        [sys.executable, "-X", "importtime", str(SCRIPT), str(seeded)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert script.returncode == 0, script.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in script.stderr.splitlines() if "|" in line}
    assert "yaml" in imported and not {m for m in imported if m.split(".")[0] in ("jax", "jaxlib")}


@pytest.mark.slow
def test_real_sweep_summarizes_itself_and_a_killed_one_shows_its_gaps(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable,
            "experiments/train.py",
            "-m",
            "data=moons",
            "model.sizes=[2,8,2]",
            "epochs=2",
            "batch_size=100",
            "log_every=1",
            "diagnostics=true",
            "model.activation=tanh,relu",
            "seed=0,1",
            f"hydra.sweep.dir={sweep}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert (sweep / "summary.md").exists() and (sweep / "summary_grad_norms.png").exists()
    plan = planned_jobs(sweep)
    jobs = find_job_dirs(sweep)
    assert len(plan) == len(jobs) == 4
    for job, overrides in zip(jobs, plan):  # Hydra numbered its jobs in the order of the plan
        assert yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) == overrides
    with (sweep / "summary.csv").open() as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["completed"] * 4
    for path in (sweep / "3").iterdir():  # as if the sweep had been killed before job 3
        path.unlink() if path.is_file() else [p.unlink() for p in path.iterdir()] and path.rmdir()
    (sweep / "3").rmdir()
    rows = collect_rows(sweep)
    assert [r["status"] for r in rows] == ["completed"] * 3 + [NOT_STARTED]
    assert rows[3]["overrides"] == " ".join(plan[3])


def test_a_sweeps_plots_are_drawn_here_when_the_worker_dies(seeded: Path, monkeypatch, caplog) -> None:
    """A plot worker killed while the summary waits for it: the plots are drawn in this process."""
    import signal as signals

    from backprop_lab.plots import _worker as _painter

    _painter.stop_workers()
    pool = _painter.start_workers(1)
    try:
        worker = pool.submit(os.getpid).result()
        hand = pool.submit

        def hand_and_kill(*args):  # the job handed over, then its worker killed
            job = hand(*args)
            os.kill(worker, signals.SIGKILL)
            return job

        monkeypatch.setattr(pool, "submit", hand_and_kill)
        result = summarize(seeded, x="model.activation", y="test_accuracy")
    finally:
        _painter.stop_workers()
    assert "drawing them here" in caplog.text
    assert {p.name for p in result.files} >= {"summary.png", "summary_grad_norms.png"}
    assert (seeded / "summary.png").read_bytes()[:8] == PNG


@pytest.fixture
def kept_figures(monkeypatch) -> list:
    """The figures the plotting code closes, kept open for inspection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept: list = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    yield kept
    close("all")


def _study(root: Path) -> list[float]:
    """A study's trials: activation x lr, one run each; their test accuracies."""
    accuracies = [0.81, 0.93, 0.88, 0.97, 0.70, 0.90]
    for job, acc in enumerate(accuracies):
        overrides = [f"model.activation={('tanh', 'relu', 'sigmoid')[job % 3]}", f"optimizer.lr={job + 1}"]
        make_job(root, str(job), overrides, train_summary(0.1 * (job + 1), acc=acc))
    return accuracies


def test_best_trial_is_starred_and_the_legend_covers_no_point(tmp_path: Path, kept_figures) -> None:
    accuracies = _study(tmp_path)
    rows = collect_rows(tmp_path)
    plot_metric(rows, tmp_path / "p.png", x="model.activation", y="test_accuracy", best="maximize")
    (fig,) = kept_figures
    ax = fig.axes[0]
    best = max(range(len(accuracies)), key=accuracies.__getitem__)  # job 3: tanh, lr 4
    assert f"best (maximize): {accuracies[best]:.4g}, job {best}, model.activation=tanh" in ax.get_title()
    (star,) = [line for line in ax.get_lines() if line.get_label() == "best"]
    assert list(star.get_ydata()) == [accuracies[best]]
    # drawn where its line draws job 3's point (tanh's position, shifted for its lr's line)
    points = np.vstack([np.column_stack(line.get_data()) for line in ax.get_lines() if line is not star])
    assert any(np.allclose(p, [star.get_xdata()[0], accuracies[best]]) for p in points)
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    on_screen = ax.transData.transform(points)
    assert not any(legend.contains(x, y) for x, y in on_screen)
    # minimizing picks the smallest instead
    plot_metric(rows, tmp_path / "q.png", x="model.activation", y="test_accuracy", best="minimize")
    assert "best (minimize): 0.7, job 4" in kept_figures[-1].axes[0].get_title()


def test_an_optuna_sweeps_summary_plots_the_metric_it_optimized(tmp_path: Path, kept_figures) -> None:
    from backprop_lab.apps.callbacks import study_direction

    _study(tmp_path)
    optuna = {"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"}
    config = OmegaConf.create(
        {
            "optimized_metric": "test_accuracy",
            "hydra": {"sweep": {"dir": str(tmp_path)}, "sweeper": {**optuna, "direction": ["maximize"]}},
        }
    )
    assert study_direction(config) == "maximize"
    SummarizeCallback().on_multirun_end(config)
    title = kept_figures[-1].axes[0].get_title()
    assert title.startswith("test accuracy by optimizer.lr") and "best (maximize): 0.97, job 3" in title
    # a basic sweep: no study, the default metric, no star
    basic = OmegaConf.create(
        {"optimized_metric": "test_accuracy", "hydra": {"sweep": {"dir": str(tmp_path)}}}
    )
    assert study_direction(basic) is None
    SummarizeCallback().on_multirun_end(basic)
    assert kept_figures[-1].axes[0].get_title().startswith("final train loss by optimizer.lr")
    assert "best" not in kept_figures[-1].axes[0].get_title()


def test_a_vmapped_jobs_time_is_marked_as_its_programs(tmp_path: Path) -> None:
    from backprop_lab.summary._table import PROGRAM_TIMING, markdown

    for job, lr in enumerate((0.1, 1.0)):
        make_job(tmp_path, str(job), [f"optimizer.lr={lr}"], {**train_summary(), "timing": "program"})
    rows = collect_rows(tmp_path)
    assert [r["timing"] for r in rows] == ["program", "program"]
    assert PROGRAM_TIMING in markdown(rows, "sweep")
    single = tmp_path / "single"
    make_job(single, "0", ["optimizer.lr=0.1"], {**train_summary(), "timing": "run"})
    assert PROGRAM_TIMING not in markdown(collect_rows(single), "sweep")


@pytest.mark.parametrize(
    "task",
    [
        ["seed=range(0,7)", "optimizer.lr=0.1,1", "epochs=3"],
        ["seed=range(10,0,-3)", "model.activation=choice(tanh,relu)"],
        ["optimizer.lr=range(0,1,0.1)", "seed=shuffle(range(0,5))"],
        ["optimizer.lr=range(0.3,0.0,-0.1)", "seed=1,2,3", "seed=4,5"],  # the last of a key counts
    ],
)
def test_the_plan_is_counted_as_hydras_sweeper_lists_it(task: list[str]) -> None:
    assert check_sweep_size(task) == len(hydras_plan(task))


@pytest.mark.parametrize(
    ("task", "says"),
    [
        (["seed=range(0,200000000)"], "a sweep of 200,000,000 jobs (seed=range(0,200000000): 200,000,000"),
        (["seed=range(0,1000)", "optimizer.lr=range(0,101)"], "a sweep of 101,000 jobs"),
        (["optimizer.lr=range(0,1e300,1e-300)"], f"a sweep of more than {MAX_PLANNED:,} jobs"),
        (["seed=range(0,10,-1)", "epochs=1,2"], "seed=range(0,10,-1): no values"),
        (["optimizer.lr=range(0,1,0.0)"], "optimizer.lr=range(0,1,0.0): a range's step must not be 0"),
    ],
)
def test_a_plan_over_the_limit_or_empty_is_one_line(task: list[str], says: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_sweep_size(task)
    assert says in str(refused.value) and "\n" not in str(refused.value)
