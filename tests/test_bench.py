"""The benchmark harness runs on tiny sizes and reports what docs/benchmarks.md relies on.

Nothing here asserts a timing: the machine is shared and the sizes are toys.
"""

import json

import numpy as np
import pytest

from backprop_lab import _bench as bench

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


@pytest.mark.parametrize("name", list(bench.BENCHMARKS))
def test_every_benchmark_runs_tiny(name):
    result = bench.run_one(name, "tiny")
    target = name.split("_")[0].upper()
    check_rows(result["rows"], target)
    assert result["peak_rss_mib"] >= result["baseline_rss_mib"] > 0
    for r in result["rows"]:
        assert r["details"]["peak_rss_mib"] == result["peak_rss_mib"]
        if r["met"] is not None:  # a row with a goal has a ratio to judge it by
            assert r["ratio"] is not None


def test_every_benchmark_has_the_three_modes():
    for name, (fn, modes) in bench.BENCHMARKS.items():
        assert set(modes) == {"full", "quick", "tiny"}, name
        assert callable(fn)


def test_t1_rows_carry_both_medians():
    step, scan = bench.bench_step_ratio(sizes=(3, 5, 2), batch=4, repeats=3, scan_steps=2,
                                        chained=2)
    assert "jitted step" in step["what"] and "scan" in scan["what"]
    for r in (step, scan):
        d = r["details"]
        assert d["manual"]["repeats"] == d["autodiff"]["repeats"] == 3
        assert r["ratio"] == pytest.approx(d["manual"]["median_s"] / d["autodiff"]["median_s"])
        assert d["chained_ratio"] > 0


def test_t3_reference_races_in_both_dtypes():
    (r,) = bench.bench_digits(sizes=(64, 4, 10), batch=8, steps=3, repeats=1, n_train=32)
    rates = r["details"]["samples_per_s"]
    assert set(rates) == {"jax", "numpy_float32", "numpy_float64"}
    assert r["details"]["fastest_reference"] in ("numpy_float32", "numpy_float64")


def test_matmul_flops_counts_forward_and_backward_products():
    # one layer: forward x·Wᵀ and ∂L/∂W, no δ for the input
    assert bench.matmul_flops([3, 2], 5) == 2 * (2 * 5 * 3 * 2)
    # two layers: plus δ·W for the hidden layer
    assert bench.matmul_flops([3, 4, 2], 5) == 2 * 2 * 5 * (3 * 4 + 4 * 2) + 2 * 5 * 4 * 2


def test_time_interleaved_alternates_and_counts():
    calls = []
    times = bench.time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                   repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert [len(t) for t in times.values()] == [3, 3]


def test_missing_sweep_is_reported_not_run(monkeypatch):
    import backprop_lab

    monkeypatch.delattr(backprop_lab, "train_sweep", raising=False)
    (r,) = bench.bench_sweep(lanes=2, steps=2)
    assert r["met"] is None and r["ratio"] is None
    assert r["measured"] == "not run: train_sweep not available"


def test_markdown_table_marks_misses():
    rows = [bench.row("T1", "a", "1 ms", 1.2, "≤ 1.05", False, peak_rss_mib=100.0),
            bench.row("T6", "b", "2 ms", 3.0, "report", None)]
    table = bench.markdown_table(rows).splitlines()
    assert table[0].startswith("| target | what |")
    assert "**no**" in table[2] and "100 MiB" in table[2]
    assert "| — |" in table[3]


def test_main_writes_json_with_machine_and_rows(tmp_path, capsys):
    out = tmp_path / "b.json"
    args = ["t2", "t6", "--mode", "tiny", "--in-process", "--no-configure", "--json", str(out)]
    assert bench.main(args) == 0
    report = json.loads(out.read_text())
    assert {"machine", "mode", "isolated", "benchmarks", "rows"} <= set(report)
    m = report["machine"]
    for key in ("date", "cpu", "cores", "jax", "jaxlib", "numpy", "xla_flags"):
        assert key in m
    assert [r["target"] for r in report["rows"]] == ["T2", "T6", "T6"]
    assert "| T2 |" in capsys.readouterr().out


@pytest.mark.slow
def test_isolated_run_reports_its_own_peak_rss():
    report = bench.run_suite(["t2"], "tiny", isolate=True)
    (res,) = report["benchmarks"]
    assert "error" not in res
    assert res["peak_rss_mib"] > 0
    check_rows(res["rows"], "T2")


def test_configure_cpu_adds_options_and_keeps_the_users():
    from backprop_lab._xla import CPU_XLA_FLAGS, merge_xla_flags

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

    from backprop_lab._xla import configure_cpu

    jnp.zeros(1).block_until_ready()
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    with pytest.warns(UserWarning, match="after JAX started"):
        assert configure_cpu() == "--xla_cpu_enable_fast_math=false"


def test_time_interleaved_settles_before_each_timed_call():
    calls = []
    bench.time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                           repeats=2, warmup=0, settle=1)
    assert calls == ["a", "a", "b", "b", "b", "b", "a", "a"]
