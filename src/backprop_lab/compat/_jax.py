"""JAX internals the package needs (checked with jax and jaxlib 0.10.2; the project allows
jax >= 0.4.30)."""

from __future__ import annotations


def backends_are_initialized() -> bool:
    """Whether JAX has started its backends (after which XLA no longer reads ``XLA_FLAGS``).

    No public API says so without starting them: ``jax.devices()`` and
    ``jax.extend.backend.get_backend()`` start the backends they report on. A JAX
    without this internal is taken as not started, so the caller sets its flags as
    when JAX is not imported yet.
    """
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):
        return False
