"""What a run shows while it trains: a progress bar on a terminal (the app run in a real
pseudo-terminal), none in its log, and a start banner in its log. (A piped run shows no bar:
tests/runs/test_train_app.py, the diverged run.)"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import sys
import termios
import time

import pytest

from helpers.train_app import ROOT, TINY, TRAIN

#: TINY's schedule: moons' 750 training rows in batches of 50, for 3 epochs.
STEPS = 3 * 750 // 50


def _run_in_terminal(*argv: str, timeout: float = 240) -> str:
    """The output of ``argv`` run with a pseudo-terminal (100 columns) as its stdin, stdout and
    stderr, as a user's shell would run it."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its terminal is the pty's other end
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
            os.chdir(ROOT)
            os.execv(sys.executable, [sys.executable, *argv])
        finally:
            os._exit(127)
    chunks, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, b"".join(chunks)[-3000:]
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_a_terminal_shows_a_progress_bar_and_the_log_does_not(tmp_path):
    out = _run_in_terminal(str(TRAIN), f"hydra.run.dir={tmp_path}", *TINY)
    frames = [f for f in out.replace("\n", "\r").split("\r") if "step/s" in f]
    assert frames, out[-2000:]
    last = frames[-1]
    assert f"{STEPS}/{STEPS}" in last and "100%" in last  # steps, done
    assert "loss=" in last and "acc=" in last  # the latest evaluation
    # the postfix is the last evaluation's: the summary's figures, as tqdm prints them
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert f"loss={summary['final_train_loss']:.4g}" in last
    assert f"acc={summary['test_accuracy']:.4f}" in last
    log = (tmp_path / "train.log").read_text()
    assert "step/s" not in log and "\r" not in log
    assert "training: data moons" in log and f"output {tmp_path}" in log


def test_a_vmapped_program_has_one_bar_with_its_lane_count(tmp_path, monkeypatch, caplog):
    """The bar of a program of four lanes, drawn on a real terminal (a pty's other end as
    stderr): its lane count, the best lane's loss and accuracy among the running lanes."""
    import logging

    import numpy as np

    from backprop_lab.files._rundir import RunDir
    from backprop_lab.runs._experiment import build_experiment
    from backprop_lab.runs._lane import Lane, RunSpec
    from backprop_lab.runs._progress import Progress
    from helpers.train_app import cfg_of

    exp = build_experiment(cfg_of(*TINY))
    lanes = [Lane(RunSpec(exp, tmp_path / str(i), name=f"#{i}"), RunDir(tmp_path / str(i))) for i in range(4)]
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 160, 0, 0))
    terminal = open(slave, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    monkeypatch.setattr(sys, "stderr", terminal)
    m = {"train_loss": np.array([0.5, 0.2, 0.9, 0.1]), "test_accuracy": np.array([0.7, 0.8, 0.6, 0.99])}
    with caplog.at_level(logging.INFO, logger="backprop_lab.run"):
        with Progress(lanes, 1, "cpu") as bar:
            bar.update(2, m, np.array([True, True, True, False]))  # lane 3 stopped (diverged)
        terminal.flush()
    terminal.close()
    shown = os.read(master, 65536).decode()
    os.close(master)
    last = shown.replace("\n", "\r").split("\r")
    frame = [f for f in last if "30/45" in f][-1]
    assert "program of 4 lanes" in frame and "step/s" in frame
    assert "loss best=0.2" in frame and "acc best=0.8000" in frame and "lanes=3/4" in frame
    (banner,) = [
        r.getMessage() for r in caplog.records if "training 4 lanes as one program" in r.getMessage()
    ]
    assert banner.endswith(f"output {tmp_path} (jobs #0, #1, #2, #3)")


def test_the_banner_of_an_architecture_sweep_names_each_network_and_the_padded_shape(tmp_path):
    from backprop_lab.files._rundir import RunDir
    from backprop_lab.runs._experiment import build_experiment
    from backprop_lab.runs._lane import Lane, RunSpec
    from backprop_lab.runs._progress import banner
    from helpers.train_app import cfg_of

    nets = [("[2,3,2]", "tanh"), ("[2,5,4,2]", "relu"), ("[2,3,2]", "relu")]
    exps = [
        build_experiment(cfg_of("data=moons", f"model.sizes={s}", f"model.activation={a}")) for s, a in nets
    ]
    lanes = [Lane(RunSpec(e, tmp_path / str(i)), RunDir(tmp_path / str(i))) for i, e in enumerate(exps)]
    # padded: hidden widths max(3, 5) and max(3 passed through, 4)
    assert "networks [2, 3, 2], [2, 5, 4, 2] x tanh/relu->softmax as lanes padded to [2, 5, 4, 2]" in banner(
        lanes, 1, "cpu"
    )
    assert "network [2, 3, 2] tanh->softmax," in banner(lanes[:1], 1, "cpu")
