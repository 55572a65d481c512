"""How a vmapped sweep's groups of jobs become programs: the checks of the launcher's own
keys, the padded/real FLOPs of a group, its split by shape past ``max_padding``, and the
lines that say so."""

import json
import logging
import sys
from collections.abc import Sequence

from backprop_lab.config._keys import LANE_KEYS

log = logging.getLogger(__name__)


def check_max_padding(max_padding: object) -> None:
    """Exit 2 with one line, before any job, unless ``max_padding`` is a number >= 1."""
    if not (isinstance(max_padding, (int, float)) and not isinstance(max_padding, bool) and max_padding >= 1):
        log.error(
            "hydra.launcher.max_padding=%s: expected a number >= 1, e.g. 4 (1 gives every model.sizes "
            "its own program)",
            max_padding,
        )
        sys.exit(2)


def check_vmap_keys(vmap_keys: Sequence[str]) -> None:
    """Exit 2 with one line, before any job, unless every key of ``vmap_keys`` is one that the
    lanes of a program may differ in (:data:`LANE_KEYS`)."""
    other = [k for k in vmap_keys if k not in LANE_KEYS]
    if other:
        log.error(
            "hydra.launcher.vmap_keys=%s: %s cannot differ within one program; expected some of %s "
            "(the default: all of them)",
            list(vmap_keys),
            ", ".join(other),
            ",".join(LANE_KEYS),
        )
        sys.exit(2)


def _flat(node: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in node.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _labels(keys: Sequence[str]) -> list[str]:
    """Per group (its config minus the lane keys, as JSON), the values that tell it from the
    others: ``data.name=moons``."""
    flat = [_flat(json.loads(k)) for k in keys]
    names = sorted({n for f in flat for n in f})
    differ = [n for n in names if len({json.dumps(f.get(n, "<none>"), default=str) for f in flat}) > 1]
    return [
        " ".join(f"{n}={json.dumps(f.get(n), default=str)}".replace('"', "") for n in differ) for f in flat
    ]


def _ratio(jobs: list, sizes: dict) -> float:
    from backprop_lab.training._masked import padding_ratio

    try:
        return padding_ratio([sizes[idx] for idx, _, _ in jobs])
    except ValueError:  # widths that cannot share a program (no such job passes its checks)
        return float("inf")


def programs(groups: list[list], keys: Sequence[str], max_padding: float, sizes: dict) -> list[list]:
    """The groups of jobs as programs, a group whose padding costs more than ``max_padding``
    times its real FLOPs split by network shape (``sizes``: job number → the layer widths of
    its network, given by ``model.sizes`` or made from ``model.hidden`` and the data); logs
    what tells the programs apart and each program's padded/real FLOPs."""
    programs: list[tuple[list, str, float]] = []
    for jobs, label in zip(groups, _labels(keys)):
        ratio = _ratio(jobs, sizes)
        if ratio <= max_padding:
            programs.append((jobs, label, ratio))
            continue
        shapes: dict = {}
        for job in jobs:
            shapes.setdefault(sizes[job[0]], []).append(job)
        log.info(
            "padding %s to one shape would cost %.2fx its real FLOPs, more than max_padding=%g: "
            "one program per model.sizes",
            label or "the jobs",
            ratio,
            max_padding,
        )
        for shape, part in shapes.items():
            programs.append((part, f"{label} model.sizes={list(shape)}".strip(), 1.0))
    n = sum(len(jobs) for jobs, _, _ in programs)
    labels = ", ".join(label for _, label, _ in programs) if len(programs) > 1 else ""
    log.info(
        "%d jobs as %d program%s%s", n, len(programs), "s" * (len(programs) != 1), labels and f": {labels}"
    )
    for i, (jobs, _, ratio) in enumerate(programs):
        log.info("program %d: %d lanes, padded/real FLOPs %.3g", i + 1, len(jobs), ratio)
    return [jobs for jobs, _, _ in programs]
