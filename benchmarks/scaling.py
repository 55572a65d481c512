"""Scaling with the number of devices: lanes/s of a vmapped sweep and samples/s of one
data-parallel run, on 1, 2 and 4 devices, each count in a fresh process.

    python -m benchmarks.scaling            # host CPU devices 1, 2, 4
    python -m benchmarks.scaling --devices 1 2 4 8

On CPU the devices are XLA's host devices (--xla_force_host_platform_device_count)
sharing the machine's cores, so the figure shows the sharding's overhead, not a
speed-up; on GPUs it is the real scaling. Each figure is the median of 5 timed
calls after a compiling one, through the engine's own placement (the private
``backprop_lab.training._sharding.plan``) and its compiled program (the public
``bl.run_lanes``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: The repository's root, which holds this package.
ROOT = Path(__file__).resolve().parents[1]


def _measure(devices: int) -> dict:
    import jax
    import numpy as np

    import backprop_lab as bl

    # Private, and timed on purpose: the engine's placement of lanes and minibatch rows on
    # the devices (mesh, padding lanes, batch sharding). The public train_sweep places
    # nothing, so it cannot show what more devices cost or gain.
    from backprop_lab.training._sharding import plan

    data = bl.load_dataset("digits", seed=0)
    x, y = np.asarray(data.x_train), np.asarray(data.y_train)
    out = {"devices": devices, "backend": jax.default_backend()}
    for kind, lanes, batch, steps in (("sweep", 64, 32, 42), ("run", 1, 512, 20)):
        place, _ = plan(lanes, batch, devices)
        models = [bl.MLP([64, 128, 10], "tanh", "softmax", key=jax.random.PRNGKey(s)) for s in range(lanes)]
        models += [models[0]] * place.pad
        opt = bl.make_optimizer("sgd", 0.1)
        stacked = place.put_lanes(bl.stack_lanes(models))
        states = place.put_lanes(bl.stack_lanes([opt.init(m) for m in models]))
        keys = place.put_lanes(np.stack([np.asarray(jax.random.PRNGKey(s)) for s in range(len(models))]))
        xs, ys = place.replicate(x), place.replicate(y)

        def call():
            return jax.block_until_ready(
                bl.run_lanes(
                    stacked,
                    states,
                    xs,
                    ys,
                    keys,
                    0,
                    loss="cross_entropy",
                    optimizer=opt,
                    steps=steps,
                    batch_size=batch,
                    batch_sharding=place.batch,
                )
            )

        call()
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        out[kind] = {
            "lanes": lanes,
            "batch": batch,
            "steps": steps,
            "seconds": t,
            "mesh_devices": place.devices,
            "lane_steps_per_s": lanes * steps / t,
            "samples_per_s": lanes * steps * batch / t,
        }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_measure(args.child)))
        return 0
    rows = []
    for n in args.devices:
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.scaling", "--child", str(n)],
            env=env,
            cwd=ROOT,  # where -m finds this package (it is not installed)
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        "| devices | sweep: 64 lanes x 42 steps (s) | lane-steps/s | run: batch 512 x 20 steps (s) | samples/s |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        s, u = r["sweep"], r["run"]
        print(
            f"| {r['devices']} | {s['seconds']:.3f} | {s['lane_steps_per_s']:.0f} | {u['seconds']:.3f} | "
            f"{u['samples_per_s']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
