"""What a training program says while it runs: a start banner in the log, and a progress bar
on an interactive terminal.

The banner names the data, the network, the optimizer, the devices and where the results
go. The bar (tqdm, on stderr) counts optimizer steps, one update per compiled chunk, from
the values the chunk brought back to the host anyway: no extra compiled work, no extra
device-to-host transfer. Its postfix holds the latest whole-set train loss and test accuracy
(for a vmapped program of several lanes, the best lane's), tqdm gives steps/s and the ETA.
With stderr not a terminal (a pipe, a file, a batch job), or in a worker process of a
parallel launcher (its jobs share the terminal), nothing but the log is written.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..nn._group import group_sizes

if TYPE_CHECKING:
    from ._lane import Lane

log = logging.getLogger("backprop_lab.run")


def banner(lanes: Sequence[Lane], devices: int, platform: str) -> str:
    """One line saying what a program trains, on what, and where its results go."""
    exp = lanes[0].exp
    data, opt = exp.data, exp.config["optimizer"]
    lrs = sorted({lane.exp.lr for lane in lanes})
    lr = f"lr {lrs[0]:g}" if len(lrs) == 1 else f"lr {lrs[0]:g}..{lrs[-1]:g}"
    where = (
        str(lanes[0].dir.path) if len(lanes) == 1 else f"{lanes[0].dir.path.parent} (jobs {_names(lanes)})"
    )
    what = "training" if len(lanes) == 1 else f"training {len(lanes)} lanes as one program"
    return (
        f"{what}: data {data.name} ({data.n_train} train / {data.x_test.shape[0]} test rows); "
        f"{_networks(lanes)}, "
        f"loss {exp.loss}, grad {exp.grad}, {exp.config.get('dtype', 'float32')}; "
        f"optimizer {opt['name']} {lr}, batch {exp.batch_size}, "
        f"{exp.epochs} epochs of {exp.steps_per_epoch} steps; "
        f"devices {devices} x {platform}; output {where}"
    )


def _networks(lanes: Sequence[Lane]) -> str:
    """The program's network, or its lanes' networks and the shape they are padded to."""
    sizes = list(dict.fromkeys(tuple(lane.exp.model.sizes) for lane in lanes))
    activations = list(dict.fromkeys(lane.exp.model.activation for lane in lanes))
    out = lanes[0].exp.model.output_activation
    if len(sizes) == 1 and len(activations) == 1:
        return f"network {list(sizes[0])} {activations[0]}->{out}"
    shapes = ", ".join(str(list(s)) for s in sizes)
    return f"networks {shapes} x {'/'.join(activations)}->{out} as lanes padded to {list(group_sizes(sizes))}"


def _names(lanes: Sequence[Lane]) -> str:
    names = [lane.spec.name or lane.dir.path.name for lane in lanes]
    return ", ".join(names) if len(names) <= 6 else f"{', '.join(names[:3])}, ..., {names[-1]}"


def show_bar() -> bool:
    """Whether a progress bar is drawn: stderr is a terminal and this is not a launcher's
    worker process."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False
    return tty and multiprocessing.parent_process() is None


class Progress:
    """A program's banner (logged at once) and its progress bar (on a terminal only).

    Arguments:
        lanes: the program's lanes, all starting at the same epoch.
        devices: the devices the program runs on; platform: their kind (``cpu``, ``gpu``).
        writer: whether this process writes (process 0 of a multi-process run).
    """

    def __init__(self, lanes: Sequence[Lane], devices: int, platform: str, writer: bool = True):
        exp = lanes[0].exp
        self.spe = exp.steps_per_epoch
        self.lanes = len(lanes)
        self.classes = exp.data.n_classes is not None
        self._stack = contextlib.ExitStack()
        self.bar = None
        if not writer:
            return
        line = banner(lanes, devices, platform)
        if len(lanes) == 1:
            lanes[0].say(logging.INFO, "%s", line)
        else:
            log.info("%s", line)
            for lane in lanes:
                lane.write_log(logging.INFO, "%s", line)
        if not show_bar():
            return
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        # log lines printed above the bar instead of through it
        self._stack.enter_context(logging_redirect_tqdm())
        self.bar = self._stack.enter_context(
            tqdm(
                total=exp.epochs * self.spe,
                initial=lanes[0].epoch * self.spe,
                desc="train" if len(lanes) == 1 else f"program of {len(lanes)} lanes",
                unit="step",
                dynamic_ncols=True,
                leave=True,
            )
        )

    def update(self, end_epoch: int, m: dict, alive: np.ndarray) -> None:
        """After a chunk that ended at ``end_epoch``, with the chunk's evaluation ``m`` (host arrays,
        one value per lane) and which lanes go on."""
        if self.bar is None:
            return
        live = np.flatnonzero(np.asarray(alive)[: self.lanes]) if np.any(alive) else np.arange(self.lanes)
        loss = np.asarray(m["train_loss"], float)[live]
        acc = np.asarray(m["test_accuracy"], float)[live] if self.classes else np.array([])
        best = "" if self.lanes == 1 else " best"
        post = {f"loss{best}": f"{np.nanmin(loss):.4g}" if np.isfinite(loss).any() else "nan"}
        if acc.size and np.isfinite(acc).any():
            post[f"acc{best}"] = f"{np.nanmax(acc):.4f}"
        if self.lanes > 1:
            post["lanes"] = f"{live.size}/{self.lanes}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(end_epoch * self.spe - self.bar.n)
        self.bar.refresh()  # a chunk is seconds of work: each one shown, whatever tqdm's interval

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
