"""Hydra internals the package needs (checked with hydra-core 1.3.8; the project allows
1.3.2 <= hydra-core < 1.4). Each is what Hydra itself does; none has a public counterpart."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override


def args_parser() -> argparse.ArgumentParser:
    """The parser of a Hydra app's command line (``-m``, ``--cfg``, ``--config-dir``, overrides).

    ``hydra.main`` builds and uses it internally; no public function returns it, and
    reading the command line as Hydra will read it needs the same parser.
    """
    from hydra._internal.utils import get_args_parser

    return get_args_parser()


def basic_sweep_jobs(overrides: list[Override]) -> list[list[str]]:
    """The jobs (each a list of overrides) Hydra's basic sweeper makes of a sweep's ``overrides``,
    in its order: the product of the swept values.

    The basic sweeper is an internal plugin (``hydra._internal.core_plugins``); its plan is
    public only by running the sweep.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def overrides_dirname(overrides: Sequence[Override], kv_sep: str, item_sep: str, exclude_keys) -> str:
    """``hydra.job.override_dirname`` of a job's ``overrides`` as Hydra writes it (sorted,
    ``exclude_keys`` left out, joined by ``item_sep``, ``=`` as ``kv_sep``).

    Hydra computes it while it composes a job's config; no public function gives it
    for a config derived without composing.
    """
    from hydra._internal.config_loader_impl import get_overrides_dirname

    return get_overrides_dirname(
        overrides=list(overrides), exclude_keys=list(exclude_keys), item_sep=item_sep, kv_sep=kv_sep
    )
