"""The gradient-agreement check of a program's lanes, in one compiled program, against each
lane's own network checked alone (``grad_agreement``, ``manual_grad``, ``autodiff_grad``,
``term_scales``): the same verdicts and tolerances, and the same gradients on the lane's
real units and layers. A lane whose hand-written derivative is wrong fails, alone and
among the others."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import backprop_lab
from backprop_lab.checks._agreement import grad_agreement, lane_agreements, lane_opinions
from backprop_lab.checks._scale import term_scales
from backprop_lab.nn._activations import Activation
from backprop_lab.training._masked import stack_networks

#: (hidden widths, activation) per lane: width 1, depths 1 to 3, several activations.
LANES = [((1,), "sigmoid"), ((3, 5), "tanh"), ((6, 1, 4), "relu"), ((4,), "gelu")]
ROWS = 12
LOSS = "cross_entropy"


def _nets(lanes, dtype) -> list[backprop_lab.MLP]:
    return [
        backprop_lab.MLP([2, *hidden, 3], act, "softmax", key=jax.random.PRNGKey(i), dtype=dtype)
        for i, (hidden, act) in enumerate(lanes)
    ]


def _rows(lanes: int, dtype):
    """Each lane's own rows (lanes, ROWS, width)."""
    x = jax.random.normal(jax.random.PRNGKey(7), (lanes, ROWS, 2), dtype)
    y = jax.nn.one_hot(jax.random.randint(jax.random.PRNGKey(8), (lanes, ROWS), 0, 3), 3, dtype=dtype)
    return np.asarray(x), np.asarray(y)


def _rel(a, b) -> float:
    a, b = (np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in jax.tree.leaves(t)]) for t in (a, b))
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# each lane checked alone costs its own compiles: in float32 the lane of depth 3 with a width-1 layer
@pytest.mark.parametrize(
    "dtype, rtol, alone", [(jnp.float64, 1e-12, (0, 1, 2, 3)), (jnp.float32, 1e-6, (2,))]
)
def test_each_padded_lane_checks_as_its_network_alone(dtype, rtol, alone):
    nets = _nets(LANES, dtype)
    models, masks = stack_networks(nets)
    assert masks is not None  # padded: widths, depths and activations differ
    x, y = _rows(len(nets), dtype)
    fields = lane_agreements(models, masks, x, y, LOSS)
    opinions = lane_opinions(models, masks, x, y, LOSS)
    assert [f["passed"] for f in fields] == [True] * len(nets)
    for i in alone:
        net = nets[i]
        own = grad_agreement(net, x[i], y[i], LOSS)
        assert fields[i]["passed"] is own["passed"] is True
        assert fields[i]["tolerance"] == own["tolerance"]
        assert fields[i]["min_cosine"] == pytest.approx(own["min_cosine"], abs=rtol)
        manual, diagonal, auto, scales = opinions[i]
        assert manual.sizes == net.sizes and manual.activation == net.activation
        assert _rel(manual, backprop_lab.manual_grad(net, x[i], y[i], LOSS)) < rtol
        assert _rel(diagonal, backprop_lab.manual_grad(net, x[i], y[i], LOSS)) < rtol
        assert _rel(auto, backprop_lab.autodiff_grad(net, x[i], y[i], LOSS)) < rtol
        np.testing.assert_allclose(scales, term_scales(net, x[i], y[i], LOSS), rtol=rtol)


def test_lanes_of_one_architecture_need_no_mask():
    nets = _nets([((5,), "tanh")] * 3, jnp.float64)
    models, masks = stack_networks(nets)
    assert masks is None
    x, y = _rows(len(nets), jnp.float64)
    for i, (fields, (manual, *_)) in enumerate(
        zip(lane_agreements(models, None, x, y, LOSS), lane_opinions(models, None, x, y, LOSS))
    ):
        alone = grad_agreement(nets[i], x[i], y[i], LOSS)
        assert fields["passed"] is alone["passed"] is True
        assert fields["min_cosine"] == pytest.approx(alone["min_cosine"], abs=1e-12)
        assert _rel(manual, backprop_lab.manual_grad(nets[i], x[i], y[i], LOSS)) < 1e-12


def test_a_lane_with_a_wrong_derivative_fails_among_the_others(monkeypatch):
    # a tanh whose table derivative is wrong: 1 − a instead of 1 − a²
    monkeypatch.setitem(
        backprop_lab.ACTIVATIONS, "bad_tanh", Activation("bad_tanh", jnp.tanh, lambda z, a: 1.0 - a)
    )
    nets = _nets([((3, 5), "bad_tanh"), *LANES[:3]], jnp.float64)
    models, masks = stack_networks(nets)
    x, y = _rows(len(nets), jnp.float64)
    fields = lane_agreements(models, masks, x, y, LOSS)
    alone = grad_agreement(nets[0], x[0], y[0], LOSS)
    assert fields[0]["passed"] is alone["passed"] is False
    assert fields[0]["max_rel_error"] > 1e-2 and fields[0]["min_cosine"] < 0.999
    assert [f["passed"] for f in fields[1:]] == [True, True, True]
