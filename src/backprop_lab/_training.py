"""Jit-compiled training: many optimizer steps inside one ``lax.scan``.

One step is gradient → ``optimizer.update`` → ``optax.apply_updates``, with
the gradient from the hand-written backprop ("manual") or from jax.grad
("autodiff"). A whole run of steps is one compiled program, so small networks
are not bound by Python dispatch. The compiled program is cached on the shapes
and on the *structure* of the optimizer, so calling :func:`train` again with
an equal optimizer (``optax.sgd(0.1)`` built afresh, say) reuses it.

On CPU, an entry point calls :func:`configure_cpu` before JAX starts: XLA
options that make training faster (results change at most by float rounding).

The step index and the PRNG key are traced values, and so is anything an
optimizer keeps in its state (the learning rate of an
``optax.inject_hyperparams`` optimizer, as :func:`make_optimizer` builds them),
so a sweep can ``jax.vmap`` over learning rates and seeds without recompiling.
"""

from __future__ import annotations

import functools
import math
import os
import types
import warnings
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._autodiff import autodiff_grad
from ._backprop import _prepare, loss_value, manual_value_and_grad
from ._losses import Loss
from ._network import MLP

Array = jax.Array


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
_MIN_JAXLIB = {"xla_cpu_experimental_ynn_fusion_type": (0, 10),
               "xla_cpu_copy_insertion_use_region_analysis": (0, 10),
               "xla_cpu_small_while_loop_byte_threshold": (0, 7, 1)}


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
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):
        started = False
    if started:
        warnings.warn("configure_cpu() was called after JAX started its backend; XLA_FLAGS "
                      "unchanged (call it before the first JAX computation)", stacklevel=2)
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


def _autodiff_value_and_grad(model: MLP, x: Array, y: Array, loss: str | Loss):
    return loss_value(model, x, y, loss), autodiff_grad(model, x, y, loss)


#: Where gradients come from: name → ``(model, x, y, loss) -> (L, grads)``.
GRADS: dict[str, Callable] = {
    "manual": manual_value_and_grad,
    "autodiff": _autodiff_value_and_grad,
}


#: Optimizers by config name; each takes ``learning_rate`` and its own keywords.
OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": lambda learning_rate: optax.sgd(learning_rate),
    "momentum": lambda learning_rate, momentum=0.9, nesterov=False: optax.sgd(
        learning_rate, momentum=momentum, nesterov=nesterov
    ),
    "adam": lambda learning_rate, b1=0.9, b2=0.999, eps=1e-8: optax.adam(
        learning_rate, b1=b1, b2=b2, eps=eps
    ),
}


def make_optimizer(name: str, lr: float, **kwargs) -> optax.GradientTransformation:
    """An optax optimizer whose learning rate is a traced value in its state.

    Arguments:
        name: "sgd", "momentum" or "adam".
        lr: the learning rate, a positive finite number.
        **kwargs: the optimizer's own settings (momentum, b1, b2, …).

    Returns:
        ``optax.inject_hyperparams(...)`` of the optimizer: its state holds
        ``hyperparams["learning_rate"]``, which sweeps replace lane by lane
        (``_sweep.with_learning_rate``).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid optimizers are: {', '.join(OPTIMIZERS)}")
    check_learning_rate(lr)
    return optax.inject_hyperparams(OPTIMIZERS[name])(learning_rate=lr, **kwargs)


def check_learning_rate(lr) -> None:
    """Raise unless lr is a finite number > 0."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)):
        raise ValueError(f"learning rate must be a number > 0, got {lr!r}")
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"learning rate must be finite and > 0, got {lr!r}")


def _fingerprint(obj, depth: int = 0):
    """A hashable description of an optimizer's structure and settings.

    Two ``optax.sgd(0.1)`` built separately have equal fingerprints; anything
    not understood falls back to its identity, which is always safe.
    """
    if depth > 40:
        return ("id", id(obj))
    fp = functools.partial(_fingerprint, depth=depth + 1)
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, type)):
        return (type(obj).__name__, obj)
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, tuple(fp(o) for o in obj))
    if isinstance(obj, dict):
        return ("dict", tuple(sorted((repr(k), fp(v)) for k, v in obj.items())))
    if isinstance(obj, functools.partial):
        return ("partial", fp(obj.func), fp(obj.args), fp(obj.keywords))
    if isinstance(obj, types.FunctionType):
        cells = tuple(fp(c.cell_contents) for c in obj.__closure__ or ())
        return ("fn", obj.__module__, obj.__code__, cells, fp(obj.__defaults__), fp(obj.__kwdefaults__))
    if isinstance(obj, types.BuiltinFunctionType | types.ModuleType):
        return ("id", id(obj))
    if isinstance(obj, types.MethodType):
        return ("method", fp(obj.__func__), fp(obj.__self__))
    if isinstance(obj, (np.ndarray, np.generic)) or (
        isinstance(obj, jax.Array) and not isinstance(obj, jax.core.Tracer)
    ):
        arr = np.asarray(obj)
        return ("array", arr.shape, str(arr.dtype), arr.tobytes())
    return ("id", id(obj))


class _Static:
    """Wrap an optimizer so jit's cache compares it by structure, not identity."""

    def __init__(self, value):
        self.value = value
        self._key = _fingerprint(value)

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, _Static) and self._key == other._key


def batch_indices(key: Array, step: Array, n: int, batch_size: int) -> Array:
    """The example indices of a step: epoch e reads a permutation seeded by (key, e).

    Arguments:
        key: the run's PRNG key.
        step: the global step number (traced).
        n: number of examples; batch_size: examples per step (the remainder of
            an epoch is dropped).

    Returns:
        int array of shape (batch_size,).
    """
    per_epoch = n // batch_size
    perm = _epoch_permutation(key, step // per_epoch, n)
    return jax.lax.dynamic_slice_in_dim(perm, (step % per_epoch) * batch_size, batch_size)


def _epoch_permutation(key: Array, epoch: Array, n: int) -> Array:
    return jax.random.permutation(jax.random.fold_in(key, epoch), n)


def _run_impl(model, opt_state, x, y, key, start, *, loss, optimizer, steps, batch_size, grad):
    value_and_grad = GRADS[grad]
    opt = optimizer.value
    n = x.shape[0]
    per_epoch = 1 if batch_size is None else n // batch_size

    # The batches are those of batch_indices, but the epoch's permutation (a sort
    # of n random keys, costlier than a small network's whole step) is drawn once
    # per epoch and carried, not redrawn every step.
    def step(carry, i):
        model, opt_state, perm = carry
        if batch_size is None:
            xb, yb = x, y
        else:
            if per_epoch == 1:  # every step is an epoch of its own
                order = _epoch_permutation(key, i, n)
            else:
                perm = jax.lax.cond(i % per_epoch == 0,
                                    lambda: _epoch_permutation(key, i // per_epoch, n),
                                    lambda: perm)
                order = perm
            idx = jax.lax.dynamic_slice_in_dim(order, (i % per_epoch) * batch_size, batch_size)
            xb, yb = x[idx], y[idx]
        value, grads = value_and_grad(model, xb, yb, loss)
        updates, opt_state = opt.update(grads, opt_state, model)
        return (optax.apply_updates(model, updates), opt_state, perm), value

    if batch_size is None or per_epoch == 1:
        perm = jnp.zeros((0,), jnp.int32)  # unused placeholder
    else:
        perm = _epoch_permutation(key, start // per_epoch, n)
    (model, opt_state, _), losses = jax.lax.scan(step, (model, opt_state, perm),
                                                 start + jnp.arange(steps))
    return model, opt_state, losses


_run = jax.jit(_run_impl, static_argnames=("loss", "optimizer", "steps", "batch_size", "grad"))


def check_train_args(model: MLP, x, y, *, loss, optimizer, steps, batch_size, grad) -> None:
    """All the checks :func:`train` makes before compiling anything."""
    _prepare(model, x, y, loss)
    if grad not in GRADS:
        raise ValueError(f"unknown grad {grad!r}; valid choices are: {', '.join(GRADS)}")
    if not hasattr(optimizer, "init") or not hasattr(optimizer, "update"):
        raise ValueError(f"optimizer must be an optax GradientTransformation, got {type(optimizer).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    n = 1 if len(x.shape) == 1 else x.shape[0]
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
        or not 1 <= batch_size <= n
    ):
        raise ValueError(f"batch_size must be None (full batch) or an integer from 1 to {n}, got {batch_size!r}")


def run_steps(model: MLP, opt_state, x: Array, y: Array, key: Array, start: int | Array = 0, *,
              loss: str, optimizer: optax.GradientTransformation, steps: int,
              batch_size: int | None = None, grad: str = "manual"):
    """Continue training for ``steps`` steps from global step ``start``.

    Arguments:
        model: the network; opt_state: ``optimizer.init(model)`` or a saved state.
        x: (n, in); y: (n, out), both already in the model's dtype.
        key: PRNG key for the minibatch order; start: the first step's number,
            so a resumed run draws the same batches as an uninterrupted one.

    Returns:
        ``(model, opt_state, losses)`` with ``losses`` of shape (steps,).
    """
    return _run(model, opt_state, x, y, key, jnp.asarray(start, jnp.int32), loss=loss,
                optimizer=_Static(optimizer), steps=int(steps),
                batch_size=None if batch_size is None else int(batch_size), grad=grad)


def train(model: MLP, x: Array, y: Array, *, loss: str, optimizer: optax.GradientTransformation,
          steps: int, batch_size: int | None = None, grad: str = "manual",
          key: Array | None = None) -> tuple[MLP, Array]:
    """Train ``model`` for ``steps`` optimizer steps in one compiled program.

    Arguments:
        model: the network.
        x: inputs (n, in) (or one example (in,)); y: targets (n, out).
        loss: a loss name (see ``LOSSES``).
        optimizer: an optax GradientTransformation, e.g. ``optax.sgd(0.5)``.
        steps: number of optimizer steps.
        batch_size: None for full batch; else minibatches from a fresh
            permutation per epoch (the remainder of an epoch is dropped).
        grad: "manual" (hand-written backprop) or "autodiff" (jax.grad).
        key: PRNG key for the minibatch order (default ``PRNGKey(0)``).

    Returns:
        ``(trained_model, history)``: history is the loss of each step,
        shape (steps,), taken before that step's update.
    """
    check_train_args(model, x, y, loss=loss, optimizer=optimizer, steps=steps,
                     batch_size=batch_size, grad=grad)
    dtype = model.weights[0].dtype
    x = jnp.atleast_2d(jnp.asarray(x, dtype))
    y = jnp.atleast_2d(jnp.asarray(y, dtype))
    key = jax.random.PRNGKey(0) if key is None else key
    model, _, losses = run_steps(model, optimizer.init(model), x, y, key, 0, loss=loss,
                                 optimizer=optimizer, steps=steps, batch_size=batch_size, grad=grad)
    return model, losses


def _accuracy(a: Array, y: Array, one_hot: bool) -> Array:
    if one_hot:
        return jnp.mean(jnp.argmax(a, axis=-1) == jnp.argmax(y, axis=-1))
    return jnp.mean(jnp.all((a > 0.5) == (y > 0.5), axis=-1))


def _is_one_hot(y) -> bool:
    y = np.asarray(y)
    return y.ndim == 2 and y.shape[-1] > 1 and bool(np.all(y.sum(-1) == 1) and np.all((y == 0) | (y == 1)))


def accuracy(model: MLP, x: Array, y: Array) -> Array:
    """Fraction of examples classified right.

    Argmax against one-hot targets; otherwise every output thresholded at 0.5
    (logic gates, note 004's swap table).

    Arguments:
        model: the network; x: (n, in); y: (n, out).
    """
    return _accuracy(model(jnp.asarray(x, model.weights[0].dtype)), jnp.asarray(y), _is_one_hot(y))


@functools.partial(jax.jit, static_argnames=("loss", "one_hot"))
def _evaluate(model, x, y, *, loss, one_hot):
    return loss_value(model, x, y, loss), _accuracy(model(x), y, one_hot)


def evaluate(model: MLP, x: Array, y: Array, loss: str) -> tuple[Array, Array]:
    """``(loss, accuracy)`` of a data set in one compiled call (see :func:`accuracy`)."""
    return _evaluate(model, jnp.asarray(x, model.weights[0].dtype), jnp.asarray(y), loss=loss,
                     one_hot=_is_one_hot(y))
