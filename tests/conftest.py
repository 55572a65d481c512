"""Test-wide JAX settings: float64 available, and silent broadcasting is an error."""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
