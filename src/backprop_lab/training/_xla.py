"""XLA options for CPU training, set before JAX starts its backend.

XLA reads ``XLA_FLAGS`` once, when JAX starts (the first array or compiled
call), so :func:`configure_cpu` must run before that. The options change speed,
and results at most by float rounding in some sums; they mean nothing on GPU
or TPU.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping

#: The XLA options :func:`configure_cpu` sets, name → value.
CPU_XLA_FLAGS: dict[str, str] = {
    # XLA's CPU library YNNPACK takes the matrix products only, not the
    # reductions and element-wise work around them (the batch sums of the bias
    # gradients, the output layer's δ). Those small library calls made a
    # 784-1024-1024-10 step at batch 512 both slower and erratic from one
    # process to the next (27-34 ms instead of 26-29 ms). The sums then run
    # in XLA's own loops: results change by float32 rounding (about 1e-7).
    "xla_cpu_experimental_ynn_fusion_type": "individual_dot",
    # Copy insertion by region analysis: XLA then sees that a weight matrix
    # read by both the forward and the backward product can be updated in
    # place at the end of the step, and stops copying every such matrix on
    # every step of the training loop (about 8% of a digits step). Results
    # are unchanged to the bit.
    "xla_cpu_copy_insertion_use_region_analysis": "true",
    # A training loop whose products are all tiny (every dimension under 8, as
    # in the notes' 2-2-2 network) compiles into one kernel instead of a
    # dispatch per operation when it touches fewer bytes than this. XLA's own
    # limit let the float32 run of the notes' network through but not the
    # float64 one (0.6 µs instead of 0.1 µs per step). A loop with a product of
    # 8 or more in some dimension calls XLA's matrix library and does not
    # qualify. Results are unchanged to the bit.
    "xla_cpu_small_while_loop_byte_threshold": str(1 << 20),
}

#: Options that XLA takes inside ``--xla_backend_extra_options=k=v,...``.
_BACKEND_EXTRA = {"xla_cpu_small_while_loop_byte_threshold"}
#: The oldest jaxlib each option is set for (an unknown XLA option aborts the
#: process, so options are only set where they were tried).
_MIN_JAXLIB = {
    "xla_cpu_experimental_ynn_fusion_type": (0, 10),
    "xla_cpu_copy_insertion_use_region_analysis": (0, 10),
    "xla_cpu_small_while_loop_byte_threshold": (0, 7, 1),
}


def _jaxlib_version() -> tuple[int, ...]:
    import jaxlib

    parts = []
    for p in jaxlib.__version__.split(".")[:3]:
        digits = "".join(c for c in p if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def configure_cpu(flags: Mapping[str, str] | None = None) -> str:
    """Set the XLA options that make CPU training fast; call before JAX computes anything.

    XLA reads ``XLA_FLAGS`` once, when JAX starts its backend (the first array
    or compiled call), so an entry point calls this first thing
    (``scripts/bench`` does). Each option of :data:`CPU_XLA_FLAGS` (or of
    ``flags``) is added unless ``XLA_FLAGS`` already names it: a user's own
    setting wins. Options this jaxlib is too old to know are left out. The
    options change speed, and results only by float rounding in some sums.

    Arguments:
        flags: name → value; default :data:`CPU_XLA_FLAGS`.

    Returns:
        The ``XLA_FLAGS`` now in the environment. If the backend has already
        started, nothing is changed and a warning says so.
    """
    flags = CPU_XLA_FLAGS if flags is None else flags
    current = os.environ.get("XLA_FLAGS", "")
    started = False
    if "jax" in sys.modules:  # JAX not imported: no backend yet (and importing it costs ~1.5 s)
        from ..compat._jax import backends_are_initialized

        started = backends_are_initialized()
    if started:
        warnings.warn(
            "configure_cpu() was called after JAX started its backend; XLA_FLAGS "
            "unchanged (call it before the first JAX computation)",
            stacklevel=2,
        )
        return current
    os.environ["XLA_FLAGS"] = merge_xla_flags(current, flags, _jaxlib_version())
    return os.environ["XLA_FLAGS"]


def merge_xla_flags(current: str, flags: Mapping[str, str], version: tuple[int, ...]) -> str:
    """``current`` XLA_FLAGS with ``flags`` added as :func:`configure_cpu` adds them.

    An option already named in ``current`` is kept as it is; one that this
    jaxlib ``version`` predates (see ``_MIN_JAXLIB``) is skipped; backend
    options join an existing ``--xla_backend_extra_options`` list.
    """
    parts = current.split()
    for name, value in flags.items():
        if name in current or version < _MIN_JAXLIB.get(name, ()):
            continue
        if name in _BACKEND_EXTRA:
            extra = [i for i, p in enumerate(parts) if p.startswith("--xla_backend_extra_options=")]
            if extra:
                parts[extra[0]] += f",{name}={value}"
            else:
                parts.append(f"--xla_backend_extra_options={name}={value}")
        else:
            parts.append(f"--{name}={value}")
    return " ".join(parts)
