"""train/run_steps against independent expectations: a plain loop of the notes' update,
the NumPy reference, the documented batch order, and no recompiling on a second call."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import backprop_lab as bl
from backprop_lab import reference
from backprop_lab.training._train import _run, batch_indices


def _data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = np.eye(2)[rng.integers(0, 2, n)]
    return jnp.asarray(x), jnp.asarray(y)


def _model():
    return bl.MLP([3, 5, 2], "tanh", "softmax", key=jax.random.PRNGKey(3), dtype=jnp.float64)


@pytest.mark.slow
def test_minibatches_are_those_of_batch_indices():
    """7 steps of batch 3 over 8 examples (2 steps an epoch, so epochs turn over twice)."""
    x, y = _data()
    key = jax.random.PRNGKey(5)
    trained, history = bl.train(
        _model(), x, y, loss="cross_entropy", optimizer=optax.sgd(0.3), steps=7, batch_size=3, key=key
    )
    model, losses = _model(), []
    for step in range(7):
        idx = batch_indices(key, jnp.asarray(step), 8, 3)
        losses.append(bl.loss_value(model, x[idx], y[idx], "cross_entropy"))
        model = bl.sgd_step(model, bl.manual_grad(model, x[idx], y[idx], "cross_entropy"), 0.3)
    np.testing.assert_allclose(history, losses, rtol=1e-12)
    for a, b in zip(jax.tree.leaves(trained), jax.tree.leaves(model)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_full_batch_training_equals_the_numpy_reference():
    x, y = _data(n=6, seed=1)
    model = _model()
    trained, history = bl.train(model, x, y, loss="half_sse", optimizer=optax.sgd(0.5), steps=50)
    weights, biases, losses = reference.train_sgd(
        [np.asarray(w) for w in model.weights],
        [np.asarray(b) for b in model.biases],
        np.asarray(x),
        np.asarray(y),
        "tanh",
        "softmax",
        "half_sse",
        lr=0.5,
        steps=50,
    )
    np.testing.assert_allclose(history, losses, rtol=1e-12)
    for a, b in zip(trained.weights + trained.biases, weights + biases):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


@pytest.mark.slow
def test_continuing_from_a_step_equals_running_straight_through():
    x, y = _data()
    key, opt = jax.random.PRNGKey(2), optax.adam(0.01)
    model = _model()
    straight, _, l_all = bl.run_steps(
        model, opt.init(model), x, y, key, 0, loss="cross_entropy", optimizer=opt, steps=9, batch_size=3
    )
    half, state, l_a = bl.run_steps(
        model, opt.init(model), x, y, key, 0, loss="cross_entropy", optimizer=opt, steps=5, batch_size=3
    )
    rest, _, l_b = bl.run_steps(
        half, state, x, y, key, 5, loss="cross_entropy", optimizer=opt, steps=4, batch_size=3
    )
    np.testing.assert_array_equal(np.concatenate([l_a, l_b]), l_all)
    for a, b in zip(jax.tree.leaves(rest), jax.tree.leaves(straight)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "make", [lambda: optax.sgd(0.1), lambda: optax.adam(1e-3), lambda: bl.make_optimizer("momentum", 0.05)]
)
@pytest.mark.slow
def test_second_call_with_an_equal_optimizer_does_not_recompile(make):
    x, y = _data()
    bl.train(_model(), x, y, loss="cross_entropy", optimizer=make(), steps=4, batch_size=4)
    compiled = _run._cache_size()
    bl.train(_model(), x, y, loss="cross_entropy", optimizer=make(), steps=4, batch_size=4)
    assert _run._cache_size() == compiled
    bl.train(_model(), x, y, loss="cross_entropy", optimizer=make(), steps=5, batch_size=4)
    assert _run._cache_size() == compiled + 1  # a new number of steps is a new program
