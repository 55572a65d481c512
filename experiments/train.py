#!/usr/bin/env python3
"""Train a network from a Hydra config: ``backprop-lab train``, run from a checkout.

    python experiments/train.py                                  # digits, hand-written backprop
    python experiments/train.py experiment=note003               # a preset from the notes
    python experiments/train.py -m model.activation=sigmoid,tanh,relu optimizer.lr=0.01,0.1,1.0
    python experiments/train.py -m optimizer.lr=0.001,0.01,0.1 seed=0,1,2 hydra/launcher=vmap

The app is backprop_lab.apps.train (its ``train``, ``train_lanes``, ``task`` and ``main``
are importable from here too); the configs are conf/.
"""

if __name__ == "__main__":  # a signal from here on ends the app with 128 + n, no traceback
    from backprop_lab.runs._signals import stop_on_signals

    stop_on_signals()

from backprop_lab.apps.train import log, main, task, train, train_lanes  # noqa: E402

__all__ = ["log", "main", "task", "train", "train_lanes"]

if __name__ == "__main__":
    import sys

    from backprop_lab.apps.cli import run_app

    sys.exit(run_app("train", check_overrides=False))
