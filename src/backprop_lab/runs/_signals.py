"""SIGINT and SIGTERM during training: finish the chunk, record, exit non-zero.

The first signal asks the engine to stop after the current compiled chunk (the
handler runs when that call returns); a second stops at once. Either way the
runs record ``status: "interrupted"`` and the app exits with 128 + the signal
number, without a traceback; ``resume=true`` continues from the checkpoint.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

log = logging.getLogger("backprop_lab.run")


class Interrupted(Exception):
    """Raised by a second SIGINT/SIGTERM to stop at once."""


class RunInterrupted(Exception):
    """SIGINT or SIGTERM ended the runs; their files record ``status: "interrupted"``."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(signum).name}; resume=true continues the run")


class Signals:
    """SIGINT/SIGTERM: the first asks the engine to stop after the chunk, a second stops at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}  # signal → its handler before (signal.signal's answer)

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise Interrupted
        self.received = signum
        log.warning(
            "%s received: stopping after the current chunk (again to stop at once)",
            signal.Signals(signum).name,
        )
