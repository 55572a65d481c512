"""The jobs a sweep planned (its multirun.yaml), and which of them no job directory holds."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from ..config._keys import NOT_RESULT_KEYS
from ._job import load_yaml, lookup
from ._sweep_size import MAX_PLANNED, check_sweep_size, sweep_arguments

__all__ = ["MAX_PLANNED", "planned_jobs", "not_started"]


def planned_jobs(sweep_dir: str | Path) -> list[list[str]] | None:
    """The jobs a sweep planned, as Hydra's basic sweeper expands them.

    The sweep's ``multirun.yaml`` keeps its overrides (``hydra.overrides.task``,
    after ``hydra.sweeper.params``); each sweep override (``a=1,2``,
    ``range(…)``, ``choice(…)``) contributes its values and the jobs are their
    Cartesian product, in Hydra's job order.

    Arguments:
        sweep_dir: A Hydra multirun directory.

    Returns:
        Per planned job, its override strings (as its ``.hydra/overrides.yaml``
        holds them); None without a readable multirun.yaml, with another sweeper,
        with a sweep that cannot be expanded without the config (``glob``), or with
        a plan of more than :data:`MAX_PLANNED` jobs (not expanded: the work is bounded).
    """
    config = load_yaml(Path(sweep_dir) / "multirun.yaml")
    sweeper = str(lookup(config, "hydra.sweeper._target_") or "")
    task = lookup(config, "hydra.overrides.task")
    if not sweeper.endswith("BasicSweeper") or not isinstance(task, list):
        return None
    arguments = sweep_arguments(lookup(config, "hydra.sweeper.params"), task)
    from hydra.core.override_parser.overrides_parser import OverridesParser

    choices: dict[str, list[str]] = {}
    try:
        check_sweep_size(arguments)  # no sweep of more ran here: its jobs' directories are what there is
        for override in OverridesParser.create().parse_overrides(arguments):
            key = override.get_key_element()
            if not override.is_sweep_override():
                choices[key] = [f"{key}={override.get_value_element_as_str()}"]
            elif override.is_discrete_sweep():
                choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
            else:
                return None
    except Exception:  # a parse error, a plan too large, or a glob that needs the config loader
        return None
    return [list(combination) for combination in itertools.product(*choices.values())]


def _run_identity(overrides: Iterable[str]) -> frozenset[str]:
    """The overrides that say which run a job is: those of keys a resume may change
    (``resume=true``, more ``epochs``, another ``logger``: NOT_RESULT_KEYS) left out."""
    return frozenset(
        o for o in overrides if o.split("=", 1)[0].lstrip("+~").split(".")[0] not in NOT_RESULT_KEYS
    )


def not_started(plan: list[list[str]], started: list[list[str]]) -> list[int]:
    """The numbers of the planned jobs no job directory holds.

    Each directory stands for one planned job: one with the same overrides first,
    then one that is the same run (a sweep rerun with ``resume=true`` or more
    ``epochs`` plans overrides that its resumed jobs' directories do not hold).
    """
    exact = Counter(frozenset(o) for o in started)
    left: list[int] = []
    for number, overrides in enumerate(plan):
        if exact[frozenset(overrides)] > 0:
            exact[frozenset(overrides)] -= 1
        else:
            left.append(number)
    same_run: Counter[frozenset[str]] = Counter()
    for held, count in exact.items():
        same_run[_run_identity(held)] += count
    missing: list[int] = []
    for number in left:
        if same_run[_run_identity(plan[number])] > 0:
            same_run[_run_identity(plan[number])] -= 1
        else:
            missing.append(number)
    return missing
