"""Activation functions, each with its hand-written derivative beside it.

Every entry of :data:`ACTIVATIONS` carries the function ``fn(z)`` and the
derivative ``deriv(z, a)``, given both ``z`` and the output ``a = fn(z)``. This
table is the only place a derivative is written: the backward pass, the
diagonal-matrix variant and the worked-example explainer all read it from here.

Saturation. The notes write σ′ = a(1 − a) and tanh′ = 1 − a². Equal in exact
arithmetic, these lose all relative accuracy as |z| grows: 1 − a cancels, and
float64 ``tanh`` on XLA's CPU backend is itself a few ulp off, so 1 − a² at
z = 18 has a relative error of order 1 and is exactly 0 beyond |z| ≈ 19 (σ′
beyond z ≈ 37). The table computes both from z instead, with t = e^(−|z|)::

    σ′(z)    = t / (1 + t(2 + t))                    (= σ(z) σ(−z))
    tanh′(z) = 4 t² / (1 + t²(2 + t²))  for |z| ≤ 20  (= sech² z, t² = e^−2|z|)
             = e^(2 − 2|z|) · 4e^−2     beyond        (1 + t² rounds to 1 there)

(1 + t)² is written 1 + t(2 + t) to round once next to 1. The tail's exponent
is exact (2|z| − 2 is a float for |z| ≥ 1) and stays above the underflow point
as long as tanh′ is a normal float; e^−2|z| itself turns subnormal at |z| ≈
354.2 (float64) / 43.7 (float32), which XLA's CPU backend flushes to 0, so
4t² would be 0 up to 354.9 / 44.4 where sech² z is still a normal float.

Accuracy: within 4 ulp of the exact value (measured: 2.0 in float64, 2.1 in
float32) for every z where that value is a normal float, i.e. |z| up to 354.9
(tanh′) and 708.4 (σ′) in float64, 44.4 and 87.3 in float32; never NaN or
infinite (t ≤ 1), up to ±inf. Where the exact value is subnormal the result is
0 on a backend that flushes subnormals (XLA's CPU does), as every subnormal
result there is. ``tests/nn/test_precision.py`` checks this against mpmath from
z = 0 to the largest float in both dtypes. ``jax.grad`` of the forward pass
(:func:`autodiff_grad`) differentiates ``jnp.tanh`` and ``jax.nn.sigmoid`` with
the a-forms, not this table, so near saturation the hand-written gradient is the
more accurate of the two. Through ``manual_loss`` (a ``jax.custom_vjp``),
``jax.grad`` sees this table's derivatives, as ``manual_grad`` does.

Softmax is not element-wise; it supplies its Jacobian-vector product
``a ⊙ (g − ⟨g, a⟩)`` and its Jacobian ``diag(a) − a aᵀ`` instead, and is only
allowed as an output activation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

Array = jax.Array

_LEAKY_SLOPE = 0.01
_ELU_ALPHA = 1.0
_SQRT2 = 1.4142135623730951
_INV_SQRT_2PI = 0.3989422804014327
_FOUR_OVER_E2 = 0.5413411329464508  # 4e^−2
_TANH_TAIL = 20.0  # |z| beyond which 1 + e^−2|z| rounds to 1 in float64 (and float32)


@dataclasses.dataclass(frozen=True)
class Activation:
    """An activation function with its hand-written derivative.

    Attributes:
        name: the name used in configs and error messages.
        fn: ``z -> a``, applied to arrays of shape (..., width).
        deriv: ``(z, a) -> f′(z)`` element-wise, same shape as ``z``; ``None``
            for activations that are not element-wise (softmax).
        vjp: for non-element-wise activations, ``(z, a, g) -> Jᵀ g``.
        jac: for non-element-wise activations, ``(z, a) -> J`` of shape
            (..., width, width).
        default_init: the initialisation that suits this activation.
        output_only: True if it may only be used on the last layer.
    """

    name: str
    fn: Callable[[Array], Array]
    deriv: Callable[[Array, Array], Array] | None
    vjp: Callable[[Array, Array, Array], Array] | None = None
    jac: Callable[[Array, Array], Array] | None = None
    default_init: str = "glorot"
    output_only: bool = False

    def backward(self, z: Array, a: Array, g: Array) -> Array:
        """δ = (∂a/∂z)ᵀ g, the Hadamard form: ``g ⊙ f′(z)`` for element-wise ones."""
        if self.deriv is not None:
            return g * self.deriv(z, a)
        if self.vjp is None:  # calling the missing vjp raised this TypeError before
            raise TypeError(f"activation {self.name!r} has neither deriv nor vjp")
        return self.vjp(z, a, g)

    def jacobian(self, z: Array, a: Array) -> Array:
        """The matrix D = ∂a/∂z of shape (..., width, width), as notes 000-002 write it.

        For an element-wise activation this is ``diag(f′(z))``, materialised on
        purpose: it is the teaching form whose wasted work the benchmarks show.
        """
        if self.deriv is not None:
            d = self.deriv(z, a)
            return jnp.einsum("...i,ij->...ij", d, jnp.eye(d.shape[-1], dtype=d.dtype))
        if self.jac is None:  # calling the missing jac raised this TypeError before
            raise TypeError(f"activation {self.name!r} has neither deriv nor jac")
        return self.jac(z, a)


def _sigmoid(z: Array) -> Array:
    return jax.nn.sigmoid(z)


def _sigmoid_deriv(z: Array, a: Array) -> Array:
    # (1 + t)² as 1 + t(2 + t): one rounding next to 1 instead of three.
    t = jnp.exp(-jnp.abs(z))
    return t / (1.0 + t * (2.0 + t))


def _tanh_deriv(z: Array, a: Array) -> Array:
    # 4t²/(1 + t²)² with t² = e^−2|z| while 1 + t² still differs from 1; beyond, where
    # it is 4t² alone, as e^(2 − 2|z|) · 4e^−2, whose argument is exact and which stays
    # a normal float wherever 4t² is (e^−2|z| itself would be flushed to 0 from |z| ≈ 354.2).
    x = 2.0 * jnp.abs(z)
    t2 = jnp.exp(-x)
    tail = jnp.exp(2.0 - x) * _FOUR_OVER_E2
    return jnp.where(x > 2.0 * _TANH_TAIL, tail, 4.0 * t2 / (1.0 + t2 * (2.0 + t2)))


def _gelu(z: Array) -> Array:
    return 0.5 * z * (1.0 + erf(z / _SQRT2))


def _gelu_deriv(z: Array, a: Array) -> Array:
    # Φ(z) + z φ(z), exact (erf) form.
    return 0.5 * (1.0 + erf(z / _SQRT2)) + z * _INV_SQRT_2PI * jnp.exp(-0.5 * z * z)


def _silu_deriv(z: Array, a: Array) -> Array:
    s = jax.nn.sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


def _softmax(z: Array) -> Array:
    return jax.nn.softmax(z, axis=-1)


def _softmax_vjp(z: Array, a: Array, g: Array) -> Array:
    return a * (g - jnp.sum(g * a, axis=-1, keepdims=True))


def _softmax_jac(z: Array, a: Array) -> Array:
    eye = jnp.eye(a.shape[-1], dtype=a.dtype)
    return jnp.einsum("...i,ij->...ij", a, eye) - jnp.einsum("...i,...j->...ij", a, a)


def _elu(z: Array) -> Array:
    # The inner where keeps expm1 finite for large z and gives jax.grad the
    # derivative 1 at z = 0 (jnp.minimum would split the tie and give 0.5).
    return jnp.where(z > 0, z, _ELU_ALPHA * jnp.expm1(jnp.where(z > 0, 0.0, z)))


ACTIVATIONS: dict[str, Activation] = {
    act.name: act
    for act in (
        Activation("sigmoid", _sigmoid, _sigmoid_deriv),
        Activation("tanh", jnp.tanh, _tanh_deriv),
        Activation(
            "relu",
            lambda z: jnp.where(z > 0, z, 0.0),
            lambda z, a: (z > 0).astype(z.dtype),
            default_init="he",
        ),
        Activation(
            "leaky_relu",
            lambda z: jnp.where(z > 0, z, _LEAKY_SLOPE * z),
            lambda z, a: jnp.where(z > 0, 1.0, _LEAKY_SLOPE).astype(z.dtype),
            default_init="he",
        ),
        Activation(
            "elu",
            _elu,
            lambda z, a: jnp.where(z > 0, 1.0, a + _ELU_ALPHA).astype(z.dtype),
            default_init="he",
        ),
        Activation(
            "softplus",
            jax.nn.softplus,
            lambda z, a: jax.nn.sigmoid(z),
            default_init="he",
        ),
        Activation("gelu", _gelu, _gelu_deriv, default_init="he"),
        Activation("silu", jax.nn.silu, _silu_deriv, default_init="he"),
        Activation("identity", lambda z: z, lambda z, a: jnp.ones_like(z), default_init="lecun"),
        Activation(
            "softmax",
            _softmax,
            None,
            vjp=_softmax_vjp,
            jac=_softmax_jac,
            output_only=True,
        ),
    )
}


def get_activation(name: str | Activation, *, output: bool = False) -> Activation:
    """Look up an activation by name, with an error that lists the valid names.

    Arguments:
        name: a key of :data:`ACTIVATIONS`, or an :class:`Activation` (returned as is).
        output: whether it is for the output layer (softmax is allowed only there).
    """
    if isinstance(name, Activation):
        act = name
    else:
        if name not in ACTIVATIONS:
            valid = ", ".join(sorted(ACTIVATIONS))
            raise ValueError(f"unknown activation {name!r}; valid activations are: {valid}")
        act = ACTIVATIONS[name]
    if act.output_only and not output:
        hidden = ", ".join(sorted(n for n, a in ACTIVATIONS.items() if not a.output_only))
        raise ValueError(
            f"activation {act.name!r} is only allowed as output_activation; "
            f"hidden layers take one of: {hidden}"
        )
    return act
