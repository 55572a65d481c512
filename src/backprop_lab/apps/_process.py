"""The end of a command's process: everything Python's own exit does but its last step.

When a Python process exits, the interpreter waits for its threads, runs the
``atexit`` functions, flushes its streams, and then tears down every module and
object it holds. With JAX, equinox, optax and XLA loaded that last step alone
takes about half a second, after the command's work and files are done (a third
of what the main job spends beyond ``import jax`` and its training, measured).
:func:`run_command` ends the apps' processes (experiments/*.py, ``python -m
backprop_lab.apps.*``, the ``backprop-lab`` command) with the same steps as
Python's exit, the teardown left out: the operating system reclaims the memory.
It is only for the outermost entry point of a command, never inside a library
call or a test's process.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn


def exit_now(code: object = 0) -> NoReturn:
    """End the process with ``code`` (as ``sys.exit`` reads it: None is 0, an int is the status,
    anything else is printed to stderr and the status is 1), skipping the interpreter's teardown.

    The threads still running are waited for and told to end as at a normal exit, the
    ``atexit`` functions run (plot workers, trackers, ``jax.distributed``), the log handlers
    are flushed and closed, and stdout and stderr are flushed; then the process ends.
    """
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    shutdown = getattr(threading, "_shutdown", None)
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if shutdown is None or run_exitfuncs is None:  # an interpreter without them: its own exit
        sys.exit(status)
    try:
        shutdown()  # what the interpreter's exit does first: wait for non-daemon threads
        run_exitfuncs()
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    finally:
        os._exit(status)


def run_command(main: Callable[[], object]) -> NoReturn:
    """Run a command's ``main`` and end the process with its return value as the status (or
    the code of a ``SystemExit`` it raised): see :func:`exit_now`."""
    try:
        code = main()
    except SystemExit as err:
        code = err.code
    exit_now(code)
