"""The JAX internal of backprop_lab.compat: still there, with the signature and meaning it is used
with (these fail when a JAX release changes it)."""

from __future__ import annotations

import inspect
import subprocess
import sys


def test_xla_bridge_backends_are_initialized_takes_nothing():
    from jax._src import xla_bridge

    assert not inspect.signature(xla_bridge.backends_are_initialized).parameters


def test_backends_are_initialized_turns_true_when_the_first_array_is_made():
    """In a fresh process: false after ``import jax``, true once an array exists (which starts
    the backend, as JAX documents)."""
    code = (
        "from backprop_lab.compat._jax import backends_are_initialized as started\n"
        "import jax, jax.numpy as jnp\n"
        "before = started()\n"
        "jnp.zeros(1).block_until_ready()\n"
        "print(before, started())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "True"]
