#!/usr/bin/env python3
"""Train a network from a Hydra config.

    python experiments/train.py                                  # digits, hand-written backprop
    python experiments/train.py experiment=note003               # a preset from the notes
    python experiments/train.py -m model.activation=sigmoid,tanh,relu optimizer.lr=0.01,0.1,1.0

Each run writes into its Hydra output directory: the composed config
(.hydra/), metrics.jsonl (a line per evaluation), summary.json, checkpoint.eqx
(network, optimizer state, step) and loss_curve.png. ``resume=true`` with the
same ``hydra.run.dir`` continues a killed run from its last checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path

import hydra
import jax
import jax.numpy as jnp
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("backprop_lab.train")


class RunDirError(RuntimeError):
    """The output directory already holds a run that this one would overwrite."""


def setup_jax(cfg: DictConfig) -> None:
    """Float64 when asked for, and the persistent compilation cache."""
    if cfg.get("dtype", "float32") == "float64":
        jax.config.update("jax_enable_x64", True)
    cache = cfg.get("jax_cache_dir")
    if cache:
        jax.config.update("jax_compilation_cache_dir", str(Path(cache).expanduser()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _read_metrics(path: Path, up_to_epoch: int) -> list[dict]:
    """Records already written, up to an epoch; a torn last line is dropped."""
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("epoch", math.inf) <= up_to_epoch:
                records.append(rec)
    return records


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _agreement(model, x, y, loss) -> dict:
    from backprop_lab import check_grads

    report = check_grads(model, x[:32], y[:32], loss, numerical=False)
    return {
        "passed": bool(report.passed),
        "max_abs_error": float(report.max_abs_error),
        "max_rel_error": float(report.max_rel_error),
        "min_cosine": float(report.min_cosine),
    }


def _save_plot(records: list[dict], path: Path, title: str) -> None:
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


def train(cfg: DictConfig, out_dir: str | Path | None = None) -> dict:
    """Run one training job from a composed config; return its summary.

    Arguments:
        cfg: the composed config (conf/train.yaml and its groups).
        out_dir: where results go; default Hydra's runtime output directory.

    Raises:
        ConfigError: a config value that cannot work (before any compute).
        CheckpointError: ``resume=true`` over a corrupt checkpoint.
        RunDirError: the directory holds a run and ``resume`` is false.
    """
    from backprop_lab import evaluate, run_steps
    from backprop_lab._checkpoint import load_checkpoint, save_checkpoint
    from backprop_lab._experiment import build_experiment

    out = Path(out_dir or HydraConfig.get().runtime.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    setup_jax(cfg)
    exp = build_experiment(cfg)
    ckpt_path, metrics_path = out / "checkpoint.eqx", out / "metrics.jsonl"
    eval_every = int(cfg.get("log_every", 1) or 1)

    data = exp.data
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    x_test, y_test = jnp.asarray(data.x_test), jnp.asarray(data.y_test)
    classify = data.n_classes is not None
    model, opt_state, epoch = exp.model, exp.optimizer.init(exp.model), 0
    if ckpt_path.exists():
        if not cfg.get("resume", False):
            raise RunDirError(
                f"{out} already holds a run (checkpoint.eqx); pass resume=true to continue it, "
                "or choose another hydra.run.dir"
            )
        (model, opt_state), header = load_checkpoint(ckpt_path, (model, opt_state))
        epoch = header["epoch"]
        log.info("resuming from %s at epoch %d (step %d)", ckpt_path, epoch, header["step"])
    records = _read_metrics(metrics_path, epoch)
    metrics_path.write_text("".join(json.dumps(r) + "\n" for r in records))

    start_agreement = _agreement(exp.model, x, y, exp.loss)
    status, diverged_at, chunk_times, samples = "completed", None, [], 0
    spe, bs = exp.steps_per_epoch, exp.batch_size
    from tqdm import tqdm

    bar = tqdm(total=exp.epochs, initial=epoch, unit="epoch", disable=not sys.stderr.isatty())
    t_run = time.perf_counter()
    while epoch < exp.epochs:
        n_epochs = min(eval_every, exp.epochs - epoch)
        t0 = time.perf_counter()
        model_next, opt_next, losses = run_steps(
            model, opt_state, x, y, exp.key, epoch * spe, loss=exp.loss, optimizer=exp.optimizer,
            steps=n_epochs * spe, batch_size=None if bs == data.n_train else bs, grad=exp.grad)
        losses = np.asarray(losses)
        chunk_times.append(time.perf_counter() - t0)
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size or not all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(model_next)):
            status = "diverged"
            diverged_at = int(epoch * spe + (bad[0] if bad.size else losses.size))
            log.warning("diverged at step %d (loss %s); stopping this run", diverged_at,
                        losses[bad[0]] if bad.size else "finite, parameters not")
            break
        model, opt_state, epoch = model_next, opt_next, epoch + n_epochs
        samples += losses.size * bs
        test_loss, test_acc = evaluate(model, x_test, y_test, exp.loss)
        rec = {"epoch": epoch, "step": epoch * spe, "train_loss": float(losses.mean()),
               "test_loss": _finite(test_loss),
               "test_accuracy": float(test_acc) if classify else None,
               "wall_time": round(time.perf_counter() - t_run, 4)}
        with metrics_path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        records.append(rec)
        save_checkpoint(ckpt_path, (model, opt_state), step=epoch * spe, epoch=epoch)
        bar.update(n_epochs)
        if not bar.disable:
            bar.set_postfix(loss=f"{rec['train_loss']:.4g}")
        else:
            acc = "" if rec["test_accuracy"] is None else f"  test accuracy {rec['test_accuracy']:.4f}"
            log.info("epoch %d/%d  step %d  train loss %.6g%s", epoch, exp.epochs, rec["step"],
                     rec["train_loss"], acc)
    bar.close()

    timed = chunk_times[1:] or chunk_times
    timed_steps = sum(1 for _ in timed) * eval_every * spe
    last = records[-1] if records else {}
    summary = {
        "kind": "train",
        "status": status,
        "steps": epoch * spe,
        "epochs": epoch,
        "diverged_at_step": diverged_at,
        "final_train_loss": last.get("train_loss"),
        "final_test_loss": last.get("test_loss"),
        "test_accuracy": last.get("test_accuracy"),
        "samples_per_second": (timed_steps * bs / sum(timed)) if timed and sum(timed) > 0 else None,
        "first_chunk_seconds": chunk_times[0] if chunk_times else None,
        "wall_time": time.perf_counter() - t_run,
        "grad": exp.grad,
        "grad_agreement": {"start": start_agreement, "end": _agreement(model, x, y, exp.loss)},
        "output_dir": str(out),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if records:
        _save_plot(records, out / "loss_curve.png",
                   f"{data.name}: {list(exp.model.sizes)} {exp.model.activation}, lr {exp.lr}")
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from backprop_lab._checkpoint import CheckpointError
    from backprop_lab._experiment import ConfigError

    try:
        summary = train(cfg)
    except (ConfigError, CheckpointError, RunDirError) as err:
        log.error("%s", err)
        sys.exit(2)
    except Exception:
        log.exception("run failed")
        raise
    acc = summary["test_accuracy"]
    log.info("%s after %d steps: train loss %s%s; results in %s", summary["status"],
             summary["steps"], summary["final_train_loss"],
             "" if acc is None else f", test accuracy {acc:.4f}", summary["output_dir"])


if __name__ == "__main__":
    main()
