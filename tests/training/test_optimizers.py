"""Learning-rate schedules and weight decay against independent expectations: optax's own
schedule functions and AdamW, the update equation worked by hand, per-lane runs of a
sweep, the configs' keys and rules, and no recompiling on a second chunk."""

from __future__ import annotations

import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import yaml

import backprop_lab as bl
from backprop_lab import OPTIMIZERS, load_dataset
from backprop_lab.config._checks import ConfigError
from backprop_lab.training._lanes import with_learning_rate
from backprop_lab.training._optimizers import SCHEDULES, SHARED_DEFAULTS, SHARED_SETTINGS
from backprop_lab.training._train import _run

CONF = Path(__file__).resolve().parents[2] / "conf"
PEAK, WARMUP, DECAY, RATE = 0.3, 3, 10, 0.5
SETTINGS = {"warmup_steps": WARMUP, "decay_steps": DECAY, "decay_rate": RATE}
STEPS = 16  # past decay_steps: the tail of each schedule too

#: Each schedule as optax writes it, with the peak as its own value (not ours times 1).
OPTAX = {
    "constant": lambda peak: optax.constant_schedule(peak),
    "cosine": lambda peak: optax.cosine_decay_schedule(peak, DECAY),
    "warmup_cosine": lambda peak: optax.warmup_cosine_decay_schedule(0.0, peak, WARMUP, DECAY),
    "exponential": lambda peak: optax.exponential_decay(peak, DECAY, RATE),
}
TOL = {jnp.float32: 2e-6, jnp.float64: 1e-12}


def _settings(schedule: str) -> dict:
    return {"schedule": schedule, **SETTINGS}


def _updates(opt, params, grads, peak=None):
    """Each step's update under a gradient sequence (jitted, as training runs it)."""
    state = opt.init(params)
    if peak is not None:
        state = with_learning_rate(state, peak)  # what a sweep does lane by lane
    update = jax.jit(opt.update)
    out = []
    for g in grads:
        u, state = update(g, state, params)
        params = optax.apply_updates(params, u)
        out.append(u)
    return out


def test_every_schedule_has_its_optax_expectation():
    assert set(OPTAX) == set(SCHEDULES)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_learning_rate_at_each_step_is_optax_schedule_of_the_peak(schedule):
    """SGD on a unit gradient moves each weight by -η_t; the peak is swapped in after init."""
    params = jnp.zeros(2, jnp.float64)
    opt = bl.make_optimizer("sgd", 0.01, **_settings(schedule))
    ups = _updates(opt, params, [jnp.ones(2, jnp.float64)] * STEPS, peak=PEAK)
    expected = [float(OPTAX[schedule](PEAK)(t)) for t in range(STEPS)]
    np.testing.assert_allclose([-float(u[0]) for u in ups], expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    ("name", "schedule", "dtype"), list(itertools.product(OPTIMIZERS, SCHEDULES, [jnp.float32, jnp.float64]))
)
def test_schedule_scales_each_update_of_every_optimizer(name, schedule, dtype):
    """Without weight decay the direction does not depend on η, so a scheduled update is
    the constant-rate update times optax's schedule over its peak, in the params' dtype."""
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(3, 2)), dtype)}
    grads = [{"w": jnp.asarray(rng.normal(size=(3, 2)), dtype)} for _ in range(STEPS)]
    scheduled = bl.make_optimizer(name, PEAK, **_settings(schedule))
    assert scheduled.init(params).hyperparams["learning_rate"].dtype == dtype
    ups = _updates(scheduled, params, grads)
    const = _updates(bl.make_optimizer(name, PEAK), params, grads)
    for t, (u, c) in enumerate(zip(ups, const)):
        assert u["w"].dtype == dtype
        factor = float(OPTAX[schedule](PEAK)(t)) / PEAK
        np.testing.assert_allclose(u["w"], c["w"] * factor, rtol=TOL[dtype], atol=TOL[dtype] * 1e-3)


def test_sgd_weight_decay_one_step_by_hand():
    w0, g, lam = np.array([[1.0, -2.0]]), np.array([[0.5, 0.25]]), 0.1
    opt = bl.make_optimizer("sgd", PEAK, weight_decay=lam)
    (u,) = _updates(opt, {"w": jnp.asarray(w0)}, [{"w": jnp.asarray(g)}])
    np.testing.assert_allclose(w0 + u["w"], w0 - PEAK * (g + lam * w0), rtol=1e-14)


def test_momentum_weight_decay_stays_out_of_the_momentum():
    """Two steps: m₁ = g₁, m₂ = μ m₁ + g₂, and w ← w − η (m + λ w) each time."""
    w0, g1, g2, lam, mu = np.array([1.0, -2.0]), np.array([0.5, 0.25]), np.array([-1.0, 2.0]), 0.1, 0.9
    opt = bl.make_optimizer("momentum", PEAK, momentum=mu, weight_decay=lam)
    u1, u2 = _updates(opt, {"w": jnp.asarray(w0)}, [{"w": jnp.asarray(g1)}, {"w": jnp.asarray(g2)}])
    w1 = w0 - PEAK * (g1 + lam * w0)
    w2 = w1 - PEAK * ((mu * g1 + g2) + lam * w1)
    np.testing.assert_allclose(w0 + u1["w"], w1, rtol=1e-14)
    np.testing.assert_allclose(w0 + u1["w"] + u2["w"], w2, rtol=1e-14)


def test_adam_weight_decay_one_step_by_hand():
    """Step 1: m̂ = g and v̂ = g², so w₁ = w₀ − η (g / (|g| + ε) + λ w₀)."""
    w0, g, lam, eps = np.array([1.0, -2.0, 0.5]), np.array([0.5, -0.25, 3.0]), 0.01, 1e-8
    opt = bl.make_optimizer("adam", PEAK, weight_decay=lam, eps=eps)
    (u,) = _updates(opt, {"w": jnp.asarray(w0)}, [{"w": jnp.asarray(g)}])
    np.testing.assert_allclose(w0 + u["w"], w0 - PEAK * (g / (np.abs(g) + eps) + lam * w0), rtol=1e-14)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_adam_with_weight_decay_is_optax_adamw(schedule):
    rng = np.random.default_rng(1)
    params = {"w": jnp.asarray(rng.normal(size=(4, 3)))}
    grads = [{"w": jnp.asarray(rng.normal(size=(4, 3)))} for _ in range(STEPS)]
    ours = _updates(bl.make_optimizer("adam", PEAK, weight_decay=0.05, **_settings(schedule)), params, grads)
    theirs = _updates(optax.adamw(OPTAX[schedule](PEAK), weight_decay=0.05), params, grads)
    for a, b in zip(ours, theirs):
        # optax evaluates its schedule at the int32 count, in float32 precision
        np.testing.assert_allclose(a["w"], b["w"], rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        (
            "momentum",
            {"schedule": "warmup_cosine", "warmup_steps": 5, "decay_steps": 40, "weight_decay": 1e-3},
        ),
        ("adam", {"schedule": "exponential", "decay_steps": 20, "decay_rate": 0.3, "weight_decay": 1e-2}),
    ],
)
@pytest.mark.slow
def test_a_sweep_over_peaks_equals_each_run_alone(name, settings):
    data = load_dataset("moons", dtype=np.float32, n_samples=200)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    peaks = [0.01, 0.3]
    models = [
        bl.MLP([2, 8, 2], "tanh", "softmax", key=jax.random.PRNGKey(s), dtype=jnp.float32) for s in range(2)
    ]
    keys = jnp.stack([jax.random.PRNGKey(10 + s) for s in range(2)])
    trained, histories = bl.train_sweep(
        models,
        x,
        y,
        loss="cross_entropy",
        optimizer=bl.make_optimizer(name, 0.1, **settings),
        learning_rates=peaks,
        steps=40,
        batch_size=30,
        keys=keys,
    )
    for lane, peak in enumerate(peaks):
        model, history = bl.train(
            models[lane],
            x,
            y,
            loss="cross_entropy",
            optimizer=bl.make_optimizer(name, peak, **settings),
            steps=40,
            batch_size=30,
            key=keys[lane],
        )
        # Batched and unbatched products may sum in another order (see test_sweep.py).
        np.testing.assert_allclose(histories[lane], history, rtol=2e-5, atol=1e-7)
        for a, b in zip(jax.tree.leaves(trained[lane]), jax.tree.leaves(model)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_second_chunk_and_an_equal_optimizer_do_not_recompile():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 3)))
    y = jnp.eye(2)[jnp.arange(8) % 2]
    model = bl.MLP([3, 5, 2], "tanh", "softmax", key=jax.random.PRNGKey(3), dtype=jnp.float64)
    settings = {"schedule": "warmup_cosine", "warmup_steps": 2, "decay_steps": 12, "weight_decay": 1e-3}
    opt = bl.make_optimizer("adam", 0.01, **settings)
    key = jax.random.PRNGKey(0)
    kw = dict(loss="cross_entropy", steps=4, batch_size=4)
    half, state, _ = bl.run_steps(model, opt.init(model), x, y, key, 0, optimizer=opt, **kw)
    compiled = _run._cache_size()
    again = bl.make_optimizer("adam", 0.01, **settings)  # built afresh, equal
    bl.run_steps(half, state, x, y, key, 4, optimizer=again, **kw)  # the second chunk
    bl.run_steps(model, with_learning_rate(opt.init(model), 0.5), x, y, key, 0, optimizer=opt, **kw)
    assert _run._cache_size() == compiled
    other = bl.make_optimizer("adam", 0.01, **{**settings, "decay_steps": 13})
    bl.run_steps(model, other.init(model), x, y, key, 0, optimizer=other, **kw)
    assert _run._cache_size() == compiled + 1  # another schedule is another program


@pytest.mark.parametrize(
    ("settings", "key", "says"),
    [
        ({"schedule": "cosine"}, "optimizer.decay_steps", "schedule=cosine needs"),
        ({"schedule": "exponential", "decay_steps": None}, "optimizer.decay_steps", "needs"),
        (
            {"schedule": "warmup_cosine", "warmup_steps": 10, "decay_steps": 10},
            "optimizer.warmup_steps",
            "less than optimizer.decay_steps=10",
        ),
        (
            {"schedule": "linear", "decay_steps": 10},
            "schedule",
            "constant, cosine, exponential, warmup_cosine",
        ),
        ({"decay_steps": 0}, "decay_steps", "an integer >= 1"),
        ({"warmup_steps": 1.5}, "warmup_steps", "an integer >= 0"),
        ({"decay_rate": 0.0}, "decay_rate", "(0, 1]"),
        ({"weight_decay": -1e-4}, "weight_decay", ">= 0"),
        ({"weight_decay": True}, "weight_decay", "number"),
    ],
)
def test_bad_settings_name_the_key(settings, key, says):
    with pytest.raises(ConfigError, match="schedule|decay|warmup") as err:
        bl.make_optimizer("adam", 0.1, **settings)
    assert err.value.key.endswith(key) and says in str(err.value)


def test_plain_make_optimizer_and_table_calls_still_work():
    params = {"w": jnp.ones(2)}
    for name in OPTIMIZERS:
        state = bl.make_optimizer(name, 0.1).init(params)
        assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.1)
        assert set(SHARED_SETTINGS) <= set(OPTIMIZERS[name].settings)
    u, _ = OPTIMIZERS["sgd"](learning_rate=0.5).update(
        {"w": jnp.ones(2)}, OPTIMIZERS["sgd"](0.5).init(params), params
    )
    np.testing.assert_allclose(u["w"], [-0.5, -0.5])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_config_file_holds_every_setting_at_its_default(name):
    cfg = yaml.safe_load((CONF / "optimizer" / f"{name}.yaml").read_text())
    assert cfg.pop("name") == name and cfg.pop("lr") > 0
    assert set(cfg) == set(OPTIMIZERS[name].settings)
    assert {k: cfg[k] for k in SHARED_DEFAULTS} == SHARED_DEFAULTS
    bl.make_optimizer(name, 0.1, **cfg)  # every default passes its rule
