"""SIGINT, SIGTERM and SIGHUP at any moment: record, stop, exit 128 + n, never a traceback.

Outside a run's engine (start-up, config composition, a sweep's set-up, the
sweep's summary) the apps stop at once on the first signal
(:func:`stop_on_signals`): :class:`Interrupted` is a ``SystemExit`` whose code
is 128 + the signal number, so it unwinds through every ``finally`` and ends
the process without a traceback, whatever library code it passes through.

Inside the engine (:class:`Signals`) the first signal asks the engine to stop
after the current compiled chunk; the runs record ``status: "interrupted"``
and :class:`RunInterrupted` ends the app with 128 + n; ``resume=true``
continues from the checkpoint. A second signal stops at once, with a short
``summary.json`` for each run that has none yet.

A run in a process that another process started (a job of the parallel
launcher's workers) ends when that process is gone, even by ``kill -9``: it
stops as on SIGTERM and releases its directory.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

log = logging.getLogger("backprop_lab.run")

#: The signals that stop a run: Ctrl-C, ``kill`` (and SLURM's, at a time limit), a closed terminal.
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(SystemExit):
    """A signal that stops at once: exit status 128 + its number, no traceback when uncaught."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(128 + self.signum)


class RunInterrupted(Exception):
    """A signal ended the runs; their files record ``status: "interrupted"``."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(signum).name}; resume=true continues the run")


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def _unraisable(hook: Any) -> Any:
    """``sys.unraisablehook`` that delivers again an :class:`Interrupted` Python had to drop (it
    came in a garbage-collector callback or a ``__del__``, which cannot raise): the signal
    is sent once more, a moment later from another thread, so that it comes back once
    ordinary code runs. Others go to ``hook``."""

    def unraisable(info: Any) -> None:
        if isinstance(info.exc_value, Interrupted):
            again = threading.Timer(0.05, os.kill, (os.getpid(), info.exc_value.signum))
            again.daemon = True
            again.start()
        else:
            hook(info)

    unraisable.delivers_again = True  # type: ignore[attr-defined]
    return unraisable


def stop_on_signals() -> None:
    """From now on, each of :data:`SIGNALS` ends this process at once with 128 + n and no
    traceback (the engine defers them while it runs). A no-op outside the main thread.

    >>> import signal
    >>> stop_on_signals()
    >>> try:
    ...     signal.raise_signal(signal.SIGTERM)
    ... except SystemExit as stop:
    ...     print(stop.code)
    143
    >>> for sig in SIGNALS:
    ...     _ = signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    """
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _stop)
        if not getattr(sys.unraisablehook, "delivers_again", False):
            sys.unraisablehook = _unraisable(sys.unraisablehook)


class Signals:
    """The engine's handling of :data:`SIGNALS`: the first asks it to stop after the chunk
    (``received``), a second raises :class:`Interrupted`. On leaving, the handlers before
    come back."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}  # signal → its handler before (signal.signal's answer)
        self._saying = False  # the first signal's line is being written
        self._again = False  # a second signal came meanwhile

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
            _idle.clear()
            _end_with_parent()
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        _idle.set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        """A handler may run inside another (a write the first signal's line makes is cut
        short by the second, which Python then handles at once): a second signal that
        comes while the first one's line is written stops once that line is whole."""
        if self.received is not None:
            if not self._saying:
                raise Interrupted(self.received)
            self._again = True
            return
        self.received, self._saying = signum, True
        try:
            log.warning(
                "%s received: stopping after the current chunk (again to stop at once)",
                signal.Signals(signum).name,
            )
        finally:
            self._saying = False
        if self._again:
            raise Interrupted(self.received)


_watching = False
#: Set while no engine runs in this process's main thread.
_idle = threading.Event()
_idle.set()


def _end_with_parent() -> None:
    """In a worker process (its parent a multiprocessing or joblib process): when the parent
    ends (watched once per process), SIGTERM to this process, and once its run has recorded
    that, the process ends (128 + SIGTERM). Its output goes to /dev/null from then on: the
    run's log file keeps its lines, and the worker's pipes to its parent would only say, with
    a traceback, that they are broken."""
    global _watching
    import multiprocessing

    parent = multiprocessing.parent_process()
    if _watching or parent is None or parent.pid is None:
        return
    _watching = True
    threading.Thread(target=_watch, args=(parent.pid,), daemon=True).start()


def _watch(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)  # Linux: readable when the process ends
    except (AttributeError, OSError):
        while os.getppid() == pid:
            time.sleep(0.5)
    else:
        select.select([fd], [], [])
    log.warning("the process that started this one is gone: stopping")
    null = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(null, fd)
    os.kill(os.getpid(), signal.SIGTERM)
    _idle.wait()
    logging.shutdown()
    os._exit(128 + signal.SIGTERM)
