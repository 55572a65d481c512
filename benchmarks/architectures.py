"""T12: a sweep over widths, depths, activations, learning rates and seeds through Hydra.

Whole commands, each into a fresh ``hydra.sweep.dir`` with the benchmark's own compile
cache, warmed first by one job run alone: ``hydra/launcher=vmap`` as one padded program, against (a) the same launcher with
one program per architecture (``hydra.launcher.vmap_keys=[optimizer.lr,seed]``, its
behaviour before architectures became lanes) and (b) the basic launcher. The basic
launcher runs ``basic_jobs`` of the sweep's jobs (one per architecture; the whole sweep
takes too long on a small machine) and its time for the sweep is scaled from them, which
the row says. The whole command is also set against ``import jax`` plus the program's
own training time (the wall time in its summaries). Then, in this interpreter, the cost
of masking: lanes of one network unpadded against the same lanes padded in a group of
the sweep's shapes and activations, steps per second and the padded/real FLOP ratio.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .processes import _app, run_command, user_env
from .timing import Row, row

SIZES = ("[2,8,2]", "[2,16,2]", "[2,16,16,2]")
ACTIVATIONS = ("tanh", "relu", "gelu")


def _sweep(lrs: int, seeds: int, epochs: int, sizes=SIZES, activations=ACTIVATIONS) -> list[str]:
    rates = np.geomspace(0.01, 0.3, lrs)
    return [
        "-m",
        "data=moons",
        "model.sizes=" + ",".join(sizes),
        "model.activation=" + ",".join(activations),
        "optimizer=sgd",
        "optimizer.lr=" + ",".join(f"{lr:.3g}" for lr in rates),
        "seed=" + ",".join(str(s) for s in range(seeds)),
        f"epochs={epochs}",
        f"log_every={epochs}",
    ]


def _timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    run_command(argv, env=env)
    return time.perf_counter() - t0


def _summaries(sweep: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]


def _import_jax_seconds(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import jax; jax.numpy.zeros(1).block_until_ready()"], env=env, check=True
    )
    return time.perf_counter() - t0


def _masking_cost(lanes: int, steps: int, sizes=SIZES, activations=ACTIVATIONS) -> dict[str, Any]:
    """Steps/s of ``lanes`` lanes of [2, 16, 2] tanh, unpadded and padded among the sweep's shapes."""
    import jax
    import jax.numpy as jnp

    import backprop_lab as bl
    from backprop_lab.training._lanes import run_lanes, with_hyperparams
    from backprop_lab.training._masked import padding_ratio, stack_states

    data = bl.load_dataset("moons", dtype=np.float32)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    opt = bl.make_optimizer("sgd", 0.1)
    keys = jnp.stack([jax.random.PRNGKey(i) for i in range(lanes)])
    own = [bl.MLP([2, 16, 2], "tanh", "softmax", key=jax.random.PRNGKey(i)) for i in range(lanes)]
    # the same lanes, with one lane of every other shape and activation of the sweep beside them
    others = [
        bl.MLP(json.loads(s), a, "softmax", key=jax.random.PRNGKey(0)) for s in sizes for a in activations
    ]
    out: dict[str, Any] = {}
    for name, nets in (("unpadded", own), ("padded", own + others)):
        models, opts, mask = stack_states(
            nets, [with_hyperparams(opt.init(n), learning_rate=0.1) for n in nets]
        )
        k = jnp.concatenate([keys, keys[: len(nets) - lanes]])

        def go(models=models, opts=opts, mask=mask, k=k) -> Any:
            return run_lanes(
                models,
                opts,
                x,
                y,
                k,
                0,
                loss="cross_entropy",
                optimizer=opt,
                steps=steps,
                batch_size=32,
                mask=mask,
            )

        jax.block_until_ready(go())  # compile
        t0 = time.perf_counter()
        jax.block_until_ready(go())
        out[f"{name}_lane_steps_per_s"] = len(nets) * steps / (time.perf_counter() - t0)
        out[f"{name}_lanes"] = len(nets)
    out["flop_ratio_of_the_sweep"] = padding_ratio([json.loads(s) for s in sizes])
    return out


def bench_architecture_sweep(
    lrs: int = 4,
    seeds: int = 8,
    epochs: int = 20,
    masking_steps: int = 500,
    sizes: tuple[str, ...] = SIZES,
    activations: tuple[str, ...] = ACTIVATIONS,
    warm: bool = True,
) -> list[Row]:
    """T12: the sweep as one program, against one program per architecture and the basic launcher
    (``warm``: the compile cache first warmed by one job alone; the tiny mode, which checks the
    harness and not the figures, skips it)."""
    sweep = _sweep(lrs, seeds, epochs, sizes, activations)
    basic_jobs = len(sizes) * len(activations)
    jobs = basic_jobs * lrs * seeds
    with tempfile.TemporaryDirectory(prefix="bench-t12-") as tmp:
        env = user_env(BACKPROP_LAB_CACHE=str(Path(tmp) / "jax_cache"))
        import_jax = _import_jax_seconds(env)
        # the compile cache warmed as T10 warms it: one job alone (the programs every run shares)
        single = _sweep(1, 1, epochs, sizes[:1], activations[:1])[1:]
        if warm:
            run_command([*_app("train"), *single, f"hydra.run.dir={tmp}/single"], env=env)
        one = _timed([*_app("train"), *sweep, "hydra/launcher=vmap", f"hydra.sweep.dir={tmp}/one"], env)
        wall = max(s["wall_time"] for s in _summaries(Path(tmp) / "one"))
        steps = max(s["steps"] for s in _summaries(Path(tmp) / "one"))
        per_arch = _timed(
            [
                *_app("train"),
                *sweep,
                "hydra/launcher=vmap",
                "hydra.launcher.vmap_keys=[optimizer.lr,seed]",
                f"hydra.sweep.dir={tmp}/per_arch",
            ],
            env,
        )
        # the basic launcher: one job of each architecture (first lr, seed 0), scaled to the sweep
        subset = [o for o in sweep if not o.startswith(("optimizer.lr=", "seed="))]
        subset += [o for o in single if o.startswith(("optimizer.lr=", "seed="))]
        basic_some = _timed([*_app("train"), *subset, f"hydra.sweep.dir={tmp}/basic"], env)
        basic = basic_some * jobs / basic_jobs
        one_losses = {
            (s["output_dir"].rsplit("/", 1)[-1]): s["final_train_loss"] for s in _summaries(Path(tmp) / "one")
        }
        per_arch_losses = {
            (s["output_dir"].rsplit("/", 1)[-1]): s["final_train_loss"]
            for s in _summaries(Path(tmp) / "per_arch")
        }
    worst = max(
        abs(one_losses[j] - per_arch_losses[j]) / abs(per_arch_losses[j])
        for j in per_arch_losses
        if one_losses.get(j) is not None and per_arch_losses[j]
    )
    masking = _masking_cost(32, masking_steps, sizes, activations)
    floor = import_jax + wall
    what = (
        f"Hydra sweep of {jobs} jobs ({len(sizes)} sizes incl. one deeper × {len(activations)} activations × "
        f"{lrs} lr × {seeds} seeds, "
        f"moons sgd, {steps} steps)"
    )
    return [
        row(
            "T12",
            f"{what}: one program per architecture / one padded program",
            f"{per_arch:.1f} s vs {one:.1f} s; final losses: worst rel. diff {worst:.1e}",
            per_arch / one,
            "≥ 3",
            per_arch / one >= 3,
            jobs=jobs,
            one_program_s=one,
            per_architecture_s=per_arch,
        ),
        row(
            "T12",
            f"{what}: basic launcher (scaled from {basic_jobs} jobs, {basic_some:.1f} s) / one padded program",
            f"{basic:.0f} s (scaled) vs {one:.1f} s",
            basic / one,
            "≥ 5",
            basic / one >= 5,
            basic_subset_s=basic_some,
            basic_jobs=basic_jobs,
        ),
        row(
            "T12",
            f"{what}: whole command / (import jax {import_jax:.1f} s + training {wall:.1f} s)",
            f"{one:.1f} s vs {floor:.1f} s",
            one / floor,
            "≤ 2.5",
            one / floor <= 2.5,
            import_jax_s=import_jax,
            training_s=wall,
        ),
        row(
            "T12",
            f"masking: 32 lanes of [2, 16, 2] tanh alone / with one lane of each of the sweep's shapes and "
            f"activations, padded ({masking['padded_lanes']} lanes), {masking_steps} steps, lane-steps/s",
            f"{masking['unpadded_lane_steps_per_s']:.0f} vs {masking['padded_lane_steps_per_s']:.0f} lane-steps/s; "
            f"the sweep's padded/real FLOPs {masking['flop_ratio_of_the_sweep']:.2f}",
            masking["unpadded_lane_steps_per_s"] / masking["padded_lane_steps_per_s"],
            "report",
            None,
            **masking,
        ),
    ]


BENCHMARKS: dict[str, tuple[Callable[..., list[Row]], dict[str, dict[str, Any]]]] = {
    "t12": (
        bench_architecture_sweep,
        {
            "full": dict(),
            "quick": dict(lrs=2, seeds=4),
            "tiny": dict(
                lrs=1,
                seeds=1,
                epochs=1,
                masking_steps=10,
                sizes=("[2,4,2]", "[2,4,4,2]"),
                activations=("tanh",),
                warm=False,
            ),
        },
    ),
}
