"""An app's overrides composed as Hydra will compose them, before anything runs.

A config Hydra cannot compose (a misspelt key or option, a bad value) is a
:class:`UsageError` whose message is one line (:func:`one_line`), where Hydra's own
is several lines and exit status 1. Imports no Hydra until a function is called.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from ..runs._signals import Interrupted
from ._launch import check_sweep

__all__ = [
    "UsageError",
    "one_line",
    "compose",
    "composed_yaml",
    "check_app_overrides",
    "flags_first",
    "hydra_args",
]


class UsageError(Exception):
    """A command line that cannot work; its message is the one line to print."""


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


def compose(name: str, overrides: Sequence[str], multirun: bool = False):
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


def composed_yaml(name: str, overrides: Sequence[str], multirun: bool) -> str:
    from omegaconf import OmegaConf, open_dict

    cfg = compose(name, overrides, multirun)
    with open_dict(cfg):
        del cfg["hydra"]
    return OmegaConf.to_yaml(cfg)


def hydra_args(argv: Sequence[str]) -> argparse.Namespace:
    """A Hydra app's command line read as Hydra reads it (``args.overrides``, ``args.multirun``,
    ...), its flags anywhere; raises :class:`UsageError` with argparse's one line where Hydra
    would print its usage message."""
    from ..compat._hydra import args_parser

    def refuse(message: str) -> NoReturn:
        raise UsageError(message)

    parser = args_parser()
    parser.error = refuse  # type: ignore[method-assign]  # argparse's hook for its messages
    try:
        args, unknown = parser.parse_known_intermixed_args(list(argv))
    except Interrupted:
        raise  # a signal while Hydra is imported: not a command line to leave to Hydra
    if unknown:
        refuse(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def flags_first(argv: Sequence[str]) -> list[str]:
    """A Hydra app's command line with its flags (``-m``, ``--cfg job``, ...) ahead of the
    overrides, in their orders: Hydra's parser takes the overrides only as one run of words,
    so ``seed=1 -m optimizer.lr=0.1,0.2`` would be a usage error (overrides never start
    with ``-``, so the words mean the same in either order). A command line Hydra cannot
    read is left as it is, for Hydra to say so.

    >>> flags_first(["seed=1", "-m", "optimizer.lr=0.1,0.2", "--cfg", "job"])
    ['-m', '--cfg', 'job', 'seed=1', 'optimizer.lr=0.1,0.2']
    """
    try:
        overrides = list(hydra_args(argv).overrides)
    except UsageError:
        return list(argv)
    flags = list(argv)
    for override in overrides:
        flags.remove(override)
    return flags + overrides


def check_app_overrides(name: str, argv: Sequence[str]) -> None:
    """Raise :class:`UsageError` when Hydra cannot compose the config ``argv`` asks for.

    The overrides compose as Hydra composes them before it launches; in a sweep of
    the basic sweeper, also the first job, and that job with each other option of
    each swept group (a misspelt option in a list of options fails its job only, after
    the jobs before it ran). A command line Hydra cannot read is one line too (where Hydra
    prints its usage). Command lines Hydra reads differently (``--config-dir``,
    ``--experimental-rerun``, ...) are left to Hydra.
    """
    from ..compat._hydra import basic_sweep_jobs

    args = hydra_args(argv)
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
    cfg = compose(name, args.overrides, multirun=args.multirun)
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
        compose(name, job)
