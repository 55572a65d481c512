"""configure_cpu: the XLA options it adds to a user's own, and nothing once JAX has started."""

import pytest


def test_configure_cpu_adds_options_and_keeps_the_users():
    from backprop_lab.training._xla import CPU_XLA_FLAGS, merge_xla_flags

    new = merge_xla_flags("", CPU_XLA_FLAGS, (0, 10, 2))
    assert "--xla_cpu_copy_insertion_use_region_analysis=true" in new.split()
    assert "--xla_cpu_experimental_ynn_fusion_type=individual_dot" in new.split()
    assert "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1048576" in new.split()
    # a user's own value wins; other backend options are extended, not replaced
    mine = "--xla_cpu_copy_insertion_use_region_analysis=false --xla_backend_extra_options=a=1"
    merged = merge_xla_flags(mine, CPU_XLA_FLAGS, (0, 10, 2)).split()
    assert "--xla_cpu_copy_insertion_use_region_analysis=false" in merged
    assert "--xla_backend_extra_options=a=1,xla_cpu_small_while_loop_byte_threshold=1048576" in merged
    # an old jaxlib gets nothing it may not know
    assert merge_xla_flags("", CPU_XLA_FLAGS, (0, 4, 30)) == ""


def test_configure_cpu_after_jax_started_changes_nothing(monkeypatch):
    import jax.numpy as jnp

    from backprop_lab import configure_cpu

    jnp.zeros(1).block_until_ready()
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    with pytest.warns(UserWarning, match="after JAX started"):
        assert configure_cpu() == "--xla_cpu_enable_fast_math=false"
