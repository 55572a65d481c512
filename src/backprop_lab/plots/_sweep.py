"""Sweep plots: a metric against a swept key, and the gradient flow of each configuration.

Runs that differ only in their seed are drawn as one mark: the mean with a band
(numeric keys) or error bars (named ones) of ± 1 sample standard deviation, and
the title says over how many seeds. Nothing here imports JAX; matplotlib is
imported when a plot is drawn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from ..summary._job import Row, read_metrics
from ..summary._stats import (
    REPLICATE_KEYS,
    Group,
    Stat,
    canonical,
    group_rows,
    label,
    number,
    replicate_note,
    swept_keys,
    value_of,
)

__all__ = ["default_x", "plot_grad_flow", "plot_metric"]

_LOG_Y = ("final_train_loss", "final_test_loss", "wall_time", "max_rel_error", "max_abs_error")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def default_x(rows: Sequence[Row]) -> str | None:
    """The key a metric is plotted against by default: the learning rate when it was
    swept, else the first swept key that is not a seed; None when nothing was swept."""
    keys = [k for k in swept_keys(rows) if k not in REPLICATE_KEYS]
    if "optimizer.lr" in keys or len({r.get("lr") for r in rows if r.get("lr") is not None}) > 1:
        return "optimizer.lr"
    return keys[0] if keys else None


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def _spans_decade(values: Sequence[float]) -> bool:
    return bool(values) and min(values) > 0 and max(values) / min(values) >= 10


def plot_metric(
    rows: Sequence[Row],
    path: str | Path,
    x: str | None = None,
    y: str = "final_train_loss",
    best: str | None = None,
) -> Path | None:
    """Plot a metric against a swept key, one line per combination of the other swept keys.

    Runs that differ only in the seed give one point: mean and ± 1 sample
    standard deviation, a band for a numeric key (log axis when it spans a
    decade), error bars for named values. Diverged runs are drawn as ``x``
    above the highest value, in their line's colour.

    Arguments:
        rows: Dicts from ``collect_rows``.
        path: Image file to write (PNG).
        x: The key on the x axis, e.g. ``optimizer.lr`` or ``model.activation``
            (default: :func:`default_x`).
        y: A metric column, e.g. ``final_train_loss`` (default), ``test_accuracy``,
            ``test_loss``.
        best: ``maximize`` or ``minimize``: the run with the best ``y`` that way (a completed
            one) is marked with a star and named in the title, as the study that optimized
            ``y`` would pick it; None marks nothing.

    Returns:
        ``path``, or None when there is no key to plot against or no finished
        run has the metric (nothing is written then).
    """
    x, y = canonical(x) if x else default_x(rows), canonical(y)
    rows = [r for r in rows if r.get("kind") is not None and value_of(r, x or "") is not None]
    if x is None or not any(number(r.get(y)) is not None for r in rows):
        return None
    others = [k for k in swept_keys(rows) if k not in (x, *REPLICATE_KEYS)]
    lines = group_rows(rows, others)
    cells = group_rows(rows, [*others, x])
    axis = _x_axis(rows, x)
    values = [s.mean for c in cells if (s := c.stat(y)).mean is not None]
    log_y = y in _LOG_Y and _spans_decade(values)
    top = max(values) * (2.0 if log_y else 1.0) + (0 if log_y else 0.08 * (max(values) - min(values) or 1))

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    diverged_any = False
    for k, line in enumerate(lines):
        name = line.short_label if others else label(y)
        diverged_any |= _draw_line(ax, axis, line, y, (k, len(lines)), name, log_y, top)
    _label_axes(ax, axis, y, log_y)
    note = replicate_note(cells, "band" if axis.numeric else "error bars")
    title = f"{label(y)} by {x}: {note}" + ("; x: diverged" if diverged_any else "")
    if best is not None and (star := _mark_best(ax, axis, lines, y, best)):
        title += f"\n{star}"
    ax.set_title(title, fontsize=10)
    _legend(ax, others)
    fig.tight_layout()
    return _save(fig, Path(path))


def _legend(ax, others: Sequence[str]) -> None:
    """The lines' legend, titled by the swept keys that tell them apart: beside the plot, never
    over a point (a categorical axis leaves the legend no free corner)."""
    legend_title = ", ".join(others) or None
    ax.legend(
        fontsize="small",
        title=legend_title,
        title_fontsize="small",
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
    )


def _offset(axis: _XAxis, k: int, n: int) -> float:
    """How far line ``k`` of ``n`` is drawn beside a named x value (side by side); 0 on a numeric axis."""
    return 0.0 if axis.numeric else (k - (n - 1) / 2) * 0.6 / max(n, 1)


def _mark_best(ax, axis: _XAxis, lines: Sequence[Group], y: str, direction: str) -> str:
    """A star on the completed run whose ``y`` is best in ``direction``, at the x its line
    draws it at; its description for the title ("" when no completed run has ``y``)."""
    done = [
        (v, r, axis.position[str(value_of(r, axis.key))] + _offset(axis, k, len(lines)))
        for k, line in enumerate(lines)
        for r in line.rows
        if r.get("status") == "completed" and (v := number(r.get(y))) is not None
    ]
    if not done:
        return ""
    pick = max if direction == "maximize" else min
    value, row, x = pick(done, key=lambda vrx: vrx[0])
    star = dict(ls="none", marker="*", ms=16, mfc="gold", mec="black", zorder=5)
    ax.plot([x], [value], label="best", **star)
    at = value_of(row, axis.key)
    shown = f"{n:.4g}" if (n := number(at)) is not None else at
    return f"best ({direction}): {value:.4g}, job {row.get('job')}, {axis.key}={shown}"


@dataclasses.dataclass
class _XAxis:
    """The swept key on the x axis: its values in plotting order (the sweep's, or sorted when
    numeric) and where each is drawn (the value itself, or its index for named values)."""

    key: str
    values: list[str]
    numeric: bool
    position: dict[str, float]


def _x_axis(rows: Sequence[Row], x: str) -> _XAxis:
    values = list(dict.fromkeys(str(value_of(r, x)) for r in rows))  # the sweep's order
    numbers = {v: n for v in values if (n := number(v)) is not None}
    numeric = len(numbers) == len(values)
    if numeric:
        values.sort(key=numbers.__getitem__)
    position: dict[str, float] = {v: (numbers[v] if numeric else i) for i, v in enumerate(values)}
    return _XAxis(x, values, numeric, position)


def _draw_line(ax, axis: _XAxis, line: Group, y: str, k_of: tuple[int, int], name: str, log_y: bool, top):
    """Line ``k`` of ``n`` (``k_of``): each x value's mean and ± 1 s.d. of ``y`` over the seeds
    (a band, or error bars side by side for named values), and its diverged runs as ``x``
    marks above ``top``. Returns whether it has diverged runs."""
    k, n = k_of
    color = f"C{k % 10}"
    points = [
        (axis.position[v], m, stat.std)
        for v in axis.values
        if (m := (stat := Group((), [r for r in line.rows if str(value_of(r, axis.key)) == v]).stat(y)).mean)
        is not None
    ]
    if points:
        px = [p + _offset(axis, k, n) for p, _, _ in points]
        mean = [m for _, m, _ in points]
        std = [s for _, _, s in points]
        if axis.numeric:
            ax.plot(px, mean, marker="o", color=color, label=name)
            low = [max(m - s, min(mean) * 1e-3) if log_y else m - s for m, s in zip(mean, std)]
            ax.fill_between(px, low, [m + s for m, s in zip(mean, std)], color=color, alpha=0.2, lw=0)
        else:
            ax.errorbar(px, mean, yerr=std, marker="o", ls="none", capsize=4, color=color, label=name)
    bad = [axis.position[str(value_of(r, axis.key))] for r in line.rows if r.get("status") == "diverged"]
    if bad:
        y_bad = top * (1.25**k if log_y else 1.0) + (0 if log_y else 0.03 * k * (top or 1))
        ax.plot(
            bad,
            [y_bad] * len(bad),
            ls="none",
            marker="x",
            markersize=9,
            color=color,
            label=f"{name}: diverged",
        )
    return bool(bad)


def _label_axes(ax, axis: _XAxis, y: str, log_y: bool) -> None:
    """The axes' scales, ticks, limits, labels and grid."""
    if axis.numeric and _spans_decade([axis.position[v] for v in axis.values]):
        ax.set_xscale("log")
    if not axis.numeric:
        ax.set_xticks(range(len(axis.values)), axis.values)
        ax.set_xlim(-0.5, len(axis.values) - 0.5)
    if log_y:
        ax.set_yscale("log")
    if y == "test_accuracy":
        ax.set_ylim(top=min(1.02, ax.get_ylim()[1]))
    ax.set_xlabel(axis.key)
    ax.set_ylabel(label(y))
    ax.grid(True, which="both", alpha=0.3)


def _job_dir(root: Path, row: Row) -> Path:
    """A row's directory: ``root/job``, or ``root`` itself when it is the job."""
    return root / row["job"] if (root / row["job"]).is_dir() else root


def _flow(records: Sequence[dict]) -> tuple[dict | None, list[tuple[int, float]]]:
    """The first evaluation after step 0 with grad_norms, and (epoch, first/last layer) of each."""
    with_norms = [r for r in records if r.get("grad_norms") and all(number(v) for v in r["grad_norms"])]
    first = next((r for r in with_norms if r.get("step", 0) > 0), None)
    ratios = [(r.get("epoch", 0), r["grad_norms"][0] / r["grad_norms"][-1]) for r in with_norms]
    return first, ratios


def _band(ax, xs, stats: Sequence[Stat], color: str, name: str) -> None:
    """Each stat's mean and a ± 1 s.d. band; every stat has a mean (it is made of recorded norms)."""
    mean = [s.mean for s in stats if s.mean is not None]
    assert len(mean) == len(stats), "a band's stats each have a mean"
    ax.plot(xs, mean, marker="o", ms=3, color=color, label=name)
    if any(s.n > 1 for s in stats):
        low = [max(m - s.std, m * 0.05) for m, s in zip(mean, stats)]
        ax.fill_between(xs, low, [m + s.std for m, s in zip(mean, stats)], color=color, alpha=0.2, lw=0)


def plot_grad_flow(rows: Sequence[Row], root: str | Path, path: str | Path) -> Path | None:
    """The gradient flow of each swept configuration, from the jobs' metrics.jsonl.

    Left: ‖∂L/∂Wˡ‖ of each layer at the first evaluation after step 0 (first
    layer left). Right: first layer's norm over the last layer's at every
    evaluation; a vanishing gradient sits far below 1. Seeds are aggregated
    (mean, ± 1 s.d. band).

    Arguments:
        rows: Dicts from ``collect_rows``.
        root: The directory the rows were collected from.
        path: Image file to write (PNG).

    Returns:
        ``path``, or None when no job recorded ``grad_norms`` (``diagnostics=false``).
    """
    root = Path(root)
    flows = {id(r): _flow(read_metrics(_job_dir(root, r))) for r in rows if r.get("kind") == "train"}
    if not any(first for first, _ in flows.values()):
        return None
    groups = [g for g in group_rows(rows) if any(flows.get(id(r), (None,))[0] for r in g.rows)]
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    epochs_shown = set()
    for k, group in enumerate(groups):
        color, name = f"C{k % 10}", group.short_label
        firsts = [f for r in group.rows if (f := flows.get(id(r), (None,))[0])]
        depth = min(len(f["grad_norms"]) for f in firsts)
        epochs_shown |= {f.get("epoch") for f in firsts}
        per_layer = [Stat.of(f["grad_norms"][layer] for f in firsts) for layer in range(depth)]
        _band(left, range(1, depth + 1), per_layer, color, name)
        series = [dict(flows[id(r)][1]) for r in group.rows if flows.get(id(r), (None,))[0]]
        epochs = sorted(set.intersection(*(set(s) for s in series)))
        _band(right, epochs, [Stat.of(s[e] for s in series) for e in epochs], color, name)
    when = ", ".join(f"epoch {e}" for e in sorted(e for e in epochs_shown if e is not None))
    left.set_title(f"per layer, first evaluation after step 0 ({when})", fontsize=9)
    left.set_xlabel("layer (1 = next to the input)")
    left.set_ylabel("‖∂L/∂W‖ on the whole training set")
    left.xaxis.get_major_locator().set_params(integer=True)
    right.set_title("first layer / last layer", fontsize=9)
    right.set_xlabel("epoch")
    right.xaxis.get_major_locator().set_params(integer=True)
    right.set_ylabel("‖∂L/∂W¹‖ / ‖∂L/∂Wᴸ‖")
    right.axhline(1.0, color="0.5", lw=0.8, ls=":")
    right.axhline(0.1, color="0.5", lw=0.8, ls="--", label="10× smaller")
    by = ", ".join(k for k, _ in groups[0].key)
    for ax in (left, right):
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small", title=by or None, title_fontsize="small")
    fig.suptitle(f"gradient flow{' by ' + by if by else ''}: {replicate_note(groups)}", fontsize=10)
    fig.tight_layout()
    return _save(fig, Path(path))
