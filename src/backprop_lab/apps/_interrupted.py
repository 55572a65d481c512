"""A job a signal stopped outside a run's engine: its directory says ``status: "interrupted"``."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["stopped_dirs", "record_interrupted"]


def stopped_dirs() -> list[tuple[Path, bool]]:
    """The directories a signal stopped, each with whether it may hold a run of its own: every
    job directory of the sweep this process launches (a parallel launcher's workers end with
    it), else the Hydra job running now; none before Hydra has made one."""
    callbacks = sys.modules.get("backprop_lab.apps.callbacks")
    if callbacks is not None and callbacks.running:
        sweep = callbacks.running[-1]
        return [(job, True) for job in sorted(sweep.iterdir()) if (job / ".hydra").is_dir()]
    hydra_config = sys.modules.get("hydra.core.hydra_config")  # (not imported: no directory yet)
    if hydra_config is None or not hydra_config.HydraConfig.initialized():
        return []
    try:
        return [(Path(hydra_config.HydraConfig.get().runtime.output_dir), False)]
    except Exception:  # noqa: BLE001 - a job not set up yet has no directory
        return []


def record_interrupted(out: Path, kind: str, runs: bool = False) -> None:
    """A signal stopped a job outside a run's engine: its directory, when it has no summary
    yet, gets a summary.json with ``status: "interrupted"`` and how far its records got (so
    a sweep's summary counts it). A directory that holds a run is left as it is unless
    ``runs`` (the job's own run, stopped), and one another process holds always is."""
    from ..files._rundir import SUMMARY, RunDir, RunDirError, write_json

    run_dir = RunDir(out, app=kind)
    if not out.is_dir() or (out / SUMMARY).exists() or (run_dir.holds_run() and not runs):
        return
    try:
        run_dir.lock()
    except (RunDirError, OSError):
        return
    try:
        if not (out / SUMMARY).exists():
            last = (run_dir.records() or [{}])[-1]
            write_json(
                out / SUMMARY,
                {
                    "kind": kind,
                    "status": "interrupted",
                    "steps": last.get("step", 0),
                    "epochs": last.get("epoch", 0),
                },
            )
    except OSError:
        pass
    finally:
        run_dir.unlock()
