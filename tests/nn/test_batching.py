"""Batches, transformations and the network's plumbing.

(a) The batch gradient is the mean of the per-example gradients (note 002's
    open question "optimizing on batch: just sum up C and gradients?": with the
    mean loss used here the batch gradient is the mean of the per-example ones;
    with a summed loss it is their sum, batch_size times the mean's gradient).
(b) manual_grad gives under jax.jit and jax.vmap what it gives eagerly.
(c) manual_grad never calls automatic differentiation.
(d) sgd_step is W − lr·dW leaf by leaf, and keeps None biases.
(e) model(x), forward_trace, the augmented-matrix round trip, and MLP's inits.

Shapes are small and fixed so that compiled primitives are shared between
tests. Comparisons that only reorder float64 sums use
max |Δ| / max(max |reference|, 1e-3) ≤ 1e-12: reordering a sum of n terms
changes it by at most about n·ε₆₄ relative (n ≤ 8 here, ε₆₄ = 2.2e-16), and
the 1e-3 floor keeps near-zero gradients from turning rounding noise into a
large relative error.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from backprop_lab import (
    ACTIVATIONS,
    INITS,
    MLP,
    autodiff_grad,
    backprop_trace,
    forward_trace,
    loss_value,
    manual_grad,
    manual_value_and_grad,
    sgd_step,
)

RTOL = 1e-12
FLOOR = 1e-3
SIZES = (3, 5, 4, 3)
BATCH = 4  # SIZES and BATCH as in test_gradients' fixed-shape sweep: eager compilations are shared

#: (hidden, output, loss, which layers have a bias)
CONFIGS = [
    ("sigmoid", "sigmoid", "half_sse", (True, True, True)),
    ("tanh", "softmax", "cross_entropy", (True, False, True)),
    ("relu", "sigmoid", "binary_cross_entropy", (False, True, False)),
    ("gelu", "identity", "mse", (False, False, False)),
    ("elu", "softmax", "sse", (True, True, False)),
]
CONFIG_IDS = [f"{h}-{o}-{l}" for h, o, l, _ in CONFIGS]
#: every config with the Hadamard form; the diagonal form where it differs most
#: (softmax's full Jacobian under sse, and an element-wise diag(f′) under relu)
CASES = [(c, "hadamard") for c in CONFIGS] + [(CONFIGS[4], "diagonal"), (CONFIGS[2], "diagonal")]
CASE_IDS = [f"{i}-{v}" for i, (_, v) in zip(CONFIG_IDS + [CONFIG_IDS[4], CONFIG_IDS[2]], CASES)]


def make_problem(config, seed=0, sizes=SIZES, batch=BATCH, dtype=np.float64):
    hidden, out, loss, has_bias = config
    rng = np.random.default_rng(seed)
    ws = [rng.normal(size=(o, i)) / math.sqrt(i) for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [
        rng.uniform(0.1, 1.0, size=o) * rng.choice([-1, 1], size=o) if keep else None
        for o, keep in zip(sizes[1:], has_bias)
    ]
    x = rng.normal(size=(batch, sizes[0]))
    y = (
        rng.uniform(size=(batch, sizes[-1]))
        if "cross_entropy" in loss
        else rng.normal(size=(batch, sizes[-1]))
    )
    cast = lambda v: None if v is None else np.asarray(v, dtype)  # noqa: E731
    model = MLP.from_weights([cast(w) for w in ws], [cast(b) for b in bs], hidden, out)
    return model, jnp.asarray(x, dtype), jnp.asarray(y, dtype), loss


def params(g: MLP) -> list:
    return list(g.weights) + list(g.biases)


def relative_error(got: MLP, want: MLP, floor=FLOOR) -> float:
    """max |got − want| / max(max |want|, floor) over every entry; same None positions."""
    scale, diff = floor, 0.0
    assert len(params(got)) == len(params(want))
    for g, w in zip(params(got), params(want)):
        assert (g is None) == (w is None)
        if g is None:
            continue
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        assert g.shape == w.shape
        scale = max(scale, float(np.max(np.abs(w))))
        diff = max(diff, float(np.max(np.abs(g - w))))
    return diff / scale


def per_example_grads(model, x, y, loss, variant="hadamard"):
    """manual_grad of each single 1-D example, stacked along a leading axis by jax.vmap."""
    return jax.vmap(lambda xi, yi: manual_grad(model, xi, yi, loss, variant))(x, y)


@functools.partial(jax.jit, static_argnames=("loss", "variant"))
def batch_and_per_example(model, x, y, loss, variant):
    """The batch gradient and loss, and the per-example ones, in one compilation.

    (Jitted for speed only: compiling this once costs less than running its
    vmapped primitives eagerly, each compiled on its own; jit itself is checked
    against eager execution in part (b).)
    """
    per_loss = jax.vmap(lambda xi, yi: loss_value(model, xi, yi, loss))(x, y)
    return (
        manual_grad(model, x, y, loss, variant),
        per_example_grads(model, x, y, loss, variant),
        loss_value(model, x, y, loss),
        per_loss,
    )


# --- (a) batch gradient vs per-example gradients ----------------------------------------


@pytest.mark.parametrize("config, variant", CASES, ids=CASE_IDS)
def test_batch_gradient_is_mean_of_per_example_gradients(config, variant):
    model, x, y, loss = make_problem(config)
    batch_grad, per_example, batch_loss, per_loss = batch_and_per_example(
        model, x, y, loss=loss, variant=variant
    )
    for g, p in zip(params(per_example), params(model)):
        assert (g is None) == (p is None)
        if g is not None:
            assert g.shape == (BATCH,) + p.shape
    mean = jax.tree_util.tree_map(lambda g: jnp.mean(g, axis=0), per_example)
    assert relative_error(batch_grad, mean) <= RTOL

    # A summed loss: its gradient is the sum of the per-example gradients,
    # which is batch_size times the gradient of the mean.
    total = jax.tree_util.tree_map(lambda g: jnp.sum(g, axis=0), per_example)
    scaled = jax.tree_util.tree_map(lambda g: BATCH * g, batch_grad)
    assert relative_error(scaled, total) <= RTOL

    # ... and the losses: the batch loss is the mean of the per-example losses.
    assert per_loss.shape == (BATCH,)
    assert float(batch_loss) == pytest.approx(float(jnp.mean(per_loss)), rel=RTOL)


@pytest.mark.parametrize("config", CONFIGS[1:3], ids=CONFIG_IDS[1:3])
def test_summed_loss_gradient_by_autodiff_is_sum_of_per_example(config):
    """jax.grad of Σᵢ ℓ(xᵢ, yᵢ) (a summed loss) = Σᵢ manual_grad(xᵢ, yᵢ)."""
    model, x, y, loss = make_problem(config, seed=1)

    def summed(m):
        return jnp.sum(jax.vmap(lambda xi, yi: loss_value(m, xi, yi, loss))(x, y))

    by_autodiff = jax.jit(jax.grad(summed))(model)
    _, per_example, _, _ = batch_and_per_example(model, x, y, loss=loss, variant="hadamard")
    total = jax.tree_util.tree_map(lambda g: jnp.sum(g, axis=0), per_example)
    assert relative_error(total, by_autodiff) <= 1e-10


# --- (b) jit and vmap ------------------------------------------------------------------


jit_grad = jax.jit(manual_grad, static_argnames=("loss", "variant"))


@pytest.mark.parametrize("config, variant", CASES, ids=CASE_IDS)
def test_jit_matches_eager(config, variant):
    model, x, y, loss = make_problem(config, seed=2)
    eager = manual_grad(model, x, y, loss, variant)
    jitted = jit_grad(model, x, y, loss=loss, variant=variant)
    assert relative_error(jitted, eager) <= RTOL
    if variant == "hadamard":  # a single 1-D example too
        assert (
            relative_error(
                jit_grad(model, x[0], y[0], loss=loss, variant=variant),
                manual_grad(model, x[0], y[0], loss, variant),
            )
            <= RTOL
        )


def test_jit_value_and_grad_matches_eager():
    model, x, y, loss = make_problem(CONFIGS[1], seed=2)
    value, grads = jax.jit(manual_value_and_grad, static_argnames=("loss", "variant"))(model, x, y, loss=loss)
    assert relative_error(grads, manual_grad(model, x, y, loss)) <= RTOL
    assert float(value) == pytest.approx(float(loss_value(model, x, y, loss)), rel=RTOL)


@pytest.mark.parametrize("config, variant", CASES[1:3] + CASES[-1:], ids=CASE_IDS[1:3] + CASE_IDS[-1:])
def test_vmap_over_batches_matches_eager(config, variant):
    """vmap over a leading axis of K batches gives, batch by batch, the eager gradient."""
    k = 3
    model, x, y, loss = make_problem(config, seed=3, batch=k * BATCH)
    xs = x.reshape(k, BATCH, x.shape[-1])
    ys = y.reshape(k, BATCH, y.shape[-1])
    grad_of_batch = lambda xb, yb: manual_grad(model, xb, yb, loss, variant)  # noqa: E731
    stacked = jax.vmap(grad_of_batch)(xs, ys)
    stacked_jit = jax.jit(jax.vmap(grad_of_batch))(xs, ys)
    for i in range(k):
        eager = manual_grad(model, xs[i], ys[i], loss, variant)
        row = jax.tree_util.tree_map(lambda g: g[i], stacked)
        row_jit = jax.tree_util.tree_map(lambda g: g[i], stacked_jit)
        assert relative_error(row, eager) <= RTOL
        assert relative_error(row_jit, eager) <= RTOL


# --- (c) no automatic differentiation in manual_grad --------------------------------------


AD_ENTRY_POINTS = [
    (jax, "grad"),
    (jax, "value_and_grad"),
    (jax, "vjp"),
    (jax, "jvp"),
    (jax, "jacrev"),
    (jax, "jacfwd"),
    (jax, "linearize"),
    (jax, "hessian"),
    (jax, "linear_transpose"),
    (eqx, "filter_grad"),
    (eqx, "filter_value_and_grad"),
    (eqx, "filter_vjp"),
    (eqx, "filter_jvp"),
]


class AutodiffCalled(AssertionError):
    pass


@pytest.fixture
def no_autodiff(monkeypatch):
    def forbidden(name):
        def boom(*args, **kwargs):
            raise AutodiffCalled(f"{name} was called")

        return boom

    for module, name in AD_ENTRY_POINTS:
        if hasattr(module, name):
            monkeypatch.setattr(module, name, forbidden(f"{module.__name__}.{name}"))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["hadamard", "diagonal"])
def test_manual_grad_never_calls_autodiff(variant, no_autodiff):
    for i, config in enumerate(CONFIGS):
        model, x, y, loss = make_problem(config, seed=4)
        g = manual_grad(model, x, y, loss, variant)
        value, g2 = manual_value_and_grad(model, x, y, loss, variant)
        trace = backprop_trace(model, x, y, loss, variant)
        g1d = manual_grad(model, x[0], y[0], loss, variant)
        assert relative_error(g2, g) == 0.0 and relative_error(trace.grads, g) == 0.0
        assert np.isfinite(float(value))
        assert all(np.all(np.isfinite(np.asarray(p))) for p in params(g1d) if p is not None)
        if i == 0:  # and under the transformations
            jit_grad(model, x, y, loss=loss, variant=variant)
            per_example_grads(model, x, y, loss, variant)


def test_the_autodiff_stubs_bite(no_autodiff):
    model, x, y, loss = make_problem(CONFIGS[0])
    with pytest.raises(AutodiffCalled, match="jax.grad"):
        autodiff_grad(model, x, y, loss)
    with pytest.raises(AutodiffCalled):
        eqx.filter_grad(lambda m: loss_value(m, x, y, loss))(model)


# --- (d) sgd_step ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lr", [2.5, "array"])
def test_sgd_step_is_w_minus_lr_times_grad(dtype, lr):
    model, x, y, loss = make_problem(CONFIGS[1], seed=5, dtype=dtype)  # mixed biases
    grads = jit_grad(model, x, y, loss=loss)
    step = jnp.asarray(0.3, dtype) if lr == "array" else lr
    new = sgd_step(model, grads, step)
    assert isinstance(new, MLP)
    assert (new.sizes, new.activation, new.output_activation) == (
        model.sizes,
        model.activation,
        model.output_activation,
    )
    assert [b is None for b in new.biases] == [b is None for b in model.biases] == [False, True, False]
    lr_value = 0.3 if lr == "array" else lr
    tol = 4 * np.finfo(dtype).eps
    for p_new, p, g in zip(params(new), params(model), params(grads)):
        if p is None:
            assert p_new is None and g is None
            continue
        assert p_new.dtype == dtype and p_new.shape == p.shape
        expected = np.asarray(p, np.float64) - lr_value * np.asarray(g, np.float64)
        np.testing.assert_allclose(np.asarray(p_new, np.float64), expected, rtol=tol, atol=tol * lr_value)


def test_sgd_step_with_zero_lr_is_identity_and_small_steps_descend():
    model, x, y, loss = make_problem(CONFIGS[0], seed=6)
    grads = manual_grad(model, x, y, loss)
    same = sgd_step(model, grads, 0.0)
    assert all(np.array_equal(a, b) for a, b in zip(params(same), params(model)))
    before = float(loss_value(model, x, y, loss))
    after = float(loss_value(sgd_step(model, grads, 1e-2), x, y, loss))
    assert after < before


# --- (e) forward pass, augmented matrices, inits --------------------------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_call_and_forward_trace_shapes(config):
    model, x, _, _ = make_problem(config, seed=7)
    depth = len(SIZES) - 1
    out = model(x)
    assert out.shape == (BATCH, SIZES[-1])
    single = model(x[2])
    assert single.shape == (SIZES[-1],)
    np.testing.assert_allclose(single, out[2], rtol=1e-14, atol=1e-15)

    trace = forward_trace(model, x)
    assert len(trace.z) == depth and len(trace.a) == depth + 1
    assert [z.shape for z in trace.z] == [(BATCH, w) for w in SIZES[1:]]
    assert [a.shape for a in trace.a] == [(BATCH, w) for w in SIZES]
    np.testing.assert_array_equal(trace.a[0], x)
    np.testing.assert_array_equal(trace.a[-1], out)
    hidden, output = ACTIVATIONS[model.activation], ACTIVATIONS[model.output_activation]
    for l, (w, b) in enumerate(zip(model.weights, model.biases)):
        z = trace.a[l] @ w.T + (0.0 if b is None else b[None, :])
        np.testing.assert_allclose(trace.z[l], z, rtol=1e-14, atol=1e-15)
        act = output if l == depth - 1 else hidden
        np.testing.assert_allclose(trace.a[l + 1], act.fn(trace.z[l]), rtol=1e-14, atol=1e-15)

    one = forward_trace(model, x[2])
    assert [z.shape for z in one.z] == [(w,) for w in SIZES[1:]]
    assert [a.shape for a in one.a] == [(w,) for w in SIZES]
    for z1, zb in zip(one.z, trace.z):
        np.testing.assert_allclose(z1, zb[2], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("bias_column", ["first", "last"])
def test_augmented_round_trip(bias_column):
    model, x, _, _ = make_problem(CONFIGS[1], seed=8)  # the middle layer has no bias
    mats = model.to_augmented(bias_column)
    assert [m.shape for m in mats] == [(o, i + 1) for i, o in zip(SIZES[:-1], SIZES[1:])]
    col = 0 if bias_column == "first" else -1
    for m, w, b in zip(mats, model.weights, model.biases):
        w_part = m[:, 1:] if col == 0 else m[:, :-1]
        np.testing.assert_array_equal(w_part, w)
        np.testing.assert_array_equal(m[:, col], np.zeros(w.shape[0]) if b is None else b)

    back = MLP.from_augmented(mats, bias_column, model.activation, model.output_activation)
    for w_back, w in zip(back.weights, model.weights):
        np.testing.assert_array_equal(w_back, w)
    for b_back, b in zip(back.biases, model.biases):
        # a missing bias comes back as an explicit zero vector
        np.testing.assert_array_equal(b_back, np.zeros(b_back.shape) if b is None else b)
    np.testing.assert_allclose(back(x), model(x), rtol=1e-14, atol=1e-15)
    # the augmented form computes the same z with a constant 1 in the input
    a = x
    for l, m in enumerate(mats):
        ones = jnp.ones((a.shape[0], 1))
        a_aug = jnp.concatenate([ones, a] if col == 0 else [a, ones], axis=1)
        np.testing.assert_allclose(a_aug @ m.T, forward_trace(model, x).z[l], rtol=1e-13, atol=1e-14)
        a = forward_trace(model, x).a[l + 1]
    # and the other convention only moves the column
    other = "last" if bias_column == "first" else "first"
    for m, m_other in zip(mats, back.to_augmented(other)):
        np.testing.assert_array_equal(jnp.roll(m, -1 if col == 0 else 1, axis=1), m_other)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("init", sorted(INITS))
def test_init_shapes_and_dtype(init, dtype):
    sizes = (3, 5, 1, 3)
    model = MLP(sizes, "tanh", "softmax", key=jax.random.PRNGKey(1), init=init, dtype=dtype)
    assert model.sizes == sizes
    assert [w.shape for w in model.weights] == [(o, i) for i, o in zip(sizes[:-1], sizes[1:])]
    assert [b.shape for b in model.biases] == [(o,) for o in sizes[1:]]
    assert all(p.dtype == dtype for p in params(model))
    assert all(np.all(np.isfinite(np.asarray(p))) for p in params(model))
    no_bias = MLP(sizes, key=jax.random.PRNGKey(1), init=init, dtype=dtype, bias=False)
    assert no_bias.biases == (None, None, None)
    for w, w_nb in zip(model.weights, no_bias.weights):
        np.testing.assert_array_equal(w, w_nb)  # same key, same weights
    if init == "uniform3":
        for p in params(model):
            assert np.all(np.abs(np.asarray(p)) <= 3.0)
        assert not np.any(np.asarray(model.biases[0]) == 0.0)
    else:
        assert all(np.all(np.asarray(b) == 0.0) for b in model.biases)
    if init == "glorot":
        for w, (i, o) in zip(model.weights, zip(sizes[:-1], sizes[1:])):
            assert np.all(np.abs(np.asarray(w)) <= math.sqrt(6.0 / (i + o)))


def test_default_dtype_is_float64_with_x64():
    model = MLP((2, 3, 1), key=jax.random.PRNGKey(0))
    assert all(p.dtype == jnp.float64 for p in params(model))


def test_init_scales():
    """Spread of each init on a 200 × 200 layer (40 000 draws: std within 3%)."""
    n = 200
    expected_std = {
        "glorot": math.sqrt(6.0 / (2 * n)) / math.sqrt(3.0),
        "he": math.sqrt(2.0 / n),
        "lecun": math.sqrt(1.0 / n),
        "uniform3": 3.0 / math.sqrt(3.0),
    }
    assert set(expected_std) == set(INITS)
    for init, std in expected_std.items():
        w = np.asarray(MLP((n, n), key=jax.random.PRNGKey(2), init=init).weights[0])
        assert abs(w.std() / std - 1.0) < 0.03, init
        assert abs(w.mean()) < 0.03 * std, init
    w = np.asarray(MLP((n, n), key=jax.random.PRNGKey(2), init="uniform3").weights[0])
    assert w.min() >= -3.0 and w.max() <= 3.0 and w.min() < -2.9 and w.max() > 2.9


@pytest.mark.parametrize("hidden", sorted(a for a in ACTIVATIONS if a != "softmax"))
@pytest.mark.parametrize("output", ["sigmoid", "identity", "relu"])
def test_default_init_follows_each_layers_activation(hidden, output):
    """init=None: hidden layers take the hidden activation's default, the last the output's."""
    sizes, key = (3, 5, 1, 3), jax.random.PRNGKey(3)
    model = MLP(sizes, hidden, output, key=key)
    hidden_init = ACTIVATIONS[hidden].default_init
    output_init = ACTIVATIONS[output].default_init
    as_hidden = MLP(sizes, hidden, output, key=key, init=hidden_init)
    as_output = MLP(sizes, hidden, output, key=key, init=output_init)
    for l in range(len(sizes) - 1):
        want = as_output if l == len(sizes) - 2 else as_hidden
        np.testing.assert_array_equal(model.weights[l], want.weights[l])
        np.testing.assert_array_equal(model.biases[l], want.biases[l])


def test_default_inits_table():
    """relu-like activations take he, identity lecun, the smooth squashers glorot."""
    assert ACTIVATIONS["relu"].default_init == "he"
    assert ACTIVATIONS["leaky_relu"].default_init == "he"
    assert ACTIVATIONS["identity"].default_init == "lecun"
    assert ACTIVATIONS["sigmoid"].default_init == "glorot"
    assert ACTIVATIONS["tanh"].default_init == "glorot"
    assert all(a.default_init in INITS for a in ACTIVATIONS.values())
