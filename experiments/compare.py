#!/usr/bin/env python3
"""Check the hand-written gradient against jax.grad on one batch, and time both:
``backprop-lab compare``, run from a checkout.

    python experiments/compare.py data.name=random model.sizes=[2,2,2]
    python experiments/compare.py -m data.name=random model.activation=sigmoid,tanh,relu,gelu \\
        dtype=float32,float64 'model.sizes=[2,2,2],[64,256,256,10]'

The app is backprop_lab.apps.compare (its ``compare`` and ``main`` are importable from
here too); the configs are conf/.
"""

from backprop_lab.apps.compare import compare, log, main, random_batch, time_grads

__all__ = ["compare", "log", "main", "random_batch", "time_grads"]

if __name__ == "__main__":
    import sys

    from backprop_lab.apps.cli import run_app

    sys.exit(run_app("compare", check_overrides=False))
