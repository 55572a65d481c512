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

if TYPE_CHECKING:  # JAX and NumPy load when a job runs, not for --help or --cfg
    import numpy as np

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


def draw_network(e, path: Path, names: str = "numbers") -> None:
    """network.png: neurons with their out values, edges coloured by W and labelled by ∂L/∂W.

    Each edge's label goes at the first point along the edge (nearest the middle
    first) where it overlaps no label placed before it and no neuron, measured
    on the drawn figure, so the labels of crossing edges stay apart.

    Arguments:
        e: an Explanation.
        path: the PNG file to write.
        names: "numbers" or "letters", as in the text.
    """
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    sizes = e.sizes
    n_layers = len(sizes)
    has_bias = any(layer.b is not None for layer in e.layers)
    tallest = max(sizes) + (1 if has_bias else 0)
    sx = 3.2  # horizontal distance between layers; neurons are 1 apart vertically
    width, height = sx * (n_layers - 1) + 1.4, tallest + 1.4
    fig, ax = plt.subplots(figsize=(0.85 * width + 1.6, 0.85 * height + 0.6))
    vmax = max(float(np.abs(layer.W).max()) for layer in e.layers)
    vmax = max([vmax] + [float(np.abs(layer.b).max()) for layer in e.layers if layer.b is not None]) or 1.0
    norm, cmap = Normalize(-vmax, vmax), plt.get_cmap("RdBu_r")
    d = 3 if e.round_each_step is None else e.round_each_step
    top = (max(sizes) - 1) / 2.0
    radius = 0.34

    def ys(n: int) -> np.ndarray:
        return top - np.arange(n) - (max(sizes) - n) / 2.0

    def fmt(v: float) -> str:
        s = f"{v:.{d}f}"
        return f"{0.0:.{d}f}" if float(s) == 0.0 else s

    edges = []  # (x0, y0, x1, y1, gradient, preferred position along the edge)
    for l, layer in enumerate(e.layers, start=1):
        y_in, y_out = ys(sizes[l - 1]), ys(sizes[l])
        y_one = top + 1.0
        for i in range(sizes[l]):
            for j in range(sizes[l - 1]):
                w = layer.W[i, j]
                ax.plot(
                    [sx * (l - 1), sx * l],
                    [y_in[j], y_out[i]],
                    color=cmap(norm(w)),
                    lw=0.8 + 2.5 * abs(w) / vmax,
                    zorder=1,
                )
                edges.append(
                    (
                        sx * (l - 1),
                        y_in[j],
                        sx * l,
                        y_out[i],
                        layer.dW[i, j],
                        0.3 + 0.4 * (j + 0.5) / sizes[l - 1],
                    )
                )
            if layer.b is not None:
                ax.plot(
                    [sx * (l - 1), sx * l],
                    [y_one, y_out[i]],
                    color=cmap(norm(layer.b[i])),
                    lw=0.8 + 2.5 * abs(layer.b[i]) / vmax,
                    zorder=1,
                )
                edges.append((sx * (l - 1), y_one, sx * l, y_out[i], layer.db[i], 0.25))
        if layer.b is not None:
            ax.add_patch(plt.Circle((sx * (l - 1), y_one), 0.22, fc="0.85", ec="0.5", zorder=4))
            ax.text(sx * (l - 1), y_one, "1", ha="center", va="center", fontsize=8, zorder=5)
    neurons = []
    for l, n in enumerate(sizes):
        for y, v in zip(ys(n), e.out(l)):
            neurons.append(ax.add_patch(plt.Circle((sx * l, y), radius, fc="white", ec="black", zorder=4)))
            ax.text(sx * l, y, fmt(v), ha="center", va="center", fontsize=7, zorder=5)
        label = f"out[{l}]" if names == "numbers" else f"out_{chr(97 + l)}"
        ax.text(
            sx * l, top - max(sizes) + 0.35, label + (" (input)" if l == 0 else ""), ha="center", fontsize=9
        )
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, fraction=0.04, pad=0.02, label="weight (edge colour); edge labels: ∂L/∂W")
    ax.set_xlim(-0.7, sx * (n_layers - 1) + 0.7)
    ax.set_ylim(top - max(sizes) + 0.1, top + (1.5 if has_bias else 0.6))
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(
        f"{list(sizes)} {e.layers[0].activation}/{e.layers[-1].activation}, loss {e.loss} "
        f"= {fmt(e.loss_value)}, lr {e.lr:g}",
        fontsize=10,
    )
    fig.tight_layout()

    # Labels last, on the final layout: each at the free spot nearest its preferred one.
    renderer = fig.canvas.get_renderer()
    taken = [c.get_window_extent(renderer) for c in neurons]
    spots = np.linspace(0.14, 0.86, 25)

    def overlap(a, b) -> float:
        w = min(a.x1, b.x1) - max(a.x0, b.x0)
        h = min(a.y1, b.y1) - max(a.y0, b.y0)
        return w * h if w > 0 and h > 0 else 0.0

    for x0, y0, x1, y1, g, preferred in edges:
        angle = float(np.degrees(np.arctan2(y1 - y0, x1 - x0)))  # along the edge (aspect is equal)
        text = ax.text(
            x0,
            y0,
            fmt(g),
            fontsize=6.5,
            ha="center",
            va="center",
            zorder=3,
            rotation=angle,
            rotation_mode="anchor",
            bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.9),
        )
        best = None
        for t in sorted(spots, key=lambda t: abs(t - preferred)):
            text.set_position((x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
            box = text.get_window_extent(renderer).expanded(1.1, 1.25)
            clash = sum(overlap(box, other) for other in taken)
            if best is None or clash < best[0]:
                best = (clash, t, box)
            if clash == 0:
                break
        _, t, box = best
        text.set_position((x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
        taken.append(box)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def explain_config(cfg: DictConfig, out_dir: str | Path | None = None) -> dict:
    """Explain one step for a composed config; write explain.md and network.png.

    Arguments:
        cfg: the composed config (conf/explain.yaml and its groups).
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

    from backprop_lab.explain._explain import TooLargeToExplain, check_explainable, explain
    from backprop_lab.explain._render import render_markdown, render_text
    from backprop_lab.runs._experiment import (
        ConfigError,
        build_data,
        build_model,
        check_model_config,
        config_learning_rate,
        plain_config,
    )

    jax.config.update("jax_enable_x64", True)  # explanations are float64 arithmetic
    cfg = plain_config(cfg)
    sizes = check_model_config(cfg["model"], cfg["loss"])
    try:
        check_explainable(sizes)
    except TooLargeToExplain as err:
        raise ConfigError("model.sizes", list(sizes), str(err)) from None
    rnd = cfg.get("round_each_step")
    if rnd is not None and (isinstance(rnd, bool) or not isinstance(rnd, int) or not 0 <= rnd <= 12):
        raise ConfigError(
            "round_each_step", rnd, "expected null or an integer from 0 to 12 (note 004 uses 4)"
        )
    decimals = cfg.get("decimals")
    if decimals is not None and (
        isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 16
    ):
        raise ConfigError("decimals", decimals, "expected null or an integer from 0 to 16")
    names = cfg.get("names", "numbers")
    if names not in ("numbers", "letters"):
        raise ConfigError("names", names, "valid choices are: letters, numbers")

    given = _given_example(cfg, sizes)
    model = build_model(cfg)
    lr = config_learning_rate((cfg.get("optimizer") or {}).get("lr"))
    if given is None:
        x, y = _data_example(cfg, build_data(cfg, sizes))
    else:  # the data set plays no part; its widths need not match
        x, y = given
    if cfg["optimizer"].get("name") != "sgd":
        log.warning(
            "optimizer %s: the explanation shows a plain gradient step W - lr*dL/dW with lr %g",
            cfg["optimizer"].get("name"),
            lr,
        )
    e = explain(model, x, y, cfg["loss"], float(lr), round_each_step=rnd)
    bias_column = cfg["model"].get("bias_column")
    text = render_text(e, decimals=decimals, bias_column=bias_column, names=names)
    markdown = render_markdown(e, decimals=decimals, bias_column=bias_column, names=names)

    out = Path(out_dir or HydraConfig.get().runtime.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "explain.md").write_text(
        markdown + "\n![the network: out values, weights and gradients](network.png)\n"
    )
    draw_network(e, out / "network.png", names)
    return {
        "kind": "explain",
        "text": text,
        "markdown": markdown,
        "files": [str(out / "explain.md"), str(out / "network.png")],
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
