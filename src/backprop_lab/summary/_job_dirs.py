"""The job directories under a sweep directory, in job order; a tracker's copies left out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["find_job_dirs", "job_order"]


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
    return sorted(jobs, key=lambda path: job_order(path.relative_to(root).parts))


#: Folders of MLflow's stores: a summary.json below one is a run's artifact, a copy of the job's own.
_TRACKER_STORES = frozenset({"mlruns", "mlartifacts"})


def _tracker_copy(path: Path, root: Path) -> bool:
    """Whether a summary.json is an experiment tracker's copy: an MLflow artifact
    (``<store>/<experiment>/<run>/artifacts/summary.json``, or anything below ``mlruns/``)."""
    parts = path.relative_to(root).parts[:-1]
    return bool(_TRACKER_STORES & set(parts)) or (bool(parts) and parts[-1] == "artifacts")


def job_order(parts: Sequence[str]) -> tuple:
    """Sort key of a job path: numbered parts numerically, before named ones."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)
