"""The benchmark harness runs on tiny sizes and reports what docs/benchmarks.md relies on.

Nothing here asserts a timing: the machine is shared and the sizes are toys.
The whole-command targets T9 and T10 start real training processes (marked slow).
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import processes, runner, targets, timing

ROW_KEYS = {"target", "what", "measured", "ratio", "goal", "met", "details"}


def check_rows(rows, target):
    assert rows, "a benchmark returns at least one row"
    for r in rows:
        assert set(r) == ROW_KEYS
        assert r["target"] == target
        assert isinstance(r["what"], str) and r["what"]
        assert isinstance(r["measured"], str) and r["measured"]
        assert r["ratio"] is None or (isinstance(r["ratio"], float) and np.isfinite(r["ratio"]))
        assert r["met"] in (True, False, None)
        json.dumps(r)  # JSON-ready


SLOW = {"t9", "t10"}  # whole training commands, several seconds each


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in runner.BENCHMARKS]
)
@pytest.mark.slow
def test_every_benchmark_runs_tiny(name):
    result = runner.run_one(name, "tiny")
    target = name.split("_")[0].upper()
    check_rows(result["rows"], target)
    assert result["peak_rss_mib"] >= result["baseline_rss_mib"] > 0
    for r in result["rows"]:
        assert r["details"]["peak_rss_mib"] == result["peak_rss_mib"]
        if r["met"] is not None:  # a row with a goal has a ratio to judge it by
            assert r["ratio"] is not None


def test_every_benchmark_has_the_three_modes():
    for name, (fn, modes) in runner.BENCHMARKS.items():
        assert set(modes) == {"full", "quick", "tiny"}, name
        assert callable(fn)


def test_t1_rows_carry_both_medians():
    step, scan = targets.bench_step_ratio(sizes=(3, 5, 2), batch=4, repeats=3, scan_steps=2, chained=2)
    assert "jitted step" in step["what"] and "scan" in scan["what"]
    for r in (step, scan):
        d = r["details"]
        assert d["manual"]["repeats"] == d["autodiff"]["repeats"] == 3
        assert r["ratio"] == pytest.approx(d["manual"]["median_s"] / d["autodiff"]["median_s"])
        assert d["chained_ratio"] > 0


def test_t3_reference_races_in_both_dtypes():
    (r,) = targets.bench_digits(sizes=(64, 4, 10), batch=8, steps=3, repeats=1, n_train=32)
    rates = r["details"]["samples_per_s"]
    assert set(rates) == {"jax", "numpy_float32", "numpy_float64"}
    assert r["details"]["fastest_reference"] in ("numpy_float32", "numpy_float64")


def test_matmul_flops_counts_forward_and_backward_products():
    # one layer: forward x·Wᵀ and ∂L/∂W, no δ for the input
    assert targets.matmul_flops([3, 2], 5) == 2 * (2 * 5 * 3 * 2)
    # two layers: plus δ·W for the hidden layer
    assert targets.matmul_flops([3, 4, 2], 5) == 2 * 2 * 5 * (3 * 4 + 4 * 2) + 2 * 5 * 4 * 2


def test_time_interleaved_alternates_and_counts():
    calls = []
    times = timing.time_interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1
    )
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert [len(t) for t in times.values()] == [3, 3]


def test_markdown_table_marks_misses():
    rows = [
        timing.row("T1", "a", "1 ms", 1.2, "≤ 1.05", False, peak_rss_mib=100.0),
        timing.row("T6", "b", "2 ms", 3.0, "report", None),
    ]
    table = runner.markdown_table(rows).splitlines()
    assert table[0].startswith("| target | what |")
    assert "**no**" in table[2] and "100 MiB" in table[2]
    assert "| — |" in table[3]


def test_main_writes_json_with_machine_and_rows(tmp_path, capsys):
    out = tmp_path / "b.json"
    args = ["t2", "t6", "--mode", "tiny", "--in-process", "--no-configure", "--json", str(out)]
    assert runner.main(args) == 0
    report = json.loads(out.read_text())
    assert {"machine", "mode", "isolated", "benchmarks", "rows"} <= set(report)
    m = report["machine"]
    for key in ("date", "cpu", "cores", "jax", "jaxlib", "numpy", "xla_flags"):
        assert key in m
    assert [r["target"] for r in report["rows"]] == ["T2", "T6", "T6"]
    assert "| T2 |" in capsys.readouterr().out


@pytest.mark.slow
def test_isolated_run_reports_its_own_peak_rss():
    report = runner.run_suite(["t2"], "tiny", isolate=True)
    (res,) = report["benchmarks"]
    assert "error" not in res
    assert res["peak_rss_mib"] > 0
    check_rows(res["rows"], "T2")


def test_configure_cpu_adds_options_and_keeps_the_users():
    from backprop_lab.training._xla import CPU_XLA_FLAGS, merge_xla_flags

    new = merge_xla_flags("", CPU_XLA_FLAGS, (0, 10, 2))
    assert "--xla_cpu_copy_insertion_use_region_analysis=true" in new.split()
    assert "--xla_cpu_experimental_ynn_fusion_type=individual_dot" in new.split()
    assert "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1048576" in new.split()
    # a user's own value wins; other backend options are extended, not replaced
    mine = "--xla_cpu_copy_insertion_use_region_analysis=false --xla_backend_extra_options=a=1"
    merged = merge_xla_flags(mine, CPU_XLA_FLAGS, (0, 10, 2)).split()
    assert "--xla_cpu_copy_insertion_use_region_analysis=false" in merged
    assert "--xla_backend_extra_options=a=1,xla_cpu_small_while_loop_byte_threshold=1048576" in merged
    # an old jaxlib gets nothing it may not know
    assert merge_xla_flags("", CPU_XLA_FLAGS, (0, 4, 30)) == ""


def test_configure_cpu_after_jax_started_changes_nothing(monkeypatch):
    import jax.numpy as jnp

    from backprop_lab import configure_cpu

    jnp.zeros(1).block_until_ready()
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    with pytest.warns(UserWarning, match="after JAX started"):
        assert configure_cpu() == "--xla_cpu_enable_fast_math=false"


def test_time_interleaved_settles_before_each_timed_call():
    calls = []
    timing.time_interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=2, warmup=0, settle=1
    )
    assert calls == ["a", "a", "b", "b", "b", "b", "a", "a"]


# --------------------------------------------------------------------------- whole commands


def test_commands_get_the_users_xla_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--configured")
    monkeypatch.setenv(processes.USER_XLA_FLAGS, "")
    assert "XLA_FLAGS" not in processes.user_env()
    monkeypatch.setenv(processes.USER_XLA_FLAGS, "--mine")
    env = processes.user_env(BACKPROP_LAB_CACHE="/c")
    assert env["XLA_FLAGS"] == "--mine" and env["BACKPROP_LAB_CACHE"] == "/c"
    assert processes.USER_XLA_FLAGS not in env


IMPORTTIME = """import time: self [us] | cumulative | imported package
import time:       100 |        100 |   jax._src.api
import time:       300 |        400 | jax
import time:        50 |         50 |   jaxlib.version
import time:        20 |         70 | jaxlib
import time:      1000 |       1000 | hydra
"""


def test_importtime_is_read_per_package():
    assert processes.import_seconds(IMPORTTIME) == pytest.approx({"hydra": 1e-3, "jax": 4e-4, "jaxlib": 7e-5})
    assert processes.heavy_imports(IMPORTTIME) == ["jax"]  # jaxlib's version alone is not heavy
    assert processes.heavy_imports(IMPORTTIME.replace("jaxlib.version", "jaxlib.xla_client")) == [
        "jax",
        "jaxlib",
    ]


def test_t10_sweep_command():
    cmd = processes.sweep_overrides([0.01, 0.1], 2, 20)
    assert cmd == [
        "-m",
        "data=moons",
        "model.sizes=[2,16,2]",
        "optimizer=sgd",
        "optimizer.lr=0.01,0.1",
        "seed=0,1",
        "epochs=20",
    ]


# --------------------------------------------------------------------------- T11: a lazy package


def _fresh(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_importing_the_package_and_configuring_xla_starts_no_jax():
    out = _fresh(
        "import sys, backprop_lab as bl; bl.configure_cpu(); import benchmarks; "
        "print(sorted(m for m in ('jax', 'numpy', 'matplotlib') if m in sys.modules))"
    )
    assert out == "[]"


def test_lazy_names_resolve_and_are_listed():
    import backprop_lab as bl

    for name in bl._EXPORTS:
        assert getattr(bl, name) is not None
    assert set(bl._EXPORTS) <= set(dir(bl))
    assert bl.__all__ == sorted(bl._EXPORTS)
    from backprop_lab import MLP, reference  # noqa: F401  (the from-import form)

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = bl.nope


def test_lazy_table_matches_the_type_checking_imports():
    """The ``X as X`` lines for type checkers name the same (module, name) pairs as the table."""
    import backprop_lab as bl

    tree = ast.parse(Path(bl.__file__).read_text())
    (block,) = [
        n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING"
    ]
    pairs = {}
    for node in block.body:
        for alias in node.names:
            assert alias.asname == alias.name  # the explicit re-export form
            pairs[alias.name] = node.module.lstrip(".") if node.module else alias.name
    assert pairs == bl._EXPORTS
