"""What a training run leaves behind: metrics records, summary, loss curve.

Shared by the single-run app (experiments/train.py) and the vectorized-sweep
launcher, so a job's directory reads the same whichever ran it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import numpy as np

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.eqx"
PLOT = "loss_curve.png"


def setup_jax(cfg) -> None:
    """Float64 when the config asks for it, and JAX's persistent compilation cache."""
    if cfg.get("dtype", "float32") == "float64":
        jax.config.update("jax_enable_x64", True)
    cache = cfg.get("jax_cache_dir")
    if cache:
        jax.config.update("jax_compilation_cache_dir", str(Path(cache).expanduser()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def stop_on_config_error(err: Exception, kind: str, log) -> None:
    """What an app does with a config that cannot work: log it, then, inside a
    multirun, record ``status: "config_error"`` in the job's summary.json and
    return so the sweep's other jobs run; in a single run, exit with status 2."""
    import sys

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    log.error("%s", err)
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        sys.exit(2)
    out = Path(hc.runtime.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / SUMMARY, {"kind": kind, "status": "config_error", "passed": False, "error": str(err)})


def finite_or_none(x) -> float | None:
    """A float for JSON, None for NaN/Inf (JSON has no NaN)."""
    x = float(x)
    return x if math.isfinite(x) else None


def metrics_record(epoch: int, step: int, train_loss, test_loss, test_accuracy, wall_time: float) -> dict:
    """One line of metrics.jsonl."""
    return {
        "epoch": int(epoch),
        "step": int(step),
        "train_loss": finite_or_none(train_loss),
        "test_loss": finite_or_none(test_loss),
        "test_accuracy": None if test_accuracy is None else float(test_accuracy),
        "wall_time": round(float(wall_time), 4),
    }


def read_metrics(path: Path, up_to_epoch: float = math.inf) -> list[dict]:
    """Records already written, up to an epoch; a torn last line is dropped."""
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and rec.get("epoch", math.inf) <= up_to_epoch:
                records.append(rec)
    return records


def write_metrics(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def grad_agreement(model, x, y, loss: str, n: int = 32) -> dict:
    """Manual vs autodiff gradient on the first n examples, as summary fields."""
    from ._report import check_grads

    report = check_grads(model, x[:n], y[:n], loss, numerical=False)
    return {
        "passed": bool(report.passed),
        "max_abs_error": finite_or_none(report.max_abs_error),
        "max_rel_error": finite_or_none(report.max_rel_error),
        "min_cosine": finite_or_none(report.min_cosine),
    }


def run_summary(*, status: str, steps: int, epochs: int, diverged_at_step: int | None,
                records: list[dict], samples_per_second: float | None, wall_time: float,
                grad: str, agreement: dict, output_dir: Path, **extra) -> dict:
    """The fields of summary.json (see the README for their meaning)."""
    last = records[-1] if records else {}
    return {
        "kind": "train",
        "status": status,
        "steps": int(steps),
        "epochs": int(epochs),
        "diverged_at_step": diverged_at_step,
        "final_train_loss": last.get("train_loss"),
        "final_test_loss": last.get("test_loss"),
        "test_accuracy": last.get("test_accuracy"),
        "samples_per_second": samples_per_second,
        "wall_time": wall_time,
        "grad": grad,
        "grad_agreement": agreement,
        "output_dir": str(output_dir),
        **extra,
    }


def write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def save_loss_plot(records: list[dict], path: Path, title: str) -> None:
    """loss_curve.png: train and test loss against step (log scale when positive)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [r["step"] for r in records]
    for key, label in (("train_loss", "train"), ("test_loss", "test")):
        values = [r.get(key) for r in records]
        if any(v is not None for v in values):
            ax.plot(steps, [np.nan if v is None else v for v in values], marker=".", label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if records and all((r.get("train_loss") or 0) > 0 for r in records):
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def params_finite(model) -> bool:
    """Whether every parameter of the network is finite."""
    return all(bool(np.all(np.isfinite(np.asarray(p)))) for p in jax.tree.leaves(model))
