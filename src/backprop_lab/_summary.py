"""Summaries of Hydra multirun directories: one row per job.

A sweep directory holds one subdirectory per job, each with
``.hydra/overrides.yaml`` (the job's ``key=value`` overrides),
``.hydra/config.yaml`` (its composed config) and, once the job has finished,
``summary.json``. :func:`collect_rows` turns them into flat dicts;
:func:`format_table`, :func:`write_csv` and :func:`plot_loss_vs_lr` present
them. Nothing here imports JAX.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "COMPARE_FIELDS",
    "TRAIN_FIELDS",
    "collect_rows",
    "find_job_dirs",
    "format_table",
    "parse_overrides",
    "plot_loss_vs_lr",
    "read_job",
    "write_csv",
]

Row = dict[str, Any]

TRAIN_FIELDS = (
    "steps", "final_train_loss", "final_test_loss", "test_accuracy", "samples_per_second",
    "wall_time", "diverged_at_step", "grad_start_passed", "grad_start_max_rel_error",
    "grad_end_passed", "grad_end_max_rel_error",
)
"""Columns taken from a training job's summary.json (grad_* flattened from grad_agreement)."""

COMPARE_FIELDS = (
    "passed", "max_abs_error", "max_rel_error", "min_cosine", "manual_time_ms",
    "autodiff_time_ms", "speedup",
)
"""Columns taken from a compare job's summary.json."""


def parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    """Split Hydra override strings into a mapping.

    Arguments:
        overrides: Strings like ``"optimizer.lr=0.01"``, ``"+seed=1"`` or
            ``"~model.init"``.

    Returns:
        ``{key: value}`` with ``+``/``++``/``~`` prefixes dropped; a deletion
        without a value maps to ``""``.
    """
    out: dict[str, str] = {}
    for item in overrides:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~").strip()] = value.strip()
    return out


def find_job_dirs(sweep_dir: str | Path) -> list[Path]:
    """Job directories under a sweep directory: those holding ``.hydra/``.

    Arguments:
        sweep_dir: A Hydra multirun directory (or a parent of several).

    Returns:
        Job directories, numbered ones in numeric order.

    Raises:
        FileNotFoundError: ``sweep_dir`` does not exist or holds no job directory.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory; pass a Hydra multirun directory such as multirun/<date>/<time>")
    jobs = {p.parent for p in root.rglob(".hydra") if p.is_dir()}
    jobs |= {p.parent for p in root.rglob("summary.json") if p.is_file()}
    if not jobs:
        raise FileNotFoundError(
            f"no job directories under {root}: expected subdirectories with .hydra/overrides.yaml "
            "or summary.json, as a Hydra multirun (-m) writes them"
        )

    def order(path: Path) -> tuple:
        parts = path.relative_to(root).parts
        return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)

    return sorted(jobs, key=order)


def _load_yaml(path: Path) -> Any:
    """YAML contents, or None when missing or unreadable."""
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def _lookup(config: Any, dotted: str) -> Any:
    """``config["a"]["b"]`` for ``dotted == "a.b"``, None when absent."""
    for part in dotted.split("."):
        if not isinstance(config, dict) or part not in config:
            return None
        config = config[part]
    return config


def _number(value: Any) -> float | None:
    """A float from a number or numeric string, else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_job(job_dir: str | Path, root: str | Path | None = None) -> Row:
    """One job's row.

    Arguments:
        job_dir: The job directory.
        root: Directory the ``job`` column is relative to (default: parent of ``job_dir``).

    Returns:
        A dict with ``job``, ``overrides`` (space-joined), one ``override:<key>``
        entry per override, ``activation`` and ``lr`` (from the overrides, else
        from ``.hydra/config.yaml``), ``kind`` ("train", "compare" or None),
        ``status`` and the kind's fields (:data:`TRAIN_FIELDS` or
        :data:`COMPARE_FIELDS`), then any other scalar the summary holds.
        ``status`` is the summary's own status
        (for compare jobs "passed"/"failed"), "missing" without summary.json,
        or "corrupt" when it cannot be read as a JSON object.
    """
    job_dir = Path(job_dir)
    root = Path(root) if root is not None else job_dir.parent
    raw = _load_yaml(job_dir / ".hydra" / "overrides.yaml")
    overrides = [str(o) for o in raw] if isinstance(raw, list) else []
    parsed = parse_overrides(overrides)
    config = _load_yaml(job_dir / ".hydra" / "config.yaml")
    row: Row = {
        "job": str(job_dir.relative_to(root)) if job_dir != root else job_dir.name,
        "overrides": " ".join(overrides),
    }
    row.update({f"override:{k}": v for k, v in parsed.items()})
    row["activation"] = parsed.get("model.activation") or _lookup(config, "model.activation")
    row["lr"] = _number(parsed.get("optimizer.lr", _lookup(config, "optimizer.lr")))

    path = job_dir / "summary.json"
    if not path.exists():
        return {**row, "kind": None, "status": "missing"}
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        summary = None
    if not isinstance(summary, dict):
        return {**row, "kind": None, "status": "corrupt"}

    kind = summary.get("kind", "train")
    row["kind"] = kind
    if kind == "compare":
        passed = summary.get("passed")
        row["status"] = summary.get("status") or ("passed" if passed else "failed" if passed is not None else "unknown")
        row.update({f: summary.get(f) for f in COMPARE_FIELDS})
    else:
        row["status"] = summary.get("status") or "unknown"
        row.update({f: summary.get(f) for f in TRAIN_FIELDS if not f.startswith("grad_")})
        agreement = summary.get("grad_agreement") or {}
        for when in ("start", "end"):
            check = agreement.get(when) if isinstance(agreement, dict) else None
            check = check if isinstance(check, dict) else {}
            row[f"grad_{when}_passed"] = check.get("passed")
            row[f"grad_{when}_max_rel_error"] = check.get("max_rel_error")
    # keep any other plain value the job reported (e.g. epochs, grad), for the CSV
    for key, value in summary.items():
        if key not in row and (value is None or isinstance(value, (str, int, float, bool))):
            row[key] = value
    return row


def collect_rows(sweep_dir: str | Path) -> list[Row]:
    """Rows of every job under a sweep directory, in job order.

    Arguments:
        sweep_dir: A Hydra multirun directory.

    Returns:
        One :func:`read_job` dict per job directory.
    """
    root = Path(sweep_dir)
    return [read_job(job, root) for job in find_job_dirs(root)]


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


_TRAIN_COLUMNS = (
    ("final_train_loss", "train loss"), ("final_test_loss", "test loss"),
    ("test_accuracy", "test acc"), ("wall_time", "time s"), ("samples_per_second", "samples/s"),
    ("grad_end_passed", "grad ok"),
)
_COMPARE_COLUMNS = (
    ("max_rel_error", "max rel err"), ("min_cosine", "min cos"), ("manual_time_ms", "manual ms"),
    ("autodiff_time_ms", "autodiff ms"), ("speedup", "speedup"),
)


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
        {**r, "overrides": " ".join(f"{k[len('override:'):]}={r[k]}" for k in varying if k in r)}
        for r in rows
    ]
    return shown, " ".join(f"{k[len('override:'):]}={rows[0][k]}" for k in same)


def format_table(rows: Sequence[Row]) -> str:
    """A plain, column-aligned text table, one line per row.

    Arguments:
        rows: Dicts from :func:`collect_rows`.

    Returns:
        The table: job, overrides (only those that differ between jobs; the
        others are listed once above the table), status, then training columns (loss,
        accuracy, time) when there are training rows and compare columns
        (errors, timings, speedup) when there are compare rows. Absent values
        show as ``-``. An empty input gives ``"(no jobs)"``.
    """
    if not rows:
        return "(no jobs)"
    rows, common = _split_common_overrides(rows)
    columns: list[tuple[str, str]] = [("job", "job"), ("overrides", "overrides"), ("status", "status")]
    kinds = {r.get("kind") for r in rows}
    if kinds - {"compare"}:
        columns += _TRAIN_COLUMNS
    if "compare" in kinds:
        columns += _COMPARE_COLUMNS
    cells = [[header for _, header in columns]]
    cells += [[_fmt(r.get(key)) if key != "overrides" else (r.get(key) or "-") for key, _ in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    numeric = {i for i, (key, _) in enumerate(columns) if key not in ("job", "overrides", "status")}

    def render(line: list[str]) -> str:
        parts = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))]
        return "  ".join(parts).rstrip()

    lines = [f"same in every job: {common}"] if common else []
    lines += [render(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [render(line) for line in cells[1:]]
    return "\n".join(lines)


def write_csv(rows: Sequence[Row], path: str | Path) -> Path:
    """Write rows to a CSV file with the union of their keys as header.

    Arguments:
        rows: Dicts from :func:`collect_rows`.
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


def plot_loss_vs_lr(rows: Sequence[Row], path: str | Path) -> Path | None:
    """Plot final training loss against learning rate, one line per activation.

    Each line goes through the mean loss of the finished runs at each learning
    rate (log x axis; log y when all losses are positive). Diverged runs are
    drawn as an ``x`` above the highest loss, in their activation's colour,
    one row of marks per activation.

    Arguments:
        rows: Dicts from :func:`collect_rows`; only training rows with a
            learning rate count.
        path: Image file to write (PNG).

    Returns:
        ``path``, or None when no row has both a learning rate and a result
        (nothing is written then).
    """
    usable = [
        r for r in rows
        if r.get("kind") == "train" and r.get("lr") and r["lr"] > 0
        and (r.get("status") == "diverged" or _number(r.get("final_train_loss")) is not None)
    ]
    if not usable:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[Row]] = {}
    for r in usable:
        groups.setdefault(str(r.get("activation") or "?"), []).append(r)

    def finite_loss(r: Row) -> float | None:
        v = _number(r.get("final_train_loss"))
        return v if v is not None and math.isfinite(v) and r.get("status") != "diverged" else None

    losses = [v for r in usable if (v := finite_loss(r)) is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    log_y = bool(losses) and min(losses) > 0
    top = (max(losses) * (3.0 if log_y else 1.15) if losses else 1.0) or 1.0
    for k, (name, group) in enumerate(sorted(groups.items())):
        by_lr: dict[float, list[float]] = {}
        for r in group:
            v = finite_loss(r)
            if v is not None:
                by_lr.setdefault(r["lr"], []).append(v)
        xs = sorted(by_lr)
        (line,) = ax.plot(xs, [sum(by_lr[x]) / len(by_lr[x]) for x in xs], marker="o", label=name)
        bad = sorted(r["lr"] for r in group if finite_loss(r) is None)
        if bad:
            # stagger the rows of x marks so activations diverging at the same rate stay visible
            y_bad = top * (1.25**k if log_y else 1.0 + 0.06 * k)
            ax.plot(bad, [y_bad] * len(bad), linestyle="none", marker="x", markersize=10,
                    color=line.get_color(), label=f"{name} diverged")
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final train loss")
    ax.set_title("final train loss by learning rate (x: diverged)")
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
