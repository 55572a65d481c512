#!/usr/bin/env python3
"""Write one backpropagation step out by hand, as the notes do: ``backprop-lab explain``,
run from a checkout.

    python experiments/explain.py experiment=note003
    python experiments/explain.py experiment=note004 data=note004 round_each_step=4 names=letters
    python experiments/explain.py model.sizes=[3,4,2] model.activation=tanh 'x=[1,0,-1]' 'y=[0,1]'

The app is backprop_lab.apps.explain (its ``explain_config``, ``draw_network`` and ``main``
are importable from here too); the configs are conf/.
"""

from backprop_lab.apps.explain import draw_network, explain_config, log, main

__all__ = ["draw_network", "explain_config", "log", "main"]

if __name__ == "__main__":
    import sys

    from backprop_lab.apps.cli import run_app

    sys.exit(run_app("explain", check_overrides=False))
