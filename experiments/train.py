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
import sys
import time
from pathlib import Path

import hydra
import jax.numpy as jnp
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from tqdm import tqdm

log = logging.getLogger("backprop_lab.train")


class RunDirError(RuntimeError):
    """The output directory already holds a run that this one would overwrite."""


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
    from backprop_lab import _runs as runs
    from backprop_lab import evaluate, run_steps
    from backprop_lab._checkpoint import load_checkpoint, save_checkpoint
    from backprop_lab._experiment import build_experiment

    out = Path(out_dir or HydraConfig.get().runtime.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs.setup_jax(cfg)
    exp = build_experiment(cfg)
    ckpt_path, metrics_path = out / runs.CHECKPOINT, out / runs.METRICS
    log_every = int(cfg.get("log_every", 1) or 1)

    data = exp.data
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    x_test, y_test = jnp.asarray(data.x_test), jnp.asarray(data.y_test)
    classify = data.n_classes is not None
    model, opt_state, epoch = exp.model, exp.optimizer.init(exp.model), 0
    if ckpt_path.exists():
        if not cfg.get("resume", False):
            raise RunDirError(
                f"{out} already holds a run ({runs.CHECKPOINT}); pass resume=true to continue it, "
                "or choose another hydra.run.dir"
            )
        (model, opt_state), header = load_checkpoint(ckpt_path, (model, opt_state))
        epoch = header["epoch"]
        log.info("resuming from %s at epoch %d (step %d)", ckpt_path, epoch, header["step"])
    records = runs.read_metrics(metrics_path, epoch)
    runs.write_metrics(metrics_path, records)

    start_agreement = runs.grad_agreement(exp.model, x, y, exp.loss)
    status, diverged_at, chunk_times, chunk_steps = "completed", None, [], []
    spe, bs = exp.steps_per_epoch, exp.batch_size
    bar = tqdm(total=exp.epochs, initial=epoch, unit="epoch", disable=not sys.stderr.isatty())
    t_run = time.perf_counter()
    while epoch < exp.epochs:
        n_epochs = min(log_every, exp.epochs - epoch)
        t0 = time.perf_counter()
        model_next, opt_next, losses = run_steps(
            model, opt_state, x, y, exp.key, epoch * spe, loss=exp.loss, optimizer=exp.optimizer,
            steps=n_epochs * spe, batch_size=None if bs == data.n_train else bs, grad=exp.grad)
        losses = np.asarray(losses)
        chunk_times.append(time.perf_counter() - t0)
        chunk_steps.append(losses.size)
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size or not runs.params_finite(model_next):
            status = "diverged"
            diverged_at = int(epoch * spe + (bad[0] if bad.size else losses.size - 1))
            log.warning("diverged at step %d (loss not finite); stopping this run", diverged_at)
            break
        model, opt_state, epoch = model_next, opt_next, epoch + n_epochs
        test_loss, test_acc = evaluate(model, x_test, y_test, exp.loss)
        rec = runs.metrics_record(epoch, epoch * spe, losses.mean(), test_loss,
                                  test_acc if classify else None, time.perf_counter() - t_run)
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

    # The first chunk pays the compile (or cache load); throughput is taken without it.
    timed = slice(1, None) if len(chunk_times) > 1 else slice(None)
    seconds, steps_timed = sum(chunk_times[timed]), sum(chunk_steps[timed])
    summary = runs.run_summary(
        status=status, steps=epoch * spe, epochs=epoch, diverged_at_step=diverged_at,
        records=records, samples_per_second=steps_timed * bs / seconds if seconds > 0 else None,
        wall_time=time.perf_counter() - t_run, grad=exp.grad,
        agreement={"start": start_agreement, "end": runs.grad_agreement(model, x, y, exp.loss)},
        output_dir=out, first_chunk_seconds=chunk_times[0] if chunk_times else None,
    )
    runs.write_json(out / runs.SUMMARY, summary)
    if records:
        runs.save_loss_plot(records, out / runs.PLOT,
                            f"{data.name}: {list(exp.model.sizes)} {exp.model.activation}, lr {exp.lr}")
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from backprop_lab import _runs as runs
    from backprop_lab._checkpoint import CheckpointError
    from backprop_lab._experiment import ConfigError

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # no backend-probing chatter
    try:
        summary = train(cfg)
    except ConfigError as err:
        runs.stop_on_config_error(err, "train", log)
        return
    except (CheckpointError, RunDirError) as err:
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
    from backprop_lab import configure_cpu

    configure_cpu()  # CPU options for XLA, set before JAX starts its backend
    main()
