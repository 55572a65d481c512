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


SLOW = {"t9", "t10", "t12"}  # whole training commands, several seconds each


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


# --------------------------------------------------------------------------- beside the package, not in it

ROOT = Path(__file__).resolve().parents[2]
#: The benchmarks' package, and its name when it was installed with the library.
BENCH_PACKAGES = ("benchmarks", "backprop_lab_bench")


def test_importing_the_benchmarks_starts_neither_jax_nor_the_library():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, benchmarks; print(sorted(m for m in "
            "('jax', 'numpy', 'matplotlib', 'backprop_lab') if m in sys.modules))",
        ],
        cwd=ROOT,  # where the package is (it is not installed)
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "[]"


def _imported_names(tree: ast.AST):
    """(line, module) of each absolute import, and of each ``import_module``/``__import__`` call
    with a literal name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def test_nothing_under_src_imports_the_benchmarks():
    """The library and the Hydra plugins (all of src/) import nothing from benchmarks/:
    lint-imports' contract sees backprop_lab only."""
    sources = sorted((ROOT / "src").rglob("*.py"))
    assert any(p.name == "cli.py" for p in sources)
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sources
        for line, name in _imported_names(ast.parse(path.read_text(), str(path)))
        if name.split(".")[0] in BENCH_PACKAGES
    ]
    assert not found


def test_the_import_scan_sees_every_form():
    code = "import benchmarks.timing\nfrom benchmarks import runner\nimportlib.import_module('benchmarks')\n"
    assert [n for _, n in _imported_names(ast.parse(code))] == [
        "benchmarks.timing",
        "benchmarks",
        "benchmarks",
    ]


def test_setuptools_finds_the_library_and_no_benchmarks():
    """The packages pyproject's [tool.setuptools.packages.find] selects (what a wheel holds)."""
    import tomllib

    from setuptools import find_namespace_packages

    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = {
        pkg
        for where in find.get("where", ["."])
        for pkg in find_namespace_packages(
            str(ROOT / where), include=find.get("include", ["*"]), exclude=find.get("exclude", [])
        )
    }
    assert {"backprop_lab", "backprop_lab.nn", "hydra_plugins.backprop_lab_vmap_launcher"} <= found
    assert not {p for p in found if p.split(".")[0] in BENCH_PACKAGES}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["t2", "t99"], r"^scripts/bench: unknown benchmark 't99'; valid names: t1_small, "),
        (["t2", "--json", "{tmp}"], r"^scripts/bench: --json {tmp}: cannot be written \(Is a directory\)$"),
        (
            ["t2", "--json", "/proc/none/b.json"],
            r"^scripts/bench: --json /proc/none/b.json: cannot be written",
        ),
        (
            ["t2", "--json", "{tmp}/file/b.json"],
            r"--json {tmp}/file/b.json: cannot be written \(Not a directory\)$",
        ),
    ],
)
def test_a_command_line_that_cannot_run_is_one_line_and_status_2(tmp_path, capsys, args, message):
    """Refused before any benchmark runs, and nothing is left behind."""
    import re

    (tmp_path / "file").write_text("mine")
    before = sorted(tmp_path.rglob("*"))
    assert runner.main([a.format(tmp=tmp_path) for a in args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert re.search(message.format(tmp=re.escape(str(tmp_path))), captured.err.strip()), captured.err
    assert sorted(tmp_path.rglob("*")) == before
