"""The configs of a vmapped sweep's jobs: the first of each group composed as Hydra composes
it, the others derived from it (see :class:`SweepConfigs`)."""

import copy
from collections.abc import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, ValueType
from omegaconf import DictConfig, OmegaConf


class SweepConfigs:
    """``load_sweep_config`` of Hydra's config loader for jobs that differ in ``vmap_keys``.

    The first job of a group (the jobs whose overrides differ only in the values
    of ``vmap_keys``) is composed as Hydra composes it; every other job's config
    is a copy of that one with its own values applied as Hydra applies a
    command-line override, and its ``hydra.overrides.task`` and
    ``hydra.job.override_dirname`` made from its own overrides: the config
    Hydra would compose, at the cost of a copy. A job with any other difference
    (a config group, ``+key``, ``~key``, a Hydra key) is composed in full.

    Hydra's sweeper asks for every job's config to validate a batch and drops
    it; the launcher then asks for the same configs. So a config is kept after
    it is made, and the next request with the same overrides gets that object
    (once) instead of a new copy.
    """

    def __init__(self, compose, repository, vmap_keys: Sequence[str]) -> None:
        self.compose, self.repository = compose, repository
        self.vmap_keys = set(vmap_keys)
        self.parser = OverridesParser.create()
        self.parsed: dict[str, Override] = {}
        self.bases: dict = {}
        self.groups: dict = {}
        self.made: dict = {}

    def _parse(self, line: str) -> Override:
        """One override parsed as Hydra parses it, each distinct line once (a sweep's jobs share
        most of theirs); an Override is not changed once parsed."""
        if line not in self.parsed:
            (self.parsed[line],) = self.parser.parse_overrides([line])
        return self.parsed[line]

    def _varies(self, o: Override) -> bool:
        if not (
            o.key_or_group in self.vmap_keys
            and o.type == OverrideType.CHANGE
            and o.value_type == ValueType.ELEMENT
            and o.package is None
            and not o.is_hydra_override()
        ):
            return False
        if o.key_or_group not in self.groups:
            self.groups[o.key_or_group] = self.repository.group_exists(o.key_or_group)
        return not self.groups[o.key_or_group]

    def __call__(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        asked = (id(master_config), tuple(sweep_overrides))
        if asked in self.made:
            return self.made.pop(asked)
        self.made[asked] = cfg = self._make(master_config, sweep_overrides)
        return cfg

    def _make(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        from backprop_lab.compat._hydra import overrides_dirname

        parsed = [self._parse(line) for line in sweep_overrides]
        varies = [self._varies(o) for o in parsed]
        key = (
            id(master_config),
            tuple(o.key_or_group if v else o.input_line for o, v in zip(parsed, varies)),
        )
        base = self.bases.get(key)
        if base is None:
            cfg = self.compose(master_config, list(sweep_overrides))
            self.bases[key] = copy.deepcopy(cfg)
            return cfg
        cfg = copy.deepcopy(base)
        for o, v in zip(parsed, varies):  # key=value of a key the base config has (see _varies)
            if v:
                OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
        app = [o for o in parsed if not o.is_hydra_override()]
        names = cfg.hydra.job.config.override_dirname
        cfg.hydra.overrides.task = [o.input_line for o in app]
        cfg.hydra.job.override_dirname = overrides_dirname(
            app, kv_sep=names.kv_sep, item_sep=names.item_sep, exclude_keys=names.exclude_keys
        )
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
        return cfg
