"""The configured data set: loaded once per process, checked against the network's widths."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..config._checks import ConfigError, choice
from ..data._registry import DATASETS, Dataset, load_dataset

__all__ = ["absolute_path", "absolute_data_path", "build_data"]


@functools.lru_cache(maxsize=16)
def _load(name: str, seed: Any, dtype: str, kwargs: str, stamp: tuple = ()) -> Dataset:
    """load_dataset, once per process for the same arguments (a sweep's jobs share data) and,
    for a file, the same ``stamp`` (its :func:`_file_stamp`: a changed file is read again)."""
    return load_dataset(name, seed=seed, dtype=np.dtype(dtype), **json.loads(kwargs))


def _file_stamp(path: object) -> tuple:
    """A file's identity and modification time, or () when it cannot be read."""
    try:
        st = os.stat(os.path.expanduser(str(path)))
    except (OSError, ValueError):
        return ()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def absolute_path(path: object) -> str | None:
    """A relative file path made absolute (from the current directory, ``~`` expanded); None
    for a path that is absolute already, or for no path."""
    if not isinstance(path, str) or path in ("", "???") or os.path.isabs(os.path.expanduser(path)):
        return None
    return os.path.abspath(os.path.expanduser(path))


def absolute_data_path(cfg: dict) -> dict:
    """``cfg`` with a relative ``data.path`` made absolute (:func:`absolute_path`), so the run's
    record names the file from anywhere (``evaluate``, ``load_run``)."""
    data = cfg.get("data")
    path = absolute_path(data.get("path")) if isinstance(data, Mapping) else None
    return cfg if path is None else {**cfg, "data": {**dict(data or {}), "path": path}}


def build_data(cfg: Mapping, sizes: tuple[int, ...] | None) -> Dataset:
    """The configured data set, checked against the network's widths (unless None)."""
    data_cfg = cfg.get("data")
    if not isinstance(data_cfg, Mapping) or "name" not in data_cfg:
        raise ConfigError(
            "data",
            data_cfg,
            f"expected a data set, e.g. data=digits; valid choices are: {', '.join(sorted(DATASETS))}",
        )
    name = choice(DATASETS)("data.name", data_cfg["name"])
    kwargs = {k: v for k, v in data_cfg.items() if k != "name"}
    try:
        data = _load(
            name,
            cfg.get("seed", 0),
            str(cfg.get("dtype", "float32")),
            json.dumps(kwargs, sort_keys=True, default=str),
            _file_stamp(kwargs["path"]) if "path" in kwargs else (),
        )
    except (ValueError, TypeError) as err:
        raise ConfigError("data", name, str(err)) from None
    if data.n_train < 1:
        raise ConfigError("data", name, "it has no training rows")
    if sizes is not None and (data.in_width != sizes[0] or data.out_width != sizes[-1]):
        raise ConfigError(
            "model.sizes",
            list(sizes),
            f"data set {data.name!r} has input width {data.in_width} and output width "
            f"{data.out_width}, so sizes must start with {data.in_width} and end with {data.out_width}",
        )
    return data
