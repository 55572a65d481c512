"""The saturating derivatives are accurate to a few ulp, against mpmath at 50 digits.

``ACTIVATIONS["tanh"].deriv`` and ``ACTIVATIONS["sigmoid"].deriv`` are computed
from z (4t²/(1 + t²)² and t/(1 + t)² with t = e^−|z|), not from the notes'
1 − a² and a(1 − a), which cancel as |z| grows. The reference is the exact
sech²(z) and e^−|z|/(1 + e^−|z|)², evaluated by mpmath at the very float
each z is, so the only error measured is the implementation's.

Bounds, as measured here (XLA CPU, float64 on a grid of 1,601 points from −40
to 40, plus 0 and ±18): at most 3 ulp for tanh′ and 4 ulp for σ′, held to 6
ulp; in float32 at most 1.6 ε₃₂ relative, held to 4 ε₃₂ (ε₃₂ = 1.19e-7)
wherever the exact value is a normal float32. The a-forms, which ``jax.grad``
of ``jnp.tanh`` and ``jax.nn.sigmoid`` also use, were measured on the same
grid for |z| ≥ 1: relative error up to 82 (tanh′; at z = 18, 1.55e-15 against
the exact 9.28e-16) and 1.0 (σ′ is 0 from z ≈ 37 on); that is what
``test_the_a_forms_are_what_fails`` shows, as the reason for the z-forms.
"""

from __future__ import annotations

import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import backprop_lab as bl

mpmath.mp.dps = 50

ULPS64 = 6
EPS32_BOUND = 4


def exact(name: str, z: float) -> float:
    z = mpmath.mpf(z)
    if name == "tanh":
        return float(mpmath.sech(z) ** 2)
    t = mpmath.exp(-abs(z))
    return float(t / (1 + t) ** 2)


Z64 = np.concatenate([np.linspace(-40.0, 40.0, 1601), [0.0, 18.0, -18.0, 1e-8, -1e-300]])


def deriv(name: str, z: np.ndarray, dtype) -> np.ndarray:
    act = bl.ACTIVATIONS[name]
    zj = jnp.asarray(z, dtype)
    return np.asarray(act.deriv(zj, act.fn(zj)), np.float64)


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_float64_derivative_within_a_few_ulp_of_mpmath(name):
    got = deriv(name, Z64, jnp.float64)
    want = np.array([exact(name, z) for z in Z64])
    ulps = np.abs(got - want) / np.spacing(want)
    worst = int(np.argmax(ulps))
    assert ulps.max() <= ULPS64, f"{name}′({Z64[worst]}) = {got[worst]!r}, exact {want[worst]!r}"
    assert np.all(got > 0)  # nothing underflows in this range


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_float32_derivative_within_a_few_eps_of_mpmath(name):
    z32 = np.asarray(Z64, np.float32)
    got = deriv(name, z32, jnp.float32)
    want = np.array([exact(name, float(z)) for z in z32])
    normal = want >= np.finfo(np.float32).tiny
    rel = np.abs(got - want)[normal] / want[normal]
    assert rel.max() <= EPS32_BOUND * np.finfo(np.float32).eps


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_no_overflow_and_zero_only_where_the_exact_value_underflows(name):
    z = np.array([300.0, -300.0, 700.0, -700.0, 1e4, -1e308, np.inf, -np.inf])
    got = deriv(name, z, jnp.float64)
    want = np.array([exact(name, v) if np.isfinite(v) else 0.0 for v in z])
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got == 0.0, want == 0.0)
    nonzero = want > 0.0
    assert np.all(np.abs(got - want)[nonzero] <= ULPS64 * np.spacing(want[nonzero]))


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_the_a_forms_are_what_fails(name):
    """The notes' 1 − a² and a(1 − a) lose every digit in float64 by |z| = 40."""
    z = np.array([40.0, -40.0]) if name == "tanh" else np.array([40.0])
    a = np.asarray(bl.ACTIVATIONS[name].fn(jnp.asarray(z)))
    a_form = 1.0 - a * a if name == "tanh" else a * (1.0 - a)
    want = np.array([exact(name, v) for v in z])
    assert np.all(np.abs(a_form - want) / want > 0.5)
    assert np.all(np.abs(deriv(name, z, jnp.float64) - want) <= ULPS64 * np.spacing(want))


@pytest.mark.parametrize("variant", ["hadamard", "diagonal"])
def test_a_saturated_unit_backpropagates_the_exact_slope(variant):
    """One tanh unit at z = 18, then a linear output: ∂L/∂W¹ = (a² − y)·W²·sech²(z)·x.

    The whole chain is evaluated in mpmath; manual_grad agrees to 1e-14 relative.
    (jax.grad gives 1.55e-15/9.28e-16 − 1 = 67 % too much here, from 1 − a².)
    """
    w1, b1, w2, x, y = 2.0, 0.0, 0.5, 9.0, 0.25
    model = bl.MLP.from_weights(
        [np.array([[w1]]), np.array([[w2]])], [np.array([b1]), None], "tanh", "identity"
    )
    grads = bl.manual_grad(model, jnp.array([x]), jnp.array([y]), "half_sse", variant)
    z = mpmath.mpf(w1) * x + b1
    a2 = mpmath.mpf(w2) * mpmath.tanh(z)
    want = float((a2 - y) * w2 * mpmath.sech(z) ** 2 * x)
    assert float(grads.weights[0][0, 0]) == pytest.approx(want, rel=1e-14)
    assert float(grads.biases[0][0]) == pytest.approx(want / x, rel=1e-14)
    assert bool(jnp.isfinite(grads.weights[1][0, 0]))
