"""The scale of check_grads' relative errors: the gradient with every term taken in absolute value.

Expectations are independent of the code: a bound that holds entry by entry, the
gradient itself where nothing can cancel, and a network fitted to 0/1 targets,
whose gradient is a small difference of numbers near 1, where two correct routes
differ by rounding that is large against the gradient and small against its terms.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from backprop_lab import MLP, check_grads
from backprop_lab.checks._agreement import grad_agreement
from backprop_lab.checks._report import TOLERANCES, _tensors
from backprop_lab.checks._scale import term_scales
from backprop_lab.nn._backprop import manual_grad
from backprop_lab.nn._network import forward_trace


def _net(sizes, hidden, output, dtype, seed=0):
    return MLP(sizes, hidden, output, key=jax.random.PRNGKey(seed), dtype=dtype)


@pytest.mark.parametrize(
    "hidden, output, loss",
    [("tanh", "softmax", "cross_entropy"), ("relu", "identity", "mse"), ("sigmoid", "softmax", "half_sse")],
)
def test_the_scale_bounds_every_gradient_entry(hidden, output, loss):
    sizes = [3, 6, 5, 4]
    model = _net(sizes, hidden, output, jnp.float64)
    x = jax.random.normal(jax.random.PRNGKey(1), (9, 3), jnp.float64)
    y = jax.nn.one_hot(jnp.arange(9) % 4, 4, dtype=jnp.float64)
    grads = [g for *_, g in _tensors(manual_grad(model, x, y, loss))]
    scales = term_scales(model, x, y, loss)
    assert len(scales) == len(grads)
    for g, s in zip(grads, scales):
        assert np.abs(g).max() <= s


def test_the_scale_is_the_gradient_where_nothing_cancels():
    """One example, positive input and weights, identity layers, target 0: every term is positive."""
    w1 = np.array([[0.5, 1.0], [2.0, 0.25], [1.5, 0.75]])
    w2 = np.array([[1.0, 0.5, 2.0]])
    model = MLP.from_weights([w1, w2], [np.ones(3), np.ones(1)], "identity", "identity")
    x, y = jnp.array([[1.0, 3.0]]), jnp.array([[0.0]])
    grads = [g for *_, g in _tensors(manual_grad(model, x, y, "half_sse"))]
    eps = float(np.finfo(np.float64).eps)
    for g, s in zip(grads, term_scales(model, x, y, "half_sse")):
        # |f′| + eps = 1 + eps on each of the two layers between the loss and W¹
        assert s == pytest.approx(np.abs(g).max(), rel=4 * eps)


def _fitted(hidden, dtype):
    """A [2, 8, 8, 1] network whose sigmoid output is within ~e^−12 of 0/1 targets on 32 points:
    the output layer's weights scaled so the median |z| is 12, targets y = (z > 0)."""
    model = _net([2, 8, 8, 1], hidden, "sigmoid", dtype, seed=4)
    x = jax.random.normal(jax.random.PRNGKey(5), (32, 2), dtype)
    z = forward_trace(model, x).z[-1]
    k = 12.0 / float(jnp.median(jnp.abs(z)))
    weights = [np.asarray(w) for w in model.weights]
    biases = [np.asarray(b) for b in model.biases]
    weights[-1], biases[-1] = weights[-1] * k, biases[-1] * k
    fitted = MLP.from_weights(weights, biases, hidden, "sigmoid").astype(dtype)
    return fitted, x, (z > 0).astype(dtype)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "gelu"])
def test_a_fitted_network_passes(dtype, hidden):
    """δᴸ = a − y is small while a and y are not: jax.grad's route through softplus′ and the
    hand-written a − y differ by about eps absolute, a large fraction of the gradient
    itself (the sweep's false alarm), a few eps of the terms."""
    model, x, y = _fitted(hidden, dtype)
    report = check_grads(model, x, y, "binary_cross_entropy", numerical=False)
    assert report.passed, str(report)
    eps = float(jnp.finfo(dtype).eps)
    assert report.max_rel_error <= 16 * eps
    if hidden == "sigmoid" and dtype == jnp.float32:  # what an error relative to the gradient gives
        assert max(c.max_abs_error / c.autodiff_norm for c in report.checks) > 1e3 * eps
    fields = grad_agreement(model, x, y, "binary_cross_entropy")
    assert fields["passed"] is True
    assert fields["tolerance"] == TOLERANCES[np.dtype(dtype).name]["autodiff"] == 64 * eps
    assert fields["max_abs_error"] == report.max_abs_error
    assert fields["max_rel_error"] == report.max_rel_error
