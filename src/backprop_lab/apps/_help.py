"""``backprop-lab <app> --help``: the app's groups, keys and valid values, without JAX or Hydra.

Hydra's own ``--help`` composes the config once per config group to list the
groups (seconds here) and knows nothing of the names a key accepts. This help
reads the config files instead: the groups and their options are the folders
and files of ``conf/``, the keys are the files themselves (their comments say
what each key does, a comment after it its type, from the schemas of
:mod:`._config_schema`), and the valid values come from :mod:`._names`. Only
with overrides (``backprop-lab train experiment=xor --help``) does it compose,
through Hydra, and show the composed config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..config._keys import LANE_KEYS
from ..config._names import valid_values
from ._schemas import SCHEMAS, field_types

#: What each app does, in a line.
APPS = {
    "train": "train a network from a Hydra config; every run leaves metrics, a summary, a checkpoint and plots",
    "compare": "check the hand-written gradient against jax.grad on one batch, and time both",
    "explain": "write one backpropagation step out by hand, as the notes do (explain.md, network.png)",
}

#: Launchers and sweepers that plugins register (no file in conf/ to find them by).
PLUGIN_CHOICES = {
    "hydra/launcher": (
        "vmap (a sweep as one vmapped program; its lanes may differ in "
        + ", ".join(LANE_KEYS)
        + "; hydra.launcher.max_padding, default 4, splits a group whose padded/real FLOPs exceed it"
        + " by network shape), joblib, submitit_local, submitit_slurm"
    ),
    "hydra/sweeper": "basic, optuna",
}


def _top_level_blocks(text: str) -> list[tuple[str | None, list[str]]]:
    """The file cut before each top-level key: ``(key, lines)``, the comment lines just
    above a key belonging to its block (``None`` for what comes before the first key)."""
    blocks: list[tuple[str | None, list[str]]] = [(None, [])]
    pending: list[str] = []
    for line in text.splitlines():
        if line[:1] not in ("", " ", "#", "-") and ":" in line:
            blocks.append((line.split(":", 1)[0].strip(), pending + [line]))
            pending = []
        elif line.startswith("#") or not line.strip():
            pending.append(line)
        else:
            blocks[-1][1].extend(pending + [line])
            pending = []
    blocks[-1][1].extend(pending)
    return blocks


def _body(text: str, drop: Sequence[str] = ("defaults", "hydra")) -> str:
    """A config file less its defaults list (with the header comment above it) and its
    hydra block, blank lines at either end dropped."""
    lines = [line for key, block in _top_level_blocks(text) if key not in drop for line in block]
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines)


def _typed(body: str, types: Mapping[str, str], column: int = 40) -> str:
    """``body`` with ``# <type>`` after each line that sets a key of ``types`` (dotted keys for
    nested lines, two spaces an indent) and has no comment of its own."""
    lines: list[str] = []
    path: list[str] = []
    for line in body.splitlines():
        match = re.match(r"( *)([A-Za-z_]\w*):(.*)$", line)
        if match:
            path = path[: len(match[1]) // 2] + [match[2]]
            kind = types.get(".".join(path))
            if kind and "#" not in match[3]:
                line = f"{line:<{column - 2}}  # {kind}"
        lines.append(line)
    return "\n".join(lines)


def _types(group: str | None, option: str) -> dict[str, str]:
    """The types of a config file's keys: ``option`` of ``group``, or the app ``option``'s top
    level for ``group=None``; empty where no schema types them."""
    schema = SCHEMAS.get(group, {}).get(option)
    return field_types(schema) if schema is not None else {}


def defaults_list(conf: Path, app: str) -> list[tuple[str, str | None]]:
    """The primary config's defaults: ``(group, option)`` pairs, ``("_self_", None)`` in its
    place; overrides of Hydra's own groups left out."""
    import yaml

    entries = (yaml.safe_load((conf / f"{app}.yaml").read_text()) or {}).get("defaults") or []
    out: list[tuple[str, str | None]] = []
    for entry in entries:
        if entry == "_self_":
            out.append(("_self_", None))
        elif isinstance(entry, dict):
            for group, option in entry.items():
                if not str(group).startswith(("override ", "hydra/", "optional ", "schema/")):
                    out.append((str(group), option))
    return out


def groups(conf: Path) -> dict[str, list[str]]:
    """Every config group under ``conf`` (``data``, ``hydra/launcher``, ...) → its options."""
    found: dict[str, list[str]] = {}
    for file in sorted(conf.rglob("*.yaml")):
        if file.parent != conf:
            found.setdefault(file.parent.relative_to(conf).as_posix(), []).append(file.stem)
    return found


def app_help(app: str, conf: Path, composed: str | None = None) -> str:
    """The help text of ``app``; ``composed``: the config composed with the command line's
    overrides, to show instead of the files."""
    defaults = dict(defaults_list(conf, app))
    lines = [
        f"backprop-lab {app}: {APPS[app]}.",
        "",
        f"usage: backprop-lab {app} [-m] [GROUP=OPTION ...] [KEY=VALUE ...]",
        f"       (python experiments/{app}.py takes the same arguments in a checkout)",
        "  -m, --multirun   a sweep: KEY=a,b,c runs one job per value (and per combination)",
        "  --cfg job        print the composed config and exit, nothing runs",
        "  --hydra-help     Hydra's own options and groups",
        "  KEY=VALUE sets a key, +KEY=VALUE adds one, ~KEY removes one (Hydra's override syntax)",
        "",
        "Config groups (GROUP=OPTION; * marks the default):",
    ]
    found = groups(conf)
    width = max(len(g) for g in [*found, *PLUGIN_CHOICES]) + 2
    for group in sorted({*found, *PLUGIN_CHOICES}):
        shown = [o + ("*" if defaults.get(group) == o else "") for o in found.get(group, [])]
        if group in PLUGIN_CHOICES:
            shown.append(PLUGIN_CHOICES[group])
        lines.append(f"  {group + ':':<{width}}{', '.join(shown)}")
    lines += ["", "Valid values:"]
    rows = valid_values(app)
    width = max(len(key) for key, _ in rows) + 2
    lines += [f"  {key:<{width}}{values}" for key, values in rows]
    lines.append("")
    if composed is not None:
        lines += ["Config, composed with the overrides given:", "", composed.rstrip()]
        return "\n".join(lines)
    lines += [
        f"Keys (conf/{app}.yaml with the default of each group, in the order they merge;",
        "a later value wins). The comment after a key is its type: a value of another",
        "type stops the command as the config composes (Hydra's error, exit status 1):",
        "",
    ]
    text = (conf / f"{app}.yaml").read_text()
    for group, option in defaults_list(conf, app):
        if group == "_self_":
            lines += [f"# ---- conf/{app}.yaml", _typed(_body(text), _types(None, app)), ""]
        elif option is not None:
            body = _typed(_body((conf / group / f"{option}.yaml").read_text()), _types(group, option), 38)
            lines += [f"# ---- {group}={option} (conf/{group}/{option}.yaml)", f"{group}:"]
            lines += [("  " + line) if line.strip() else "" for line in body.splitlines()]
            lines.append("")
    return "\n".join(lines).rstrip()
