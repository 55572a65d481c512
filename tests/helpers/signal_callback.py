"""A Hydra callback that signals its own process as job ``job`` starts: after Hydra has made
the job's directory, before the job's task runs (``on_job_start`` in Hydra's ``run_job``)."""

from __future__ import annotations

import os
import signal

from hydra.experimental.callback import Callback


class SignalAtJob(Callback):
    def __init__(self, job: int = 1, signum: int = int(signal.SIGTERM)) -> None:
        self.job, self.signum = job, signum

    def on_job_start(self, config, **kwargs) -> None:
        if config.hydra.job.num == self.job:
            os.kill(os.getpid(), self.signum)
