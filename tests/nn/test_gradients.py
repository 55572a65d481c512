"""The hand-written gradient agrees with jax.grad, with finite differences and with NumPy.

Four opinions on ∂L/∂θ are compared:

* ``manual_grad`` (the Hadamard form, f′ ⊙) and its ``variant="diagonal"``
  (materialised diag(f′) products);
* ``autodiff_grad`` (jax.grad of ``loss_value``);
* ``numerical_grad`` (central differences, float64, eps = 1e-6);
* ``backprop_lab.reference.backprop``, the NumPy float64 oracle, for the
  activations and losses it covers (it also gives the loss value).

Coverage: every hidden activation (every key of ``ACTIVATIONS`` except the
output-only softmax) × every legal (output activation, loss) pairing, at a fixed
shape exhaustively (``test_every_pairing_at_a_fixed_shape``) and at shapes drawn
by hypothesis (depth 1-5 weight layers, widths 1-16, batch 1-32 or a single 1-D
example; biases on every layer, on none, or on some).

Arrays never go through hypothesis: it draws a seed and the shapes, and the
weights, biases, inputs and targets come from ``numpy.random.default_rng(seed)``.
Biases are drawn away from zero (|b| ≥ 0.1, random sign), which keeps
pre-activations off the ReLU-family kinks. (One exception: after a layer of
dead ReLUs, a layer without bias gets z = 0 exactly; the kink's slope is then
multiplied by zeros only, so the gradient does not depend on it.) Finite
differences across a kink are wrong, so the numerical comparison is skipped
(``hypothesis.assume``) when any |z| of a relu / leaky_relu / elu layer is
below 1e-4: a step of 1e-6 in one parameter moves z by about 1e-6 · |a| with
|a| of order 1, far less than that. In 150 random draws 4 were skipped.

Tolerances (float64 machine epsilon ε₆₄ = 2.2e-16, float32 ε₃₂ = 1.19e-7),
and what was measured behind them over 150 random float64 configurations
drawn as here and 120 float32 ones:

* manual vs autodiff, diagonal vs Hadamard, manual vs the NumPy oracle:
  max |Δ| / max(max |g|, 1e-3) ≤ 1e-10, where g is the reference gradient and
  the max runs over every entry of every W and b. Measured: at most 2.2e-15
  relative (10 ulps) and 5.3e-15 absolute for manual vs autodiff, 8.9e-16 for
  diagonal vs Hadamard, 1.0e-15 against the oracle (loss values: 6.5e-16).
  1e-10 is the agreed bound, far above rounding and far below the error of
  any wrong formula. The floor 1e-3: a gradient can be exactly or nearly zero
  (softmax with one output, saturated sigmoids, dead ReLUs), where a pure
  relative error would be rounding noise divided by noise; below 1e-3 the
  comparison is in effect absolute, 1e-13, still 20 times the largest
  absolute difference measured, which came from gradients of order 10.
* numerical vs autodiff: max |Δ| ≤ 1e-7 · max(1, L). Central differences
  have truncation error eps²/6 · f‴ ≈ 2e-13 · f‴ (negligible here) and
  rounding error ≈ c · ε₆₄ · L / eps = c · 2.2e-10 · L, with c a few ulps
  of rounding in each loss evaluation. Measured: at most 1.1e-9 · max(1, L)
  (c ≈ 5; in absolute terms up to 1.6e-8, at L ≈ 14-19); the bound leaves a
  factor of about 90 for draws with more rounding and is still orders of
  magnitude below the error of any wrong formula.
* float32, manual vs autodiff (and vs the float64 gradient):
  max |Δ| / max(max |g|, 1e-3) ≤ 4 · (depth + 1) · √max(width, batch) · ε₃₂.
  Each of the depth + 1 backward stages (the output δ, then one per layer) is a
  product or mean over at most max(width, batch) terms, whose rounding errors
  add up like a random walk (√n · ε); both implementations round, hence the
  factor 2, and another 2 for headroom. Measured over 120 random float32
  configurations: at most 3.0 ε₃₂ relative (depth 3, width 14, batch 27,
  where the bound is 83 ε₃₂); the float32 gradient against the float64 one
  at most 3.5 ε₃₂.

Speed: every new shape or configuration is a new compilation, the main cost.
Measured on 2 CPU cores, for a new shape eager ``manual_grad`` costs 0.6-2.5 s
(each primitive compiles for the new shape) and a jitted one 0.05-0.5 s, so
the hypothesis tests jit one function that returns every opinion at once. The
fixed-shape sweep runs eagerly instead: after the first configurations the
per-primitive compilations are cached, and each further pairing costs ~35 ms,
against ~0.5 s to compile each of its 288 configurations under jit.
``numerical_grad`` compiles afresh at every call (~0.3-1 s), so it only runs in
the hypothesis tests.
"""

from __future__ import annotations

import functools
import math
import zlib
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from backprop_lab import (
    ACTIVATIONS,
    LOSSES,
    MLP,
    autodiff_grad,
    backprop_trace,
    get_loss,
    loss_value,
    manual_grad,
    numerical_grad,
    reference,
)

HIDDEN = sorted(name for name, act in ACTIVATIONS.items() if not act.output_only)
OUTPUTS = sorted(ACTIVATIONS)
#: Every legal (output activation, loss) pairing, read from the loss table.
PAIRINGS = [
    (out, loss) for loss, spec in sorted(LOSSES.items()) for out in OUTPUTS if spec.requires in (None, out)
]
#: Activations with a kink at z = 0, where finite differences are wrong.
KINKED = {"relu", "leaky_relu", "elu"}
KINK_MARGIN = 1e-4

#: What the NumPy oracle covers.
REF_HIDDEN = set(reference.FUNCTIONS)
REF_OUTPUTS = set(reference.FUNCTIONS) | {"softmax"}
REF_LOSSES = set(reference.COSTS) | {"cross_entropy"}

EPS32 = float(np.finfo(np.float32).eps)
RTOL64 = 1e-10
FLOOR = 1e-3
NUMERICAL_TOL = 1e-7  # times max(1, L)


# --- building problems from a seed -------------------------------------------------


def make_problem(seed, sizes, hidden, out, loss, bias_mode="all", batch=8, dtype=np.float64):
    """A network and a batch drawn from ``default_rng(seed)``.

    Weights ~ N(0, 1/fan_in); biases ±U(0.1, 1) (never near zero); x ~ N(0, 1);
    y ~ N(0, 1) for the squared-error losses and U(0, 1) for the cross-entropies
    (cross-entropy targets are deliberately left unnormalised: the fused rule
    (Σy)·a − y covers that). ``bias_mode`` is "all", "none" or "mixed" (some
    layers None, at least one of each when there are two layers or more).
    ``batch=None`` gives a single 1-D example.
    """
    rng = np.random.default_rng(seed)
    depth = len(sizes) - 1
    weights = [rng.normal(size=(o, i)) / math.sqrt(i) for i, o in zip(sizes[:-1], sizes[1:])]
    if bias_mode == "all":
        has_bias = [True] * depth
    elif bias_mode == "none":
        has_bias = [False] * depth
    else:
        has_bias = list(rng.random(depth) < 0.5)
        if depth >= 2:
            has_bias[0], has_bias[-1] = True, False
            rng.shuffle(has_bias)
    biases = [
        rng.choice([-1.0, 1.0], size=o) * rng.uniform(0.1, 1.0, size=o) if keep else None
        for o, keep in zip(sizes[1:], has_bias)
    ]
    shape = (sizes[0],) if batch is None else (batch, sizes[0])
    y_shape = (sizes[-1],) if batch is None else (batch, sizes[-1])
    x = rng.normal(size=shape)
    y = rng.uniform(size=y_shape) if "cross_entropy" in loss else rng.normal(size=y_shape)
    cast = lambda v: None if v is None else np.asarray(v, dtype)  # noqa: E731
    model = MLP.from_weights([cast(w) for w in weights], [cast(b) for b in biases], hidden, out)
    return model, jnp.asarray(x, dtype), jnp.asarray(y, dtype)


# --- comparing gradients -------------------------------------------------------------


def leaves_with_names(g: MLP):
    names = [f"weights[{l}]" for l in range(len(g.weights))]
    names += [f"biases[{l}]" for l in range(len(g.biases))]
    return list(zip(names, list(g.weights) + list(g.biases)))


def relative_error(got: MLP, want: MLP, floor: float = FLOOR) -> float:
    """max |got − want| / max(max |want|, floor), over every entry of every leaf.

    Also checks that both have the same structure: None biases in the same
    places, and the same shapes.
    """
    g_leaves, w_leaves = leaves_with_names(got), leaves_with_names(want)
    assert len(g_leaves) == len(w_leaves)
    scale, diff = floor, 0.0
    for (name, g), (_, w) in zip(g_leaves, w_leaves):
        assert (g is None) == (w is None), f"{name}: one gradient has it, the other not"
        if g is None:
            continue
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        assert g.shape == w.shape, f"{name}: shape {g.shape} != {w.shape}"
        assert np.all(np.isfinite(g)), f"{name} is not finite"
        scale = max(scale, float(np.max(np.abs(w))))
        diff = max(diff, float(np.max(np.abs(g - w))))
    return diff / scale


def max_abs_error(got: MLP, want: MLP) -> float:
    return max(
        float(np.max(np.abs(np.asarray(g, np.float64) - np.asarray(w, np.float64))))
        for (_, g), (_, w) in zip(leaves_with_names(got), leaves_with_names(want))
        if g is not None
    )


def check_structure(grads: MLP, model: MLP, dtype):
    assert grads.sizes == model.sizes
    assert grads.activation == model.activation
    assert grads.output_activation == model.output_activation
    for (name, g), (_, p) in zip(leaves_with_names(grads), leaves_with_names(model)):
        assert (g is None) == (p is None), name
        if g is not None:
            assert g.shape == p.shape, name
            assert g.dtype == dtype, f"{name}: {g.dtype}"


def reference_covers(hidden, out, loss):
    return hidden in REF_HIDDEN and out in REF_OUTPUTS and loss in REF_LOSSES


def reference_opinion(model: MLP, x, y, loss):
    """(gradient with .weights and .biases, loss) from the NumPy oracle; x and y made 2-D."""
    x2 = np.atleast_2d(np.asarray(x, np.float64))
    y2 = np.atleast_2d(np.asarray(y, np.float64))
    ws = [np.asarray(w, np.float64) for w in model.weights]
    bs = [None if b is None else np.asarray(b, np.float64) for b in model.biases]
    dW, db, L = reference.backprop(ws, bs, x2, y2, model.activation, model.output_activation, loss)
    return SimpleNamespace(weights=tuple(dW), biases=tuple(db)), L


def kink_distance(model: MLP, zs) -> float:
    """Smallest |z| over the layers whose activation has a kink at 0 (inf if none)."""
    n = len(zs)
    d = math.inf
    for l, z in enumerate(zs):
        act = model.output_activation if l == n - 1 else model.activation
        if act in KINKED:
            d = min(d, float(np.min(np.abs(np.asarray(z)))))
    return d


@functools.partial(jax.jit, static_argnames="loss")
def opinions(model, x, y, loss):
    """Every jax opinion at once, one compilation per shape and configuration."""
    trace = backprop_trace(model, x, y, loss)
    return {
        "hadamard": trace.grads,
        "diagonal": manual_grad(model, x, y, loss, "diagonal"),
        "autodiff": autodiff_grad(model, x, y, loss),
        "loss": loss_value(model, x, y, loss),
        "trace_loss": trace.loss,
        "z": trace.z,
    }


# --- the table of pairings ------------------------------------------------------------


def test_pairings_are_the_legal_ones():
    """Every output with the squared errors; each cross-entropy with its own output only."""
    expected = {(o, l) for o in OUTPUTS for l in ("half_sse", "sse", "mse")}
    expected |= {("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy")}
    assert set(PAIRINGS) == expected
    assert "softmax" not in HIDDEN and "identity" in HIDDEN and len(HIDDEN) == len(ACTIVATIONS) - 1
    for out in OUTPUTS:
        for loss in LOSSES:
            if (out, loss) not in expected:
                with pytest.raises(ValueError, match="needs output_activation"):
                    get_loss(loss, out)


# --- exhaustive at one shape, eagerly ------------------------------------------------------


FIXED_SIZES = (3, 5, 4, 3)
FIXED_BATCH = 4


@pytest.mark.slow
@pytest.mark.parametrize("out, loss", PAIRINGS, ids=[f"{o}-{l}" for o, l in PAIRINGS])
@pytest.mark.parametrize("hidden", HIDDEN)
def test_every_pairing_at_a_fixed_shape(hidden, out, loss):
    """Hadamard = diagonal = autodiff (and = the NumPy oracle where it applies).

    Three weight layers, the middle one without a bias, so both bias paths and
    two hidden layers are exercised in every configuration.
    """
    seed = zlib.crc32(f"{hidden}/{out}/{loss}".encode())
    model, x, y = make_problem(seed, FIXED_SIZES, hidden, out, loss, "all", FIXED_BATCH)
    model = MLP.from_weights(model.weights, [model.biases[0], None, model.biases[2]], hidden, out)

    # Op by op: the eager entry points would otherwise compile three programs for each of
    # the 288 configurations (the compiled path is checked in test_eager.py).
    with jax.disable_jit():
        hadamard = manual_grad(model, x, y, loss)
        diagonal = manual_grad(model, x, y, loss, "diagonal")
        auto = autodiff_grad(model, x, y, loss)
    check_structure(hadamard, model, jnp.float64)
    check_structure(diagonal, model, jnp.float64)
    assert relative_error(hadamard, auto) <= RTOL64
    assert relative_error(diagonal, hadamard) <= RTOL64

    if reference_covers(hidden, out, loss):
        ref_grads, ref_loss = reference_opinion(model, x, y, loss)
        assert relative_error(hadamard, ref_grads) <= RTOL64
        value = float(loss_value(model, x, y, loss))
        assert value == pytest.approx(ref_loss, rel=RTOL64, abs=RTOL64 * FLOOR)


def test_reference_covers_what_it_says():
    """The oracle's coverage, so that the comparisons above are not vacuous."""
    covered = [(h, o, l) for h in HIDDEN for o, l in PAIRINGS if reference_covers(h, o, l)]
    assert {"sigmoid", "tanh", "relu", "identity"} <= REF_HIDDEN
    assert len(covered) == 4 * (5 * 3 + 1)


# --- random shapes, with hypothesis ------------------------------------------------------


@st.composite
def configurations(draw, max_depth=5, max_width=16, max_batch=32):
    depth = draw(st.integers(1, max_depth))
    sizes = tuple(draw(st.lists(st.integers(1, max_width), min_size=depth + 1, max_size=depth + 1)))
    hidden = draw(st.sampled_from(HIDDEN))
    out, loss = draw(st.sampled_from(PAIRINGS))
    bias_mode = draw(st.sampled_from(["all", "none", "mixed"]))
    batch = draw(st.one_of(st.integers(1, max_batch), st.none()))  # None: one 1-D example
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(seed=seed, sizes=sizes, hidden=hidden, out=out, loss=loss, bias_mode=bias_mode, batch=batch)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configurations())
def test_all_opinions_agree_float64(cfg):
    model, x, y = make_problem(**cfg)
    loss = cfg["loss"]
    got = opinions(model, x, y, loss)

    check_structure(got["hadamard"], model, jnp.float64)
    assert relative_error(got["hadamard"], got["autodiff"]) <= RTOL64
    assert relative_error(got["diagonal"], got["hadamard"]) <= RTOL64
    value = float(got["loss"])
    assert float(got["trace_loss"]) == pytest.approx(value, rel=1e-14, abs=1e-14)

    if reference_covers(cfg["hidden"], cfg["out"], loss):
        ref_grads, ref_loss = reference_opinion(model, x, y, loss)
        assert relative_error(got["hadamard"], ref_grads) <= RTOL64
        assert value == pytest.approx(ref_loss, rel=RTOL64, abs=RTOL64 * FLOOR)

    # Finite differences only away from the kinks.
    assume(kink_distance(model, got["z"]) >= KINK_MARGIN)
    num = numerical_grad(model, x, y, loss)
    check_structure(num, model, jnp.float64)
    assert max_abs_error(num, got["autodiff"]) <= NUMERICAL_TOL * max(1.0, abs(value))


def float32_tolerance(sizes, batch) -> float:
    """4 · (depth + 1) · √max(width, batch) · ε₃₂; see the module docstring."""
    n = max(max(sizes), batch or 1)
    return 4 * len(sizes) * math.sqrt(n) * EPS32


@functools.partial(jax.jit, static_argnames="loss")
def float32_opinions(model32, x32, y32, loss):
    m64 = model32.astype(jnp.float64)
    x64, y64 = x32.astype(jnp.float64), y32.astype(jnp.float64)
    return {
        "hadamard": manual_grad(model32, x32, y32, loss),
        "diagonal": manual_grad(model32, x32, y32, loss, "diagonal"),
        "autodiff": autodiff_grad(model32, x32, y32, loss),
        "exact": autodiff_grad(m64, x64, y64, loss),
    }


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configurations())
def test_manual_matches_autodiff_float32(cfg):
    model, x, y = make_problem(**cfg, dtype=np.float32)
    assert model.weights[0].dtype == jnp.float32 and x.dtype == jnp.float32
    got = float32_opinions(model, x, y, cfg["loss"])
    tol = float32_tolerance(cfg["sizes"], cfg["batch"])
    for variant in ("hadamard", "diagonal"):
        check_structure(got[variant], model, jnp.float32)
        assert relative_error(got[variant], got["autodiff"]) <= tol, variant
        assert relative_error(got[variant], got["exact"]) <= tol, variant


def test_float32_tolerance_is_what_the_docstring_says():
    # depth 3, width 14, batch 27 (the worst measured case, 3.0 ε₃₂): about 83 ε₃₂
    assert float32_tolerance((14, 14, 14, 14), 27) / EPS32 == pytest.approx(83.1, abs=0.1)
    assert float32_tolerance((1, 1), 1) == 8 * EPS32


# --- a single 1-D example -------------------------------------------------------------


@pytest.mark.parametrize(
    "hidden, out, loss",
    [
        ("tanh", "softmax", "cross_entropy"),
        ("gelu", "sigmoid", "binary_cross_entropy"),
        ("sigmoid", "identity", "mse"),
    ],
)
def test_single_example(hidden, out, loss):
    """A 1-D x and y: every opinion agrees, and equals that of the (1, in) batch."""
    model, x, y = make_problem(11, (4, 6, 3), hidden, out, loss, "mixed", batch=None)
    assert x.shape == (4,) and y.shape == (3,)
    got = opinions(model, x, y, loss)
    batch_of_one = opinions(model, x[None, :], y[None, :], loss)
    assert [z.shape for z in got["z"]] == [(6,), (3,)]
    assert relative_error(got["hadamard"], batch_of_one["hadamard"]) <= RTOL64
    assert relative_error(got["hadamard"], got["autodiff"]) <= RTOL64
    assert relative_error(got["diagonal"], got["hadamard"]) <= RTOL64
    num = numerical_grad(model, x, y, loss)
    assert max_abs_error(num, got["autodiff"]) <= NUMERICAL_TOL * max(1.0, float(got["loss"]))
    if reference_covers(hidden, out, loss):
        ref_grads, ref_loss = reference_opinion(model, x, y, loss)
        assert relative_error(got["hadamard"], ref_grads) <= RTOL64
        assert float(got["loss"]) == pytest.approx(ref_loss, rel=RTOL64)


# --- exactly on a kink -------------------------------------------------------------------


def kink_model(act):
    """With x = 1, z¹ = W¹x + b¹ = (1 − 1, −2 + 2) = 0 exactly in the hidden layer.

    The hidden bias and weights have non-zero gradients δ¹ and δ¹ xᵀ, so f′(0)
    shows in them.
    """
    w = [np.array([[1.0], [-2.0]]), np.array([[1.5, -0.5]])]
    return MLP.from_weights(w, [np.array([-1.0, 2.0]), np.array([0.3])], act, "identity")


KINK_X, KINK_Y = jnp.ones((1, 1)), jnp.full((1, 1), 2.0)


@pytest.mark.parametrize("act, slope", [("relu", 0.0), ("leaky_relu", 0.01)])
def test_kink_conventions_agree_with_autodiff(act, slope):
    """At z = 0 manual_grad uses f′(0) = the left slope, as jax.grad of jnp.where does."""
    model = kink_model(act)
    x, y = KINK_X, KINK_Y
    trace = backprop_trace(model, x, y, "half_sse")
    assert np.all(np.asarray(trace.z[0]) == 0.0)
    manual = manual_grad(model, x, y, "half_sse")
    auto = autodiff_grad(model, x, y, "half_sse")
    assert relative_error(manual, auto) <= RTOL64
    # δ¹ = (δ² W²) ⊙ f′(0)
    delta2 = float(trace.delta[1][0, 0])
    expected = delta2 * np.array([1.5, -0.5]) * slope
    np.testing.assert_allclose(np.asarray(trace.delta[0])[0], expected, rtol=1e-15, atol=0)
    np.testing.assert_allclose(np.asarray(manual.biases[0]), expected, rtol=1e-15, atol=0)


def test_elu_derivative_at_zero_manual():
    """ELU with α = 1 is continuously differentiable: f′(0) = 1 from both sides."""
    model = kink_model("elu")
    x, y = KINK_X, KINK_Y
    trace = backprop_trace(model, x, y, "half_sse")
    delta2 = float(trace.delta[1][0, 0])
    assert np.all(np.asarray(trace.z[0]) == 0.0) and delta2 != 0.0
    np.testing.assert_allclose(np.asarray(trace.delta[0])[0], delta2 * np.array([1.5, -0.5]), rtol=1e-15)


def test_elu_derivative_at_zero_autodiff():
    """jax.grad gives the same f′(0) = 1 (a minimum(z, 0) inside ELU would split the tie: 0.5)."""
    model = kink_model("elu")
    x, y = KINK_X, KINK_Y
    manual = manual_grad(model, x, y, "half_sse")
    auto = autodiff_grad(model, x, y, "half_sse")
    assert relative_error(manual, auto) <= RTOL64
