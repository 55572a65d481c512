"""Drawing the lanes' plots: in this process for a few lanes, in two worker processes for many.

Plotting is the costliest part of finishing a lane (matplotlib renders each
PNG), so a sweep of many lanes draws them in two spawned workers started with
the run: their start overlaps training, and the two cores share the drawing.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from . import _plots
from ._rundir import GRAD_PLOT, PLOT

log = logging.getLogger("backprop_lab.run")


def _draw(records: list[dict], losses: list, folder: str, title: str) -> None:
    _plots.loss_curve(records, losses, Path(folder) / PLOT, title)
    _plots.grad_norms(records, Path(folder) / GRAD_PLOT, title)


def _quiet_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine decides what an interrupt does


def _warm() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (a worker's first plot then costs what the others do)


class Painter:
    """Draws each lane's plots: here for a few lanes; for many, in two worker processes
    started with the run (their start overlaps training), since plotting is the costliest
    part of finishing a lane."""

    POOL_LANES = 8

    def __init__(self, lanes: int):
        self.pool, self.futures = None, []
        if lanes >= self.POOL_LANES:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_quiet_worker)
            self.futures = [self.pool.submit(_warm) for _ in range(2)]

    def draw(self, *args) -> None:
        if self.pool is None:
            _draw(*args)
        else:
            self.futures.append(self.pool.submit(_draw, *args))

    def close(self) -> None:
        if self.pool is not None:
            for f in self.futures:
                try:
                    f.result()
                except Exception as err:  # a plot is not worth losing the sweep's results
                    log.warning("a plot could not be drawn: %s", err)
            self.pool.shutdown()
