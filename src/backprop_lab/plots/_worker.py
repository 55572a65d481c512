"""Drawing the lanes' plots in worker processes, beside the run rather than after it.

Plotting is the costliest part of finishing a run: importing matplotlib costs
more than half a second and each loss curve a fifth of one. So the run's
process never imports it. A :class:`Painter` takes its workers (one for a
single run, two for a sweep: one per core of a small machine) when the run
starts, so their imports overlap the training; each lane's plots are handed to
a worker as soon as its records are final, so the drawing overlaps the rest of
finishing (the gradient-agreement checks, the summaries), and
:meth:`Painter.close` waits until every plot of the run is written. A worker
is ``python -m backprop_lab.plots._worker``: it reads one JSON job a line on its
stdin (a kind of :data:`JOBS` and its arguments) and answers each with one JSON
line on its stdout. Workers stay for the process's later runs (a sweep's jobs
under Hydra's basic launcher import matplotlib once, as they did in-process)
and end with it; the sweep's own plots (:func:`submit`) are drawn by them too.
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..files._rundir import GRAD_PLOT, PLOT

log = logging.getLogger("backprop_lab.run")

#: Workers of a run with many lanes.
WORKERS = 2


def draw(records: list[dict], losses: list, folder: str | Path, title: str) -> None:
    """A lane's plots: loss_curve.png and, when the records carry gradient norms, grad_norms.png."""
    from . import _run as _plots

    _plots.loss_curve(records, [tuple(pair) for pair in losses], Path(folder) / PLOT, title)
    _plots.grad_norms(records, Path(folder) / GRAD_PLOT, title)


def sweep_plots(sweep_dir: str, png: str, flow_png: str, x: str | None, y: str) -> list[bool]:
    """A sweep's summary.png and summary_grad_norms.png from its jobs' files: whether each was
    drawn (not when there is nothing to show)."""
    from ..summary._rows import collect_rows
    from ._sweep import plot_grad_flow, plot_metric

    rows = collect_rows(Path(sweep_dir))
    return [
        plot_metric(rows, Path(png), x=x, y=y) is not None,
        plot_grad_flow(rows, Path(sweep_dir), Path(flow_png)) is not None,
    ]


def lane_plots(folder: str, title: str) -> None:
    """A run's plots from the files in its directory (metrics.jsonl, losses.csv): a job names
    the directory only, so handing it over never waits for a worker to read it."""
    from ..files._rundir import RunDir

    run = RunDir(Path(folder))
    draw(run.records(), run.losses(), folder, title)


#: What a worker draws: a job's kind → the function of its (JSON) arguments.
JOBS: dict[str, Callable[..., Any]] = {"lane": lane_plots, "sweep": sweep_plots}


class _Worker:
    """One worker process and the jobs it was sent and has not answered yet."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "backprop_lab.plots._worker"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.jobs: collections.deque = collections.deque()

    @property
    def pending(self) -> int:
        return len(self.jobs)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, kind: str, args: list) -> None:
        self.proc.stdin.write(json.dumps([kind, args]) + "\n")
        self.proc.stdin.flush()
        self.jobs.append((kind, args))

    def wait(self) -> dict:
        """Until every job sent is done; the last one's answer (``{"value": …}`` or ``{"error":
        …}``). A lane's plot that failed is a warning, not an error; the jobs of a worker that
        ended before answering them (killed) are done here."""
        answer: dict = {"value": None}
        while self.jobs:
            line = self.proc.stdout.readline()
            if not line:
                log.warning("the plot worker ended before doing %d job(s); doing them here", len(self.jobs))
                while self.jobs:
                    answer = _do(*self.jobs.popleft())
                    if "error" in answer and self.jobs:
                        log.warning("%s", answer["error"])
                return answer
            self.jobs.popleft()
            answer = json.loads(line)
            if "error" in answer and self.jobs:
                log.warning("%s", answer["error"])
        return answer

    def end(self) -> None:
        """Stop the worker: at once when it has nothing left to draw (it may still be importing)."""
        try:
            self.proc.stdin.close()
            if not self.pending:
                self.proc.kill()
            self.proc.wait()
        except OSError:
            pass


_workers: list[_Worker] = []


@atexit.register
def _end_workers() -> None:
    while _workers:
        _workers.pop().end()


def start_workers(n: int) -> list[_Worker]:
    """``n`` live workers of this process, started as needed (an app may start them before it
    builds its run, so that their imports overlap more of the work)."""
    _workers[:] = [w for w in _workers if w.alive()]
    while len(_workers) < n:
        _workers.append(_Worker())
    return _workers[:n]


class Painter:
    """Draws each lane's plots in worker processes taken when the run starts.

    Arguments:
        lanes: the lanes that will be drawn (0: none, and no worker is taken).
    """

    def __init__(self, lanes: int):
        self.workers: list[_Worker] = []
        self.turn = 0
        try:
            self.workers = start_workers(min(lanes, WORKERS))
        except OSError as err:  # no process to spare: draw here
            log.warning("plots are drawn in this process (no worker: %s)", err)

    def draw(self, folder: str | Path, title: str) -> None:
        """Hand the plots of the run in ``folder`` (its records and losses written) to the next
        worker, or draw them here when there is none."""
        job = [str(folder), title]
        if self.workers:
            worker = self.workers[self.turn % len(self.workers)]
            self.turn += 1
            try:
                worker.send("lane", job)
                return
            except OSError as err:
                log.warning("the plot worker is gone (%s); drawing here", err)
        answer = _do("lane", job)
        if "error" in answer:  # a plot is not worth losing the run's results
            log.warning("%s", answer["error"])

    def close(self) -> None:
        """Wait until every plot handed over is written."""
        for worker in self.workers:
            answer = worker.wait()
            if "error" in answer:
                log.warning("%s", answer["error"])
        self.workers = []


def _do(kind: str, args: list) -> dict:
    """Job ``kind`` done here: its answer, as a worker gives it."""
    try:
        return {"value": JOBS[kind](*args)}
    except Exception as err:  # the other jobs are still done
        where = args[0]
        return {"error": f"the plots of {where} could not be drawn: {err}".replace("\n", " ")}


def submit(kind: str, *args: Any) -> Callable[[], Any]:
    """Hand job ``kind`` to a live worker of this process (drawing it here when there is none);
    a function that waits for it and returns its value (raising ``RuntimeError`` with what
    went wrong). The caller does other work between the two."""
    worker = next((w for w in _workers if w.alive()), None)
    if worker is not None:
        try:
            worker.send(kind, list(args))
        except OSError:
            worker = None
    answer = None if worker is not None else _do(kind, list(args))

    def result() -> Any:
        got = worker.wait() if worker is not None else answer
        if "error" in got:
            raise RuntimeError(got["error"])
        return got["value"]

    return result


def _work() -> int:
    """A worker: do each job read from stdin, answering its value or what went wrong."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run decides what an interrupt does
    answers, sys.stdout = sys.stdout, sys.stderr  # stdout carries the answers only
    from . import _run as _plots

    _plots._pyplot()  # imported before the first job comes
    _plots.keep_figures()  # a worker draws many runs alike: their figures are built once
    for line in sys.stdin:
        kind, args = json.loads(line)
        print(json.dumps(_do(kind, args)), file=answers, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_work())
