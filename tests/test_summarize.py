"""Tests for the sweep summary: rows from fake multirun directories, table, CSV, plot, script."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backprop_lab._summary import (
    collect_rows,
    find_job_dirs,
    format_table,
    parse_overrides,
    plot_loss_vs_lr,
    read_job,
    write_csv,
)

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "summarize"


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
            "start": {"passed": True, "max_rel_error": 1e-7, "max_abs_error": 1e-9},
            "end": {"passed": status != "diverged", "max_rel_error": 2e-7, "max_abs_error": 1e-9},
        },
    }


COMPARE = {
    "kind": "compare", "passed": True, "max_abs_error": 1e-12, "max_rel_error": 3e-10,
    "min_cosine": 1.0, "manual_time_ms": 0.5, "autodiff_time_ms": 0.6, "speedup": 1.2,
}


def make_job(root: Path, name: str, overrides: list[str], summary: dict | str | None,
             config: str | None = None) -> Path:
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
    assert parse_overrides(["a.b=1", "+c=[1,2]", "++d=x=y", "~e"]) == {"a.b": "1", "c": "[1,2]", "d": "x=y", "e": ""}


def test_find_job_dirs_numeric_order(sweep: Path) -> None:
    assert [p.name for p in find_job_dirs(sweep)] == ["0", "1", "2", "3", "4", "5", "10"]


def test_find_job_dirs_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a directory"):
        find_job_dirs(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no job directories"):
        find_job_dirs(tmp_path)


def test_rows_statuses_and_fields(sweep: Path) -> None:
    rows = collect_rows(sweep)
    assert [r["status"] for r in rows] == ["completed", "completed", "diverged", "completed", "missing", "corrupt", "completed"]
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
    path = plot_loss_vs_lr(collect_rows(sweep), tmp_path / "plot.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_needs_learning_rates(tmp_path: Path) -> None:
    make_job(tmp_path, "0", ["seed=1"], train_summary())
    assert plot_loss_vs_lr(collect_rows(tmp_path), tmp_path / "plot.png") is None
    assert not (tmp_path / "plot.png").exists()


@pytest.mark.slow
def test_script_writes_csv_and_plot(sweep: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(sweep)], capture_output=True, text=True, timeout=120,
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
