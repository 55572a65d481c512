"""``logger=tensorboard``: TensorBoard event files in ``<run>/tensorboard/<name>/``, written
with tensorboardX.

``<name>`` is the run's name, its overrides (:class:`~._base.RunInfo`), so
``tensorboard --logdir <sweep dir>`` shows a sweep's runs side by side as
``<job>/tensorboard/<overrides>`` (``pip install tensorboard``). What goes in:

- the config as the run's hyperparameters (the HParams dashboard: one session
  per run, with ``train_loss``, ``test_loss`` and ``test_accuracy`` as its metrics);
- scalars: ``loss`` at every step, each record's numbers at the record's step;
- the summary as the text ``summary`` at the last step (its JSON, each line
  indented four spaces so TensorBoard shows it as a code block), and the session's
  end status (completed: success, diverged: failure, interrupted: aborted).

A resumed run writes a new event file into the same folder (the one folder there
already, whatever the name would be now), which TensorBoard
reads as the same run; where a killed run had logged past its checkpoint, the
resumed run's earlier steps replace those values (TensorBoard drops a tag's
values at and after a step that is logged again).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config._checks import text
from ._base import RunInfo, Tracker, flat_config, folder_name, import_package, record_metrics, tracker_dir

if TYPE_CHECKING:
    from tensorboardX import SummaryWriter

#: The HParams dashboard's metric columns.
HPARAM_METRICS = ("train_loss", "test_loss", "test_accuracy")
#: Summary status → the HParams session's end status.
END_STATUS = {
    "completed": "STATUS_SUCCESS",
    "diverged": "STATUS_FAILURE",
    "failed": "STATUS_FAILURE",
    "interrupted": "STATUS_ABORTED",
}


class TensorBoardTracker(Tracker):
    """Writes ``<run>/tensorboard/<name>/`` (``logger.tensorboard.dir``: another folder than tensorboard/)."""

    SETTINGS = {"dir": text()}
    PACKAGE = "tensorboardX"

    def __init__(self, out_dir: Path, run: RunInfo | None = None, dir: str = "tensorboard"):
        super().__init__(out_dir, run, dir=dir)
        self.root = tracker_dir(out_dir, dir)
        self.writer: SummaryWriter | None = None

    @property
    def dir(self) -> Path:
        """The run's folder of event files: the one already there (a resumed run), else its name."""
        if self.root.is_dir():
            held = [p for p in self.root.iterdir() if p.is_dir() and any(p.glob("events.out.tfevents.*"))]
            if len(held) == 1:
                return held[0]
        return self.root / folder_name(self.run_info.name)

    def _started(self) -> SummaryWriter:
        """The writer :meth:`start` opened."""
        if self.writer is None:
            raise RuntimeError("the TensorBoard tracker is used before start()")
        return self.writer

    def start(self, config: Mapping[str, Any]) -> None:
        tbx = import_package("tensorboard", self.PACKAGE)
        from tensorboardX.summary import hparams

        # tensorboardX names a file by the second it was opened: a resumed run
        # started within the same second would reopen (and truncate) the first
        # one's file, so each start numbers its own (the run directory is locked).
        folder = self.dir
        started = len(list(folder.glob("events.out.tfevents.*")))
        self.writer = writer = tbx.SummaryWriter(
            logdir=str(folder), flush_secs=10, filename_suffix=f".{started}"
        )
        experiment, session_start, _ = hparams(flat_config(config), dict.fromkeys(HPARAM_METRICS, 0.0))
        writer.file_writer.add_summary(experiment, 0)
        writer.file_writer.add_summary(session_start, 0)

    def log_losses(self, first_step: int, losses: Sequence[float]) -> None:
        writer = self._started()
        for i, value in enumerate(losses):
            writer.add_scalar("loss", float(value), first_step + i)

    def log_record(self, record: Mapping[str, Any]) -> None:
        writer = self._started()
        for name, value in record_metrics(record).items():
            writer.add_scalar(name, value, record["step"])
        writer.flush()

    def finish(self, summary: Mapping[str, Any]) -> None:
        from tensorboardX.proto.api_pb2 import Status
        from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo
        from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

        writer = self._started()
        step = int(summary.get("steps") or 0)
        lines = json.dumps(summary, indent=2).splitlines()
        writer.add_text("summary", "\n".join("    " + line for line in lines), step)
        status = str(summary.get("status"))  # END_STATUS's keys are strings: None finds none, as before
        end = SessionEndInfo(status=Status.Value(END_STATUS.get(status, "STATUS_UNKNOWN")))
        content = HParamsPluginData(session_end_info=end, version=0).SerializeToString()
        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="hparams", content=content))
        writer.file_writer.add_summary(
            Summary(value=[Summary.Value(tag="_hparams_/session_end_info", metadata=meta)]), step
        )
        writer.close()
