"""``backprop-lab``: the apps and tools as one command, from any directory.

    backprop-lab train [-m] [OVERRIDES...]        the Hydra apps, as experiments/*.py run them
    backprop-lab compare [-m] [OVERRIDES...]
    backprop-lab explain [-m] [OVERRIDES...]
    backprop-lab summarize SWEEP_DIR [--x KEY] [--y METRIC] [--no-plot]
    backprop-lab evaluate RUN_DIR [data=NAME] [data.KEY=VALUE ...] [--checkpoint best] [--json]

Importing this module imports neither JAX nor Hydra: an app's ``--help`` reads
the config files (:mod:`._cli_help`), and JAX starts only when something runs.
Before an app runs, its overrides are composed once as Hydra will compose them
(:mod:`._compose`), so a misspelt key or option is one line on stderr and exit status 2 (Hydra's
own message is several lines and exit status 1).

SIGINT, SIGTERM and SIGHUP end a command at any moment with 128 + the signal
number and no traceback (:func:`backprop_lab.runs._signals.stop_on_signals`);
a run's directory, once there, says ``status: "interrupted"``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..runs._signals import Interrupted, stop_on_signals
from ._compose import UsageError, check_app_overrides, composed_yaml, flags_first, one_line
from ._evaluate import data_overrides, evaluate
from ._help import APPS, app_help
from ._interrupted import record_interrupted, stopped_dirs

__all__ = [
    "TOOLS",
    "USAGE",
    "UsageError",
    "main",
    "run_app",
    "record_interrupted",
    "one_line",
    "check_app_overrides",
    "data_overrides",
    "evaluate",
    "console",
]


TOOLS = {
    "summarize": "tables, summary.csv, summary.md and plots of a multirun directory",
    "evaluate": "loss and accuracy of a run's checkpoint on its test split, or on other data",
}

USAGE = "\n".join(
    [
        "usage: backprop-lab COMMAND [ARGS...]      (backprop-lab COMMAND --help for each)",
        "",
        "Hydra apps (they take Hydra overrides: GROUP=OPTION, KEY=VALUE, -m for sweeps):",
        *[f"  {name:<10} {what}" for name, what in APPS.items()],
        "Tools:",
        *[f"  {name:<10} {what}" for name, what in TOOLS.items()],
    ]
)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``backprop-lab`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "--version":
        from .. import __version__

        print(f"backprop-lab {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command in APPS:
            return run_app(command, rest)
        if command == "summarize":
            return _summarize(rest)
        if command == "evaluate":
            return evaluate(rest)
        if command == "bench":  # the benchmarks are not installed with the package
            print(
                "backprop-lab bench: the benchmarks are run by scripts/bench in a checkout", file=sys.stderr
            )
            return 2
    except BrokenPipeError:  # output piped into head and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    print(f"backprop-lab: unknown command {command!r}\n{USAGE}", file=sys.stderr)
    return 2


def _wants_help(argv: Sequence[str]) -> bool:
    return any(a in ("-h", "--help") for a in argv) and "--hydra-help" not in argv


def run_app(name: str, argv: Sequence[str] | None = None, check_overrides: bool = True) -> int:
    """Run the Hydra app ``name`` (train, compare or explain) with Hydra's command line ``argv``.

    ``--help`` prints :func:`._cli_help.app_help`. Otherwise, with ``check_overrides``,
    the overrides are composed first and a config Hydra cannot compose ends here, with
    one line on stderr and status 2; then XLA's CPU options are set and the app's
    ``main`` runs (Hydra exits by itself on errors of its own).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    stop_on_signals()
    try:
        return _run_app(name, argv, check_overrides)
    except Interrupted as stop:
        for out, runs in stopped_dirs():
            record_interrupted(out, name, runs)
        return int(stop.signum) + 128


def _run_app(name: str, argv: list[str], check_overrides: bool) -> int:
    from ..apps import CONF_DIR

    if _wants_help(argv):
        overrides = [a for a in argv if not a.startswith("-")]
        composed = None
        if overrides:
            try:
                composed = composed_yaml(name, overrides, multirun="-m" in argv or "--multirun" in argv)
            except UsageError as err:
                print(f"backprop-lab {name}: {err}", file=sys.stderr)
                return 2
        print(app_help(name, Path(CONF_DIR), composed))
        return 0
    if check_overrides:
        try:
            check_app_overrides(name, argv)
        except UsageError as err:
            print(f"backprop-lab {name}: {err}", file=sys.stderr)
            return 2
    from ..training._xla import configure_cpu

    configure_cpu()  # CPU options for XLA, set before JAX starts its backend
    app = importlib.import_module(f"backprop_lab.apps.{name}")
    sys.argv = [sys.argv[0], *flags_first(argv)]
    app.main()
    return 0


def _summarize(argv: list[str]) -> int:
    from ._summarize import main as summarize

    return summarize(argv)


def console() -> None:
    """The ``backprop-lab`` console script: :func:`main`, its return value the exit status."""
    stop_on_signals()
    try:
        status = main()
    except Interrupted as stop:
        status = int(stop.code or 1)
    sys.exit(status)


if __name__ == "__main__":
    console()
