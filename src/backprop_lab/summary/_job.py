"""One job directory of a sweep read as a flat row.

A job directory holds ``.hydra/overrides.yaml`` (the job's ``key=value`` overrides),
``.hydra/config.yaml`` (its composed config) and, once the job has finished,
``summary.json`` and ``metrics.jsonl``; :func:`read_job` makes one dict of them.
Nothing here imports JAX.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..files._rundir import RunDir

__all__ = [
    "COMPARE_FIELDS",
    "TRAIN_FIELDS",
    "Row",
    "job_overrides",
    "load_yaml",
    "lookup",
    "override_row",
    "parse_overrides",
    "read_job",
    "read_metrics",
]

Row = dict[str, Any]

#: The numbers of a summary's ``grad_agreement`` checks (besides ``passed``), each a column
#: ``grad_start_<field>`` and ``grad_end_<field>``.
AGREEMENT_FIELDS = ("max_rel_error", "tolerance", "max_abs_error", "min_cosine")

TRAIN_FIELDS = (
    "steps",
    "final_train_loss",
    "final_test_loss",
    "test_accuracy",
    "samples_per_second",
    "wall_time",
    "timing",
    "diverged_at_step",
    *(f"grad_{when}_{field}" for when in ("start", "end") for field in ("passed", *AGREEMENT_FIELDS)),
)
"""Columns taken from a training job's summary.json (grad_* flattened from grad_agreement)."""

COMPARE_FIELDS = (
    "passed",
    "max_abs_error",
    "max_rel_error",
    "min_cosine",
    "manual_time_ms",
    "autodiff_time_ms",
    "speedup",
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


#: PyYAML's safe loader, its C parser when it has one (a sweep's summary reads three files a job)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> Any:
    """YAML contents, or None when missing or unreadable (not text, not YAML)."""
    try:
        return yaml.load(path.read_text(), Loader=_LOADER)
    except (OSError, ValueError, yaml.YAMLError):
        return None


def lookup(config: Any, dotted: str) -> Any:
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


def job_overrides(job_dir: Path) -> list[str]:
    """The job's override strings from ``.hydra/overrides.yaml`` ([] when absent)."""
    raw = load_yaml(job_dir / ".hydra" / "overrides.yaml")
    return [str(o) for o in raw] if isinstance(raw, list) else []


def override_row(job: str, overrides: Sequence[str], config: Any) -> Row:
    """The columns a job's overrides and config give: job, overrides, override:<key>, activation, lr."""
    parsed = parse_overrides(overrides)
    row: Row = {"job": job, "overrides": " ".join(overrides)}
    row.update({f"override:{k}": v for k, v in parsed.items()})
    row["activation"] = parsed.get("model.activation") or lookup(config, "model.activation")
    row["lr"] = _number(parsed.get("optimizer.lr", lookup(config, "optimizer.lr")))
    return row


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
    name = str(job_dir.relative_to(root)) if job_dir != root else job_dir.name
    row = override_row(name, job_overrides(job_dir), load_yaml(job_dir / ".hydra" / "config.yaml"))

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
        row["status"] = summary.get("status") or (
            "passed" if passed else "failed" if passed is not None else "unknown"
        )
        row.update({f: summary.get(f) for f in COMPARE_FIELDS})
    else:
        row["status"] = summary.get("status") or "unknown"
        row.update({f: summary.get(f) for f in TRAIN_FIELDS if not f.startswith("grad_")})
        agreement = summary.get("grad_agreement") or {}
        for when in ("start", "end"):
            check = agreement.get(when) if isinstance(agreement, dict) else None
            check = check if isinstance(check, dict) else {}
            for field in ("passed", *AGREEMENT_FIELDS):
                row[f"grad_{when}_{field}"] = check.get(field)
    # keep any other plain value the job reported (e.g. epochs, grad), for the CSV
    for key, value in summary.items():
        if key not in row and (value is None or isinstance(value, (str, int, float, bool))):
            row[key] = value
    return row


def read_metrics(job_dir: str | Path) -> list[dict]:
    """A job's metrics.jsonl records (step 0 first); [] when absent; a torn last line
    (a job killed while appending) is left out."""
    return RunDir(job_dir).records()
