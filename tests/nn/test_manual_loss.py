"""manual_loss: the hand-written backprop as the gradient JAX's own transformations see.

Three kinds of evidence:

* identity: ``jax.grad`` (and ``value_and_grad``, ``eqx.filter_grad``,
  ``jax.vjp``, under ``jit`` too) of ``manual_loss(loss)`` returns
  ``manual_grad``'s arrays bit for bit, and its value is ``loss_value``'s;
* an oracle nobody here wrote: ``jax.test_util.check_grads`` (reverse mode,
  order 1, float64, its default tolerance 1e-5 against central differences of
  step 1e-4 along random directions) passes for every legal (output
  activation, loss) pairing, the hidden activation taking each of its values
  in turn (so every activation's rule is checked as a hidden layer 3-4 times
  and, where legal, as the output layer), with the derivative taken with
  respect to the model, x and y at once;
* the oracle bites: with one rule deliberately wrong (a loss's ∂ℓ/∂a, an
  activation's f′), ``check_grads`` fails.

That grid of 32 configurations runs under ``jax.disable_jit()``: one shape, so
op-by-op execution reuses each primitive's compilation, where compiled programs
would cost a compilation per configuration (about 0.4 s each). The compiled
path (a loss name) is checked at a few configurations and by the identities
above.

Kinks: relu and leaky_relu have one at z = 0, where central differences are
wrong. check_grads moves each parameter by 1e-4 times a standard normal, which
moves z by about 1e-4 · √fan_in; the data are drawn until every |z| of a
kinked layer is at least 0.05, a margin of about 200.
"""

from __future__ import annotations

import dataclasses
import math
import zlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import backprop_lab as bl

HIDDEN = sorted(name for name, act in bl.ACTIVATIONS.items() if not act.output_only)
PAIRINGS = [
    (out, loss)
    for loss, spec in sorted(bl.LOSSES.items())
    for out in sorted(bl.ACTIVATIONS)
    if spec.requires in (None, out)
]
KINKED = {"relu", "leaky_relu"}
KINK_MARGIN = 0.05
SIZES = (3, 5, 4, 3)
BATCH = 6


def kink_distance(model, x):
    zs = bl.forward_trace(model, x).z
    acts = [model.activation] * (len(zs) - 1) + [model.output_activation]
    return min((float(jnp.min(jnp.abs(z))) for z, act in zip(zs, acts) if act in KINKED), default=math.inf)


def make_problem(hidden, out, loss, sizes=SIZES, batch=BATCH, dtype=np.float64):
    """Weights N(0, 1/fan_in), biases ±U(0.1, 1) (none on the middle layer), x ~ N(0, 1);
    y ~ N(0, 1), or U(0, 1) for the cross-entropies; redrawn until clear of the kinks."""
    seed = zlib.crc32(f"{hidden}/{out}/{loss}".encode())
    for attempt in range(100):
        rng = np.random.default_rng([seed, attempt])
        ws = [rng.normal(size=(o, i)) / math.sqrt(i) for i, o in zip(sizes[:-1], sizes[1:])]
        bs = [
            None if l == 1 else rng.uniform(0.1, 1.0, o) * rng.choice([-1, 1], o)
            for l, o in enumerate(sizes[1:])
        ]
        x = rng.normal(size=(batch, sizes[0]))
        y = (
            rng.uniform(size=(batch, sizes[-1]))
            if "cross_entropy" in loss
            else rng.normal(size=(batch, sizes[-1]))
        )
        model = bl.MLP.from_weights(
            [w.astype(dtype) for w in ws], [None if b is None else b.astype(dtype) for b in bs], hidden, out
        )
        x, y = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
        if kink_distance(model, x) >= KINK_MARGIN:
            return model, x, y
    raise AssertionError("no draw clear of the kinks")


def leaves(tree):
    return jax.tree_util.tree_leaves(tree)


def assert_bitwise_equal(got, want):
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
    for g, w in zip(leaves(got), leaves(want)):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


# --- identity with manual_grad -------------------------------------------------------------

IDENTITY_CASES = [
    ("sigmoid", "sigmoid", "half_sse", "hadamard"),
    ("tanh", "softmax", "cross_entropy", "hadamard"),
    ("relu", "sigmoid", "binary_cross_entropy", "diagonal"),
    ("gelu", "softmax", "mse", "diagonal"),
]


@pytest.mark.parametrize("hidden, out, loss, variant", IDENTITY_CASES)
def test_every_reverse_mode_entry_point_gives_manual_grad_bit_for_bit(hidden, out, loss, variant):
    model, x, y = make_problem(hidden, out, loss)
    f = bl.manual_loss(loss, variant)
    want = bl.manual_grad(model, x, y, loss, variant)
    want_value = bl.loss_value(model, x, y, loss)

    assert_bitwise_equal(jax.grad(f)(model, x, y), want)
    assert_bitwise_equal(jax.jit(jax.grad(f))(model, x, y), want)
    assert_bitwise_equal(eqx.filter_grad(f)(model, x, y), want)
    value, grads = jax.value_and_grad(f)(model, x, y)
    assert_bitwise_equal(grads, want)
    primal, vjp = jax.vjp(f, model, x, y)
    assert_bitwise_equal(vjp(jnp.ones((), x.dtype))[0], want)
    for v in (value, primal, f(model, x, y), jax.jit(f)(model, x, y)):
        assert v.shape == () and v.dtype == x.dtype
        assert float(v) == pytest.approx(float(want_value), rel=1e-15)

    # A cotangent other than 1 scales the gradient.
    scaled = vjp(jnp.asarray(-2.5, x.dtype))[0]
    for s, w in zip(leaves(scaled), leaves(want)):
        np.testing.assert_allclose(s, -2.5 * np.asarray(w), rtol=1e-15, atol=0)


def test_a_single_example_and_float32():
    model, x, y = make_problem("tanh", "sigmoid", "half_sse", dtype=np.float32)
    f = bl.manual_loss("half_sse")
    assert_bitwise_equal(jax.grad(f)(model, x[2], y[2]), bl.manual_grad(model, x[2], y[2], "half_sse"))
    assert_bitwise_equal(jax.grad(f)(model, x, y), bl.manual_grad(model, x, y, "half_sse"))
    assert jax.grad(f)(model, x, y).weights[0].dtype == jnp.float32


# --- the input and target cotangents ------------------------------------------------------


@pytest.mark.parametrize("hidden, out, loss, variant", IDENTITY_CASES)
@pytest.mark.parametrize("single", [False, True])
def test_input_and_target_cotangents_match_jax_grad_of_the_loss(hidden, out, loss, variant, single):
    """∂L/∂x (δ¹ W¹ / batch) and ∂L/∂y against jax.grad of loss_value, an independent route."""
    model, x, y = make_problem(hidden, out, loss)
    if single:
        x, y = x[1], y[1]
    d_x, d_y = jax.grad(bl.manual_loss(loss, variant), argnums=(1, 2))(model, x, y)
    a_x, a_y = jax.grad(bl.loss_value, argnums=(1, 2))(model, x, y, loss)
    for got, want in ((d_x, a_x), (d_y, a_y)):
        assert got.shape == want.shape and got.dtype == want.dtype
        scale = max(float(jnp.max(jnp.abs(want))), 1e-3)
        assert float(jnp.max(jnp.abs(got - want))) <= 1e-13 * scale


def test_cotangents_take_the_dtype_of_their_argument_and_integer_targets_get_none():
    model, x, y = make_problem("sigmoid", "softmax", "cross_entropy")
    labels = jnp.eye(3, dtype=jnp.int32)[jnp.arange(BATCH) % 3]
    f = bl.manual_loss("cross_entropy")
    d_model, d_x, d_y = jax.grad(f, argnums=(0, 1, 2), allow_int=True)(model, x.astype(jnp.float32), labels)
    assert d_x.dtype == jnp.float32 and d_y.dtype == jax.dtypes.float0
    assert_bitwise_equal(d_model, bl.manual_grad(model, x.astype(jnp.float32), labels, "cross_entropy"))
    want = jax.grad(bl.loss_value, argnums=1)(model, x, labels.astype(x.dtype), "cross_entropy")
    np.testing.assert_allclose(d_x, want.astype(jnp.float32), rtol=1e-6, atol=1e-7)


# --- check_grads, an outside oracle --------------------------------------------------------


#: every (output, loss) pairing, with the hidden activation rotating through HIDDEN
GRID = [(HIDDEN[i % len(HIDDEN)], out, loss) for i, (out, loss) in enumerate(PAIRINGS)]


def test_the_grid_covers_every_activation_and_pairing():
    assert {h for h, _, _ in GRID} == set(HIDDEN)
    assert {(o, l) for _, o, l in GRID} == set(PAIRINGS) and len(PAIRINGS) == 32
    assert {o for _, o, _ in GRID} == set(bl.ACTIVATIONS) and {l for *_, l in GRID} == set(bl.LOSSES)


@pytest.mark.slow
@pytest.mark.parametrize("hidden, out, loss", GRID, ids=["-".join(c) for c in GRID])
def test_check_grads_passes_for_every_pairing(hidden, out, loss):
    model, x, y = make_problem(hidden, out, loss)
    with jax.disable_jit():
        check_grads(bl.manual_loss(loss), (model, x, y), order=1, modes=["rev"])


@pytest.mark.parametrize("hidden, out, loss, variant", IDENTITY_CASES)
def test_check_grads_passes_on_the_compiled_path(hidden, out, loss, variant):
    model, x, y = make_problem(hidden, out, loss)
    f = bl.manual_loss(loss, variant)
    check_grads(f, (model, x, y), order=1, modes=["rev"])
    check_grads(lambda m: f(m, x[0], y[0]), (model,), order=1, modes=["rev"])


def test_check_grads_fails_when_a_rule_is_wrong(monkeypatch):
    """The oracle is not vacuous: a 1% error in one hand-written rule fails it.

    Loss objects run op by op, so the patched table is read afresh (a compiled
    program for a loss name would not see a patch).
    """
    model, x, y = make_problem("tanh", "identity", "half_sse")
    good = bl.get_loss("half_sse")
    check_grads(bl.manual_loss(good), (model, x, y), order=1, modes=["rev"])

    wrong_loss = dataclasses.replace(good, grad_a=lambda a, y: 1.01 * (a - y))
    with pytest.raises(AssertionError):
        check_grads(bl.manual_loss(wrong_loss), (model, x, y), order=1, modes=["rev"])

    tanh = bl.ACTIVATIONS["tanh"]
    monkeypatch.setitem(
        bl.ACTIVATIONS, "tanh", dataclasses.replace(tanh, deriv=lambda z, a: 1.01 * tanh.deriv(z, a))
    )
    with pytest.raises(AssertionError):
        check_grads(bl.manual_loss(good), (model, x, y), order=1, modes=["rev"])


# --- transformations and training ---------------------------------------------------------


def test_vmap_and_jit_over_manual_loss():
    model, x, y = make_problem("tanh", "softmax", "cross_entropy")
    xs, ys = jnp.stack([x, 2.0 * x, -x]), jnp.stack([y, y[::-1], y])
    f = bl.manual_loss("cross_entropy")
    values = jax.jit(jax.vmap(f, in_axes=(None, 0, 0)))(model, xs, ys)
    grads = jax.vmap(jax.grad(f), in_axes=(None, 0, 0))(model, xs, ys)
    grads_jit = jax.jit(jax.vmap(jax.grad(f), in_axes=(None, 0, 0)))(model, xs, ys)
    for k in range(3):
        want = bl.manual_grad(model, xs[k], ys[k], "cross_entropy")
        assert float(values[k]) == pytest.approx(
            float(bl.loss_value(model, xs[k], ys[k], "cross_entropy")), rel=1e-14
        )
        for stacked in (grads, grads_jit):
            for g, w in zip(leaves(stacked), leaves(want)):
                np.testing.assert_allclose(g[k], w, rtol=1e-12, atol=1e-14)


def test_an_optax_loop_with_manual_loss_is_the_sgd_step_loop():
    """optax.sgd on jax.grad(manual_loss) is W ← W − lr·manual_grad, step for step."""
    model, x, y = make_problem("sigmoid", "sigmoid", "binary_cross_entropy")
    opt = optax.sgd(0.5)
    grad_fn = jax.jit(jax.grad(bl.manual_loss("binary_cross_entropy")))
    m_optax, state, m_plain = model, opt.init(model), model
    for _ in range(5):
        updates, state = opt.update(grad_fn(m_optax, x, y), state)
        m_optax = optax.apply_updates(m_optax, updates)
        m_plain = bl.sgd_step(m_plain, bl.manual_grad(m_plain, x, y, "binary_cross_entropy"), 0.5)
    for a, b in zip(leaves(m_optax), leaves(m_plain)):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)
    assert float(bl.loss_value(m_optax, x, y, "binary_cross_entropy")) < float(
        bl.loss_value(model, x, y, "binary_cross_entropy")
    )


def test_errors_are_raised_when_the_loss_is_made_or_called():
    with pytest.raises(ValueError, match="unknown loss"):
        bl.manual_loss("hinge")
    with pytest.raises(ValueError, match="unknown variant"):
        bl.manual_loss("mse", variant="dense")
    model, x, y = make_problem("tanh", "sigmoid", "mse")
    with pytest.raises(ValueError, match="width"):
        jax.grad(bl.manual_loss("mse"))(model, x[:, :2], y)
    with pytest.raises(ValueError, match="needs output_activation"):
        bl.manual_loss("cross_entropy")(model, x, y)
