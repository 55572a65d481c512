#!/usr/bin/env python3
"""Write one backpropagation step out by hand, as the notes do.

    python experiments/explain.py experiment=note003
    python experiments/explain.py experiment=note004 data=note004 round_each_step=4 names=letters
    python experiments/explain.py model.sizes=[3,4,2] model.activation=tanh 'x=[1,0,-1]' 'y=[0,1]'

Prints the worked example (every net, out, δ, change matrix δ·outᵀ and the
updated weights) on standard output and writes into the Hydra output
directory explain.md (Markdown with LaTeX matrices) and network.png (neurons
with their out values, edges coloured by weight and labelled by gradient).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from . import CONF_DIR
from ._explain_figure import draw_network

if TYPE_CHECKING:  # JAX and NumPy load when a job runs, not for --help or --cfg
    import numpy as np

__all__ = ["draw_network", "explain_config", "main"]

log = logging.getLogger("backprop_lab.explain")


def _given_example(cfg: dict, sizes) -> tuple[np.ndarray, np.ndarray] | None:
    """Explicit x and y from the config, checked against the widths; None when not given."""
    import numpy as np

    from backprop_lab.runs._experiment import ConfigError

    x, y = cfg.get("x"), cfg.get("y")
    if (x is None) != (y is None):
        raise ConfigError(
            "x" if x is None else "y", None, "give both x and y, or neither (then `example` picks a row)"
        )
    if x is None:
        return None
    for key, v, width in (("x", x, sizes[0]), ("y", y, sizes[-1])):
        ok = (
            isinstance(v, (list, tuple))
            and len(v) == width
            and all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in v)
        )
        if not ok:
            raise ConfigError(key, v, f"expected a list of {width} numbers (model.sizes={list(sizes)})")
    return np.asarray(x, np.float64), np.asarray(y, np.float64)


def _data_example(cfg: dict, data) -> tuple[np.ndarray, np.ndarray]:
    """Row `example` of the training data, integer labels as one-hot targets."""
    import numpy as np

    from backprop_lab.runs._experiment import ConfigError

    index = cfg.get("example", 0)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < data.n_train:
        raise ConfigError(
            "example", index, f"expected a row index from 0 to {data.n_train - 1} of data set {data.name!r}"
        )
    y_row = data.y_train[index]
    if data.targets == "labels":
        y_row = np.eye(data.n_classes)[int(y_row)]
    return np.asarray(data.x_train[index], np.float64), np.asarray(y_row, np.float64)


def _check_config(cfg: dict) -> tuple[dict, tuple[int, ...]]:
    """The top-level keys checked against :data:`EXPLAIN_KEYS`, the model group, and a network
    small enough to write out; returns the checked keys and the sizes."""
    from backprop_lab.config._keys import EXPLAIN_KEYS
    from backprop_lab.explain._explain import TooLargeToExplain, check_explainable
    from backprop_lab.runs._config import check_top
    from backprop_lab.runs._experiment import ConfigError
    from backprop_lab.runs._model import model_sizes

    top = check_top(cfg, EXPLAIN_KEYS, required=("seed", "loss", "dtype"))
    sizes = model_sizes(cfg)
    try:
        check_explainable(sizes)
    except TooLargeToExplain as err:
        raise ConfigError("model.sizes", list(sizes), str(err)) from None
    return top, sizes


def _write(out: Path, e, markdown: str, names: str) -> list[str]:
    """explain.md (the Markdown, then the figure) and network.png; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "explain.md").write_text(
        markdown + "\n![the network: out values, weights and gradients](network.png)\n"
    )
    draw_network(e, out / "network.png", names)
    return [str(out / "explain.md"), str(out / "network.png")]


def explain_config(cfg: DictConfig | dict, out_dir: str | Path | None = None) -> dict:
    """Explain one step for a composed config; write explain.md and network.png.

    Arguments:
        cfg: the composed config (conf/explain.yaml and its groups); its top-level
            keys are checked against ``config._keys.EXPLAIN_KEYS``.
        out_dir: where the files go; default Hydra's runtime output directory.

    Returns:
        {"kind": "explain", "text": the terminal rendering, "markdown": the Markdown,
        "files": written paths, "sizes", "loss", "loss_value", "lr", "round_each_step",
        "output_dir"}.

    Raises:
        ConfigError: a config value that cannot work, or a network too large to
            explain (the message names the limit), before any compute.
    """
    import jax

    from backprop_lab.explain._explain import explain
    from backprop_lab.explain._render import render_markdown, render_text
    from backprop_lab.runs._config import plain_config
    from backprop_lab.runs._data import build_data
    from backprop_lab.runs._experiment import config_learning_rate
    from backprop_lab.runs._model import build_model

    jax.config.update("jax_enable_x64", True)  # explanations are float64 arithmetic
    cfg = plain_config(cfg)
    top, sizes = _check_config(cfg)
    given = _given_example(top, sizes)
    model = build_model(cfg)
    lr = config_learning_rate((cfg.get("optimizer") or {}).get("lr"))
    # with x and y given the data set plays no part; its widths need not match
    x, y = given if given is not None else _data_example(top, build_data(cfg, sizes))
    if cfg["optimizer"].get("name") != "sgd":
        log.warning(
            "optimizer %s: the explanation shows a plain gradient step W - lr*dL/dW with lr %g",
            cfg["optimizer"].get("name"),
            lr,
        )
    rnd, names = top.get("round_each_step"), top.get("names", "numbers")
    e = explain(model, x, y, cfg["loss"], float(lr), round_each_step=rnd)
    style = {"decimals": top.get("decimals"), "bias_column": cfg["model"].get("bias_column"), "names": names}
    text, markdown = render_text(e, **style), render_markdown(e, **style)
    out = Path(out_dir or HydraConfig.get().runtime.output_dir)
    return {
        "kind": "explain",
        "text": text,
        "markdown": markdown,
        "files": _write(out, e, markdown, names),
        "sizes": list(e.sizes),
        "loss": e.loss,
        "loss_value": e.loss_value,
        "lr": e.lr,
        "round_each_step": rnd,
        "output_dir": str(out),
    }


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="explain")
def main(cfg: DictConfig) -> None:
    from backprop_lab.apps import _hydra as apps

    result = apps.run_checked(explain_config, cfg, "explain", log)
    if result is None:
        return
    print(result["text"], end="")
    log.info("wrote %s", ", ".join(result["files"]))


if __name__ == "__main__":  # python -m backprop_lab.apps.explain, as backprop-lab explain
    import sys

    from backprop_lab.apps.cli import run_app

    sys.exit(run_app("explain"))
