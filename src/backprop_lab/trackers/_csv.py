"""``logger=csv``: the config, the metrics and the summary as three plain CSV files.

    params.csv     key,value        the config, one dotted key per row (a string as
                                    it is, any other value as its JSON)
    metrics.csv    step,name,value  every step's ``loss`` and each record's numbers (appended)
    summary.csv    key,value        the summary, one dotted key per row

metrics.csv is long ("tidy"): a row per value, so a metric that appears later
(a resumed run's) needs no new column; ``pandas.read_csv(...).pivot(index="step",
columns="name", values="value")`` gives the wide table. Values are written with
``repr``, so a float reads back to the same float. When a run resumes, the
rows past what the run's own losses.csv and metrics.jsonl still hold (a run
killed between writing them and its checkpoint) are cut first.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config._checks import text
from ..files._rundir import RunDir, write_atomic
from ._base import RunInfo, Tracker, config_text, flat_config, record_metrics, tracker_dir

PARAMS, METRICS, SUMMARY = "params.csv", "metrics.csv", "summary.csv"
_METRICS_HEADER = ("step", "name", "value")


def _csv(rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


class CsvTracker(Tracker):
    """Writes ``<run>/csv/`` (``logger.csv.dir``: another folder, relative to the run directory)."""

    SETTINGS = {"dir": text()}

    def __init__(self, out_dir: Path, run: RunInfo | None = None, dir: str = "csv"):
        super().__init__(out_dir, run, dir=dir)
        self.dir = tracker_dir(out_dir, dir)

    def start(self, config: Mapping[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        rows = [("key", "value"), *((k, config_text(v)) for k, v in flat_config(config).items())]
        write_atomic(self.dir / PARAMS, _csv(rows).encode())
        self._cut_to_run()

    def _cut_to_run(self) -> None:
        """Keep only the rows the run's own files still hold (none for a fresh run)."""
        run = RunDir(self.out_dir)
        last_loss = max((s for s, _ in run.losses()), default=-1)
        last_record = max((r.get("step", -1) for r in run.records()), default=-1)
        kept: list[Sequence[str]] = [_METRICS_HEADER]
        path = self.dir / METRICS
        if path.exists():
            with open(path, newline="") as f:
                for row in list(csv.reader(f))[1:]:
                    if len(row) == 3 and row[0].isdigit():
                        limit = last_loss if row[1] == "loss" else last_record
                        if int(row[0]) <= limit:
                            kept.append(tuple(row))
        write_atomic(path, _csv(kept).encode())

    def _append(self, rows: list[tuple[int, str, str]]) -> None:
        with open(self.dir / METRICS, "a", newline="") as f:
            f.write(_csv(rows))
            f.flush()
            os.fsync(f.fileno())

    def log_losses(self, first_step: int, losses: Sequence[float]) -> None:
        self._append([(first_step + i, "loss", repr(float(v))) for i, v in enumerate(losses)])

    def log_record(self, record: Mapping[str, Any]) -> None:
        step = record["step"]
        self._append([(step, name, repr(v)) for name, v in record_metrics(record).items()])

    def finish(self, summary: Mapping[str, Any]) -> None:
        rows = [("key", "value"), *((k, config_text(v)) for k, v in flat_config(summary).items())]
        write_atomic(self.dir / SUMMARY, _csv(rows).encode())
