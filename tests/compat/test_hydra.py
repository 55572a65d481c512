"""The Hydra internals of backprop_lab.compat: still there, with the signatures and meaning they
are used with (these fail when a Hydra release changes them)."""

from __future__ import annotations

import inspect
import itertools

from hydra.core.override_parser.overrides_parser import OverridesParser

from backprop_lab.compat import _hydra as compat


def _parsed(overrides):
    return OverridesParser.create().parse_overrides(list(overrides))


def test_the_internals_have_the_signatures_used():
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.utils import get_args_parser

    assert not inspect.signature(get_args_parser).parameters
    assert list(inspect.signature(BasicSweeper.split_arguments).parameters) == ["overrides", "max_batch_size"]
    assert set(inspect.signature(get_overrides_dirname).parameters) == {
        "overrides",
        "exclude_keys",
        "item_sep",
        "kv_sep",
    }


def test_args_parser_reads_hydras_command_line():
    """The options the apps' check reads, as Hydra's documentation names them."""
    args, _ = compat.args_parser().parse_known_args(["-m", "--config-dir", "/somewhere", "a=1", "b=2"])
    assert args.multirun and args.config_dir == "/somewhere" and args.overrides == ["a=1", "b=2"]
    plain, _ = compat.args_parser().parse_known_args(["a=1"])
    for flag in (
        "config_path",
        "config_name",
        "experimental_rerun",
        "shell_completion",
        "info",
        "hydra_help",
    ):
        assert not getattr(plain, flag), flag


def test_basic_sweep_jobs_are_the_product_of_the_swept_values():
    jobs = compat.basic_sweep_jobs(_parsed(["a=1,2", "b=x", "c=p,q,r"]))
    expected = [[f"a={a}", "b=x", f"c={c}"] for a, c in itertools.product(["1", "2"], ["p", "q", "r"])]
    assert jobs == expected


def test_overrides_dirname_sorts_filters_and_joins():
    """Hydra's documented rule: overrides sorted, excluded keys left out, ``=`` as kv_sep."""
    got = compat.overrides_dirname(_parsed(["seed=3", "b.lr=0.1", "a=x"]), "-", "__", ["seed"])
    assert got == "a-x__b.lr-0.1"
