"""The plots a run leaves: its loss curve and its gradient flow (PNG, drawn with matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _values(records, key):
    return [np.nan if r.get(key) is None else r[key] for r in records]


def loss_curve(records: Sequence[dict], losses: Sequence[tuple[int, float]], path: Path,
               title: str) -> None:
    """loss_curve.png: every step's minibatch loss (thin), train and test loss at each
    evaluation from step 0, test accuracy on a second axis; log scale when all losses are positive."""
    if not records:
        return
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if losses:
        steps, values = zip(*losses)
        ax.plot(steps, values, lw=0.6, alpha=0.45, color="tab:gray", label="minibatch (each step)")
    steps = [r["step"] for r in records]
    for key, label, color in (("train_loss", "train", "tab:blue"), ("test_loss", "test", "tab:orange")):
        ax.plot(steps, _values(records, key), marker="o", ms=3, color=color, label=f"{label} loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    shown = [v for v in _values(records, "train_loss") + [v for _, v in losses] if np.isfinite(v)]
    if shown and min(shown) > 0:
        ax.set_yscale("log")
    handles, labels = ax.get_legend_handles_labels()
    if any(r.get("test_accuracy") is not None for r in records):
        ax2 = ax.twinx()
        ax2.plot(steps, _values(records, "test_accuracy"), color="tab:green", ls="--", marker=".",
                 label="test accuracy")
        ax2.set_ylabel("test accuracy")
        ax2.set_ylim(0, 1.02)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, fontsize=8, loc="best")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def grad_norms(records: Sequence[dict], path: Path, title: str) -> None:
    """grad_norms.png: ‖∂L/∂Wˡ‖_F of each layer at each evaluation (log scale); nothing
    when the records carry no ``grad_norms``."""
    rows = [r for r in records if r.get("grad_norms")]
    if not rows:
        return
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    norms = np.array([[np.nan if v is None else v for v in r["grad_norms"]] for r in rows], float)
    steps = [r["step"] for r in rows]
    for layer in range(norms.shape[1]):
        ax.plot(steps, norms[:, layer], marker=".", label=f"layer {layer + 1}")
    ax.set_xlabel("step")
    ax.set_ylabel("‖∂L/∂W‖ (whole training set)")
    if np.all(norms[np.isfinite(norms)] > 0):
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
