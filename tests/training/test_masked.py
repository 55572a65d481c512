"""Lanes of different widths, depths and hidden activations in one padded program: each lane
equals its own network trained alone (``bl.train``), step by step, and its padding stays 0.

The lanes' grid covers width 1, depths 1 to 4 and every hidden activation; each case
is one optimizer, gradient and dtype, with numeric optimizer settings that differ
between lanes. Parameters are compared norm-wise, ‖θ − θ_alone‖ / ‖θ_alone‖ over the
lane's real parameters; losses step by step, |L − L_alone| / |L_alone|.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import backprop_lab as bl
from backprop_lab.nn._activations import ACTIVATIONS
from backprop_lab.nn._group import pad_network, unpad_network
from backprop_lab.nn._padding import mask_params, masked_value_and_grad
from backprop_lab.training._lanes import run_lanes, with_hyperparams
from backprop_lab.training._masked import lane_state, padding_ratio, stack_states
from backprop_lab.training._measure import measure_lanes

HIDDEN = [name for name, act in ACTIVATIONS.items() if not act.output_only]
#: (hidden widths, activation) per lane: width 1, depths 1 to 4, every hidden activation.
GRID = [
    ((1,), "sigmoid"),
    ((3, 5), "tanh"),
    ((6, 1, 4), "relu"),
    ((2, 6, 3, 5), "leaky_relu"),
    ((6,), "elu"),
    ((4, 4), "softplus"),
    ((1, 2, 6), "gelu"),
    ((5, 3, 1, 2), "silu"),
    ((3,), "identity"),
]
STEPS, ROWS, BATCH = 10, 24, 8

# id: dtype, optimizer, its shared settings, per-lane settings, grad, lanes of GRID, loss,
# output activation, tolerance on losses and parameters. A vmapped lane's batched products
# may sum in another order than the lone run's (padded or not): float32 Adam, which divides
# by sqrt(v), magnifies that, and is held to the tolerance tests/training/test_sweep.py
# measured for lanes of one architecture.
CASES = {
    "f64-sgd-manual": (jnp.float64, "sgd", {}, [{}, {}], "manual", (0, 3), "mse", "sigmoid", 1e-12),
    "f64-momentum-autodiff": (
        jnp.float64,
        "momentum",
        {"nesterov": True, "weight_decay": 1e-3},
        [{"momentum": 0.5}, {"momentum": 0.9, "weight_decay": 0.0}],
        "autodiff",
        (1, 8),
        "cross_entropy",
        "softmax",
        1e-12,
    ),
    "f64-adam-cosine-manual": (
        jnp.float64,
        "adam",
        {"schedule": "cosine", "decay_steps": 8},
        [{"b1": 0.8, "eps": 1e-3}, {"b2": 0.99, "weight_decay": 1e-2}],
        "manual",
        (2, 7),
        "cross_entropy",
        "softmax",
        1e-12,
    ),
    "f32-sgd-manual": (jnp.float32, "sgd", {}, [{}, {}], "manual", (4, 5), "cross_entropy", "softmax", 1e-6),
    "f32-adam-autodiff": (
        jnp.float32,
        "adam",
        {},
        [{"b1": 0.8}, {"eps": 1e-4}],
        "autodiff",
        (6, 1),
        "mse",
        "sigmoid",
        2e-5,
    ),
}


def _net(lane: int, out: str, dtype, seed: int) -> bl.MLP:
    hidden, act = GRID[lane]
    return bl.MLP([2, *hidden, 2], act, out, key=jax.random.PRNGKey(seed), dtype=dtype)


def _data(dtype):
    x = jax.random.normal(jax.random.PRNGKey(99), (ROWS, 2), dtype)
    y = jax.nn.one_hot((x[:, 0] * x[:, 1] > 0).astype(jnp.int32), 2, dtype=dtype)
    return x, y


def _rel(a, b) -> float:
    a, b = (np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in jax.tree.leaves(t)]) for t in (a, b))
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _real(tree, masks):
    """True on each lane's own entries of a stacked, padded network-shaped tree."""
    ones = jax.tree.map(jnp.ones_like, tree)
    return jax.tree.map(lambda m: np.asarray(m) != 0, jax.jit(jax.vmap(mask_params))(ones, masks))


def _nets_of(state) -> list:
    return [
        n for n in jax.tree.leaves(state, is_leaf=lambda n: isinstance(n, bl.MLP)) if isinstance(n, bl.MLP)
    ]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.slow
def test_each_padded_lane_equals_its_network_trained_alone(case):
    dtype, name, shared, settings, grad, lanes, loss, out, tol = CASES[case]
    x, y = _data(dtype)
    nets = [_net(lane, out, dtype, seed) for seed, lane in enumerate(lanes)]
    lrs = [0.05 * (i + 1) for i in range(len(nets))]
    keys = jnp.stack([jax.random.PRNGKey(7 + i) for i in range(len(nets))])
    opt = bl.make_optimizer(name, 0.1, **shared)
    states = [with_hyperparams(opt.init(n), learning_rate=lr, **s) for n, lr, s in zip(nets, lrs, settings)]
    models, opts, masks = stack_states(nets, states)
    assert masks is not None and masks.real.shape[0] == len(nets)
    real = jax.tree.leaves(_real(models, masks))  # every network-shaped tree has the models' layout
    losses = []
    for step in range(STEPS):  # every step: the padding of the networks and of their optimizer state is 0
        models, opts, loss_step = run_lanes(
            models,
            opts,
            x,
            y,
            keys,
            step,
            loss=loss,
            optimizer=opt,
            steps=1,
            batch_size=BATCH,
            grad=grad,
            mask=masks,
        )
        losses.append(np.asarray(loss_step)[:, 0])
        for tree in [models, *_nets_of(opts)]:
            for leaf, own in zip(jax.tree.leaves(tree), real):
                assert not np.any(np.asarray(leaf)[~own]), f"a padded entry moved at step {step}"
    losses_arr = np.stack(losses, axis=1)
    host = jax.tree.map(np.asarray, (models, opts))
    for i, net in enumerate(nets):
        alone, history = bl.train(
            net,
            x,
            y,
            loss=loss,
            optimizer=bl.make_optimizer(name, lrs[i], **{**shared, **settings[i]}),
            steps=STEPS,
            batch_size=BATCH,
            grad=grad,
            key=keys[i],
        )
        np.testing.assert_allclose(losses_arr[i], np.asarray(history), rtol=tol, atol=0)
        own, _ = lane_state(host[0], host[1], masks, i)
        assert (own.sizes, own.activation) == (net.sizes, net.activation)
        assert _rel(own, alone) <= tol


def test_padding_starts_from_the_network_itself_to_the_bit():
    nets = [_net(lane, "softmax", jnp.float32, lane) for lane in range(len(GRID))]
    models, _, masks = stack_states(nets, [()] * len(nets))
    assert masks.activations == tuple(HIDDEN)  # every hidden activation in one program
    for i, net in enumerate(nets):
        own, _ = lane_state(models, (), masks, i)
        for a, b in zip(jax.tree.leaves(own), jax.tree.leaves(net)):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    # the padded FLOPs: each lane costs what the group's shape costs
    assert padding_ratio([n.sizes for n in nets]) == pytest.approx(
        len(nets)
        * (2 * 6 + 6 * 6 * 3 + 6 * 2)
        / sum(sum(i * o for i, o in zip(n.sizes[:-1], n.sizes[1:])) for n in nets)
    )


def test_manual_backprop_and_jax_grad_agree_inside_the_padded_program():
    x, y = _data(jnp.float64)
    nets = [_net(lane, "softmax", jnp.float64, lane) for lane in range(len(GRID))]
    models, _, masks = stack_states(nets, [()] * len(nets))

    def both(model, mask):
        return (
            masked_value_and_grad(model, mask, x, y, "cross_entropy", "manual"),
            masked_value_and_grad(model, mask, x, y, "cross_entropy", "autodiff"),
        )

    (v_manual, g_manual), (v_auto, g_auto) = jax.jit(jax.vmap(both))(models, masks)
    np.testing.assert_allclose(v_manual, v_auto, rtol=1e-13)
    for i in range(len(nets)):
        manual, auto = (
            unpad_network(
                jax.tree.map(lambda leaf: np.asarray(leaf)[i], g), jax.tree.map(lambda m: m[i], masks)
            )
            for g in (g_manual, g_auto)
        )
        assert _rel(manual, auto) < 1e-12
    # and the padded program's gradient is the network's own (two lanes: each costs a compile)
    for i in (3, 8):
        own = unpad_network(
            jax.tree.map(lambda leaf: np.asarray(leaf)[i], g_manual), jax.tree.map(lambda m: m[i], masks)
        )
        assert _rel(own, bl.manual_grad(nets[i], x, y, "cross_entropy")) < 1e-12


def test_diagnostics_report_each_lanes_real_layers_only():
    x, y = _data(jnp.float64)
    lanes = (0, 3)  # depths 1 and 4 in a program of depth 4
    nets = [_net(lane, "softmax", jnp.float64, lane) for lane in lanes]
    models, _, masks = stack_states(nets, [()] * len(nets))
    m = measure_lanes(models, x, y, x, y, loss="cross_entropy", one_hot=True, diagnostics=True, mask=masks)
    for i, net in enumerate(nets):
        real = np.asarray(m["real_layers"][i])
        trace = bl.backprop_trace(net, x, y, "cross_entropy")
        norms = [np.linalg.norm(np.asarray(w)) for w in trace.grads.weights]
        deltas = [np.mean(np.abs(np.asarray(d))) for d in trace.delta]
        assert real.sum() == len(net.weights)
        np.testing.assert_allclose(np.asarray(m["grad_norms"][i])[real], norms, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(m["mean_abs_delta"][i])[real], deltas, rtol=1e-12)
        np.testing.assert_allclose(m["train_loss"][i], trace.loss, rtol=1e-13)


def test_pad_network_refuses_networks_that_cannot_share_a_program():
    a = bl.MLP([2, 3, 2], key=jax.random.PRNGKey(0))
    b = bl.MLP([3, 3, 2], key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="share input and output widths"):
        stack_states([a, b], [(), ()])
    big, mask = pad_network(a, [2, 5, 5, 2])
    assert mask.real.tolist() == [True, False, True] and big.weights[1].shape == (5, 5)
