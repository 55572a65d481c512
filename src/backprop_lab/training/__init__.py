"""Training: optimizers (optax), the compiled ``lax.scan`` over steps, lanes of one
vmapped program, device sharding, XLA's CPU options and early stopping.

Modules: ``_optimizers``, ``_train`` (:func:`train`, one scan), ``_lanes`` (runs as lanes
of one program), ``_sharding`` (lanes and batches over devices), ``_xla`` (options set
before JAX starts), ``_early_stopping``.
"""
