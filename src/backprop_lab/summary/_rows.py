"""Reading a Hydra multirun directory: one row per job, planned jobs included.

A sweep directory holds ``multirun.yaml`` (the sweep's config: its overrides
give the planned combinations, :mod:`._plan`) and one subdirectory per job
(:mod:`._job_dirs`), each read as one row (:mod:`._job`). :func:`collect_rows`
turns them into flat dicts, with a ``"not started"`` row for each planned job that
has no directory (a killed sweep). The presentation is elsewhere:
``_summary_stats`` (seeds aggregated), ``_summary_table`` (text, Markdown,
CSV), ``_summary_plots`` and ``_summary_cli``. Nothing here imports JAX.
"""

from __future__ import annotations

from pathlib import Path

from ._job import Row, job_overrides, override_row, read_job
from ._job_dirs import find_job_dirs, job_order
from ._plan import not_started, planned_jobs

__all__ = ["NOT_STARTED", "collect_rows"]

NOT_STARTED = "not started"
"""Status of a job the sweep planned (multirun.yaml) that has no directory."""


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
            {**override_row(str(number), plan[number], None), "kind": None, "status": NOT_STARTED}
            for number in not_started(plan, [job_overrides(job) for job in jobs])
        ]
    return sorted(rows, key=lambda row: job_order(Path(row["job"]).parts))
