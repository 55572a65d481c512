"""A process of the multi-device and multi-process tests (tests/test_scale.py).

    python tests/helpers/scale_worker.py OUT KIND:DEVICES[,KIND:DEVICES...] [PROCESS_ID NUM_PROCESSES PORT]

KIND is "run" (one data-parallel run of moons) or "sweep" (three lanes: three
learning rates, padded to the device count); DEVICES is the config's ``devices``.
Each job, one after another in this process (a process starts JAX, and
jax.distributed, once), writes OUT/KIND-DEVICES/result{PROCESS}.json with each
lane's summary, metrics and final parameters, and the sharding of the arrays
the compiled program returned.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[2]


def main(out: Path, jobs: str, *dist: str) -> None:
    for job in jobs.split(","):
        kind, devices = job.split(":")
        run_job(out / f"{kind}-{devices}", kind, devices, *dist)


def run_job(out: Path, kind: str, devices: str, *dist: str) -> None:
    overrides = [
        "jax_cache_dir=null",
        "data=moons",
        "model.sizes=[2,8,2]",
        "epochs=3",
        "batch_size=40",
        "log_every=1",
        "optimizer=sgd",
        f"devices={devices}",
    ]
    if dist:
        pid, n, port = dist
        overrides += [
            f"distributed.coordinator_address=127.0.0.1:{port}",
            f"distributed.num_processes={n}",
            f"distributed.process_id={pid}",
        ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        lrs = [0.1] if kind == "run" else [0.05, 0.1, 0.3]
        cfgs = [
            compose("train", overrides=[*overrides, f"optimizer.lr={lr}", f"seed={i}"])
            for i, lr in enumerate(lrs)
        ]

    from backprop_lab.apps import _jax_setup
    from backprop_lab.runs._engine import RunSpec, run_experiments
    from backprop_lab.runs._experiment import build_experiment

    _jax_setup.setup_jax(cfgs[0])
    import jax
    import numpy as np

    from backprop_lab.training import _lanes as _sweep
    from backprop_lab.training import _sharding

    specs = [RunSpec(build_experiment(c), out / f"lane{i}") for i, c in enumerate(cfgs)]
    summaries = run_experiments(specs, refuse="raise" if kind == "run" else "skip")
    # the sharding the program gives its outputs, for the same layout the engine chose
    exp = specs[0].exp
    place, _ = _sharding.plan(len(specs), exp.batch_size, cfgs[0].get("devices"))
    padded = [s.exp for s in specs] + [exp] * place.pad
    models = place.put_lanes(_sweep.stack_lanes([e.model for e in padded]))
    opts = place.put_lanes(_sweep.stack_lanes([e.optimizer.init(e.model) for e in padded]))
    x = place.replicate(np.asarray(exp.data.x_train))
    y = place.replicate(np.asarray(exp.data.y_train))
    keys = place.put_lanes(np.stack([np.asarray(e.key) for e in padded]))
    kwargs = dict(
        loss=exp.loss,
        optimizer=exp.optimizer,
        steps=2,
        batch_size=exp.batch_size,
        grad=exp.grad,
        batch_sharding=place.batch,
    )
    new_models, _, losses = _sweep.run_lanes(models, opts, x, y, keys, 0, **kwargs)
    hlo = (
        _sweep._run_lanes.lower(
            models,
            opts,
            x,
            y,
            keys,
            jax.numpy.asarray(0, jax.numpy.int32),
            None,  # no mask: lanes of one architecture
            data_axis=None,
            **{**kwargs, "optimizer": _sweep.Static(exp.optimizer)},
        )
        .compile()
        .as_text()
    )
    leaf = jax.tree.leaves(new_models)[0]
    result = {
        "summaries": summaries,
        "metrics": [
            [json.loads(l) for l in (s.out / "metrics.jsonl").read_text().splitlines()]
            if (s.out / "metrics.jsonl").exists()
            else None
            for s in specs
        ],
        "weights": [np.asarray(w).tolist() for w in _load(specs)],
        "output_devices": len(leaf.sharding.device_set),
        "output_spec": str(getattr(leaf.sharding, "spec", None)),
        "all_reduce": "all-reduce" in hlo,
        "process": jax.process_index(),
    }
    if jax.process_index() == 0 or not dist:
        (out / f"result{jax.process_index()}.json").write_text(json.dumps(result))
    else:
        (out / f"result{jax.process_index()}.json").write_text(json.dumps({"process": jax.process_index()}))


def _load(specs):
    from backprop_lab.files._checkpoint import load_checkpoint

    out = []
    for s in specs:
        like = (s.exp.model, s.exp.optimizer.init(s.exp.model))
        (model, _), _ = load_checkpoint(s.out / "checkpoint.eqx", like)
        out.append(model.weights[0])
    return out


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:])
