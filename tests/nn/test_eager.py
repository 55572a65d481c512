"""The eager entry points run compiled programs, cached per shape, dtype, loss and variant.

* Compilations are counted with a ``jax.monitoring`` listener on XLA's
  backend-compile event: the first call at a new batch size compiles each
  entry point's program once, a repeat compiles nothing, and a second batch
  size compiles once more, not once per call.
* Results are what op-by-op execution gives (``jax.disable_jit()``), to
  1e-12 relative to the largest entry (XLA may fuse or reorder the sums, a
  few ulp here), and a repeated call gives the same bits.
* Called on tracers, inside someone else's ``jit``, ``vmap`` or ``grad``, they
  nest (no host synchronisation, which would fail on a tracer); ``accuracy``
  decides whether the targets are one-hot inside the program for that reason.

Run as a script, this file measures the loop of the issue that asked for it:
``manual_grad`` + ``sgd_step`` on a [64, 30, 10] sigmoid network at batch 10
in float32, against a per-example NumPy update in the style of Nielsen's
``network.py``: ``python tests/test_eager.py [iterations]``.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import backprop_lab as bl

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
#: a structure no other test uses, so the first call here is a first compilation
SIZES = (5, 7, 2)
CONFIG = ("softplus", "sigmoid", "binary_cross_entropy")


@contextlib.contextmanager
def count_compilations():
    counts = []

    def listener(event, duration, **kwargs):
        if event == COMPILE_EVENT:
            counts.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def make_problem(batch, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    hidden, out, loss = CONFIG
    ws = [rng.normal(size=(o, i)) / math.sqrt(i) for i, o in zip(SIZES[:-1], SIZES[1:])]
    bs = [rng.uniform(0.1, 1.0, o) for o in SIZES[1:]]
    model = bl.MLP.from_weights([w.astype(dtype) for w in ws], [b.astype(dtype) for b in bs], hidden, out)
    x = jnp.asarray(rng.normal(size=(batch, SIZES[0])), dtype)
    y = jnp.asarray(rng.uniform(size=(batch, SIZES[-1])), dtype)
    return model, x, y, loss


def relative_error(got, want) -> float:
    got, want = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)
    assert len(got) == len(want)
    scale = max(max(float(jnp.max(jnp.abs(w))) for w in want), 1e-3)
    return max(float(jnp.max(jnp.abs(g - w))) for g, w in zip(got, want)) / scale


def bitwise_equal(a, b) -> bool:
    return all(
        np.array_equal(np.asarray(p), np.asarray(q))
        for p, q in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
    )


#: entry point name → (call, programs compiled at a new batch size)
ENTRY_POINTS = {
    "manual_grad": (lambda m, x, y, loss: bl.manual_grad(m, x, y, loss), 1),
    "manual_grad_diagonal": (lambda m, x, y, loss: bl.manual_grad(m, x, y, loss, "diagonal"), 1),
    "manual_value_and_grad": (lambda m, x, y, loss: bl.manual_value_and_grad(m, x, y, loss), 1),
    "autodiff_grad": (lambda m, x, y, loss: bl.autodiff_grad(m, x, y, loss), 1),
    "loss_value": (lambda m, x, y, loss: bl.loss_value(m, x, y, loss), 1),
    "backprop_trace": (lambda m, x, y, loss: bl.backprop_trace(m, x, y, loss), 1),
    # a new batch size is no new program for the update: it sees no batch
    "sgd_step": (lambda m, x, y, loss: bl.sgd_step(m, m, 0.1), 0),
    "accuracy": (lambda m, x, y, loss: bl.accuracy(m, x, y), 1),
    "evaluate": (lambda m, x, y, loss: bl.evaluate(m, x, y, loss), 1),
}
#: entry points that take a Loss object as well as a name
TAKE_LOSS_OBJECTS = set(ENTRY_POINTS) - {"sgd_step", "accuracy", "evaluate"}


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_a_new_batch_size_compiles_once_and_repeats_compile_nothing(name):
    call, programs = ENTRY_POINTS[name]
    dtype = np.float32  # float32 here, float64 in the other tests: fresh programs either way
    results = {}
    for batch in (13, 17):
        model, x, y, loss = make_problem(batch, dtype)
        with count_compilations() as first:
            results[batch] = jax.block_until_ready(call(model, x, y, loss))
        with count_compilations() as again:
            for _ in range(3):
                repeat = jax.block_until_ready(call(model, x, y, loss))
        assert len(first) <= max(programs, 1) and len(again) == 0, (batch, len(first), len(again))
        if batch == 17:
            assert len(first) == programs, f"{name}: {len(first)} compilations at a new batch size"
        assert bitwise_equal(repeat, results[batch])
        with jax.disable_jit():
            eager = call(model, x, y, loss)
        assert relative_error(results[batch], eager) <= 2e-6  # float32: a few ε₃₂ = 1.2e-7


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_compiled_results_are_the_op_by_op_results(name):
    call, _ = ENTRY_POINTS[name]
    model, x, y, loss = make_problem(13)
    with jax.disable_jit():
        eager = call(model, x, y, loss)
    # accuracy is a float32 mean of booleans whatever the model's dtype; XLA's
    # compiled division may differ from the op-by-op one in the last bit
    tol = max(1e-12, *(4 * float(jnp.finfo(v.dtype).eps) for v in jax.tree_util.tree_leaves(eager)))
    assert relative_error(call(model, x, y, loss), eager) <= tol
    # A Loss object (unhashable, so no cache key) runs op by op and agrees too.
    if name in TAKE_LOSS_OBJECTS:
        assert relative_error(call(model, x, y, bl.get_loss(loss)), eager) <= tol


def test_check_grads_compiles_its_programs_once():
    """check_grads: hadamard, diagonal, jax.grad, the error scale and central differences, each compiled once."""
    model, x, y, loss = make_problem(19)
    with count_compilations() as first:
        report = bl.check_grads(model, x, y, loss)
    with count_compilations() as again:
        assert bl.check_grads(model, x, y, loss).to_dict() == report.to_dict()
    assert report.passed and report.numerical
    assert len(first) == 5 and len(again) == 0


def test_the_entry_points_nest_inside_jit_vmap_and_grad():
    model, x, y, loss = make_problem(13)

    @jax.jit
    def step(m, x, y):
        value, grads = bl.manual_value_and_grad(m, x, y, loss)
        return value, bl.sgd_step(m, grads, 0.5)

    value, new = step(model, x, y)
    want = bl.sgd_step(model, bl.manual_grad(model, x, y, loss), 0.5)
    assert relative_error(new, want) <= 1e-12
    assert float(value) == pytest.approx(float(bl.loss_value(model, x, y, loss)), rel=1e-14)

    xs, ys = jnp.stack([x, -x]), jnp.stack([y, y[::-1]])
    per_batch = jax.vmap(lambda xb, yb: bl.manual_grad(model, xb, yb, loss))(xs, ys)
    losses = jax.vmap(lambda xb, yb: bl.loss_value(model, xb, yb, loss))(xs, ys)
    for k in range(2):
        assert (
            relative_error(
                jax.tree_util.tree_map(lambda g: g[k], per_batch), bl.manual_grad(model, xs[k], ys[k], loss)
            )
            <= 1e-12
        )
        assert float(losses[k]) == pytest.approx(float(bl.loss_value(model, xs[k], ys[k], loss)))

    through_grad = jax.grad(lambda m: bl.loss_value(m, x, y, loss))(model)
    assert relative_error(through_grad, bl.autodiff_grad(model, x, y, loss)) <= 1e-12
    assert relative_error(through_grad, bl.manual_grad(model, x, y, loss)) <= 1e-10


@pytest.mark.parametrize("one_hot", [True, False])
def test_accuracy_decides_one_hot_inside_the_program(one_hot):
    """Against a NumPy count, eagerly, under jit and under vmap (where y is a tracer)."""
    model, x, y, loss = make_problem(13)
    if one_hot:
        y = jnp.asarray(np.eye(2)[np.arange(13) % 2])
    out = np.asarray(model(x))
    yn = np.asarray(y)
    want = (
        np.mean(out.argmax(-1) == yn.argmax(-1))
        if one_hot
        else np.mean(np.all((out > 0.5) == (yn > 0.5), axis=-1))
    )
    close = pytest.approx(want, rel=2 * float(jnp.finfo(jnp.float32).eps))  # a float32 mean
    assert float(bl.accuracy(model, x, y)) == close
    assert float(bl.evaluate(model, x, y, loss)[1]) == close
    assert float(jax.jit(bl.accuracy)(model, x, y)) == close
    stacked = jax.vmap(bl.accuracy, in_axes=(None, 0, 0))(model, jnp.stack([x, x]), jnp.stack([y, y]))
    assert [float(v) for v in stacked] == [close, close]


def test_a_traced_learning_rate_does_not_recompile_sgd_step():
    model, x, y, loss = make_problem(13)
    grads = bl.manual_grad(model, x, y, loss)
    bl.sgd_step(model, grads, 0.1)
    with count_compilations() as counts:
        for lr in (0.2, 0.3, jnp.asarray(0.4, model.weights[0].dtype)):
            new = bl.sgd_step(model, grads, lr)
    assert len(counts) <= 1  # the Python floats share a program; the array may add one
    np.testing.assert_allclose(new.weights[0], model.weights[0] - 0.4 * grads.weights[0], rtol=1e-15)


def test_a_first_trace_of_the_manual_entry_points_calls_no_autodiff(monkeypatch):
    """tests/test_batching.py's guard, on a structure traced for the first time here.

    A compiled program is traced once per shape, so a guard that patches
    jax.grad and friends only sees a first trace; this structure (one more
    input than SIZES) is used nowhere else.
    """

    def forbidden(*args, **kwargs):
        raise AssertionError("automatic differentiation was called")

    for module, name in [
        (jax, "grad"),
        (jax, "value_and_grad"),
        (jax, "vjp"),
        (jax, "jvp"),
        (jax, "linearize"),
        (jax, "linear_transpose"),
        (eqx, "filter_grad"),
        (eqx, "filter_vjp"),
    ]:
        monkeypatch.setattr(module, name, forbidden)
    rng = np.random.default_rng(3)
    model = bl.MLP.from_weights(
        [rng.normal(size=(7, 6)), rng.normal(size=(2, 7))], [rng.normal(size=7), None], "gelu", "softmax"
    )
    x, y = jnp.asarray(rng.normal(size=(5, 6))), jnp.asarray(np.eye(2)[np.arange(5) % 2])
    with count_compilations() as counts:
        for variant in ("hadamard", "diagonal"):
            bl.manual_grad(model, x, y, "sse", variant)
            bl.manual_value_and_grad(model, x, y, "sse", variant)
            bl.backprop_trace(model, x, y, "sse", variant)
    assert len(counts) == 6  # each traced (and compiled) here for the first time
    with pytest.raises(AssertionError, match="automatic differentiation"):
        bl.autodiff_grad(model, x, y, "sse")


def test_argument_errors_come_before_any_compilation():
    model, x, y, loss = make_problem(23)
    narrow, short = x[:, :3], y[:4]
    with count_compilations() as counts:
        with pytest.raises(ValueError, match="width"):
            bl.manual_grad(model, narrow, y, loss)
        with pytest.raises(ValueError, match="unknown variant"):
            bl.manual_grad(model, x, y, loss, "dense")
        with pytest.raises(ValueError, match="do not pair up"):
            bl.loss_value(model, x, short, loss)
    assert counts == []


# --- the measurement (not a test) -----------------------------------------------------------


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def nielsen_update(weights, biases, batch, eta):
    """One minibatch update of Nielsen's network.py: backprop example by example, then average."""
    nabla_b = [np.zeros_like(b) for b in biases]
    nabla_w = [np.zeros_like(w) for w in weights]
    for x, y in batch:
        activation, activations, zs = x, [x], []
        for b, w in zip(biases, weights):
            z = w @ activation + b
            zs.append(z)
            activation = _sigmoid(z)
            activations.append(activation)
        delta = (activations[-1] - y) * _sigmoid(zs[-1]) * (1 - _sigmoid(zs[-1]))
        nabla_b[-1] += delta
        nabla_w[-1] += delta @ activations[-2].T
        for l in range(2, len(weights) + 1):
            delta = (weights[-l + 1].T @ delta) * _sigmoid(zs[-l]) * (1 - _sigmoid(zs[-l]))
            nabla_b[-l] += delta
            nabla_w[-l] += delta @ activations[-l - 1].T
    weights = [w - (eta / len(batch)) * nw for w, nw in zip(weights, nabla_w)]
    biases = [b - (eta / len(batch)) * nb for b, nb in zip(biases, nabla_b)]
    return weights, biases


def _median_seconds(fn, n: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(iterations: int = 2000, sizes=(64, 30, 10), batch: int = 10, lr: float = 3.0) -> dict:
    """Seconds per update: NumPy per example, and the eager manual_grad + sgd_step loop.

    ``jax_sync`` waits for every update (a loop that reads the loss each step);
    ``jax_async`` waits once per 50 updates (a loop that only reads it now and then).
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, sizes[0])).astype(np.float32)
    y = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], batch)]
    model = bl.MLP(sizes, "sigmoid", "sigmoid", key=jax.random.PRNGKey(0), dtype=jnp.float32)
    state = {
        "model": model,
        "numpy": ([np.asarray(w) for w in model.weights], [np.asarray(b)[:, None] for b in model.biases]),
    }
    pairs = [(xi[:, None], yi[:, None]) for xi, yi in zip(x, y)]
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def numpy_update():
        state["numpy"] = nielsen_update(*state["numpy"], pairs, lr)

    def jax_updates(k):
        for _ in range(k):
            grads = bl.manual_grad(state["model"], xj, yj, "half_sse")
            state["model"] = bl.sgd_step(state["model"], grads, lr)
        jax.block_until_ready(state["model"])

    start = time.perf_counter()
    jax_updates(1)
    first = time.perf_counter() - start
    return {
        "first_call": first,
        "numpy": _median_seconds(numpy_update, iterations),
        "jax_sync": _median_seconds(lambda: jax_updates(1), iterations),
        "jax_async": _median_seconds(lambda: jax_updates(50), max(iterations // 50, 20), 2) / 50,
    }


if __name__ == "__main__":
    r = measure(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
    print(
        f"first update {r['first_call'] * 1e3:.0f} ms; per update: NumPy {r['numpy'] * 1e3:.3f} ms, "
        f"JAX waiting each update {r['jax_sync'] * 1e3:.3f} ms "
        f"({r['numpy'] / r['jax_sync']:.2f}x NumPy), "
        f"waiting every 50 {r['jax_async'] * 1e3:.3f} ms ({r['numpy'] / r['jax_async']:.2f}x NumPy)"
    )
