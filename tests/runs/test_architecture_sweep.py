"""A sweep over widths, depths, activations and momentum as one vmapped program writes what the
basic launcher writes, and each job ends where the same job run alone ends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

import backprop_lab as bl

ROOT = Path(__file__).resolve().parents[2]
COMMON = [
    "data=moons",
    "data.n_samples=120",
    "model.output_activation=softmax",
    "loss=cross_entropy",
    "epochs=2",
    "batch_size=30",
    "optimizer=momentum",
    "optimizer.lr=0.1",
    "diagnostics=true",
]


def _sweep(out: Path, *overrides: str) -> str:
    result = subprocess.run(
        [sys.executable, "experiments/train.py", "-m", *COMMON, *overrides, f"hydra.sweep.dir={out}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def _jobs(sweep: Path) -> dict[frozenset, Path]:
    return {
        frozenset(
            o for o in yaml.safe_load((j / ".hydra" / "overrides.yaml").read_text()) if o not in COMMON
        ): j
        for j in sweep.iterdir()
        if (j / ".hydra").is_dir()
    }


@pytest.mark.slow
def test_architectures_as_lanes_equal_the_basic_launchers_jobs(tmp_path):
    log = _sweep(
        tmp_path / "vmap",
        "model.hidden=[3],[5,4]",  # the widths in and out from the data (no model.sizes given)
        "model.activation=tanh,relu",
        "optimizer.momentum=0.5,0.9",
        "hydra/launcher=vmap",
    )
    assert "8 jobs as 1 program" in log and "program 1: 8 lanes, padded/real FLOPs" in log
    _sweep(tmp_path / "basic", "model.hidden=[5,4]", "model.activation=relu", "optimizer.momentum=0.5,0.9")
    vmapped, alone = _jobs(tmp_path / "vmap"), _jobs(tmp_path / "basic")
    assert len(vmapped) == 8 and len(alone) == 2
    for key, job in alone.items():
        lane = vmapped[key]  # the same overrides
        assert sorted(p.name for p in lane.iterdir()) == sorted(p.name for p in job.iterdir())
        ours, theirs = (np.loadtxt(d / "losses.csv", delimiter=",", skiprows=1)[:, 1] for d in (lane, job))
        np.testing.assert_allclose(ours, theirs, rtol=1e-5)
        records = [json.loads(line) for line in (lane / "metrics.jsonl").read_text().splitlines()]
        assert all(len(r["grad_norms"]) == 3 for r in records)  # the lane's own three layers
        summary, basic = (json.loads((d / "summary.json").read_text()) for d in (lane, job))
        assert set(summary) - set(basic) == {"launcher", "padding"} and summary["padding"] > 1
        assert summary["status"] == "completed"
        run = bl.load_run(lane)  # the job's own network, as if trained alone
        assert run.model.sizes == (2, 5, 4, 2) and run.model.activation == "relu"
        assert run.summary["final_train_loss"] == pytest.approx(basic["final_train_loss"], rel=1e-5)


def _cfg(sizes, **top):
    return OmegaConf.create({"model": {"sizes": list(sizes)}, **top})


def test_launcher_names_what_tells_its_programs_apart(caplog):
    from hydra_plugins.backprop_lab_vmap_launcher._programs import programs as _programs

    small, wide = _cfg([2, 4, 2]), _cfg([2, 64, 2])
    groups = [[(0, [], small), (1, [], wide)], [(2, [], small)]]
    sizes = {0: (2, 4, 2), 1: (2, 64, 2), 2: (2, 4, 2)}
    keys = [json.dumps({"data": {"name": "moons"}}), json.dumps({"data": {"name": "circles"}})]
    with caplog.at_level("INFO"):
        programs = _programs(groups, keys, max_padding=4.0, sizes=sizes)
    # 2·(2·64·2) padded / (2·4·2 + 2·64·2) real = 512 / 272: under 4, one program
    assert [len(p) for p in programs] == [2, 1]
    assert "3 jobs as 2 programs: data.name=moons, data.name=circles" in caplog.text
    assert "program 1: 2 lanes, padded/real FLOPs 1.88" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO"):
        programs = _programs(groups, keys, max_padding=1.5, sizes=sizes)
    assert [len(p) for p in programs] == [1, 1, 1]
    assert "more than max_padding=1.5: one program per model.sizes" in caplog.text
    assert "data.name=moons model.sizes=[2, 4, 2], data.name=moons model.sizes=[2, 64, 2]" in caplog.text
