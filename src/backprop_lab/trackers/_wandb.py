"""``logger=wandb``: a Weights & Biases run, offline by default, in ``<run>/wandb/``.

What goes in:

- the config as the run's config (nested, as composed);
- history: ``loss`` at every step, each record's numbers at the record's step
  (W&B's ``_step`` is the optimizer step);
- the summary into the run's summary; the run exits with code 0 when
  completed, 1 when diverged or interrupted.

The W&B run is named by the run's overrides, and a sweep's runs share a group named
after the sweep directory unless ``logger.wandb.group`` names one. Online, a missing
login or a server that does not answer within ``logger.wandb.timeout`` seconds stops
the run before it computes anything (exit 2).

``logger.wandb.mode=offline`` (the default) needs no account and no network: the
run is a folder ``<run>/wandb/offline-run-DATE_TIME-ID/`` holding a
``run-ID.wandb`` file, which ``wandb sync <that folder>`` uploads later.
Console capture and system metrics are off (the lanes of a vmapped sweep share
one process, and the run's own log already holds its lines). The run's id is
kept in ``<run>/wandb_run.json``: a resumed run logs to the same W&B run
(offline, a second folder with the same id; ``wandb sync`` replays them in order),
and refuses a file whose id no run folder of this run directory holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config._checks import choice, optional, text
from ..files._rundir import write_json
from ._base import (
    TIMEOUT,
    RunInfo,
    Tracker,
    TrackerError,
    import_package,
    read_state,
    record_metrics,
    tracker_dir,
)

if TYPE_CHECKING:
    from wandb import Run

#: Where the tracker keeps the W&B run id.
STATE = "wandb_run.json"


class WandbTracker(Tracker):
    """Logs one W&B run per run directory (``reinit="create_new"``: lanes of one process each get theirs)."""

    SETTINGS = {
        "project": text(),
        "entity": optional(text(), "your default entity"),
        "mode": choice(["offline", "online"]),
        "group": optional(text(), "the sweep directory for a sweep's jobs, no group for single runs"),
        "dir": optional(text(), "the run directory: <run>/wandb/"),
        "timeout": TIMEOUT,
    }
    PACKAGE = "wandb"
    REMOTE = True

    def __init__(
        self,
        out_dir: Path,
        run: RunInfo | None = None,
        project: str = "backprop-lab",
        entity: str | None = None,
        mode: str = "offline",
        group: str | None = None,
        dir: str | None = None,
        timeout: float = 60.0,
    ):
        super().__init__(
            out_dir, run, project=project, entity=entity, mode=mode, group=group, dir=dir, timeout=timeout
        )
        self.dir = tracker_dir(out_dir, dir)
        self.run: Run | None = None

    def _started(self) -> Run:
        """The W&B run :meth:`start` opened."""
        if self.run is None:
            raise RuntimeError("the W&B tracker is used before start()")
        return self.run

    def _previous_id(self) -> str | None:
        """The W&B run id this run directory logged to, None when it has not; refused when the
        file is not one this tracker wrote or names a run this directory does not hold."""
        path = self.out_dir / STATE
        state = read_state("wandb", path, ("id",), "W&B")
        if state is None:
            return None
        run_id = state["id"]
        if not any(p.is_dir() for p in (self.dir / "wandb").glob(f"*run-*-{run_id}")):
            raise TrackerError(
                "wandb",
                f"{path} names the W&B run {run_id!r}, which {self.dir / 'wandb'} "
                "does not hold; restore the file, or delete it to start a new W&B run",
            )
        return run_id

    def start(self, config: Mapping[str, Any]) -> None:
        wandb = import_package("wandb", self.PACKAGE)
        s = self.settings
        if s["mode"] == "online" and not wandb.login(prompt=False, verify=False):
            raise TrackerError(
                "wandb",
                "logger.wandb.mode=online needs a W&B login: run `wandb login` "
                "or set WANDB_API_KEY, or log offline (logger.wandb.mode=offline)",
            )
        previous = self._previous_id()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run = run = wandb.init(
            project=s["project"],
            entity=s["entity"],
            mode=s["mode"],
            group=s["group"] or self.run_info.group,
            name=self.run_info.name,
            dir=str(self.dir),
            config=dict(config),
            id=previous,
            resume="allow",
            reinit="create_new",
            settings=wandb.Settings(
                console="off",
                silent=True,
                x_disable_stats=True,
                save_code=False,
                init_timeout=s["timeout"],
                login_timeout=s["timeout"],
            ),
        )
        write_json(self.out_dir / STATE, {"id": run.id})

    def log_losses(self, first_step: int, losses: Sequence[float]) -> None:
        run = self._started()
        for i, value in enumerate(losses):
            run.log({"loss": float(value)}, step=first_step + i)

    def log_record(self, record: Mapping[str, Any]) -> None:
        self._started().log(record_metrics(record), step=record["step"])

    def finish(self, summary: Mapping[str, Any]) -> None:
        run = self._started()
        run.summary.update(dict(summary))
        run.finish(exit_code=0 if summary.get("status") == "completed" else 1)
