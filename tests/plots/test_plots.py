"""The per-run plots (loss curve, gradient norms) and explain's network drawing, read back from
the figures they draw: what is plotted, on which axis, and that labels do not overlap."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from backprop_lab.plots import _run as _plots
from backprop_lab.plots import _scale

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
PER_EPOCH, LOG_EVERY, EPOCHS = 10, 2, 6


@pytest.fixture
def figures(monkeypatch) -> list:
    """The figures the plotting code closes, kept open for inspection."""
    kept: list = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    yield kept
    close("all")


def _run(rng_seed: int = 0):
    """A fake run: every step's loss decaying from 2 to about 0.02, evaluations every LOG_EVERY epochs."""
    rng = np.random.default_rng(rng_seed)
    steps = np.arange(EPOCHS * PER_EPOCH)
    losses = 2.0 * np.exp(-steps / 12.0) * rng.uniform(0.7, 1.3, steps.size) + 0.01
    records = [
        {
            "epoch": e,
            "step": e * PER_EPOCH,
            "train_loss": 2.0 * np.exp(-e * PER_EPOCH / 12.0),
            "test_loss": 2.2 * np.exp(-e * PER_EPOCH / 14.0),
            "test_accuracy": min(0.2 + 0.15 * e, 1.0),
            "grad_norms": [0.1 / (e + 1), 1.0 / (e + 1), 0.5],
        }
        for e in range(0, EPOCHS + 1, LOG_EVERY)
    ]
    return records, list(zip(steps.tolist(), losses.tolist()))


def _line(ax, label: str):
    (line,) = [l for l in ax.get_lines() if l.get_label() == label]
    return line


def _no_overlap(boxes) -> bool:
    return all(not a.overlaps(b) for a, b in itertools.combinations(boxes, 2))


def test_loss_curve_from_step_0_with_epochs_test_and_accuracy(tmp_path, figures):
    records, losses = _run()
    title = "digits: [64, 30, 10] sigmoid, sgd lr 0.1, grad manual"
    _plots.loss_curve(records, losses, tmp_path / "loss.png", title)
    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG
    (fig,) = figures
    ax, acc_ax = fig.axes[0], next(a for a in fig.axes[1:] if a.get_ylabel() == "test accuracy")
    assert ax.get_title() == title
    steps = [r["step"] for r in records]
    train, test = _line(ax, "train loss (whole set)"), _line(ax, "test loss")
    assert list(train.get_xdata()) == steps and steps[0] == 0
    np.testing.assert_allclose(train.get_ydata(), [r["train_loss"] for r in records])
    np.testing.assert_allclose(test.get_ydata(), [r["test_loss"] for r in records])
    per_epoch = _line(ax, "train, mean minibatch loss per epoch")
    expected = np.array([v for _, v in losses]).reshape(EPOCHS, PER_EPOCH).mean(axis=1)
    np.testing.assert_allclose(per_epoch.get_xdata(), PER_EPOCH * np.arange(1, EPOCHS + 1))
    np.testing.assert_allclose(per_epoch.get_ydata(), expected)
    assert list(_line(ax, "minibatch loss, each step").get_xdata()) == [s for s, _ in losses]
    np.testing.assert_allclose(
        _line(acc_ax, "test accuracy (right)").get_ydata(), [r["test_accuracy"] for r in records]
    )
    assert acc_ax.get_ylim() == (0, 1.02)
    assert ax.get_yscale() == "log"  # the losses span two decades
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    assert {t.get_text() for t in legend.get_texts()} >= {
        "train loss (whole set)",
        "test loss",
        "test accuracy (right)",
    }
    below = min(a.get_tightbbox(renderer).y0 for a in fig.axes)
    assert legend.get_window_extent(renderer).y1 <= below + 1  # under the plot, not on the curves


def test_one_step_run_is_readable(tmp_path, figures):
    records = [
        {"epoch": 0, "step": 0, "train_loss": 0.16830, "test_loss": 0.16830, "test_accuracy": None},
        {"epoch": 1, "step": 1, "train_loss": 0.16519, "test_loss": 0.16519, "test_accuracy": None},
    ]
    _plots.loss_curve(records, [(0, 0.16830)], tmp_path / "loss.png", "note003")
    (fig,) = figures
    (ax,) = fig.axes
    fig.canvas.draw()
    assert ax.get_yscale() == "linear" and ax.yaxis.get_offset_text().get_text() == ""
    assert [t.get_text() for t in ax.yaxis.get_ticklabels()][0].startswith("0.16")
    assert {t.get_text() for t in ax.texts} == {f"{r['train_loss']:.4g}" for r in records}
    test = next(l for l in ax.get_lines() if l.get_label().startswith("test loss"))
    assert "equals train" in test.get_label() and test.get_linestyle() == "--"
    assert [int(t) for t in ax.get_xticks() if 0 <= t <= 1] == [0, 1]


def test_one_step_run_writes_the_higher_value_above_and_the_lower_below(tmp_path, figures):
    """Test above train here: each label on the side away from the other point."""
    records = [
        {"epoch": 0, "step": 0, "train_loss": 0.5, "test_loss": 0.75, "test_accuracy": None},
        {"epoch": 1, "step": 1, "train_loss": 0.25, "test_loss": 0.375, "test_accuracy": None},
    ]
    _plots.loss_curve(records, [(0, 0.5)], tmp_path / "loss.png", "one step")
    (fig,) = figures
    (ax,) = fig.axes
    written = {(t.get_text(), tuple(t.xy), t.xyann[1] > 0) for t in ax.texts}
    assert written == {
        *((f"{r['train_loss']:.4g}", (r["step"], r["train_loss"]), False) for r in records),
        *((f"{r['test_loss']:.4g}", (r["step"], r["test_loss"]), True) for r in records),
    }


def test_no_records_no_plot(tmp_path):
    _plots.loss_curve([], [], tmp_path / "loss.png", "x")
    _plots.grad_norms([{"step": 0, "train_loss": 1.0}], tmp_path / "grad.png", "x")
    assert not list(tmp_path.iterdir())


def test_grad_norms_one_line_per_layer(tmp_path, figures):
    records, _ = _run()
    _plots.grad_norms(records, tmp_path / "grad.png", "title")
    assert (tmp_path / "grad.png").read_bytes()[:8] == PNG
    (fig,) = figures
    (ax,) = fig.axes
    for layer in range(3):
        np.testing.assert_allclose(
            _line(ax, f"layer {layer + 1}").get_ydata(), [r["grad_norms"][layer] for r in records]
        )
    assert ax.get_yscale() == "log"


@pytest.mark.parametrize("experiment", ["note003", "note004"])
def test_network_labels_do_not_overlap(tmp_path, figures, experiment):
    from hydra import compose, initialize_config_dir

    spec = importlib.util.spec_from_file_location("_explain_app", ROOT / "experiments" / "explain.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("explain", overrides=[f"experiment={experiment}"])
    app.explain_config(cfg, out_dir=tmp_path)
    assert (tmp_path / "network.png").read_bytes()[:8] == PNG
    fig = figures[-1]
    ax = fig.axes[0]
    fig.canvas.draw()  # lay out at the figure's own dpi (savefig drew at another)
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_bbox_patch() is not None]  # the ∂L/∂W labels
    sizes = [int(s) for s in cfg.model.sizes]
    edges = sum(a * b for a, b in zip(sizes, sizes[1:])) + (sum(sizes[1:]) if cfg.model.bias else 0)
    assert len(labels) == edges
    assert _no_overlap([t.get_window_extent(renderer) for t in labels])
    neurons = [p.get_window_extent(renderer) for p in ax.patches if p.get_radius() > 0.3]
    assert len(neurons) == sum(sizes)
    assert all(not t.get_window_extent(renderer).overlaps(n) for t in labels for n in neurons)


def _run_dirs(root, names) -> None:
    """Run directories holding the records and losses of :func:`_run`."""
    from backprop_lab.files._rundir import RunDir

    records, losses = _run()
    for name in names:
        run = RunDir(root / name)
        run.path.mkdir()
        run.append_records(records)
        run.append_losses(0, [v for _, v in losses])


def test_painter_workers_draw_the_same_files_as_this_process(tmp_path, caplog, monkeypatch):
    """The run's plots come from worker processes; they are the files drawing them here gives,
    and a plot that cannot be drawn is a warning, not a lost run."""
    from backprop_lab.plots import _worker as _painter

    _run_dirs(tmp_path, ("here", "a", "b", "broken"))
    _painter.lane_plots(str(tmp_path / "here"), "title")
    monkeypatch.setattr(_plots, "loss_curve", None)  # nothing is drawn here from now on
    _painter.stop_workers()
    try:
        painter = _painter.Painter(3)
        for name in ("a", "b"):
            painter.draw(tmp_path / name, "title")
        (tmp_path / "broken" / "loss_curve.png").mkdir()  # no file can be written there
        painter.draw(tmp_path / "broken", "title")
        pool = painter.pool
        painter.close()
        assert _painter.Painter(1).pool is pool  # a later run of the process reuses the workers
    finally:
        _painter.stop_workers()
    for name in ("a", "b"):
        for png in ("loss_curve.png", "grad_norms.png"):
            assert (tmp_path / name / png).read_bytes() == (tmp_path / "here" / png).read_bytes()
    assert "broken could not be drawn" in caplog.text


def test_plots_handed_to_a_killed_worker_are_drawn_here(tmp_path, caplog):
    """A plot worker killed (say, by the kernel's out-of-memory killer) before it drew what it
    was handed: the run draws those plots itself, with a warning, and loses none."""
    import os
    import signal

    from backprop_lab.plots import _worker as _painter

    _run_dirs(tmp_path, ("here", "a", "b", "c"))
    _painter.lane_plots(str(tmp_path / "here"), "title")
    _painter.stop_workers()
    try:
        painter = _painter.Painter(2)
        worker = painter.pool.submit(os.getpid).result()
        for name in ("a", "b", "c"):
            painter.draw(tmp_path / name, "title")
        os.kill(worker, signal.SIGKILL)  # with the jobs handed over, not yet drawn
        painter.close()
    finally:
        _painter.stop_workers()
    for name in ("a", "b", "c"):
        assert (tmp_path / name / "loss_curve.png").read_bytes() == (
            tmp_path / "here" / "loss_curve.png"
        ).read_bytes()
    assert "drawing them here" in caplog.text


@pytest.mark.slow
def test_a_run_whose_plots_a_worker_draws_never_imports_matplotlib(tmp_path):
    import subprocess
    import sys

    """The point of the workers: a run's process draws nothing, so it never pays matplotlib's import."""
    _run_dirs(tmp_path, ("a",))
    code = (
        "import sys\n"
        "from backprop_lab.plots._worker import Painter\n"
        "painter = Painter(1)\n"
        "painter.draw(sys.argv[1], 'title')\n"
        "painter.close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "a")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]" and not done.stderr
    _plots.loss_curve(*_run(), tmp_path / "here.png", "title")
    assert (tmp_path / "a" / "loss_curve.png").read_bytes() == (tmp_path / "here.png").read_bytes()


def _one_epoch(train: float, test: float, accuracy: float | None = 0.8):
    """A run of one epoch of ten steps: two evaluations, their values written at the points."""
    records = [
        {"epoch": 0, "step": 0, "train_loss": 2.3, "test_loss": 2.3 if test == train else 2.4},
        {"epoch": 1, "step": 10, "train_loss": train, "test_loss": test},
    ]
    for r in records:
        r["test_accuracy"] = accuracy
    return records, [(s, 2.3 - (2.3 - train) * s / 10) for s in range(10)]


def test_kept_figures_draw_the_files_new_figures_draw(tmp_path, monkeypatch):
    """A plot worker keeps each layout's figure and redraws it with the next run's data: the PNG
    is the one a new figure gives, whatever was drawn in it before (other limits, other values
    written at the points, other layouts in between)."""
    runs = [_run(seed) for seed in range(3)]
    runs.append(
        ([{**r, "train_loss": r["train_loss"] * 1e3} for r in runs[0][0]], runs[0][1])
    )  # other limits
    runs += [_one_epoch(1.38, 1.36), _one_epoch(0.9, 0.9), _one_epoch(0.5, 0.7), _run(3)]
    runs += [_one_epoch(1.5, 1.2), _one_epoch(0.6, 0.6), _one_epoch(0.3, 0.1, None)]
    for i, (records, losses) in enumerate(runs):
        _plots.loss_curve(records, losses, tmp_path / f"new{i}.png", f"run {i}")
    built, new_figure = [], _plots._new_loss_figure
    monkeypatch.setattr(_plots, "_new_loss_figure", lambda *a: built.append(a) or new_figure(*a))
    monkeypatch.setattr(_plots, "_KEEP_UP_TO", 2)  # four layouts: the one unused longest goes
    monkeypatch.setattr(_plots, "_kept", None)
    _plots.keep_figures()
    for i, (records, losses) in enumerate(runs):
        _plots.loss_curve(records, losses, tmp_path / f"kept{i}.png", f"run {i}")
    assert len(_plots._kept) == 2 and len(built) == 6  # 11 runs: 5 drawn in a kept figure
    for i in range(len(runs)):
        assert (tmp_path / f"kept{i}.png").read_bytes() == (tmp_path / f"new{i}.png").read_bytes(), i


def test_a_kept_figure_that_fails_to_save_is_closed_not_kept(tmp_path, monkeypatch):
    """A PNG that cannot be written (here a directory in its place) raises, and the figure it
    left half-drawn is closed rather than kept: the next run of that layout gets a new one."""
    records, losses = _run()
    _plots.loss_curve(records, losses, tmp_path / "new.png", "b")
    monkeypatch.setattr(_plots, "_kept", None)
    _plots.keep_figures()
    _plots.loss_curve(*_run(1), tmp_path / "a.png", "a")
    open_figures = len(plt.get_fignums())
    (tmp_path / "b.png").mkdir()
    with pytest.raises(OSError):
        _plots.loss_curve(records, losses, tmp_path / "b.png", "b")
    assert len(plt.get_fignums()) == open_figures - 1 and not _plots._kept
    _plots.loss_curve(records, losses, tmp_path / "c.png", "b")
    assert (tmp_path / "c.png").read_bytes() == (tmp_path / "new.png").read_bytes()
    plt.close("all")


_JOBLIB_JOBS = """
import logging, os, signal, sys, threading, time
from pathlib import Path
from joblib import Parallel, delayed

def job(folder, then_wait=False):
    from backprop_lab.plots._worker import Painter

    logging.basicConfig()
    painter = Painter(2)
    painter.draw(folder, "title")
    if then_wait:  # a job the sweep's Ctrl-C stops, its painter open (joblib kills its worker)
        Path(folder, "waiting").touch()
        time.sleep(120)
    painter.close()
    return painter.pool is None and "matplotlib" in sys.modules

folders = sys.argv[1:]
print(Parallel(n_jobs=2, backend="loky")(delayed(job)(folder) for folder in folders), flush=True)

def interrupt():
    while not all(Path(folder, "waiting").exists() for folder in folders):
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=interrupt, daemon=True).start()
try:
    Parallel(n_jobs=2, backend="loky")(delayed(job)(folder, True) for folder in folders)
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.slow
def test_jobs_in_joblibs_workers_draw_their_plots_and_leave_nothing_when_stopped(tmp_path):
    """Jobs of the parallel launcher run in joblib's loky workers: they draw their plots
    themselves (a pool there would be started and ended for each job, and would leave
    semaphores that multiprocessing's resource tracker reports as leaked when a Ctrl-C of the
    sweep has joblib kill the workers). The plots are the files drawing them here gives."""
    import subprocess
    import sys

    _run_dirs(tmp_path, ("a", "b"))
    done = subprocess.run(
        [sys.executable, "-c", _JOBLIB_JOBS, str(tmp_path / "a"), str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 130, done.stderr[-3000:]
    assert done.stdout.strip() == "[True, True]", done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "WARNING" not in done.stderr, done.stderr[-3000:]
    assert "leaked" not in done.stderr, done.stderr[-3000:]
    _plots.loss_curve(*_run(), tmp_path / "here.png", "title")
    for name in ("a", "b"):
        assert (tmp_path / name / "loss_curve.png").read_bytes() == (tmp_path / "here.png").read_bytes()


def _y_pixels(ax, values) -> np.ndarray:
    """Where ``values`` of the loss axis are drawn, in pixels from the figure's bottom."""
    return ax.transData.transform(np.column_stack([np.zeros(len(values)), values]))[:, 1]


def _reaching_zero():
    """A run whose train loss reaches 4.5e-9 and whose minibatch losses hit 0 and -0.0, while its
    test loss rises again after step 20 (overfitting)."""
    train = [2.3, 0.05, 1e-4, 1e-6, 4.5e-9]
    test = [2.3, 0.02, 0.01, 0.03, 0.06]
    records = [
        {"epoch": e, "step": 10 * e, "train_loss": a, "test_loss": b, "test_accuracy": None}
        for e, (a, b) in enumerate(zip(train, test))
    ]
    losses = [(s, float(np.geomspace(2.3, 1e-8, 40)[s])) for s in range(40)]
    losses[30], losses[35] = (30, 0.0), (35, -0.0)
    return records, losses


@pytest.mark.parametrize("scale", ["auto", "log", "linear"])
def test_losses_reaching_zero_keep_a_readable_axis(tmp_path, figures, scale):
    records, losses = _reaching_zero()
    _plots.loss_curve(records, losses, tmp_path / "loss.png", "zero", scale=scale)
    (fig,) = figures
    ax = fig.axes[0]
    fig.canvas.draw()
    expected = {"auto": "symlog", "log": "log", "linear": "linear"}[scale]
    assert ax.get_yscale() == expected
    tiny, zero = _y_pixels(ax, [4.5e-9, 0.0])
    rising = _y_pixels(ax, [r["test_loss"] for r in records])
    if scale == "linear":  # what auto used to draw: 4.5e-9 at 0, the test loss's rise a few pixels
        assert abs(tiny - zero) < 1 and rising[-1] - rising[2] < 10
    else:  # 4.5e-9 above 0 (symlog) or the axis's bottom; the overfit's rise plain to see
        assert ax.get_ylim()[0] <= 4.5e-9 and tiny - ax.transAxes.transform((0, 0))[1] >= -1
        assert rising[-1] - rising[2] > 15
        assert _y_pixels(ax, [1e-6])[0] - tiny > 30  # 1e-6 and 4.5e-9 two and a half decades apart
    if scale == "auto":
        assert ax.get_yscale() == "symlog" and tiny - zero > 5
        assert ax.yaxis.get_transform().linthresh == pytest.approx(1e-9)  # 4.5e-9's power of ten


def test_plot_scale_values_are_checked():
    with pytest.raises(ValueError, match="plot.scale='logarithmic'"):
        _scale.axis_scale(np.array([1.0, 0.1]), "logarithmic")
    assert _scale.axis_scale(np.array([1.0, 0.0])) == "linear"  # one positive value: no decade
    assert _scale.axis_scale(np.array([np.nan, np.inf, 2.0, 0.1])) == "log"  # non-finite left out


def test_a_one_epoch_run_keeps_every_steps_loss_and_its_labels_apart(tmp_path, figures):
    """Two evaluations (step 0 and the epoch's end) and ten minibatch losses: the trace stays,
    and the values written at step 0, where train and test nearly coincide, do not overlap."""
    records = [
        {"epoch": 0, "step": 0, "train_loss": 2.301, "test_loss": 2.305, "test_accuracy": 0.1},
        {"epoch": 1, "step": 10, "train_loss": 1.38, "test_loss": 1.36, "test_accuracy": 0.8},
    ]
    losses = [(s, 2.3 - 0.09 * s) for s in range(10)]
    _plots.loss_curve(records, losses, tmp_path / "loss.png", "one epoch")
    (fig,) = figures
    ax = fig.axes[0]
    trace = _line(ax, "minibatch loss, each step")
    assert list(trace.get_xdata()) == list(range(10))
    np.testing.assert_allclose(trace.get_ydata(), [v for _, v in losses])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(boxes) == 4 and _no_overlap(boxes)
    width, height = fig.canvas.get_width_height()
    assert all(b.x0 >= 0 and b.y0 >= 0 and b.x1 <= width and b.y1 <= height for b in boxes)
    # the higher value of each step above its point, the lower below
    for t in ax.texts:
        step, value = t.xy
        other = [r for r in records if r["step"] == step][0]
        higher = value == max(other["train_loss"], other["test_loss"])
        assert (t.xyann[1] > 0) == higher, t.get_text()
    # the accuracy axis's label inside the figure
    acc_ax = next(a for a in fig.axes[1:] if a.get_ylabel() == "test accuracy")
    assert acc_ax.yaxis.label.get_window_extent(renderer).x1 <= width


def test_grad_norms_label_inside_the_figure(tmp_path, figures):
    rows = [{"step": s, "grad_norms": [1e-12 * (s + 1), 3e-7, 2.0]} for s in range(0, 20000, 2000)]
    _plots.grad_norms(rows, tmp_path / "grad.png", "deep sigmoid")
    (fig,) = figures
    (ax,) = fig.axes
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.canvas.get_width_height()
    box = ax.get_tightbbox(renderer)  # tick labels, axis labels, title
    assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height
    assert ax.yaxis.label.get_window_extent(renderer).x0 >= 0
