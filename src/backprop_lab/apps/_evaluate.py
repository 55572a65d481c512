"""``backprop-lab evaluate``: a run's checkpoint measured on its own data or on other data."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._compose import UsageError, compose, one_line

__all__ = ["data_overrides", "evaluate"]


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
            data = dict(compose("train", [f"data={o.value()}", "jax_cache_dir=null"]).data)
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
