#!/usr/bin/env python3
"""Check the hand-written gradient against jax.grad on one batch, and time both.

    python experiments/compare.py data.name=random model.sizes=[2,2,2]
    python experiments/compare.py -m data.name=random model.activation=sigmoid,tanh,relu,gelu \\
        dtype=float32,float64 'model.sizes=[2,2,2],[64,256,256,10]'
    scripts/summarize multirun/compare/<date>/<time>

``data.name=random`` draws inputs and targets of the network's own widths
(standard normal inputs; one-hot, 0/1 or uniform targets to suit the loss),
seeded by ``seed``, so any ``model.sizes`` works; the data group's other keys
are then ignored. A named data set must match the widths (a clear error
otherwise). Each run writes into its Hydra output directory grad_report.json,
grad_report.md and summary.json (``kind: compare``), and prints the table.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from . import CONF_DIR

if TYPE_CHECKING:  # JAX and NumPy load when a job runs, not for --help or --cfg
    import jax
    import numpy as np

log = logging.getLogger("backprop_lab.compare")

RANDOM = "random"


def random_batch(sizes, batch: int, loss: str, seed: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (batch, in) standard normal; targets (batch, out) that suit the loss.

    One-hot classes for cross_entropy, 0/1 for binary_cross_entropy, uniform in
    [0, 1] for the squared-error losses.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, sizes[0]))
    if loss == "cross_entropy":
        y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch)]
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, (batch, sizes[-1])).astype(np.float64)
    else:
        y = rng.uniform(0.0, 1.0, (batch, sizes[-1]))
    return x.astype(dtype), y.astype(dtype)


def _ready(tree):
    import jax

    return jax.block_until_ready(tree)


def time_grads(model, x, y, loss: str, repeats: int) -> dict[str, float]:
    """Jitted manual_grad and autodiff_grad: first call (compile) and median of repeats, in ms.

    The repeats alternate between the two (reversed every other round) so a
    slow moment of the machine slows both alike.
    """
    import jax

    from backprop_lab import autodiff_grad, manual_grad

    fns = {
        "manual": jax.jit(lambda m, a, b: manual_grad(m, a, b, loss)),
        "autodiff": jax.jit(lambda m, a, b: autodiff_grad(m, a, b, loss)),
    }
    out: dict[str, float] = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        _ready(fn(model, x, y))
        out[f"{name}_compile_ms"] = 1e3 * (time.perf_counter() - t0)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(repeats):
        for name in list(fns) if r % 2 == 0 else list(fns)[::-1]:
            t0 = time.perf_counter()
            _ready(fns[name](model, x, y))
            times[name].append(time.perf_counter() - t0)
    for name, ts in times.items():
        out[f"{name}_time_ms"] = 1e3 * statistics.median(ts)
    return out


def _check_config(cfg: dict) -> tuple[int, int, bool | None]:
    """The top-level keys checked against ``COMPARE_KEYS`` (unknown or removed keys refused);
    returns ``batch``, ``repeats`` and ``numerical`` (null, true or false)."""
    from backprop_lab.config._keys import COMPARE_KEYS
    from backprop_lab.runs._config import check_top

    top = check_top(cfg, COMPARE_KEYS, required=("seed", "loss", "dtype", "batch"))
    return top["batch"], top.get("repeats", 20), top.get("numerical")


def _examples(cfg: dict, sizes, batch: int) -> tuple[jax.Array, jax.Array]:
    """The batch the gradients are taken on: x (batch, in) and y (batch, out).

    Random examples of the network's widths for ``data.name=random``, otherwise
    the first ``batch`` training rows of the data set (all of them when it has
    fewer), integer labels as one-hot rows.
    """
    import jax.numpy as jnp
    import numpy as np

    from backprop_lab.runs._data import build_data

    if (cfg.get("data") or {}).get("name") == RANDOM:
        x, y = random_batch(sizes, batch, cfg["loss"], int(cfg.get("seed", 0)), cfg["dtype"])
        return jnp.asarray(x), jnp.asarray(y)
    data = build_data(cfg, sizes)
    if batch > data.n_train:
        log.info(
            "batch=%d is more than the %d training rows of %r: using all of them",
            batch,
            data.n_train,
            data.name,
        )
        batch = data.n_train
    x, y = data.x_train[:batch], data.y_train[:batch]
    if data.targets == "labels":
        y = np.eye(data.out_width, dtype=x.dtype)[y]
    return jnp.asarray(x), jnp.asarray(y)  # the dtype the config built


def _summary(report, timings: dict[str, float], model, data_name: str | None, repeats: int) -> dict:
    """What summary.json records: the verdict and errors, the timings, the network, the batch."""
    import jax
    import numpy as np

    from backprop_lab.apps import _hydra as apps

    numerical = report.numerical_max_rel_error
    return {
        "kind": "compare",
        "passed": report.passed,
        "max_abs_error": apps.finite_or_none(report.max_abs_error),
        "max_rel_error": apps.finite_or_none(report.max_rel_error),
        "min_cosine": apps.finite_or_none(report.min_cosine),
        "failing": [list(f) for f in report.failing],
        "diagonal_agrees": report.diagonal_agrees,
        "numerical_max_rel_error": None if numerical is None else apps.finite_or_none(numerical),
        **{k: round(v, 4) for k, v in timings.items()},
        "speedup": timings["autodiff_time_ms"] / timings["manual_time_ms"],
        "dtype": report.dtype,
        "sizes": list(model.sizes),
        "activation": model.activation,
        "output_activation": model.output_activation,
        "bias": any(b is not None for b in model.biases),
        "n_params": sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(model)),
        "loss": report.loss,
        "data": data_name,
        "batch": report.batch,
        "repeats": repeats,
        "backend": jax.default_backend(),
    }


def compare(cfg: DictConfig | dict, out_dir: str | Path | None = None) -> dict:
    """Check and time the gradients for a composed config; write the reports.

    Arguments:
        cfg: the composed config (conf/compare.yaml and its groups), with
            ``batch`` (examples), ``dtype``, and optionally ``repeats`` (timing
            repeats, default 20) and ``numerical`` (null: automatic, see check_grads).
        out_dir: where results go; default Hydra's runtime output directory.

    Returns:
        The summary written to summary.json, plus "table" (the terminal table).

    Raises:
        ConfigError: a config value that cannot work (before any compute).
    """
    from backprop_lab import check_grads
    from backprop_lab.apps import _hydra as apps
    from backprop_lab.apps import _jax_setup
    from backprop_lab.runs._config import plain_config
    from backprop_lab.runs._model import build_model

    cfg = plain_config(cfg)
    batch, repeats, numerical = _check_config(cfg)
    _jax_setup.setup_jax(cfg)  # float64 switched on before anything is built
    model = build_model(cfg)
    x, y = _examples(cfg, model.sizes, batch)
    report = check_grads(model, x, y, cfg["loss"], numerical=numerical)
    timings = time_grads(model, x, y, cfg["loss"], repeats)
    summary = _summary(report, timings, model, (cfg.get("data") or {}).get("name"), repeats)
    out = Path(out_dir or HydraConfig.get().runtime.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "grad_report.json").write_text(report.to_json() + "\n")
    (out / "grad_report.md").write_text(report.to_markdown() + "\n" + _timing_markdown(summary))
    summary["output_dir"] = str(out)
    apps.write_json(out / "summary.json", summary)
    return {**summary, "table": report.to_table() + "\n\n" + _timing_text(summary)}


def _timing_text(s: dict) -> str:
    return (
        f"jitted gradient on {s['backend']}, batch {s['batch']}, median of {s['repeats']}: "
        f"manual {s['manual_time_ms']:.4f} ms, autodiff {s['autodiff_time_ms']:.4f} ms, "
        f"speedup (autodiff/manual) {s['speedup']:.2f}x; "
        f"compile {s['manual_compile_ms']:.1f} ms / {s['autodiff_compile_ms']:.1f} ms"
    )


def _timing_markdown(s: dict) -> str:
    return "\n".join(
        [
            "## Timing (jitted gradient)",
            "",
            f"Backend {s['backend']}, batch {s['batch']}, median of {s['repeats']} calls after a first "
            "(compiling) call.",
            "",
            "| | manual | autodiff |",
            "|---|---|---|",
            f"| median ms | {s['manual_time_ms']:.4f} | {s['autodiff_time_ms']:.4f} |",
            f"| first call (compile) ms | {s['manual_compile_ms']:.1f} | {s['autodiff_compile_ms']:.1f} |",
            "",
            f"Speedup of manual over autodiff (autodiff / manual): **{s['speedup']:.2f}x**",
            "",
        ]
    )


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="compare")
def main(cfg: DictConfig) -> None:
    from backprop_lab.apps import _hydra as apps

    result = apps.run_checked(compare, cfg, "compare", log)
    if result is None:
        return
    print(result["table"])
    log.info("%s; results in %s", "passed" if result["passed"] else "FAILED", result["output_dir"])


if __name__ == "__main__":  # python -m backprop_lab.apps.compare, as backprop-lab compare
    import sys

    from backprop_lab.apps.cli import run_app

    sys.exit(run_app("compare"))
