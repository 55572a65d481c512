"""``logger=mlflow``: an MLflow run, by default in a file store inside the run directory.

What goes in:

- the config as the run's params (one dotted key each; a string as it is,
  any other value as its JSON), and the tag ``backprop_lab.output_dir``;
- metrics: ``loss`` at every step, each record's numbers at the record's step;
- the summary as the artifact ``summary.json`` and the tag ``status``; the run
  ends FINISHED (completed), FAILED (diverged) or KILLED (interrupted).

``logger.tracking_uri=null`` (the default) is the file store ``<run>/mlruns``
(``mlflow ui --backend-store-uri <run>/mlruns`` shows it). MLflow 3 keeps that
store in maintenance mode and asks for ``MLFLOW_ALLOW_FILE_STORE=true``; the
tracker sets it, unless already set, when the store it writes to is a file
store. Any other URI (``sqlite:///runs.db``, ``http://host:5000``) goes to
MLflow as it is; a shared one gathers a sweep's runs in one place.

The run's id is kept in ``<run>/mlflow_run.json``, so a resumed run goes on
logging into the same MLflow run (in the same store).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ..config._checks import optional, text
from ..files._rundir import write_json
from ._base import Tracker, config_text, flat_config, import_package, record_metrics

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

#: Where the tracker keeps the MLflow run it logs to.
STATE = "mlflow_run.json"
#: Summary status → MLflow's run status at the end.
END_STATUS = {"completed": "FINISHED", "diverged": "FAILED", "interrupted": "KILLED"}
#: MLflow takes at most this many metrics in one call.
_BATCH = 1000


class MlflowTracker(Tracker):
    """Logs to MLflow through ``mlflow.tracking.MlflowClient`` (mlflow-skinny is enough)."""

    SETTINGS = {
        "tracking_uri": optional(text(), "a file store in the run directory, <run>/mlruns"),
        "experiment": text(),
    }
    PACKAGE = "mlflow"

    def __init__(self, out_dir: Path, tracking_uri: str | None = None, experiment: str = "backprop-lab"):
        super().__init__(out_dir, tracking_uri=tracking_uri, experiment=experiment)
        self.uri = tracking_uri or (Path(out_dir) / "mlruns").resolve().as_uri()
        self.experiment = experiment
        self.client: MlflowClient | None = None
        self.run_id: str | None = None

    def _started(self) -> tuple[MlflowClient, str]:
        """The client and the MLflow run, which :meth:`start` opened."""
        if self.client is None or self.run_id is None:
            raise RuntimeError("the MLflow tracker is used before start()")
        return self.client, self.run_id

    def start(self, config: Mapping[str, Any]) -> None:
        import_package("mlflow", self.PACKAGE)
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        if urlparse(self.uri).scheme in ("", "file"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = client = MlflowClient(tracking_uri=self.uri)
        self.run_id = self._previous_run(client)
        if self.run_id is not None:
            client.update_run(self.run_id, status="RUNNING")
            return
        run = client.create_run(
            self._experiment_id(client), tags={"backprop_lab.output_dir": str(self.out_dir)}
        )
        self.run_id = run_id = run.info.run_id
        write_json(self.out_dir / STATE, {"tracking_uri": self.uri, "run_id": run_id})
        params = [Param(k, config_text(v)) for k, v in flat_config(config).items()]
        for i in range(0, len(params), 100):
            client.log_batch(run_id, params=params[i : i + 100])

    def _previous_run(self, client: MlflowClient) -> str | None:
        """The MLflow run this run directory logged to before, if it is still in this store."""
        from mlflow.exceptions import MlflowException

        try:
            state = json.loads((self.out_dir / STATE).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if not isinstance(state, dict) or state.get("tracking_uri") != self.uri:
            return None
        try:
            return client.get_run(state["run_id"]).info.run_id
        except (MlflowException, KeyError, TypeError):
            return None

    def _experiment_id(self, client: MlflowClient) -> str:
        from mlflow.exceptions import MlflowException

        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(self.experiment)
        except MlflowException:  # another job of the sweep created it meanwhile
            found = client.get_experiment_by_name(self.experiment)
            if found is None:  # it was created and is gone again: the creation's error stands
                raise
            return found.experiment_id

    def _log(self, values: Sequence[tuple[str, float, int]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(name, value, now, step) for name, value, step in values]
        client, run_id = self._started()
        for i in range(0, len(metrics), _BATCH):
            client.log_batch(run_id, metrics=metrics[i : i + _BATCH])

    def log_losses(self, first_step: int, losses: Sequence[float]) -> None:
        self._log([("loss", float(v), first_step + i) for i, v in enumerate(losses)])

    def log_record(self, record: Mapping[str, Any]) -> None:
        self._log([(name, v, record["step"]) for name, v in record_metrics(record).items()])

    def finish(self, summary: Mapping[str, Any]) -> None:
        client, run_id = self._started()
        status = str(summary.get("status"))  # END_STATUS's keys are strings: None finds none, as before
        client.log_dict(run_id, dict(summary), "summary.json")
        client.set_tag(run_id, "status", status)
        client.set_terminated(run_id, END_STATUS.get(status, "FINISHED"))
