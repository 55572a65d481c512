"""Drawing the plots in a pool of worker processes, beside the run rather than after it.

The run's process never imports matplotlib: importing it costs more than half
a second. A :class:`Painter` starts the pool's workers when the run starts (one
for a single run, two for a sweep), so that their imports overlap the training;
each lane's plots are handed over as soon as its records are final, and
:meth:`Painter.close` waits until every one is written. The pool is a
``concurrent.futures.ProcessPoolExecutor`` of spawned processes; it stays for
the process's later runs (a sweep's jobs under Hydra's basic launcher) and its
summary plots (:func:`submit`), and ends with the process. A job in a process
that multiprocessing started (Hydra's parallel launcher) draws its plots itself.

Nothing is lost to a worker that dies (killed, out of memory): the plots the
pool did not draw are drawn in the run's process, with a warning; but when a
signal stopped the run (:attr:`Painter.stopping`), workers that ended with it
(a signal to the whole process group, as SLURM sends before a requeue) leave
their plots to the resumed run, so that the process ends at once. A worker
whose run's process is gone (``kill -9``) finishes the plot it is writing and
ends.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from ..files._rundir import GRAD_PLOT, PLOT

log = logging.getLogger("backprop_lab.run")

#: Workers of a run with many lanes.
WORKERS = 2

#: Held while a plot is drawn, so that a worker whose run is gone ends between plots.
_drawing = threading.Lock()


def lane_plots(folder: str, title: str, scale: str = "auto") -> None:
    """A run's loss_curve.png (its loss axis by ``plot.scale``, ``scale``) and, when its records
    carry gradient norms, grad_norms.png, from the files in its directory (metrics.jsonl,
    losses.csv): a job names the directory only."""
    from ..files._rundir import RunDir
    from . import _run

    run = RunDir(Path(folder))
    with _drawing:
        records = run.records()
        _run.loss_curve(records, run.losses(), Path(folder) / PLOT, title, scale)
        _run.grad_norms(records, Path(folder) / GRAD_PLOT, title)


def sweep_plots(
    sweep_dir: str, png: str, flow_png: str, x: str | None, y: str, best: str | None = None
) -> list[bool]:
    """A sweep's summary.png (``best``: the direction its best run is marked in, or None) and
    summary_grad_norms.png from its jobs' files: whether each was drawn (not when there is
    nothing to show)."""
    from ..summary._rows import collect_rows
    from ._sweep import plot_grad_flow, plot_metric

    rows = collect_rows(Path(sweep_dir))
    with _drawing:
        return [
            plot_metric(rows, Path(png), x=x, y=y, best=best) is not None,
            plot_grad_flow(rows, Path(sweep_dir), Path(flow_png)) is not None,
        ]


class _WhileParentLives:
    """A worker's ``sys.stderr``: silent once the run's process is gone (``kill -9``), when all
    the worker could say is that its pipes to that process are broken."""

    def __init__(self, stream: Any, parent: multiprocessing.process.BaseProcess):
        self._stream, self._parent = stream, parent

    def write(self, text: str) -> int:
        return self._stream.write(text) if self._parent.is_alive() else len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _start_worker() -> None:
    """A worker's start: interrupts and a closed terminal are the run's to handle, the worker
    ends with the run's process (quietly), and matplotlib is imported before the first job."""
    from . import _run

    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        sys.stderr = _WhileParentLives(sys.stderr, parent)
    threading.Thread(target=_end_with_parent, daemon=True).start()
    _run._pyplot()
    _run.keep_figures()  # a worker draws many runs alike: their figures are built once


def _end_with_parent() -> None:
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    multiprocessing.connection.wait([parent.sentinel])  # ready when the parent is gone
    with _drawing:  # the plot being written is finished
        signal.raise_signal(signal.SIGTERM)


def _ready() -> None:
    """A job that only starts a worker."""


_pool: ProcessPoolExecutor | None = None
_pool_size = 0


def start_workers(n: int) -> ProcessPoolExecutor | None:
    """This process's pool of (at least) ``n`` plot workers, started now so that their imports
    overlap the work; None for ``n`` = 0."""
    global _pool, _pool_size
    if n <= 0:
        return None
    if _pool is None or _pool_size < n:
        if _pool is not None:
            _pool.shutdown(wait=False)  # what it was handed is still drawn
        _pool = ProcessPoolExecutor(
            n, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
        )
        _pool_size = n
        for _ in range(n):  # a pool starts a worker for each job handed to it while none is free
            _pool.submit(_ready)
    return _pool


def stop_workers() -> None:
    """End this process's plot workers (after what they were handed); the next run starts new ones."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True)


def _lost(pool: ProcessPoolExecutor) -> None:
    """A pool that takes no more jobs (a worker died, or it was shut down): ended, its other
    workers too, before the run draws what it lost, and not handed anything again."""
    global _pool
    if _pool is pool:
        _pool = None
    pool.shutdown(wait=True)


def _left(folder: str) -> None:
    log.warning(
        "the plot workers ended with the signal; the plots of %s are drawn when the run resumes", folder
    )


def _hand(pool: ProcessPoolExecutor | None, fn: Callable[..., Any], args: tuple, here: bool = True) -> Future:
    """``fn(*args)`` handed to ``pool``, or done here (a future already done) without one; with
    ``here`` false, not done at all when the pool's workers are gone."""
    done: Future = Future()
    if pool is not None:
        try:
            return pool.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError) as err:  # broken, or shut down
            _lost(pool)
            if not here:
                _left(args[0])
                done.set_result(None)
                return done
            log.warning("the plot workers are gone (%s); drawing here", err)
    try:
        done.set_result(fn(*args))
    except Exception as err:
        done.set_exception(err)
    return done


def _value(
    pool: ProcessPoolExecutor | None, job: Future, fn: Callable[..., Any], args: tuple, here: bool = True
) -> Any:
    """The value of ``fn(*args)`` handed over as ``job``: the worker's, or, when the worker
    died before it was done, this process's (None with ``here`` false). Raises what ``fn``
    raised."""
    try:
        return job.result()
    except BrokenProcessPool:
        if pool is not None:
            _lost(pool)
        if not here:
            _left(args[0])
            return None
        log.warning("a plot worker ended before drawing the plots of %s; drawing them here", args[0])
        return fn(*args)


class Painter:
    """Draws each lane's plots in the pool's workers, started when the run starts.

    In a process that multiprocessing started (a job in joblib's workers: the parallel
    launcher) the plots are drawn here, after the run: such a process ends its children when
    its job ends, so a pool would be a fresh interpreter importing matplotlib for each job, and
    a worker the launcher kills (a sweep stopped by a signal) could not release the pool's
    semaphores (multiprocessing's resource tracker then reports them as leaked).

    Arguments:
        lanes: the lanes that will be drawn (0: no worker is started; plots are drawn here).
    """

    def __init__(self, lanes: int):
        self.pool: ProcessPoolExecutor | None = None
        self.jobs: list[tuple[Future, tuple]] = []
        #: A signal stopped the run: plots whose workers ended with it are left to the resume.
        self.stopping = False
        if multiprocessing.parent_process() is not None:
            return  # a job in another process's worker (the parallel launcher's): drawn here
        try:
            self.pool = start_workers(min(lanes, WORKERS))
        except OSError as err:  # no process to spare: draw here
            log.warning("plots are drawn in this process (no worker: %s)", err)

    def draw(self, folder: str | Path, title: str, scale: str = "auto") -> None:
        """Hand the plots of the run in ``folder`` (its records and losses written) to the pool;
        ``scale``: ``plot.scale``."""
        args = (str(folder), title, scale)
        self.jobs.append((_hand(self.pool, lane_plots, args, here=not self.stopping), args))

    def close(self) -> None:
        """Wait until every plot handed over is written; one that failed is a warning, not an error."""
        jobs, self.jobs = self.jobs, []
        for job, args in jobs:
            try:
                _value(self.pool, job, lane_plots, args, here=not self.stopping)
            except Exception as err:  # a plot is not worth losing the run's results
                log.warning("the plots of %s could not be drawn: %s", args[0], str(err).replace("\n", " "))


def submit(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """Hand ``fn(*args)`` (``args[0]``: where it draws) to this process's pool when it has one,
    else do it here now; a function that waits for it and returns its value (raising
    ``RuntimeError`` with what went wrong). The caller does other work between the two."""
    pool = _pool
    job = _hand(pool, fn, args)

    def result() -> Any:
        try:
            return _value(pool, job, fn, args)
        except Exception as err:
            raise RuntimeError(
                f"the plots of {args[0]} could not be drawn: {err}".replace("\n", " ")
            ) from err

    return result
