"""Every bad input raises a ValueError whose message says what is wrong.

Each test matches the message (``pytest.raises(match=...)``) on the part that
names the problem: the unknown name and the valid ones, both of two
mismatched widths, the offending index. The gradient entry points
(``manual_grad`` and its variants, ``autodiff_grad``, ``numerical_grad``,
``loss_value``) must raise the same errors, and before any compute: the
``before_any_compute`` fixture makes every differentiation transform, jit and
the forward pass raise a sentinel error, so a ValueError can only come from the
up-front checks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import backprop_lab
from backprop_lab import (
    INITS,
    MLP,
    autodiff_grad,
    backprop_trace,
    forward_trace,
    loss_value,
    manual_grad,
    manual_value_and_grad,
    numerical_grad,
)

KEY = jax.random.PRNGKey(0)


def _grad_hadamard(m, x, y, loss):
    return manual_grad(m, x, y, loss)


def _grad_diagonal(m, x, y, loss):
    return manual_grad(m, x, y, loss, "diagonal")


def _value_and_grad(m, x, y, loss):
    return manual_value_and_grad(m, x, y, loss)


def _trace(m, x, y, loss):
    return backprop_trace(m, x, y, loss, "diagonal")


#: Every function of (model, x, y, loss) that validates its inputs.
ENTRY_POINTS = {
    "manual_grad": _grad_hadamard,
    "manual_grad_diagonal": _grad_diagonal,
    "manual_value_and_grad": _value_and_grad,
    "backprop_trace": _trace,
    "loss_value": loss_value,
    "autodiff_grad": autodiff_grad,
    "numerical_grad": numerical_grad,
}


class ComputeStarted(AssertionError):
    """Raised by the stubs below: some compute began before the input checks."""


@pytest.fixture
def before_any_compute(monkeypatch):
    """Make differentiation, jit, x64 switching and the forward pass raise ComputeStarted."""

    def boom(*args, **kwargs):
        raise ComputeStarted("compute started before the inputs were checked")

    for name in ("grad", "value_and_grad", "vjp", "jvp", "jit", "enable_x64"):
        monkeypatch.setattr(jax, name, boom)
    monkeypatch.setattr(backprop_lab.nn._backprop, "forward_trace", boom)


def small_model(output_activation="sigmoid", sizes=(2, 3, 1)):
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=(o, i)) for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [rng.normal(size=o) for o in sizes[1:]]
    return MLP.from_weights(ws, bs, "tanh", output_activation)


def xy(batch, n_in, n_out):
    x = jnp.ones((batch, n_in)) if batch else jnp.ones((n_in,))
    y = jnp.full((batch, n_out) if batch else (n_out,), 0.5)
    return x, y


# --- activations -----------------------------------------------------------


@pytest.mark.parametrize("where", ["activation", "output_activation"])
def test_unknown_activation_lists_valid_names(where):
    kwargs = {where: "tanhh"}
    with pytest.raises(ValueError, match=r"unknown activation 'tanhh'.*valid activations") as info:
        MLP([2, 3, 1], key=KEY, **kwargs)
    for name in ("tanh", "relu", "sigmoid", "softmax", "identity"):
        assert name in str(info.value)
    w = [np.ones((3, 2)), np.ones((1, 3))]
    with pytest.raises(ValueError, match=r"unknown activation 'tanhh'; valid activations are: .*relu.*tanh"):
        MLP.from_weights(w, None, **kwargs)
    with pytest.raises(ValueError, match=r"unknown activation 'tanhh'"):
        backprop_lab.get_activation("tanhh")


def test_softmax_is_rejected_as_hidden_activation():
    msg = r"'softmax' is only allowed as output_activation; hidden layers take one of: .*tanh"
    with pytest.raises(ValueError, match=msg):
        MLP([2, 3, 1], activation="softmax", key=KEY)
    with pytest.raises(ValueError, match=msg):
        MLP.from_weights([np.ones((3, 2)), np.ones((1, 3))], None, activation="softmax")
    with pytest.raises(ValueError, match=r"softmax.*only allowed as output_activation"):
        MLP.from_augmented([np.ones((3, 3))], activation="softmax", output_activation="softmax")
    # ... and it is fine on the output layer
    assert MLP([2, 3, 2], output_activation="softmax", key=KEY).output_activation == "softmax"


# --- losses ----------------------------------------------------------------


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_unknown_loss_lists_valid_names(entry, before_any_compute):
    m = small_model()
    x, y = xy(4, 2, 1)
    with pytest.raises(ValueError, match=r"unknown loss 'l2'; valid losses are: ") as info:
        ENTRY_POINTS[entry](m, x, y, "l2")
    for name in ("half_sse", "sse", "mse", "cross_entropy", "binary_cross_entropy"):
        assert name in str(info.value)


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize(
    "loss, output, needs",
    [
        ("cross_entropy", "sigmoid", "softmax"),
        ("cross_entropy", "identity", "softmax"),
        ("binary_cross_entropy", "softmax", "sigmoid"),
        ("binary_cross_entropy", "tanh", "sigmoid"),
    ],
)
def test_loss_output_activation_mismatch(entry, loss, output, needs, before_any_compute):
    m = small_model(output, sizes=(2, 3, 2))
    x, y = xy(4, 2, 2)
    msg = rf"loss '{loss}' needs output_activation='{needs}', got '{output}'"
    with pytest.raises(ValueError, match=msg):
        ENTRY_POINTS[entry](m, x, y, loss)


# --- x and y against the network -------------------------------------------


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("batch", [0, 5])  # 0: a single 1-D example
def test_x_width_mismatch_names_both_widths(entry, batch, before_any_compute):
    m = small_model(sizes=(2, 3, 1))
    x, y = xy(batch, 7, 1)
    with pytest.raises(ValueError, match=r"x has width 7 but the network's input width is 2"):
        ENTRY_POINTS[entry](m, x, y, "half_sse")


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("batch", [0, 5])
def test_y_width_mismatch_names_both_widths(entry, batch, before_any_compute):
    m = small_model(sizes=(2, 3, 1))
    x, y = xy(batch, 2, 4)
    with pytest.raises(ValueError, match=r"y has width 4 but the network's output width is 1"):
        ENTRY_POINTS[entry](m, x, y, "half_sse")


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize(
    "x_shape, y_shape",
    [((5, 2), (4, 1)), ((1, 2), (3, 1)), ((2,), (1, 1)), ((3, 2), (1,))],
)
def test_x_y_batch_mismatch(entry, x_shape, y_shape, before_any_compute):
    m = small_model(sizes=(2, 3, 1))
    x, y = jnp.ones(x_shape), jnp.ones(y_shape)
    shape_x = str(tuple(x_shape)).replace("(", r"\(").replace(")", r"\)")
    shape_y = str(tuple(y_shape)).replace("(", r"\(").replace(")", r"\)")
    msg = rf"x of shape {shape_x} and y of shape {shape_y} do not pair up"
    with pytest.raises(ValueError, match=msg):
        ENTRY_POINTS[entry](m, x, y, "half_sse")


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("bad", ["scalar", "3-d", "list"])
def test_x_of_the_wrong_rank(entry, bad, before_any_compute):
    m = small_model(sizes=(2, 3, 1))
    x = {"scalar": jnp.ones(()), "3-d": jnp.ones((2, 2, 2)), "list": [[1.0, 2.0]]}[bad]
    with pytest.raises(ValueError, match=r"x must have shape \(2,\) or \(batch, 2\); got"):
        ENTRY_POINTS[entry](m, x, jnp.ones((1, 1)), "half_sse")


def test_forward_and_call_check_x_width():
    m = small_model(sizes=(2, 3, 1))
    for f in (m, lambda x: forward_trace(m, x)):
        with pytest.raises(ValueError, match=r"x has width 3 but the network's input width is 2"):
            f(jnp.ones((4, 3)))
        with pytest.raises(ValueError, match=r"x has width 5 but the network's input width is 2"):
            f(jnp.ones((5,)))


def test_checks_also_run_under_jit():
    """Shapes are static, so the same errors come out of a jitted gradient."""
    m = small_model(sizes=(2, 3, 1))
    grad = jax.jit(manual_grad, static_argnames=("loss", "variant"))
    with pytest.raises(ValueError, match=r"x has width 3 but the network's input width is 2"):
        grad(m, jnp.ones((4, 3)), jnp.ones((4, 1)), loss="half_sse")
    with pytest.raises(ValueError, match=r"unknown variant 'dense'"):
        grad(m, jnp.ones((4, 2)), jnp.ones((4, 1)), loss="half_sse", variant="dense")


# --- sizes and init ---------------------------------------------------------


@pytest.mark.parametrize("sizes", [[], (), [3]])
def test_too_few_sizes(sizes):
    with pytest.raises(ValueError, match=r"sizes must list at least an input and an output width"):
        MLP(sizes, key=KEY)


@pytest.mark.parametrize("sizes, index", [([2, 0, 1], 1), ([0, 3], 0), ([2, 3, -1], 2)])
def test_widths_below_one(sizes, index):
    msg = rf"sizes\[{index}\] = {sizes[index]}: every width must be an integer >= 1"
    with pytest.raises(ValueError, match=msg):
        MLP(sizes, key=KEY)


@pytest.mark.parametrize(
    "bad, shown", [(2.5, "2.5"), (3.0, "3.0"), ("3", "'3'"), (True, "True"), (None, "None")]
)
def test_non_integer_widths(bad, shown):
    with pytest.raises(ValueError, match=rf"sizes\[1\] = {shown}: every width must be an integer"):
        MLP([2, bad, 1], key=KEY)


def test_numpy_integer_widths_are_fine():
    m = MLP(np.array([2, 3, 1]), key=KEY)
    assert m.sizes == (2, 3, 1)
    assert all(type(s) is int for s in m.sizes)


def test_unknown_init_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown init 'xavier'; valid inits are: ") as info:
        MLP([2, 3, 1], key=KEY, init="xavier")
    for name in INITS:
        assert name in str(info.value)


# --- from_weights ------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["weights", "biases"])
@pytest.mark.parametrize("layer", [0, 1])
def test_non_finite_parameters_are_rejected(bad, where, layer):
    ws = [np.ones((3, 2)), np.ones((1, 3))]
    bs = [np.ones(3), np.ones(1)]
    (ws if where == "weights" else bs)[layer][0] = bad
    with pytest.raises(ValueError, match=rf"{where}\[{layer}\] contains NaN or Inf"):
        MLP.from_weights(ws, bs, "tanh", "sigmoid")
    # and through the augmented constructor, which builds on from_weights
    aug = [np.concatenate([b[:, None], w], axis=1) for w, b in zip(ws, bs)]
    with pytest.raises(ValueError, match=rf"{where}\[{layer}\] contains NaN or Inf"):
        MLP.from_augmented(aug, "first", "tanh", "sigmoid")


def test_weight_chain_mismatch_names_both_widths():
    ws = [np.ones((3, 2)), np.ones((1, 4))]
    msg = r"weights\[1\] has shape \(1, 4\): its input width 4 must equal the output width 3 of weights\[0\]"
    with pytest.raises(ValueError, match=msg):
        MLP.from_weights(ws)


@pytest.mark.parametrize("w", [np.ones(3), np.ones((2, 2, 2)), np.ones((0, 2))])
def test_weights_must_be_nonempty_matrices(w):
    with pytest.raises(ValueError, match=r"weights\[0\] has shape .*expected a 2-D \(out, in\) matrix"):
        MLP.from_weights([w])


def test_empty_weights():
    with pytest.raises(ValueError, match=r"weights is empty"):
        MLP.from_weights([])


@pytest.mark.parametrize("b", [np.ones(2), np.ones(4), np.ones((3, 1)), np.ones(())])
def test_bias_shape_mismatch(b):
    ws = [np.ones((3, 2)), np.ones((1, 3))]
    with pytest.raises(ValueError, match=r"biases\[0\] has shape .*; expected \(3,\)"):
        MLP.from_weights(ws, [b, None])


def test_bias_count_mismatch():
    ws = [np.ones((3, 2)), np.ones((1, 3))]
    with pytest.raises(ValueError, match=r"got 2 weight matrices but 1 biases"):
        MLP.from_weights(ws, [np.ones(3)])


# --- augmented matrices -------------------------------------------------------


@pytest.mark.parametrize("bias_column", ["middle", "First", 0, None])
def test_bad_bias_column(bias_column):
    msg = r"bias_column must be 'first' or 'last', got "
    with pytest.raises(ValueError, match=msg):
        MLP.from_augmented([np.ones((2, 3))], bias_column=bias_column)
    with pytest.raises(ValueError, match=msg):
        small_model().to_augmented(bias_column)


@pytest.mark.parametrize("m", [np.ones((2, 1)), np.ones(3)])
def test_augmented_matrix_needs_a_bias_column(m):
    with pytest.raises(ValueError, match=r"matrices\[0\] has shape .*expected \(out, in \+ 1\)"):
        MLP.from_augmented([m])


# --- variants ------------------------------------------------------------------


@pytest.mark.parametrize("call", ["manual_grad", "manual_value_and_grad", "backprop_trace"])
def test_unknown_variant_lists_valid_names(call, before_any_compute):
    m = small_model()
    x, y = xy(4, 2, 1)
    f = {
        "manual_grad": manual_grad,
        "manual_value_and_grad": manual_value_and_grad,
        "backprop_trace": backprop_trace,
    }[call]
    with pytest.raises(ValueError, match=r"unknown variant 'dense'; valid variants are: ") as info:
        f(m, x, y, "half_sse", "dense")
    assert "hadamard" in str(info.value) and "diagonal" in str(info.value)


# --- the stubs bite ---------------------------------------------------------------


@pytest.mark.parametrize("entry", ["manual_grad", "autodiff_grad", "numerical_grad"])
def test_fixture_stops_compute_for_valid_input(entry, before_any_compute):
    """Sanity check of the fixture: with valid inputs each entry point does reach compute."""
    m = small_model()
    x, y = xy(4, 2, 1)
    with pytest.raises(ComputeStarted):
        ENTRY_POINTS[entry](m, x, y, "half_sse")
