"""The plots a run leaves: its loss curve and its gradient flow (PNG, drawn with matplotlib).

The engine calls :func:`loss_curve` and :func:`grad_norms` with the run's
metrics records (one per evaluation, step 0 first) and, for the loss curve,
every step's minibatch loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._scale import axis_scale, scale_losses

#: Evaluations up to this many get their values written next to the points.
_ANNOTATE_UP_TO = 3

#: A line's data: x values and y values.
_XY = tuple[np.ndarray, np.ndarray]

#: Loss-curve figures kept between calls, by layout, oldest first (see :func:`keep_figures`);
#: None: none kept.
_kept: dict | None = None

#: Layouts whose figures are kept at most (a sweep's jobs have one to four: the scale and whether
#: test equals train follow the data); the one unused longest is closed to make room.
_KEEP_UP_TO = 8

#: PNG files written fast: zlib's fastest level (the same pixels, in a file about 15% larger,
#: written in half the time of the default level).
_PNG = {"compress_level": 1}


def keep_figures() -> None:
    """From now on, keep each loss-curve layout's figure and redraw it with the next run's data
    (for a plot worker drawing many runs: building a figure, its axes and their ticks costs
    about as much as drawing it). A figure is reused only for a plot with the same parts,
    scale, steps per epoch and values written on the points or not, so it draws the file a
    new figure would."""
    global _kept
    _kept = {}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _values(records: Sequence[dict], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else r[key] for r in records], float)


def _steps_per_epoch(records: Sequence[dict]) -> int | None:
    """Steps in an epoch, from a record past epoch 0; None when no record says."""
    for r in records:
        if r.get("epoch") and r.get("step"):
            return max(int(round(r["step"] / r["epoch"])), 1)
    return None


def _epoch_means(losses: Sequence[tuple[int, float]], per_epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean minibatch loss of each complete epoch, placed at the step that ends it."""
    steps = np.array([s for s, _ in losses], int)
    values = np.array([v for _, v in losses], float)
    epochs, at = np.unique(steps // per_epoch, return_inverse=True)
    count = np.bincount(at, minlength=len(epochs))
    finite = np.bincount(at, weights=np.isfinite(values), minlength=len(epochs)) == count
    sums = np.bincount(at, weights=np.where(np.isfinite(values), values, 0.0), minlength=len(epochs))
    whole = (count == per_epoch) & finite
    return (epochs[whole] + 1) * per_epoch, sums[whole] / per_epoch


def _annotate(ax, steps, values, color: str, above: np.ndarray) -> None:
    """Each finite value written next to its point: above it where ``above``, else below."""
    for s, v, up in zip(steps, values, above):
        if np.isfinite(v):
            ax.annotate(
                f"{v:.4g}",
                (s, v),
                textcoords="offset points",
                xytext=(0, 7 if up else -13),
                ha="center",
                fontsize=8,
                color=color,
            )


def _place(fig, ax, title: str, *, epochs_on_top: bool, right_axis: bool, legend_rows: int) -> None:
    """The loss curve's margins and title, in inches: tick labels and axis labels on each side,
    the epoch axis on top, the legend's rows at the bottom. Fixed rather than ``tight_layout``,
    which lays the whole figure out once more to measure it (half the cost of drawing it); the
    title goes above the epoch axis at a fixed height for the same reason."""
    height, width = fig.get_size_inches()[::-1]
    top = 1 - (0.7 if epochs_on_top else 0.35) / height
    bottom = (0.55 + 0.2 * legend_rows) / height
    fig.subplots_adjust(
        left=0.85 / width, right=1 - (0.8 if right_axis else 0.2) / width, top=top, bottom=bottom
    )
    if epochs_on_top:
        ax.set_title(title, fontsize=9, y=1 + 0.4 / ((top - bottom) * height))
    else:
        ax.set_title(title, fontsize=9)


def loss_curve(
    records: Sequence[dict],
    losses: Sequence[tuple[int, float]],
    path: Path,
    title: str,
    scale: str = "auto",
) -> None:
    """loss_curve.png: losses against step from step 0, the test accuracy on a second axis.

    Drawn: every step's minibatch loss (thin grey), the mean minibatch loss of
    each epoch (the training loss as training saw it), train and test loss on
    the whole sets at each evaluation, the test accuracy (right axis, when the
    data are classes); epochs on the top axis. The loss axis follows ``scale``
    (:func:`~._scale.axis_scale`). With a few evaluations (a one-epoch run, a one-step
    run) the values are written on the points, the higher of train and test
    above its point and the lower below, and train and test stay apart when
    equal (the notes' examples test on their training row). Nothing is drawn
    without records.

    Arguments:
        records: metrics.jsonl records, step 0 first.
        losses: ``(step, loss)`` of every optimizer step (losses.csv).
        path: the PNG file.
        title: the plot's title (data, network, optimizer, gradient).
        scale: ``plot.scale``: ``auto``, ``log`` or ``linear``.
    """
    if not records:
        return
    data, per_epoch, same = _loss_data(records, losses)
    few = len(records) <= _ANNOTATE_UP_TO
    shown = np.concatenate([xy[1] for k, xy in data.items() if xy is not None and k != "accuracy"])
    kind = axis_scale(shown, scale)
    layout = (per_epoch, few, same, kind, tuple(k for k, v in data.items() if v is not None))
    kept = None if _kept is None else _kept.pop(layout, None)
    fig, axes, lines = kept or _new_loss_figure(data, per_epoch, few, same)
    try:
        if kept is not None:
            _redraw(axes, lines, data, few, same)
        scale_losses(axes[0], kind, shown, labels=few)
        axes[0].title.set_text(title)
        fig.savefig(path, dpi=100, pil_kwargs=dict(_PNG))
    except BaseException:
        _pyplot().close(fig)  # a figure left half-drawn is not kept
        raise
    if _kept is None:
        _pyplot().close(fig)
        return
    _kept[layout] = (fig, axes, lines)  # the most recently used last
    if len(_kept) > _KEEP_UP_TO:
        _pyplot().close(_kept.pop(next(iter(_kept)))[0])


def _redraw(axes: list, lines: dict, data: dict[str, _XY | None], few: bool, same: bool) -> None:
    """A kept figure's lines given ``data`` (of the figure's layout), its values written at the
    points again (``few``); its loss axis is scaled by the caller."""
    for name, line in lines.items():
        xy = data[name]
        assert xy is not None, "a kept figure's lines are the parts its layout has"
        line.set_data(*xy)
    for a in axes:
        a.relim()
    if few:
        for text in list(axes[0].texts):  # the last run's values
            text.remove()
        _annotate_points(axes[0], data, same)


def _loss_data(records: Sequence[dict], losses: Sequence[tuple[int, float]]):
    """The loss curve's lines, name → (x, y) or None, the steps per epoch (None when no record
    says) and whether test equals train at every evaluation."""
    steps = np.array([r["step"] for r in records])
    train, test = _values(records, "train_loss"), _values(records, "test_loss")
    acc = _values(records, "test_accuracy")
    per_epoch = _steps_per_epoch(records)
    same = bool(np.allclose(train, test, equal_nan=True))
    data: dict[str, _XY | None] = {
        "minibatch": None,
        "epoch_means": None,
        "train": (steps, train),
        "test": (steps, test),
        "accuracy": (steps, acc) if np.isfinite(acc).any() else None,
    }
    if len(losses) > 1:  # every step's loss, however few the evaluations
        data["minibatch"] = (np.array([s for s, _ in losses]), np.array([v for _, v in losses], float))
        if per_epoch and per_epoch > 1:
            ends, means = _epoch_means(losses, per_epoch)
            if len(ends) > 1:
                data["epoch_means"] = (ends, means)
    return data, per_epoch, same


def _new_loss_figure(data: dict[str, _XY | None], per_epoch: int | None, few: bool, same: bool):
    """The loss curve's figure for ``data`` (name → (x, y) or None): ``(figure, its axes with
    lines, the lines by name)``; its loss axis is scaled by the caller."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=100)
    lines = _draw_losses(ax, data, same)
    if few:
        _annotate_points(ax, data, same)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.xaxis.get_major_locator().set_params(integer=True)
    if per_epoch and per_epoch > 1:
        top = ax.secondary_xaxis("top", functions=(lambda s: s / per_epoch, lambda e: e * per_epoch))
        top.set_xlabel("epoch", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    axes = [ax]
    if data["accuracy"] is not None:
        ax2 = ax.twinx()
        (lines["accuracy"],) = ax2.plot(
            *data["accuracy"], color="tab:green", ls=":", marker="^", ms=4, label="test accuracy (right)"
        )
        ax2.set_ylabel("test accuracy")
        ax2.set_ylim(0, 1.02)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
        axes.append(ax2)
    _place(
        fig,
        ax,
        "",
        epochs_on_top=bool(per_epoch and per_epoch > 1),
        right_axis=len(axes) > 1,
        legend_rows=(len(labels) + 2) // 3,
    )
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8, frameon=False)
    return fig, axes, lines


def _draw_losses(ax, data: dict[str, _XY | None], same: bool) -> dict:
    """The loss lines: every step's minibatch loss, the epochs' means, train and test loss."""
    lines = {}
    if data["minibatch"] is not None:
        (lines["minibatch"],) = ax.plot(
            *data["minibatch"], lw=0.5, alpha=0.35, color="tab:gray", label="minibatch loss, each step"
        )
    if data["epoch_means"] is not None:
        (lines["epoch_means"],) = ax.plot(
            *data["epoch_means"], lw=1.2, color="0.25", label="train, mean minibatch loss per epoch"
        )
    train_xy, test_xy = data["train"], data["test"]
    assert train_xy is not None and test_xy is not None, "a loss curve always has train and test"
    (lines["train"],) = ax.plot(
        *train_xy, marker="o", ms=4, color="tab:blue", label="train loss (whole set)", zorder=3
    )
    (lines["test"],) = ax.plot(
        *test_xy,
        marker="s",
        ms=6 if same else 4,
        ls="--" if same else "-",
        color="tab:orange",
        mfc="none" if same else "tab:orange",
        label="test loss" + (" (equals train here)" if same else ""),
    )
    return lines


def _annotate_points(ax, data: dict[str, _XY | None], same: bool) -> None:
    """The train and test values written at their points: at each step the higher one above
    its point, the lower one below, so the two never write over each other; train alone
    (above) when test equals it. The axis keeps room at both ends for the labels."""
    train_xy, test_xy = data["train"], data["test"]
    assert train_xy is not None and test_xy is not None
    (steps, train), test = train_xy, test_xy[1]
    higher = ~(test > train)  # train above where test is not higher (NaN: above)
    _annotate(ax, steps, train, "tab:blue", higher | same)
    if not same:
        _annotate(ax, steps, test, "tab:orange", ~higher)
    ax.margins(x=0.08)


def grad_norms(records: Sequence[dict], path: Path, title: str) -> None:
    """grad_norms.png: ‖∂L/∂Wˡ‖_F of each layer at each evaluation (log scale); nothing
    when the records carry no ``grad_norms``.

    Arguments:
        records: metrics.jsonl records, step 0 first.
        path: the PNG file.
        title: the plot's title.
    """
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
    ax.xaxis.get_major_locator().set_params(integer=True)
    if np.all(norms[np.isfinite(norms)] > 0):
        ax.set_yscale("log")
    ax.legend(fontsize=8, title="1 = next to the input", title_fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()  # the y label and the log axis's tick labels inside the figure, however wide
    fig.savefig(path, dpi=100, pil_kwargs=dict(_PNG))
    plt.close(fig)
