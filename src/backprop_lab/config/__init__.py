"""Config key tables and their checks: the value rules (:class:`Check`, :class:`ConfigError`),
the tables for each group, the names of every option, and the optimized metric.

Nothing here imports JAX, NumPy or Hydra: ``--help`` and the sweep summary read these
tables in a process that trains nothing.
"""
