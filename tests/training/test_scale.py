"""Several devices and several processes give the one-device results, within float32 rounding.

The cases run tests/helpers/scale_worker.py in fresh processes: one with 4 host
CPU devices (XLA's --xla_force_host_platform_device_count), running each kind on
one device and sharded over four, and two jax.distributed processes on 127.0.0.1
(gloo collectives) running both kinds. Tolerance: a data-parallel step sums its gradient in another order
(per-device partial sums, then an all-reduce), so losses agree to a relative
1e-6 and weights to 1e-6 absolute (measured: 1.0e-7 and 6e-8 after 54 steps).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "helpers" / "scale_worker.py"
# Its tests share the module's one-device results: one xdist worker runs them all (tests/conftest.py).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scale")]


def _env(devices: int | None) -> dict:
    """The suite's environment (its XLA options, tests/conftest.py) with ``devices`` host CPU
    devices; every process compared runs under the same options."""
    env = dict(os.environ)
    if devices:
        env["XLA_FLAGS"] = (
            f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
        )
    return env


def _worker(out: Path, jobs: str, host_devices: int | None, *dist: str) -> subprocess.Popen:
    """A worker process running ``jobs`` ("KIND:DEVICES,..."), one after another."""
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(out), jobs, *dist],
        cwd=ROOT,
        env=_env(host_devices),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(proc: subprocess.Popen) -> None:
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, text[-3000:]


def _result(out: Path, job: str, index: int = 0) -> dict:
    return json.loads((out / job.replace(":", "-") / f"result{index}.json").read_text())


def _same_results(a: dict, b: dict) -> None:
    for run_a, run_b in zip(a["metrics"], b["metrics"]):
        assert [r["step"] for r in run_a] == [r["step"] for r in run_b]
        np.testing.assert_allclose(
            [r["train_loss"] for r in run_a], [r["train_loss"] for r in run_b], rtol=1e-6
        )
    for wa, wb in zip(a["weights"], b["weights"]):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=1e-6)


#: one process, 4 host devices: each kind on one device and sharded over the four
ONE_PROCESS = ("run:1", "sweep:1", "run:null", "sweep:4")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The jobs of ONE_PROCESS, run in one fresh process (its JAX started once)."""
    out = tmp_path_factory.mktemp("one")
    _wait(_worker(out, ",".join(ONE_PROCESS), 4))
    return {job: _result(out, job) for job in ONE_PROCESS}


def test_a_single_run_shards_its_batch_over_four_devices(one_process):
    four, one = one_process["run:null"], one_process["run:1"]
    assert four["summaries"][0]["devices"] == 4 and four["summaries"][0]["processes"] == 1
    assert four["output_devices"] == 4 and four["all_reduce"]  # data parallel: gradients all-reduced
    assert one["output_devices"] == 1 and not one["all_reduce"]
    _same_results(four, one)


def test_a_sweep_shards_its_lanes_over_four_devices(one_process):
    four = one_process["sweep:4"]
    assert [s["devices"] for s in four["summaries"]] == [4, 4, 4]  # 3 lanes padded to 4
    assert four["output_devices"] == 4 and four["output_spec"] == "P('devices',)"
    _same_results(four, one_process["sweep:1"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    """Both kinds run by two jax.distributed processes (one start of jax.distributed)."""
    out = tmp_path_factory.mktemp("two")
    port = str(_free_port())
    procs = [_worker(out, "run:null,sweep:null", None, str(pid), "2", port) for pid in (1, 0)]
    for proc in procs:
        _wait(proc)
    return out


@pytest.mark.parametrize("kind", ["run", "sweep"])
def test_two_processes_give_the_single_process_result_and_write_once(two_processes, one_process, kind):
    job = f"{kind}:null"
    results = [_result(two_processes, job, index) for index in (1, 0)]
    main = results[1]
    assert main["process"] == 0 and results[0] == {"process": 1}
    assert {s["processes"] for s in main["summaries"]} == {2}
    assert main["output_devices"] == 2
    _same_results(main, one_process[f"{kind}:1"])
    # one writer: each lane's files exist once, written by process 0 alone
    lanes = list((two_processes / f"{kind}-null").glob("lane*"))
    assert len(lanes) == len(main["summaries"])
    for lane in lanes:
        rows = (lane / "metrics.jsonl").read_text().splitlines()
        assert len(rows) == len({json.loads(r)["step"] for r in rows}) == 4
