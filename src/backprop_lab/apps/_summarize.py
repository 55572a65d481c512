"""``scripts/summarize`` and the end-of-sweep callback: a sweep's table, CSV, Markdown and plots.

    scripts/summarize multirun/DATE/TIME
    scripts/summarize multirun/DATE/TIME --x model.activation --y test_accuracy

:func:`summarize` is the one place files are written; :func:`main` is the
command line. Nothing here imports JAX.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..plots._sweep import default_x
from ..plots._worker import submit, sweep_plots
from ..summary._job import COMPARE_FIELDS, TRAIN_FIELDS
from ..summary._rows import collect_rows
from ..summary._stats import number, swept_keys, value_of
from ..summary._table import format_groups, format_table, markdown, status_counts, write_csv

#: File names written into the sweep directory (never the names a run writes).
CSV, MARKDOWN, METRIC_PLOT, GRAD_PLOT = "summary.csv", "summary.md", "summary.png", "summary_grad_norms.png"


@dataclasses.dataclass
class Summary:
    """What :func:`summarize` found and wrote.

    Attributes:
        text: the tables and the status counts, as printed.
        counts: ``"N jobs: …"``.
        files: the files written.
        notes: why a plot was not drawn.
    """

    text: str
    counts: str
    files: list[Path]
    notes: list[str]


def _drawn(
    plots: Callable[[], Any], targets: list[Path], rows: list[dict], x: str | None, y: str
) -> tuple[list[Path], list[str]]:
    """The plots among ``targets`` the plot workers drew (waited for), and a note on the metric
    plot when it was not drawn."""
    notes: list[str] = []
    try:
        made = plots()
    except RuntimeError as err:  # a plot is not worth the tables: they are written, and why not it
        made = [False, False]
        notes.append(f"no plots: {err}")
    drawn, drawn_flow = (p if ok else None for p, ok in zip(targets, made))
    if drawn is None and not notes:
        key = x or default_x(rows)
        why = "nothing but the seed was swept" if key is None else f"no finished job has both {key} and {y}"
        notes.append(f"no {METRIC_PLOT}: {why} (swept keys: {', '.join(swept_keys(rows)) or 'none'})")
    return [p for p in (drawn, drawn_flow) if p is not None], notes


def summarize(
    sweep_dir: str | Path,
    *,
    x: str | None = None,
    y: str = "final_train_loss",
    plot: bool = True,
    csv: str | Path | None = None,
    png: str | Path | None = None,
    best: str | None = None,
) -> Summary:
    """Summarize a sweep directory into summary.csv, summary.md, summary.png and
    summary_grad_norms.png (the last two when there is something to plot).

    Arguments:
        sweep_dir: A Hydra multirun directory (or one run's directory).
        x: The swept key to plot against (default: the learning rate when swept,
            else the first swept key but the seed).
        y: The metric to plot (``final_train_loss``, ``test_accuracy``, ``test_loss``, …).
        plot: Draw the plots.
        csv: The CSV file (default ``SWEEP_DIR/summary.csv``).
        png: The metric plot (default ``SWEEP_DIR/summary.png``).
        best: ``maximize`` or ``minimize``: mark the run with the best ``y`` that way on the
            plot (a study's best trial); None marks none.

    Raises:
        FileNotFoundError: ``sweep_dir`` holds no job and no multirun.yaml.
        ValueError: ``x`` is a key no job has, or ``y`` neither a metric nor a column of a job.
    """
    root = Path(sweep_dir)
    rows = collect_rows(root)
    _check_keys(rows, x, y)
    # the plots are drawn by the plot workers of this process when it has them (a sweep's), while
    # the tables are made here; otherwise here, first
    targets = [Path(png or root / METRIC_PLOT), root / GRAD_PLOT]
    plots = (
        submit(sweep_plots, str(root.resolve()), *(str(p.resolve()) for p in targets), x, y, best)
        if plot
        else None
    )
    tables = [format_table(rows)]
    if (groups := format_groups(rows)) is not None:
        tables.append(groups)
    counts = status_counts(rows)
    files = [write_csv(rows, csv or root / CSV)]
    notes: list[str] = []
    images: list[Path] = []
    if plots is not None:
        images, notes = _drawn(plots, targets, rows, x, y)
    md = root / MARKDOWN
    relative = [str(p.relative_to(root)) if p.parent == root else str(p.resolve()) for p in images]
    md.write_text(markdown(rows, str(root), relative))
    files += [md, *images]
    return Summary("\n\n".join(tables), counts, files, notes)


def unwritable(path: Path) -> str | None:
    """Why the file ``path`` cannot be written (None when it can): tried by opening it to append,
    so a file that is there keeps its bytes, and one made for the try is removed. A missing
    directory on the way is tried as its nearest existing ancestor, without making it."""
    missing = [p for p in path.parents if not p.exists()]
    if missing:
        top = missing[-1].parent
        if not top.is_dir():
            return f"{top} is not a directory"
        try:
            os.rmdir(tempfile.mkdtemp(dir=top))
        except OSError as err:
            return f"{top}: {err.strerror or type(err).__name__}"
        return None
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as err:
        return err.strerror or type(err).__name__
    if not existed:
        path.unlink()
    return None


def _check_keys(rows: list[dict], x: str | None, y: str) -> None:
    """Refuse an ``--x`` no job has, or a ``--y`` that is neither a metric nor a column of a job
    (a ValueError whose message is the line to print)."""
    keys = swept_keys(rows)
    if x is not None and x not in keys and all(value_of(row, x) is None for row in rows):
        raise ValueError(f"--x {x}: no job has this key; swept keys: {', '.join(keys) or 'none'}")
    if y not in (*TRAIN_FIELDS, *COMPARE_FIELDS) and all(value_of(row, y) is None for row in rows):
        columns = sorted({k for row in rows for k in row if number(row[k]) is not None})
        raise ValueError(f"--y {y}: no job has this metric; numeric columns: {', '.join(columns) or 'none'}")


def _parser() -> argparse.ArgumentParser:
    """The command line's options."""
    parser = argparse.ArgumentParser(
        prog="summarize",
        description="Summarize a Hydra multirun directory: tables on stdout; "
        "summary.csv, summary.md, summary.png and summary_grad_norms.png in it.",
    )
    parser.add_argument("sweep_dir", type=Path, help="a Hydra multirun directory (multirun/<date>/<time>)")
    parser.add_argument(
        "--x",
        default=None,
        metavar="KEY",
        help="swept key on the plot's x axis, e.g. optimizer.lr or model.activation "
        "(default: the learning rate when swept, else the first swept key)",
    )
    parser.add_argument(
        "--y",
        default="final_train_loss",
        metavar="METRIC",
        help="metric on the y axis: final_train_loss (default), test_accuracy, test_loss, "
        "wall_time, or any numeric column of summary.csv",
    )
    parser.add_argument(
        "--csv", type=Path, default=None, help="CSV file to write (default: SWEEP_DIR/summary.csv)"
    )
    parser.add_argument(
        "--plot", type=Path, default=None, help="metric plot to write (default: SWEEP_DIR/summary.png)"
    )
    parser.add_argument("--no-plot", action="store_true", help="write no plot")
    return parser


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    """The command line; returns the exit status: 2 when the directory holds no sweep, an
    ``--x`` or ``--y`` names what no job has, or an output cannot be written."""
    args = _parser().parse_args(argv)
    for option, path in (("--csv", args.csv), ("--plot", None if args.no_plot else args.plot)):
        if path is not None and not path.resolve().parent.is_dir():
            print(
                f"summarize: {option} {path}: its directory {path.resolve().parent} does not exist",
                file=sys.stderr,
            )
            return 2
    if args.plot is not None and not args.no_plot and args.plot.suffix.lower() != ".png":
        print(f"summarize: --plot {args.plot}: expected a .png file name", file=sys.stderr)
        return 2
    for option, path in (("--csv", args.csv), ("--plot", None if args.no_plot else args.plot)):
        if path is not None and (why := unwritable(path)):
            print(f"summarize: {option} {path}: cannot be written ({why})", file=sys.stderr)
            return 2
    try:
        result = summarize(
            args.sweep_dir, x=args.x, y=args.y, plot=not args.no_plot, csv=args.csv, png=args.plot
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"summarize: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a directory that takes no writes: read-only, full
        from ..files._safe import os_error_line

        print(f"summarize: {os_error_line(err)}", file=sys.stderr)
        return 2
    out(result.text)
    out("")
    for line in [*(f"wrote {p}" for p in result.files), *result.notes, result.counts]:
        out(line)
    return 0
