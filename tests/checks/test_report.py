"""check_grads and the compare app: a wrong derivative is caught at the right layers,
the report carries every field in JSON, and a compare sweep summarizes into one table."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import backprop_lab
from backprop_lab import MLP, Activation, GradReport, check_grads

ROOT = Path(__file__).resolve().parents[2]

TENSOR_FIELDS = {
    "layer",
    "tensor",
    "shape",
    "manual_norm",
    "autodiff_norm",
    "max_abs_error",
    "max_rel_error",
    "cosine",
    "scale",
    "diagonal_max_rel_error",
    "diagonal_agrees",
    "numerical_max_abs_error",
    "numerical_max_rel_error",
    "passed",
}
SUMMARY_FIELDS = {
    "kind",
    "passed",
    "max_abs_error",
    "max_rel_error",
    "min_cosine",
    "manual_time_ms",
    "autodiff_time_ms",
    "speedup",
    "manual_compile_ms",
    "autodiff_compile_ms",
    "dtype",
    "sizes",
    "activation",
    "output_activation",
    "loss",
    "batch",
}
REPORT_FIELDS = {
    "passed",
    "max_abs_error",
    "max_rel_error",
    "min_cosine",
    "failing",
    "dtype",
    "diagonal_agrees",
    "numerical",
    "numerical_note",
    "numerical_max_rel_error",
    "sizes",
    "activation",
    "output_activation",
    "loss",
    "batch",
    "scale_rule",
    "tolerances",
    "tensors",
}


def _batch(sizes, n=5, dtype=jnp.float64):
    x = jax.random.normal(jax.random.PRNGKey(1), (n, sizes[0]), dtype)
    y = jax.random.uniform(jax.random.PRNGKey(2), (n, sizes[-1]), dtype)
    return x, y


@pytest.fixture
def bad_tanh(monkeypatch):
    """A tanh whose table derivative is wrong: 1 − a instead of 1 − a²."""
    monkeypatch.setitem(
        backprop_lab.ACTIVATIONS, "bad_tanh", Activation("bad_tanh", jnp.tanh, lambda z, a: 1.0 - a)
    )
    return "bad_tanh"


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_wrong_derivative_fails_at_the_layers_it_reaches(bad_tanh, dtype):
    sizes = [3, 4, 4, 2]
    model = MLP(sizes, bad_tanh, "sigmoid", key=jax.random.PRNGKey(0), dtype=dtype)
    report = check_grads(model, *_batch(sizes, dtype=dtype), "half_sse")
    assert not report.passed
    # δ of layers 1 and 2 goes through the wrong f′ of the hidden tanh; the output
    # layer's δ comes from the loss and the (correct) sigmoid only.
    assert report.failing == [(1, "W"), (1, "b"), (2, "W"), (2, "b")]
    by_layer = {(c.layer, c.tensor): c for c in report.checks}
    assert by_layer[(3, "W")].passed and by_layer[(3, "b")].passed
    assert by_layer[(1, "W")].max_rel_error > 1e-2
    assert report.min_cosine < 0.99
    if dtype == jnp.float64:  # finite differences disagree with the manual gradient too
        assert report.numerical
        assert by_layer[(1, "W")].numerical_max_rel_error > 1e-2
        assert by_layer[(3, "W")].numerical_max_rel_error < 1e-6
    text = report.to_table()
    assert "✗ FAILED: layer 1 W, layer 1 b, layer 2 W, layer 2 b" in text
    rows = [line for line in text.splitlines() if line[:1].isdigit()]
    assert [row.rstrip()[-1] for row in rows] == ["✗", "✗", "✗", "✗", "✓", "✓"]


@pytest.mark.parametrize(
    "activation, output, loss",
    [
        ("sigmoid", "softmax", "cross_entropy"),
        ("relu", "identity", "mse"),
        ("gelu", "sigmoid", "binary_cross_entropy"),
    ],
)
def test_correct_gradients_pass_in_both_dtypes(activation, output, loss):
    sizes = [3, 5, 4]
    x, y = _batch(sizes)
    if loss in ("cross_entropy", "binary_cross_entropy"):
        y = jnp.round(y)
    model = MLP(sizes, activation, output, key=jax.random.PRNGKey(3), dtype=jnp.float64)
    r64 = check_grads(model, x, y, loss)
    assert r64.passed, str(r64)
    assert r64.numerical and r64.numerical_max_rel_error < 1e-3
    assert r64.max_rel_error < 1e-10 and r64.min_cosine > 1 - 1e-12 and r64.diagonal_agrees
    r32 = check_grads(model.astype(jnp.float32), x, y, loss)
    assert r32.passed, str(r32)
    assert r32.dtype == "float32" and not r32.numerical and "float32" in r32.numerical_note


def test_json_carries_every_field(bad_tanh):
    sizes = [2, 3, 2]
    model = MLP(sizes, bad_tanh, "sigmoid", key=jax.random.PRNGKey(0), dtype=jnp.float64)
    report = check_grads(model, *_batch(sizes), "half_sse")
    assert isinstance(report, GradReport)
    data = json.loads(report.to_json())
    assert data == report.to_dict()
    assert REPORT_FIELDS <= set(data)
    assert data["passed"] is False and data["dtype"] == "float64"
    assert data["failing"] == [[1, "W"], [1, "b"]]
    eps = float(jnp.finfo(jnp.float64).eps)
    assert data["tolerances"] == {"autodiff": 64 * eps, "diagonal": 64 * eps, "numerical": 1e-3}
    assert "absolute value" in data["scale_rule"]
    assert data["max_rel_error"] == pytest.approx(report.max_rel_error)
    assert len(data["tensors"]) == 4
    for t in data["tensors"]:
        assert set(t) == TENSOR_FIELDS
        assert isinstance(t["passed"], bool) and t["manual_norm"] > 0 and t["autodiff_norm"] > 0
    md = report.to_markdown()
    assert "| layer | tensor |" in md and "|---|" in md and "✗ FAILED" in md
    assert str(report) == report.to_table()


def test_tolerances_are_settings():
    sizes = [2, 3, 2]
    x, y = _batch(sizes)
    x = x.at[:, 1].set(0.0)  # a column of exactly zero gradients in W of layer 1
    model = MLP(sizes, "tanh", "sigmoid", key=jax.random.PRNGKey(0), dtype=jnp.float32)
    assert check_grads(model, x, y, "half_sse").passed
    strict = check_grads(model, x, y, "half_sse", tolerances={"autodiff": 0.0, "diagonal": 1.0})
    assert strict.tolerances["autodiff"] == 0.0
    assert strict.passed == (strict.max_rel_error == 0.0)
    with pytest.raises(ValueError, match="unknown tolerance keys"):
        check_grads(model, x, y, "half_sse", tolerances={"autodif": 1.0})


def _compose(config_name: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name, overrides=overrides)


def _load_app(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_app_{name}", ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_refuses_data_of_other_widths(tmp_path):
    app = _load_app("compare")
    from backprop_lab.runs._experiment import ConfigError

    with pytest.raises(ConfigError, match="input width 64"):  # digits data, a 2-wide model
        app.compare(_compose("compare", ["model.sizes=[2,2,10]"]), out_dir=tmp_path)
    assert not (tmp_path / "summary.json").exists()


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_compare_sweep_gives_one_summary_table(tmp_path, capsys):
    from backprop_lab.apps.cli import main

    sweep = tmp_path / "sweep"
    proc = _run(
        [
            "experiments/compare.py",
            "-m",
            "data.name=random",
            "model.activation=sigmoid,tanh",
            "dtype=float32,float64",
            "model.sizes=[2,3,2]",
            "batch=4",
            "+repeats=3",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == 4
    jobs = [json.loads(p.read_text()) for p in summaries]
    assert {(j["activation"], j["dtype"]) for j in jobs} == {
        (a, d) for a in ("sigmoid", "tanh") for d in ("float32", "float64")
    }
    for job, path in zip(jobs, summaries):
        assert job["kind"] == "compare" and job["passed"] is True
        assert SUMMARY_FIELDS <= set(job)
        assert job["speedup"] == pytest.approx(job["autodiff_time_ms"] / job["manual_time_ms"], rel=1e-2)
        assert json.loads((path.parent / "grad_report.json").read_text())["passed"] is True
        assert "## Timing" in (path.parent / "grad_report.md").read_text()
    # the summary table, as backprop-lab summarize prints it (scripts/summarize's process is
    # tested in tests/summary)
    capsys.readouterr()
    assert main(["summarize", str(sweep), "--no-plot"]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if re.match(r"\d+\s+model", line)]
    assert len(table) == 4 and all("passed" in line for line in table)
    assert "4 jobs: 4 passed" in out


@pytest.mark.slow
def test_compare_config_error_exits_without_traceback(tmp_path):
    proc = _run(["experiments/compare.py", "model.sizes=[2,2,2]", f"hydra.run.dir={tmp_path / 'run'}"])
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "model.sizes=[2, 2, 2] is invalid" in out and "Traceback" not in out
    # in a sweep the bad job is recorded and the sweep goes on
    sweep = tmp_path / "sweep"
    proc = _run(["experiments/compare.py", "-m", "model.sizes=[2,2,2]", f"hydra.sweep.dir={sweep}"])
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr
    job = json.loads((sweep / "0" / "summary.json").read_text())
    assert job["status"] == "config_error" and job["passed"] is False and "input width 64" in job["error"]
