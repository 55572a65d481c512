"""The runner of ``scripts/bench``: every target, a Markdown table and a JSON report.

Every benchmark is a function that returns table rows (dicts with ``target``,
``what``, ``measured``, ``ratio``, ``goal``, ``met`` and ``details``): T1–T6
in :mod:`.targets` (inside one interpreter), T7 and T9–T11 in
:mod:`.processes` (plain scripts and whole commands, timed from outside). The
harness times with warm-up, interleaved repeats and medians: when two things
are compared (manual against autodiff, JAX against NumPy, one command against
another) their repeats alternate, so another process that slows the machine
for a second slows both sides alike, and the ratio is of the two medians.

By default each benchmark runs in a fresh subprocess, for two reasons: its
peak resident memory (``ru_maxrss``) is its own and not the maximum of every
benchmark before it, and its compile caches and XLA thread pools start cold
and identical. ``--in-process`` runs them in this interpreter instead (then
the peak RSS column is the process's peak so far).

Usage::

    scripts/bench                 # full suite, Markdown table, bench-results/bench.json
    scripts/bench --quick         # smaller repeats and steps, a few minutes
    scripts/bench t1_small t3     # only these benchmarks
    scripts/bench --json out.json --list
    python -m benchmarks          # the same from the repository's root, without the venv set-up
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from backprop_lab import configure_cpu

from . import architectures, processes, targets
from .processes import USER_XLA_FLAGS
from .timing import Row, row

#: Every benchmark: name → (function, keyword arguments per mode).
BENCHMARKS = {**targets.BENCHMARKS, **processes.BENCHMARKS, **architectures.BENCHMARKS}

#: The default output file of ``scripts/bench`` (git-ignored).
DEFAULT_JSON = Path("bench-results") / "bench.json"


def _rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set so far, MiB (ru_maxrss is KiB on Linux): of this process, or
    with ``RUSAGE_CHILDREN`` of the largest child it waited for."""
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(who).ru_maxrss * scale / 2**20


def run_one(name: str, mode: str = "full") -> dict[str, Any]:
    """Run one benchmark here; returns its rows, wall time and peak RSS.

    For an in-process benchmark ``baseline_rss_mib`` is the peak after
    importing JAX and running one tiny jitted op, so ``peak_rss_mib -
    baseline_rss_mib`` is roughly the benchmark's own memory when it ran in a
    fresh process. For a benchmark of commands (:mod:`.processes`) this
    interpreter imports no JAX, and the peak is that of the largest command.
    """
    whole = name in processes.BENCHMARKS
    if not whole:
        import jax
        import jax.numpy as jnp

        jax.jit(lambda v: v + 1)(jnp.zeros(4)).block_until_ready()
    baseline = _rss_mib()
    fn, modes = BENCHMARKS[name]
    t0 = time.perf_counter()
    rows = fn(**modes[mode])
    wall = time.perf_counter() - t0
    peak = _rss_mib(resource.RUSAGE_CHILDREN if whole else resource.RUSAGE_SELF)
    for r in rows:
        r["details"]["peak_rss_mib"] = peak
    return {
        "name": name,
        "mode": mode,
        "rows": rows,
        "wall_s": wall,
        "peak_rss_mib": peak,
        "baseline_rss_mib": baseline,
    }


_CHILD_TAG = "BENCH_RESULT "


def run_isolated(name: str, mode: str, timeout: float = 3600, configure: bool = True) -> dict[str, Any]:
    """:func:`run_one` in a fresh interpreter (own peak RSS, cold caches)."""
    cmd = [sys.executable, "-m", "benchmarks", "--child", name, "--mode", mode]
    if not configure:
        cmd.append("--no-configure")
    # From the repository's root, where ``-m benchmarks`` finds this package (it is not installed).
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=processes.ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith(_CHILD_TAG):
            return json.loads(line[len(_CHILD_TAG) :])
    tail = (proc.stderr or proc.stdout)[-2000:]
    return {
        "name": name,
        "mode": mode,
        "error": f"exit {proc.returncode}: {tail}",
        "rows": [row(name.split("_")[0].upper(), name, f"error (exit {proc.returncode})", None, "", False)],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU, core count, load, library versions and XLA flags of this run."""
    from importlib.metadata import version

    from .processes import user_env

    info: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": version("jax"),
        "jaxlib": version("jaxlib"),
        "numpy": np.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "user_xla_flags": user_env().get("XLA_FLAGS", ""),
    }
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def _loads(loads) -> str:
    return "?" if not loads else "/".join(f"{v:.2f}" for v in loads)


def _fmt_ratio(r: float | None) -> str:
    if r is None:
        return "—"
    return f"{r:.0f}×" if r >= 100 else f"{r:.3g}×"


def markdown_table(rows: list[Row]) -> str:
    """The results as a Markdown table (target, what, measured, ratio, goal, met?, peak RSS)."""
    lines = [
        "| target | what | measured (medians) | ratio | goal | met? | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = "—" if r["met"] is None else ("yes" if r["met"] else "**no**")
        rss = r["details"].get("peak_rss_mib")
        rss_s = "—" if rss is None else f"{rss:.0f} MiB"
        lines.append(
            f"| {r['target']} | {r['what']} | {r['measured']} | {_fmt_ratio(r['ratio'])} "
            f"| {r['goal']} | {met} | {rss_s} |"
        )
    return "\n".join(lines)


def run_suite(
    names: list[str] | None = None,
    mode: str = "full",
    isolate: bool = True,
    progress: Callable[[str], None] | None = None,
    configure: bool = True,
) -> dict[str, Any]:
    """Run benchmarks (all by default) and return the JSON-ready report.

    ``configure`` says whether the XLA options of :func:`configure_cpu` are
    in force (it only tells the subprocesses; in process, the caller decides
    before JAX starts).

    Returns:
        ``{"machine": ..., "mode": ..., "benchmarks": [...], "rows": [...],
        "isolated": ...}``; each row carries its benchmark's peak RSS.
    """
    names = list(BENCHMARKS) if names is None else names
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; valid: {', '.join(BENCHMARKS)}")
    if mode not in ("full", "quick", "tiny"):
        raise ValueError(f"mode must be full, quick or tiny, got {mode!r}")
    machine = machine_info()
    results = []
    for name in names:
        if progress:
            progress(f"running {name} ({mode})…")
        results.append(run_isolated(name, mode, configure=configure) if isolate else run_one(name, mode))
    machine["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    rows = [r for res in results for r in res["rows"]]
    return {
        "machine": machine,
        "mode": mode,
        "isolated": isolate,
        "configured": configure,
        "benchmarks": results,
        "rows": rows,
    }


def write_json(report: dict[str, Any], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=float) + "\n")
    return path


def _refused(names: list[str], json_path: Path | None) -> str | None:
    """Why a command line cannot run (one line), before anything runs: a benchmark name that is
    not one, or a report file that cannot be written."""
    from backprop_lab.apps._summarize import unwritable

    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        return f"unknown benchmark {', '.join(map(repr, unknown))}; valid names: {', '.join(BENCHMARKS)}"
    if json_path is not None and (why := unwritable(json_path)):
        return f"--json {json_path}: cannot be written ({why})"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {', '.join(BENCHMARKS)}")
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats and steps: a smoke run, not figures to quote"
    )
    parser.add_argument("--mode", choices=("full", "quick", "tiny"), default=None)
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the JSON report")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run every benchmark in this interpreter (peak RSS is then cumulative)",
    )
    parser.add_argument(
        "--no-configure",
        action="store_true",
        help="leave XLA_FLAGS as they are (skip configure_cpu), for a before/after",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if problem := _refused(args.names, None if args.child or args.list else Path(args.json)):
        print(f"scripts/bench: {problem}", file=sys.stderr)
        return 2
    mode = args.mode or ("quick" if args.quick else "full")
    os.environ.setdefault(USER_XLA_FLAGS, os.environ.get("XLA_FLAGS", ""))  # for the commands
    if not args.no_configure:
        configure_cpu()
    if args.child:
        print(_CHILD_TAG + json.dumps(run_one(args.child, mode), default=float), flush=True)
        return 0
    if args.list:
        for name, (fn, _) in BENCHMARKS.items():
            print(f"{name}: {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0
    report = run_suite(
        args.names or None,
        mode,
        isolate=not args.in_process,
        progress=lambda s: print(s, file=sys.stderr, flush=True),
        configure=not args.no_configure,
    )
    m = report["machine"]
    print(
        f"{m['date']}  {m['cpu']}, {m['cores']} cores, jax {m['jax']}, numpy {m['numpy']}, "
        f"mode {mode}, load average {_loads(m.get('load_average'))} before, "
        f"{_loads(m.get('load_average_after'))} after"
    )
    print(
        f"XLA_FLAGS: {m['xla_flags'] or '(none)'} (the commands of T7, T9-T11 start with "
        f"{m['user_xla_flags'] or 'none'})\n"
    )
    print(markdown_table(report["rows"]))
    for r in report["rows"]:
        if r["details"].get("where_the_time_goes"):
            print(f"\n{r['target']}, where the time of one more run goes (seconds since its start):")
            print("\n".join(processes.describe_probe(r["details"]["where_the_time_goes"])))
    path = write_json(report, args.json)
    print(f"\nJSON: {path}")
    return 0 if all(res.get("error") is None for res in report["benchmarks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
