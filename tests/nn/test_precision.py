"""The saturating derivatives are accurate to a few ulp over the whole float range, against mpmath.

``ACTIVATIONS["tanh"].deriv`` and ``ACTIVATIONS["sigmoid"].deriv`` are computed
from z (t = e^−|z|: σ′ = t/(1 + t(2 + t)); tanh′ = 4t²/(1 + t²(2 + t²)) with
t² = e^−2|z|, and beyond |z| = 20 as e^(2 − 2|z|)·4e^−2), not from the notes'
1 − a² and a(1 − a), which cancel as |z| grows. The reference is the exact
sech²(z) and e^−|z|/(1 + e^−|z|)², evaluated by mpmath at the very float each z
is, so the only error measured is the implementation's.

The claim, in both dtypes: within 4 ulp of the exact value wherever that value
is a normal float (|z| up to ≈ 354.9 for tanh′ and 708.4 for σ′ in float64,
44.4 and 87.3 in float32), never NaN or infinite, for every z up to the largest
float and ±inf. Where the exact value is subnormal the result is 0 on a backend
that flushes subnormals (XLA's CPU does), else within 4 of the subnormal
spacing. Measured here (XLA CPU): at most 2.0 ulp in float64, 2.1 in float32;
before the z-forms were rewritten, tanh′ was 0 for |z| in 354.2–354.9 (float64)
and 43.7–44.4 (float32), where e^−2|z| is subnormal and flushed but sech² z is not.
``test_the_a_forms_are_what_fails`` shows why the z-forms: 1 − a² and a(1 − a)
lose every digit in float64 by |z| = 40.
"""

from __future__ import annotations

import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import backprop_lab as bl

mpmath.mp.dps = 50

ULPS = 4
ULPS64 = ULPS


def exact(name: str, z: float) -> float:
    z = mpmath.mpf(z)
    if name == "tanh":
        return float(mpmath.sech(z) ** 2)
    t = mpmath.exp(-abs(z))
    return float(t / (1 + t) ** 2)


def deriv(name: str, z: np.ndarray, dtype) -> np.ndarray:
    act = bl.ACTIVATIONS[name]
    zj = jnp.asarray(z, dtype)
    return np.asarray(act.deriv(zj, act.fn(zj)), np.float64)


def _threshold(name: str, dtype) -> float:
    """The |z| where the exact value falls to the smallest normal float: 4e^−2z or e^−z = tiny."""
    log_tiny = float(mpmath.log(np.finfo(dtype).tiny))
    return (float(mpmath.log(4)) - log_tiny) / 2 if name == "tanh" else -log_tiny


def _floats_around(edge: float, dtype, n: int = 200) -> np.ndarray:
    """The n consecutive floats of ``dtype`` below ``edge`` and the n above it."""
    start = dtype(edge)
    down, up = [start], [start]
    for _ in range(n - 1):
        down.append(np.nextafter(down[-1], dtype(0)))
        up.append(np.nextafter(up[-1], dtype(np.inf)))
    return np.array(down + up, dtype)


def _grid(name: str, dtype) -> np.ndarray:
    """±|z| from 0 past the point where e^|z| overflows and on to the largest float; a 1e-3
    step over the troublesome range (from where e^−2|z| turns subnormal to past the normal
    threshold) and 200 consecutive floats either side of that threshold."""
    info = np.finfo(dtype)
    overflow = float(np.log(info.max))  # 709.78 / 88.72
    edge = _threshold(name, dtype)
    parts = [
        np.linspace(0, overflow + 1, 2001),
        np.linspace(0, 2, 201),
        np.arange(edge - 0.9, edge + 0.3, 1e-3),
        _floats_around(edge, dtype),
        np.geomspace(overflow, float(info.max) / 4, 50),
        [0.0, 1e-8, float(info.tiny), float(info.max)],
    ]
    z = np.concatenate([np.asarray(p, np.float64) for p in parts]).astype(dtype)
    return np.concatenate([z, -z])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_within_4_ulp_of_mpmath_up_to_the_largest_float(name, dtype):
    z = _grid(name, dtype)
    got = deriv(name, z, dtype)
    want = np.array([exact(name, float(v)) for v in z])
    ulp = np.spacing(want.astype(dtype)).astype(np.float64)
    normal = want >= np.finfo(dtype).tiny
    err = np.abs(got - want) / ulp
    worst = int(np.argmax(np.where(normal, err, 0)))
    assert err[normal].max() <= ULPS, f"{name}′({z[worst]!r}) = {got[worst]!r}, exact {want[worst]!r}"
    assert np.all(got[normal] > 0)
    subnormal = ~normal
    assert subnormal.sum() > 100  # the grid reaches past the normal range
    assert np.all((got[subnormal] == 0) | (err[subnormal] <= ULPS))
    assert np.all(np.isfinite(deriv(name, np.array([np.inf, -np.inf]), dtype)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tanh_derivative_is_normal_where_e_minus_2z_is_flushed(dtype):
    """|z| in 354.2–354.9 (float64), 43.7–44.4 (float32): e^−2|z| is subnormal, sech² z is not."""
    lo, hi = (354.25, 354.85) if dtype == np.float64 else (43.75, 44.35)
    z = np.linspace(lo, hi, 61).astype(dtype)
    assert np.all(np.exp(-2.0 * z.astype(np.float64)) < np.finfo(dtype).tiny)
    got = deriv("tanh", z, dtype)
    want = np.array([exact("tanh", float(v)) for v in z])
    assert np.all(np.abs(got - want) <= ULPS * np.spacing(want.astype(dtype)).astype(np.float64))


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
