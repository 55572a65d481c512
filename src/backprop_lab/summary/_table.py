"""Sweep rows as text: the per-job table, the seed-aggregated table, Markdown and CSV.

Nothing here imports JAX or matplotlib.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._job import Row
from ._stats import Group, Stat, group_rows, replicates

__all__ = ["format_groups", "format_table", "markdown", "status_counts", "write_csv"]

_TRAIN_COLUMNS = (
    ("final_train_loss", "train loss"),
    ("final_test_loss", "test loss"),
    ("test_accuracy", "test acc"),
    ("wall_time", "time s"),
    ("samples_per_second", "samples/s"),
    ("grad_end_passed", "grad ok"),
    ("grad_end_max_rel_error", "grad rel err"),
    ("grad_end_tolerance", "grad tol"),
)
_COMPARE_COLUMNS = (
    ("max_rel_error", "max rel err"),
    ("min_cosine", "min cos"),
    ("manual_time_ms", "manual ms"),
    ("autodiff_time_ms", "autodiff ms"),
    ("speedup", "speedup"),
)
_GROUP_COLUMNS = {
    "train": (
        ("final_train_loss", "train loss"),
        ("final_test_loss", "test loss"),
        ("test_accuracy", "test acc"),
        ("wall_time", "time s"),
    ),
    "compare": (("max_rel_error", "max rel err"), ("speedup", "speedup")),
}
_TEXT_COLUMNS = ("job", "overrides", "status", "group", "runs")
#: summary.md's note under the jobs when some ran as lanes of a vmapped program.
PROGRAM_TIMING = (
    "A job trained as a lane of a vmapped program (`timing: program`) shows its program's "
    "time and samples/s: all of the program's lanes together, the same in each."
)


def _fmt(value: Any) -> str:
    """A table cell."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e9):
            return f"{value:.3e}"
        if abs(value) >= 1e4:
            return f"{value:.0f}"
        return f"{value:.4g}"
    return str(value)


def _fmt_stat(stat: Stat) -> str:
    """``mean ± std`` (``mean`` alone for one run, ``-`` for none)."""
    if stat.mean is None:
        return "-"
    return _fmt(stat.mean) if stat.n < 2 else f"{_fmt(stat.mean)} ± {_fmt(stat.std)}"


def _split_common_overrides(rows: Sequence[Row]) -> tuple[list[Row], str]:
    """Rows whose ``overrides`` show only what differs between jobs, and the rest as one string."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k.startswith("override:") and k not in keys]
    if len(rows) < 2 or not keys:
        return list(rows), ""
    same = [k for k in keys if len({r.get(k) for r in rows}) == 1]
    if not same:
        return list(rows), ""
    varying = [k for k in keys if k not in same]
    shown = [
        {**r, "overrides": " ".join(f"{k[len('override:') :]}={r[k]}" for k in varying if k in r)}
        for r in rows
    ]
    return shown, " ".join(f"{k[len('override:') :]}={rows[0][k]}" for k in same)


def _columns(rows: Sequence[Row]) -> list[tuple[str, str]]:
    columns = [("job", "job"), ("overrides", "overrides"), ("status", "status")]
    kinds = {r.get("kind") for r in rows}
    if kinds - {"compare"}:
        columns += _TRAIN_COLUMNS
    if "compare" in kinds:
        columns += _COMPARE_COLUMNS
    return columns


def _render(header: Sequence[str], body: Sequence[Sequence[str]], text: Sequence[bool]) -> list[str]:
    """Aligned lines: text columns left, numbers right, a dashed rule under the header."""
    cells = [list(header), *map(list, body)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]

    def line(items: list[str]) -> str:
        parts = [c.ljust(w) if t else c.rjust(w) for c, w, t in zip(items, widths, text)]
        return "  ".join(parts).rstrip()

    return [line(cells[0]), "  ".join("-" * w for w in widths), *(line(c) for c in cells[1:])]


def _job_cells(rows: Sequence[Row]) -> tuple[list[str], list[list[str]], str]:
    shown, common = _split_common_overrides(rows)
    columns = _columns(shown)
    body = [[_fmt(r.get(k)) if k != "overrides" else (r.get(k) or "-") for k, _ in columns] for r in shown]
    return [h for _, h in columns], body, common


def format_table(rows: Sequence[Row]) -> str:
    """A plain, column-aligned text table, one line per job.

    Arguments:
        rows: Dicts from ``collect_rows``.

    Returns:
        The table: job, overrides (only those that differ between jobs; the
        others are listed once above the table), status, then training columns (loss,
        accuracy, time) when there are training rows and compare columns
        (errors, timings, speedup) when there are compare rows. Absent values
        show as ``-``. An empty input gives ``"(no jobs)"``.
    """
    if not rows:
        return "(no jobs)"
    header, body, common = _job_cells(rows)
    lines = [f"same in every job: {common}"] if common else []
    lines += _render(header, body, [h in _TEXT_COLUMNS for h in header])
    return "\n".join(lines)


def _group_cells(groups: Sequence[Group]) -> tuple[list[str], list[list[str]]]:
    kinds = {r.get("kind") for g in groups for r in g.rows} - {None}
    metrics = [c for kind in ("train", "compare") if kind in kinds for c in _GROUP_COLUMNS[kind]]
    header = ["group", "runs", *(h for _, h in metrics)]
    body = []
    for g in groups:
        failed = len(g.rows) - len(g.finished)
        runs = f"{len(g.finished)}/{len(g.rows)}" + (f" ({failed} not finished)" if failed else "")
        body.append([g.label, runs, *(_fmt_stat(g.stat(m)) for m, _ in metrics)])
    return header, body


def _aggregated(rows: Sequence[Row]) -> list[Group] | None:
    """The seed groups, or None when no group holds more than one run (nothing to aggregate)."""
    groups = group_rows(rows)
    return groups if any(len(g.rows) > 1 for g in groups) else None


def format_groups(rows: Sequence[Row]) -> str | None:
    """The jobs that differ only in their seed as one line each: mean ± sample standard
    deviation of the finished runs, and how many finished of how many planned.

    Returns:
        The table, or None when every group is a single run.
    """
    groups = _aggregated(rows)
    if groups is None:
        return None
    header, body = _group_cells(groups)
    low, high = replicates(groups)
    title = (
        f"mean ± 1 s.d. over the seeds ({low}-{high} finished runs per group)"
        if low != high
        else (f"mean ± 1 s.d. over the seeds ({high} finished runs per group)")
    )
    return "\n".join([title, *_render(header, body, [h in _TEXT_COLUMNS for h in header])])


def status_counts(rows: Sequence[Row]) -> str:
    """``"6 jobs: 4 completed, 2 not started"``."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return f"{len(rows)} jobs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _md_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(c) for c in body)]


def markdown(rows: Sequence[Row], title: str, images: Sequence[str] = ()) -> str:
    """summary.md: the status counts, the aggregated table (when seeds were swept), the
    per-job table and the plots.

    Arguments:
        rows: Dicts from ``collect_rows``.
        title: The heading (the sweep directory).
        images: Image file names (relative to the Markdown file) to show.
    """
    lines = [f"# {title}", "", status_counts(rows), ""]
    lines += [f"![{Path(name).stem}]({name})\n" for name in images]
    groups = _aggregated(rows)
    if groups is not None:
        lines += ["## Mean ± 1 s.d. over the seeds", "", *_md_table(*_group_cells(groups)), ""]
    header, body, common = _job_cells(rows)
    lines += ["## Jobs", ""] + ([f"Same in every job: `{common}`", ""] if common else [])
    lines += [*_md_table(header, body), ""]
    if any(r.get("timing") == "program" for r in rows):
        lines += [PROGRAM_TIMING, ""]
    return "\n".join(lines)


def write_csv(rows: Sequence[Row], path: str | Path) -> Path:
    """Write rows to a CSV file with the union of their keys as header.

    Arguments:
        rows: Dicts from ``collect_rows``.
        path: Output file.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return path
