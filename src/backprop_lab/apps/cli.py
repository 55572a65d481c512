"""``backprop-lab``: the apps and tools as one command, from any directory.

    backprop-lab train [-m] [OVERRIDES...]        the Hydra apps, as experiments/*.py run them
    backprop-lab compare [-m] [OVERRIDES...]
    backprop-lab explain [-m] [OVERRIDES...]
    backprop-lab summarize SWEEP_DIR [--x KEY] [--y METRIC] [--no-plot]
    backprop-lab evaluate RUN_DIR [data=NAME] [data.KEY=VALUE ...] [--checkpoint best] [--json]

Importing this module imports neither JAX nor Hydra: an app's ``--help`` reads
the config files (:mod:`._cli_help`), and JAX starts only when something runs.
Before an app runs, its overrides are composed once as Hydra will compose them,
so a misspelt key or option is one line on stderr and exit status 2 (Hydra's
own message is several lines and exit status 1).

SIGINT, SIGTERM and SIGHUP end a command at any moment with 128 + the signal
number and no traceback (:func:`backprop_lab.runs._signals.stop_on_signals`);
a run's directory, once there, says ``status: "interrupted"``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..runs._signals import Interrupted, stop_on_signals
from ._help import APPS, app_help
from ._launch import check_sweep

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


class UsageError(Exception):
    """A command line that cannot work; its message is the one line to print."""


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
        for out, runs in _stopped_dirs():
            record_interrupted(out, name, runs)
        return int(stop.signum) + 128


def _stopped_dirs() -> list[tuple[Path, bool]]:
    """The directories a signal stopped, each with whether it may hold a run of its own: every
    job directory of the sweep this process launches (a parallel launcher's workers end with
    it), else the Hydra job running now; none before Hydra has made one."""
    callbacks = sys.modules.get("backprop_lab.apps.callbacks")
    if callbacks is not None and callbacks.running:
        sweep = callbacks.running[-1]
        return [(job, True) for job in sorted(sweep.iterdir()) if (job / ".hydra").is_dir()]
    hydra_config = sys.modules.get("hydra.core.hydra_config")  # (not imported: no directory yet)
    if hydra_config is None or not hydra_config.HydraConfig.initialized():
        return []
    try:
        return [(Path(hydra_config.HydraConfig.get().runtime.output_dir), False)]
    except Exception:  # noqa: BLE001 - a job not set up yet has no directory
        return []


def record_interrupted(out: Path, kind: str, runs: bool = False) -> None:
    """A signal stopped a job outside a run's engine: its directory, when it has no summary
    yet, gets a summary.json with ``status: "interrupted"`` and how far its records got (so
    a sweep's summary counts it). A directory that holds a run is left as it is unless
    ``runs`` (the job's own run, stopped), and one another process holds always is."""
    from ..files._rundir import SUMMARY, RunDir, RunDirError, write_json

    run_dir = RunDir(out, app=kind)
    if not out.is_dir() or (out / SUMMARY).exists() or (run_dir.holds_run() and not runs):
        return
    try:
        run_dir.lock()
    except (RunDirError, OSError):
        return
    try:
        if not (out / SUMMARY).exists():
            last = (run_dir.records() or [{}])[-1]
            write_json(
                out / SUMMARY,
                {
                    "kind": kind,
                    "status": "interrupted",
                    "steps": last.get("step", 0),
                    "epochs": last.get("epoch", 0),
                },
            )
    except OSError:
        pass
    finally:
        run_dir.unlock()


def _run_app(name: str, argv: list[str], check_overrides: bool) -> int:
    from ..apps import CONF_DIR

    if _wants_help(argv):
        overrides = [a for a in argv if not a.startswith("-")]
        composed = None
        if overrides:
            try:
                composed = _composed_yaml(name, overrides, multirun="-m" in argv or "--multirun" in argv)
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
    sys.argv = [sys.argv[0], *argv]
    app.main()
    return 0


def one_line(err: BaseException) -> str:
    """An exception's message (and its cause's) on one line: Hydra's lists of options
    joined by commas, its ``full_key``/``object_type`` detail lines left out."""
    text = str(err)
    override = getattr(err, "override", None)  # Hydra's OverrideParseException: the bad one
    if isinstance(override, str) and override not in text:
        text = f"{override}: {text}"
    cause = err.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += "\n" + str(cause)
    chunks: list[str] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if line.startswith("Config search path"):
            break
        if not line or line.startswith(("full_key:", "object_type=", "reference_type=")):
            continue
        line = line.removesuffix(".")
        if chunks and chunks[-1].endswith(":"):
            chunks[-1] += " " + line
        elif chunks and ":" in chunks[-1] and chunks[-1].rsplit(":", 1)[0].startswith("Available options"):
            chunks[-1] += ", " + line
        else:
            chunks.append(line)
    return "; ".join(chunks) or type(err).__name__


def _compose(name: str, overrides: Sequence[str], multirun: bool = False):
    """The config of app ``name`` composed with ``overrides`` as Hydra composes it before
    launching (in a sweep, its swept keys are left out); raises :class:`UsageError`."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from ..apps import CONF_DIR

    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name=name):
            hydra = GlobalHydra.instance().hydra
            assert hydra is not None  # initialize_config_dir has set it up
            return hydra.compose_config(
                name,
                list(overrides),
                run_mode=RunMode.MULTIRUN if multirun else RunMode.RUN,
                from_shell=True,
                with_log_configuration=False,
            )
    except Exception as err:  # noqa: BLE001 - whatever Hydra or OmegaConf refuse, in one line
        raise UsageError(_with_options(one_line(err))) from None


def _with_options(message: str) -> str:
    """Hydra's "Could not load 'GROUP/OPTION'" (an unknown option in a list of options,
    ``logger=[csv,neptune]``) with the group's options, as it says them for a single one."""
    from ..apps import CONF_DIR

    found = re.search(r"Could not load '([\w/]+)/(\w+)'", message)
    if found is None or not (Path(CONF_DIR) / found.group(1)).is_dir():
        return message
    options = ", ".join(sorted(p.stem for p in (Path(CONF_DIR) / found.group(1)).glob("*.yaml")))
    return f"{message}; available options in '{found.group(1)}': {options}"


def _composed_yaml(name: str, overrides: Sequence[str], multirun: bool) -> str:
    from omegaconf import OmegaConf, open_dict

    cfg = _compose(name, overrides, multirun)
    with open_dict(cfg):
        del cfg["hydra"]
    return OmegaConf.to_yaml(cfg)


def check_app_overrides(name: str, argv: Sequence[str]) -> None:
    """Raise :class:`UsageError` when Hydra cannot compose the config ``argv`` asks for.

    The overrides compose as Hydra composes them before it launches; in a sweep of
    the basic sweeper, also the first job, and that job with each other option of
    each swept group (a misspelt option in a list of options fails its job only, after
    the jobs before it ran). Command lines Hydra reads differently (``--config-dir``,
    ``--experimental-rerun``, ...) are left to Hydra.
    """
    from ..compat._hydra import args_parser, basic_sweep_jobs

    try:
        args, _ = args_parser().parse_known_args(list(argv))
    except Interrupted:
        raise  # a signal while Hydra is imported: not a command line to leave to Hydra
    except SystemExit:
        return  # Hydra's own parser will say what is wrong
    if (
        args.config_path
        or args.config_name
        or args.config_dir
        or args.experimental_rerun
        or args.shell_completion
        or args.info
        or args.hydra_help
    ):
        return
    cfg = _compose(name, args.overrides, multirun=args.multirun)
    try:
        if not args.multirun or not check_sweep(cfg):
            return
    except ValueError as err:
        raise UsageError(str(err)) from None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        jobs = basic_sweep_jobs(OverridesParser.create().parse_overrides(args.overrides))
    except Exception as err:  # noqa: BLE001
        raise UsageError(one_line(err)) from None
    if not jobs:
        return
    from ..apps import CONF_DIR

    def group(override: str) -> bool:  # a config group's option (keys of a YAML group take any value)
        key = override.split("=", 1)[0].lstrip("+~")
        return "/" in key or (Path(CONF_DIR) / key).is_dir()

    first = list(jobs[0])
    to_check = [first]
    for i in range(len(first)):
        if group(first[i]):
            for other in sorted({job[i] for job in jobs} - {first[i]}):
                to_check.append(first[:i] + [other] + first[i + 1 :])
    for job in to_check:
        _compose(name, job)


def _summarize(argv: list[str]) -> int:
    from ._summarize import main as summarize

    return summarize(argv)


def data_overrides(run_data: dict, overrides: Sequence[str]) -> dict:
    """The ``data`` group ``overrides`` (``data=NAME``, ``data.KEY=VALUE``, ``~data.KEY``)
    make of a run's ``run_data``; raises :class:`UsageError`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception as err:  # noqa: BLE001
        raise UsageError(one_line(err)) from None
    data: dict[str, Any] = dict(run_data)
    for o in parsed:
        key = o.key_or_group
        if key != "data" and not key.startswith("data."):
            raise UsageError(
                f"{o.input_line}: evaluate takes the data group only (data=NAME, data.KEY=VALUE, ~data.KEY)"
            )
        if o.is_sweep_override():
            raise UsageError(f"{o.input_line}: one value each")
        if key == "data":
            if o.is_delete():
                raise UsageError(f"{o.input_line}: the data group cannot be removed")
            data = dict(_compose("train", [f"data={o.value()}", "jax_cache_dir=null"]).data)
        elif o.is_delete():
            data.pop(key.split(".", 1)[1], None)
        else:
            data[key.split(".", 1)[1]] = o.value()
    return data


def evaluate(argv: Sequence[str]) -> int:
    """``backprop-lab evaluate``: loss and accuracy of a run's checkpoint (see :func:`evaluate_run`)."""
    parser = argparse.ArgumentParser(
        prog="backprop-lab evaluate",
        description="Loss and accuracy of a run's network, at its checkpoint, on the run's own data "
        "set (split as the run split it; the test split is the one that measures it) or, given "
        "data overrides, on other data: data=NAME (conf/data/NAME.yaml), data.KEY=VALUE on top.",
        epilog="e.g. backprop-lab evaluate outputs/2024-05-01/12-00-00 data=moons data.n_samples=4000",
    )
    parser.add_argument("run_dir", type=Path, help="a run directory (as backprop-lab train leaves it)")
    parser.add_argument(
        "overrides", nargs="*", metavar="data[.KEY]=VALUE", help="the data to measure on instead of the run's"
    )
    parser.add_argument(
        "--checkpoint",
        choices=("last", "best"),
        default="last",
        help="which checkpoint: last (default; checkpoint.eqx, where the run ended or stopped) or "
        "best (checkpoint_best.eqx, the best evaluation by the run's optimized_metric)",
    )
    parser.add_argument("--json", action="store_true", help="print the measurements as one JSON object")
    args = parser.parse_args(list(argv))
    from ..training._xla import configure_cpu

    configure_cpu()
    from ..config._checks import ConfigError
    from ..files._checkpoint import CheckpointError
    from ..files._rundir import RunDirError
    from ..runs._load import evaluate_run, load_run

    try:
        data_cfg = None
        if args.overrides:
            run_data = load_run(args.run_dir, args.checkpoint).config.get("data") or {}
            data_cfg = data_overrides(dict(run_data), args.overrides)
        result = evaluate_run(args.run_dir, data_cfg, args.checkpoint)
    except (UsageError, CheckpointError, ConfigError, RunDirError) as err:
        print(f"backprop-lab evaluate: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{result['path']}: {result['checkpoint']} checkpoint, step {result['step']}, epoch "
        f"{result['epoch']}; data {result['data']}, loss {result['loss']}"
    )
    print(f"{'split':<6}{'rows':>7}  {'loss':>12}  {'accuracy':>9}")
    for split, rows in (("train", result["n_train"]), ("test", result["n_test"])):
        loss, acc = result[f"{split}_loss"], result[f"{split}_accuracy"]
        print(
            f"{split:<6}{rows:>7}  {'-' if loss is None else f'{loss:.6g}':>12}  "
            f"{'-' if acc is None else f'{acc:.4f}':>9}"
        )
    return 0


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
