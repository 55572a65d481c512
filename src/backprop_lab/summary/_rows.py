"""Reading a Hydra multirun directory: one row per job, planned jobs included.

A sweep directory holds ``multirun.yaml`` (the sweep's config: its overrides
give the planned combinations) and one subdirectory per job, each with
``.hydra/overrides.yaml`` (the job's ``key=value`` overrides),
``.hydra/config.yaml`` (its composed config) and, once the job has finished,
``summary.json`` and ``metrics.jsonl``. :func:`collect_rows` turns them into
flat dicts, with a ``"not started"`` row for each planned job that has no
directory (a killed sweep). The presentation is elsewhere:
``_summary_stats`` (seeds aggregated), ``_summary_table`` (text, Markdown,
CSV), ``_summary_plots`` and ``_summary_cli``. Nothing here imports JAX.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..config._keys import NOT_RESULT_KEYS
from ..files._rundir import RunDir
from ._plan import MAX_PLANNED, check_sweep_size, sweep_arguments

__all__ = [
    "COMPARE_FIELDS",
    "MAX_PLANNED",
    "NOT_STARTED",
    "TRAIN_FIELDS",
    "collect_rows",
    "find_job_dirs",
    "parse_overrides",
    "planned_jobs",
    "read_job",
    "read_metrics",
]

Row = dict[str, Any]

#: The numbers of a summary's ``grad_agreement`` checks (besides ``passed``), each a column
#: ``grad_start_<field>`` and ``grad_end_<field>``.
AGREEMENT_FIELDS = ("max_rel_error", "tolerance", "max_abs_error", "min_cosine")

NOT_STARTED = "not started"
"""Status of a job the sweep planned (multirun.yaml) that has no directory."""

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


def find_job_dirs(sweep_dir: str | Path, *, allow_empty: bool = False) -> list[Path]:
    """Job directories under a sweep directory: those holding ``.hydra/`` or ``summary.json``,
    but none inside another job directory (a tracker's store in a run, say) and no copy an
    MLflow store holds as an artifact: only the jobs' own files count.

    Arguments:
        sweep_dir: A Hydra multirun directory (or a parent of several).
        allow_empty: Return ``[]`` instead of raising when no job directory is
            there (a sweep killed before its first job still has multirun.yaml).

    Returns:
        Job directories, numbered ones in numeric order.

    Raises:
        FileNotFoundError: ``sweep_dir`` does not exist, or holds no job
            directory and ``allow_empty`` is false.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root} is not a directory; pass a Hydra multirun directory such as multirun/<date>/<time>"
        )
    jobs = {p.parent for p in root.rglob(".hydra") if p.is_dir()}
    jobs |= {p.parent for p in root.rglob("summary.json") if p.is_file() and not _tracker_copy(p, root)}
    # a job's own files only: what lies inside a job directory (a tracker's store, copies) is the job's
    jobs = {job for job in jobs if not any(parent in jobs for parent in job.parents)}
    if not jobs and not allow_empty:
        raise FileNotFoundError(
            f"no job directories under {root}: expected subdirectories with .hydra/overrides.yaml "
            "or summary.json, as a Hydra multirun (-m) writes them"
        )
    return sorted(jobs, key=lambda path: _job_order(path.relative_to(root).parts))


#: Folders of MLflow's stores: a summary.json below one is a run's artifact, a copy of the job's own.
_TRACKER_STORES = frozenset({"mlruns", "mlartifacts"})


def _tracker_copy(path: Path, root: Path) -> bool:
    """Whether a summary.json is an experiment tracker's copy: an MLflow artifact
    (``<store>/<experiment>/<run>/artifacts/summary.json``, or anything below ``mlruns/``)."""
    parts = path.relative_to(root).parts[:-1]
    return bool(_TRACKER_STORES & set(parts)) or (bool(parts) and parts[-1] == "artifacts")


def _job_order(parts: Sequence[str]) -> tuple:
    """Sort key of a job path: numbered parts numerically, before named ones."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


#: PyYAML's safe loader, its C parser when it has one (a sweep's summary reads three files a job)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(path: Path) -> Any:
    """YAML contents, or None when missing or unreadable (not text, not YAML)."""
    try:
        return yaml.load(path.read_text(), Loader=_LOADER)
    except (OSError, ValueError, yaml.YAMLError):
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


def _job_overrides(job_dir: Path) -> list[str]:
    """The job's override strings from ``.hydra/overrides.yaml`` ([] when absent)."""
    raw = _load_yaml(job_dir / ".hydra" / "overrides.yaml")
    return [str(o) for o in raw] if isinstance(raw, list) else []


def _override_row(job: str, overrides: Sequence[str], config: Any) -> Row:
    """The columns a job's overrides and config give: job, overrides, override:<key>, activation, lr."""
    parsed = parse_overrides(overrides)
    row: Row = {"job": job, "overrides": " ".join(overrides)}
    row.update({f"override:{k}": v for k, v in parsed.items()})
    row["activation"] = parsed.get("model.activation") or _lookup(config, "model.activation")
    row["lr"] = _number(parsed.get("optimizer.lr", _lookup(config, "optimizer.lr")))
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
    row = _override_row(name, _job_overrides(job_dir), _load_yaml(job_dir / ".hydra" / "config.yaml"))

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


def planned_jobs(sweep_dir: str | Path) -> list[list[str]] | None:
    """The jobs a sweep planned, as Hydra's basic sweeper expands them.

    The sweep's ``multirun.yaml`` keeps its overrides (``hydra.overrides.task``,
    after ``hydra.sweeper.params``); each sweep override (``a=1,2``,
    ``range(…)``, ``choice(…)``) contributes its values and the jobs are their
    Cartesian product, in Hydra's job order.

    Arguments:
        sweep_dir: A Hydra multirun directory.

    Returns:
        Per planned job, its override strings (as its ``.hydra/overrides.yaml``
        holds them); None without a readable multirun.yaml, with another sweeper,
        with a sweep that cannot be expanded without the config (``glob``), or with
        a plan of more than :data:`MAX_PLANNED` jobs (not expanded: the work is bounded).
    """
    config = _load_yaml(Path(sweep_dir) / "multirun.yaml")
    sweeper = str(_lookup(config, "hydra.sweeper._target_") or "")
    task = _lookup(config, "hydra.overrides.task")
    if not sweeper.endswith("BasicSweeper") or not isinstance(task, list):
        return None
    arguments = sweep_arguments(_lookup(config, "hydra.sweeper.params"), task)
    from hydra.core.override_parser.overrides_parser import OverridesParser

    choices: dict[str, list[str]] = {}
    try:
        check_sweep_size(arguments)  # no sweep of more ran here: its jobs' directories are what there is
        for override in OverridesParser.create().parse_overrides(arguments):
            key = override.get_key_element()
            if not override.is_sweep_override():
                choices[key] = [f"{key}={override.get_value_element_as_str()}"]
            elif override.is_discrete_sweep():
                choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
            else:
                return None
    except Exception:  # a parse error, a plan too large, or a glob that needs the config loader
        return None
    return [list(combination) for combination in itertools.product(*choices.values())]


def _run_identity(overrides: Iterable[str]) -> frozenset[str]:
    """The overrides that say which run a job is: those of keys a resume may change
    (``resume=true``, more ``epochs``, another ``logger``: NOT_RESULT_KEYS) left out."""
    return frozenset(
        o for o in overrides if o.split("=", 1)[0].lstrip("+~").split(".")[0] not in NOT_RESULT_KEYS
    )


def _not_started(plan: list[list[str]], started: list[list[str]]) -> list[int]:
    """The numbers of the planned jobs no job directory holds.

    Each directory stands for one planned job: one with the same overrides first,
    then one that is the same run (a sweep rerun with ``resume=true`` or more
    ``epochs`` plans overrides that its resumed jobs' directories do not hold).
    """
    exact = Counter(frozenset(o) for o in started)
    left: list[int] = []
    for number, overrides in enumerate(plan):
        if exact[frozenset(overrides)] > 0:
            exact[frozenset(overrides)] -= 1
        else:
            left.append(number)
    same_run: Counter[frozenset[str]] = Counter()
    for held, count in exact.items():
        same_run[_run_identity(held)] += count
    missing: list[int] = []
    for number in left:
        if same_run[_run_identity(plan[number])] > 0:
            same_run[_run_identity(plan[number])] -= 1
        else:
            missing.append(number)
    return missing


def read_metrics(job_dir: str | Path) -> list[dict]:
    """A job's metrics.jsonl records (step 0 first); [] when absent; a torn last line
    (a job killed while appending) is left out."""
    return RunDir(job_dir).records()


def collect_rows(sweep_dir: str | Path) -> list[Row]:
    """Rows of every job under a sweep directory, planned jobs without a directory included.

    Arguments:
        sweep_dir: A Hydra multirun directory.

    Returns:
        One :func:`read_job` dict per job directory, plus, when multirun.yaml
        plans jobs no directory holds (a killed sweep), a row per such job with
        status :data:`NOT_STARTED` and ``job`` its number in the plan; in job
        order.

    Raises:
        FileNotFoundError: ``sweep_dir`` is missing, or holds neither a job
            directory nor multirun.yaml.
    """
    root = Path(sweep_dir)
    has_plan = (root / "multirun.yaml").is_file()
    jobs = find_job_dirs(root, allow_empty=has_plan)
    rows = [read_job(job, root) for job in jobs]
    plan = planned_jobs(root) if has_plan else None
    if plan:
        rows += [
            {**_override_row(str(number), plan[number], None), "kind": None, "status": NOT_STARTED}
            for number in _not_started(plan, [_job_overrides(job) for job in jobs])
        ]
    return sorted(rows, key=lambda row: _job_order(Path(row["job"]).parts))
