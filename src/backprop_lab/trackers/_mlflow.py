"""``logger=mlflow``: an MLflow run, by default in one SQLite store for every run started
from a directory.

What goes in:

- the config as the run's params (one dotted key each; a string as it is,
  any other value as its JSON), and the tag ``backprop_lab.output_dir``;
- metrics: ``loss`` at every step, each record's numbers at the record's step;
- the summary as the artifact ``summary.json`` and the tag ``status``; the run
  ends FINISHED (completed), FAILED (diverged) or KILLED (interrupted).

``logger.mlflow.tracking_uri=null`` (the default) is ``sqlite:///<launch dir>/mlflow.db``
with artifacts in ``<launch dir>/mlruns/``: MLflow's own default store, so
``mlflow ui`` started in the directory the runs were started from shows them
all. A sweep's runs go into one experiment named after the sweep directory
(``logger.mlflow.experiment`` names another), each run named by its overrides.

The store must answer within ``logger.mlflow.timeout`` seconds when the run
starts, or the run stops (exit 2) before it computes anything. The run's id is
kept in ``<run>/mlflow_run.json``: a resumed run logs into the same MLflow run, and
refuses a file that names a run of another store or directory.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ..config._checks import ConfigError, optional, text
from ..files._rundir import write_json
from ._base import (
    TIMEOUT,
    RunInfo,
    Tracker,
    TrackerError,
    config_text,
    first_line,
    flat_config,
    import_package,
    read_state,
    record_metrics,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

#: Where the tracker keeps the MLflow run it logs to.
STATE = "mlflow_run.json"
#: The SQLite file of the default store, in the launch directory (MLflow's default).
DATABASE = "mlflow.db"
#: Summary status → MLflow's run status at the end.
END_STATUS = {"completed": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "interrupted": "KILLED"}
#: MLflow takes at most this many metrics in one call.
_BATCH = 1000
#: The experiment of single runs when ``logger.mlflow.experiment`` is null.
SINGLE_RUNS = "backprop-lab"
#: The run's tag naming its directory.
DIR_TAG = "backprop_lab.output_dir"


def _quiet_store_setup() -> None:
    """MLflow and alembic announce each database they create or migrate at INFO, and urllib3
    each retry of a server at WARNING: not the run's news (a failure is, in one line)."""
    for name in ("mlflow.store.db.utils", "mlflow.store.db", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


class MlflowTracker(Tracker):
    """Logs to MLflow through ``mlflow.tracking.MlflowClient`` (mlflow-skinny is enough)."""

    SETTINGS = {
        "tracking_uri": optional(text(), "sqlite:///<launch dir>/mlflow.db"),
        "experiment": optional(
            text(), "the sweep directory for a sweep's jobs, backprop-lab for single runs"
        ),
        "timeout": TIMEOUT,
    }
    PACKAGE = "mlflow"
    REMOTE = True

    def __init__(
        self,
        out_dir: Path,
        run: RunInfo | None = None,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        timeout: float = 60.0,
    ):
        super().__init__(out_dir, run, tracking_uri=tracking_uri, experiment=experiment, timeout=timeout)
        info = self.run_info
        self.default_store = tracking_uri is None
        self.uri = tracking_uri or f"sqlite:///{info.launch_dir / DATABASE}"
        self.experiment = experiment or info.group or SINGLE_RUNS
        self.timeout = timeout
        self.client: MlflowClient | None = None
        self.run_id: str | None = None

    def _started(self) -> tuple[MlflowClient, str]:
        """The client and the MLflow run, which :meth:`start` opened."""
        if self.client is None or self.run_id is None:
            raise RuntimeError("the MLflow tracker is used before start()")
        return self.client, self.run_id

    def start(self, config: Mapping[str, Any]) -> None:
        import_package("mlflow", self.PACKAGE)
        _quiet_store_setup()
        # each request waits at most the time limit (a user's own setting wins)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, round(self.timeout))))
        state = self._state()
        if state is not None and self.default_store:
            self.uri = state["tracking_uri"]  # a resumed run stays in its store, wherever it starts
        outcome: dict[str, Any] = {}
        given_up = threading.Event()

        def contact() -> None:
            try:
                outcome["run_id"] = self._open(config, state, given_up)
            except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
                outcome["error"] = err

        # the store's first answer, within the time limit: MLflow itself retries a server for
        # minutes; the thread is left behind (a daemon) when the limit passes
        worker = threading.Thread(target=contact, name="mlflow-start", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            given_up.set()  # an answer coming later opens no MLflow run for a run that stopped
            raise TrackerError(
                "mlflow",
                f"{self._where()} did not answer within {self.timeout:g} s "
                "(logger.mlflow.timeout); check that it is running and reachable",
            )
        if isinstance(outcome.get("error"), ConfigError):
            raise outcome["error"]
        if "error" in outcome:
            raise TrackerError(
                "mlflow",
                f"{self._where()} failed: {first_line(outcome['error'])}; check logger.mlflow.tracking_uri",
            )
        self.run_id = outcome["run_id"]

    def _where(self) -> str:
        kind = "tracking server" if urlparse(self.uri).scheme in ("http", "https") else "store"
        return f"the MLflow {kind} at {self.uri}"

    def _state(self) -> dict | None:
        """This run directory's ``mlflow_run.json``, None when there is none; refused when it is
        not a file this tracker writes."""
        path = self.out_dir / STATE
        state = read_state("mlflow", path, ("tracking_uri", "run_id"), "MLflow")
        if state is None:
            return None
        if not self.default_store and state["tracking_uri"] != self.uri:
            raise TrackerError(
                "mlflow",
                f"this run logs to {state['tracking_uri']} ({path}), not "
                f"{self.uri}; set logger.mlflow.tracking_uri={state['tracking_uri']}, "
                "or delete the file to start a new MLflow run",
            )
        return state

    def _open(self, config: Mapping[str, Any], state: dict | None, given_up: threading.Event) -> str | None:
        """Open the MLflow run: the one ``state`` names (checked), or a new one (none once the
        run has ``given_up`` waiting)."""
        from mlflow.tracking import MlflowClient

        with _store_lock(self.uri):  # a sweep's jobs create the database and its experiment once
            self.client = client = MlflowClient(tracking_uri=self.uri)
            if state is not None:
                return self._reattach(client, state["run_id"])
            experiment_id = self._experiment_id(client)
        if given_up.is_set():
            return None
        run = client.create_run(
            experiment_id, run_name=self.run_info.name[:250], tags={DIR_TAG: str(self.out_dir.resolve())}
        )
        write_json(self.out_dir / STATE, {"tracking_uri": self.uri, "run_id": run.info.run_id})
        from mlflow.entities import Param

        params = [Param(k, config_text(v)) for k, v in flat_config(config).items()]
        for i in range(0, len(params), 100):
            client.log_batch(run.info.run_id, params=params[i : i + 100])
        return run.info.run_id

    def _reattach(self, client: MlflowClient, run_id: str) -> str:
        from mlflow.exceptions import MlflowException

        path = self.out_dir / STATE
        try:
            found = client.get_run(run_id)
        except MlflowException:
            raise TrackerError(
                "mlflow",
                f"{path} names the MLflow run {run_id}, which {self.uri} does "
                "not hold; restore the file, or delete it to start a new MLflow run",
            ) from None
        owner = found.data.tags.get(DIR_TAG)
        if owner != str(self.out_dir.resolve()):
            raise TrackerError(
                "mlflow",
                f"{path} names the MLflow run {run_id} of {owner}, not of this "
                "run; restore the file, or delete it to start a new MLflow run",
            )
        client.update_run(run_id, status="RUNNING")
        return run_id

    def _experiment_id(self, client: MlflowClient) -> str:
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        return client.create_experiment(self.experiment)

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


class _store_lock:
    """An exclusive ``flock`` of a SQLite store's file while a job sets it up: the first job
    creates the tables, the others wait and find them (SQLite's own locks are ``fcntl``
    locks, which a ``flock`` leaves alone; an empty file is an empty database). Other
    stores need none."""

    def __init__(self, uri: str):
        parsed = urlparse(uri)
        database = parsed.path[1:]  # sqlite:///relative.db, sqlite:////absolute.db
        self.path = Path(database)
        self.active = parsed.scheme == "sqlite" and database not in ("", ":memory:")
        self.fd: int | None = None

    def __enter__(self) -> _store_lock:
        if self.active:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
