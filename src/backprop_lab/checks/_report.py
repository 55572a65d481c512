"""A gradient check as a report: the hand-written backprop against its second opinions.

:func:`check_grads` computes ∂L/∂W and ∂L/∂b of every layer four ways: the
notes' matrix backprop with Hadamard products (``manual_grad``), the same with
the materialised diagonal D (``variant="diagonal"``), ``jax.grad``, and, in
float64, central finite differences. It compares them tensor by tensor and
returns a :class:`GradReport` that renders as a terminal table, Markdown and
JSON.

Relative error: against the gradient's terms
--------------------------------------------
For a tensor with manual entries m and autodiff entries a::

    rel = max_i |m_i − a_i| / scale,   scale = max_i of the tensor's gradient taken in absolute values

(``_scale.term_scales``: the same backward pass on |a|, |y|, |W| and |f′| + eps,
so every |gradient entry| ≤ scale). Two routes through the same sums
differ by a few eps(dtype) times the sum of the absolute values of the terms,
whatever the sum comes to: a trained network's mean gradient can be a
thousandth of its per-example terms (and a − y at an output that fits its
target a small difference of numbers near 1), so an error measured against the
gradient itself, or against a floor fraction of its largest entry, reports
rounding as disagreement. Against the terms it is a few eps in every case.

Tolerances, per dtype (:data:`TOLERANCES`, :data:`TOLERANCE_EPS`)
----------------------------------------------------------------
"autodiff" and "diagonal": 64 eps(dtype), i.e. 1.4e-14 in float64 and 7.6e-6
in float32 (float16/bfloat16 take float32's). Measured: float32 sweeps of the
shipped data sets (moons, circles, digits, xor; seven activations; start and
end of training) stay within 1.8 eps; random networks of every activation and
output, widths up to 512 and batches up to 256, within 2.7 eps (float32) and 2.3 eps (float64). A wrong
derivative gives a relative error of order 1e-2 to 1.

"numerical": 1e-3. Finite differences (step 1e-6, float64) carry a truncation
and rounding error of about 1e-8 of the loss: loose enough for that, still an
order of magnitude below a wrong derivative.

Where the check cannot tell: ``jax.grad`` forms tanh′ and σ′ as 1 − a² and
a(1 − a), whose absolute error is a few eps (XLA's float32 tanh is exactly 1
from |z| ≈ 7.9, so 1 − a² is 0 where sech² z is still 4.5e-7). When every unit
a tensor's gradient passes through is saturated for every example (f′ below
about 1/16 everywhere, e.g. weights scaled up eightfold), those few eps are no
longer small against the terms and the check can fail; there ``manual_grad``
is the accurate one (``tests/nn/test_precision.py``).

"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from ..nn._autodiff import autodiff_grad, numerical_grad
from ..nn._backprop import check_inputs, manual_grad
from ..nn._losses import Loss
from ..nn._network import MLP
from ._result import GradReport, TensorCheck
from ._scale import term_scales

__all__ = [
    "NUMERICAL_MAX_PARAMS",
    "TOLERANCES",
    "TOLERANCE_EPS",
    "GradReport",
    "TensorCheck",
    "check_grads",
    "compare_grads",
    "grad_report",
]

Array = jax.Array

#: The "autodiff" and "diagonal" tolerances in units of eps(dtype).
TOLERANCE_EPS = 64
#: Allowed max relative error (against the terms' scale) per comparison and dtype.
TOLERANCES: dict[str, dict[str, float]] = {
    name: {
        "autodiff": TOLERANCE_EPS * float(np.finfo(name).eps),
        "diagonal": TOLERANCE_EPS * float(np.finfo(name).eps),
        "numerical": 1e-3,
    }
    for name in ("float64", "float32")
}
#: With ``numerical=None`` finite differences run only up to this many parameters.
NUMERICAL_MAX_PARAMS = 5000

_LOW_PRECISION = "float32"  # the row of the tables that float16/bfloat16 fall back on


def _tensors(grads: MLP) -> list[tuple[int, str, np.ndarray]]:
    """(layer, "W"/"b", float64 array) for every parameter tensor, layers counted from 1."""
    out = []
    for l, (w, b) in enumerate(zip(grads.weights, grads.biases), start=1):
        out.append((l, "W", np.asarray(w, np.float64)))
        if b is not None:
            out.append((l, "b", np.asarray(b, np.float64)))
    return out


def _rel_error(m: np.ndarray, ref: np.ndarray, scale: float) -> tuple[float, float]:
    """(max |m − ref|, max |m − ref| / scale); NaN anywhere gives NaN."""
    diff = np.abs(m - ref)
    if not (np.all(np.isfinite(diff))):
        return float("nan"), float("nan")
    worst = float(diff.max(initial=0.0))
    return worst, worst / scale


def _cosine(m: np.ndarray, a: np.ndarray) -> float:
    nm, na = np.linalg.norm(m), np.linalg.norm(a)
    if nm == 0.0 and na == 0.0:
        return 1.0
    if nm == 0.0 or na == 0.0:
        return 0.0
    return float(np.clip(np.vdot(m, a) / (nm * na), -1.0, 1.0))


def _scales(terms: list[float], dtype: np.dtype) -> list[float]:
    """Each tensor's scale, at least tiny(dtype) (an all-zero gradient still divides)."""
    return [max(t, float(np.finfo(dtype).tiny)) for t in terms]


def _settings(dtype: np.dtype, tolerances: dict[str, float] | None) -> dict[str, float]:
    """The tolerances: the dtype's defaults with the overrides given."""
    row = dtype.name if dtype.name in TOLERANCES else _LOW_PRECISION
    tol = dict(TOLERANCES[row])
    unknown = set(tolerances or {}) - set(tol)
    if unknown:
        raise ValueError(f"unknown tolerance keys {sorted(unknown)}; valid keys are: {', '.join(tol)}")
    tol.update(tolerances or {})
    return tol


def _run_numerical(numerical: bool | None, dtype: np.dtype, n_params: int) -> tuple[bool, str | None]:
    """Whether to compare with finite differences, and why not when ``numerical=None`` says no."""
    if numerical is not None:
        return numerical, None
    if dtype != np.float64:
        return False, f"skipped: model is {dtype.name} (pass numerical=True to force)"
    if n_params > NUMERICAL_MAX_PARAMS:
        return (
            False,
            f"skipped: {n_params} parameters > {NUMERICAL_MAX_PARAMS} (pass numerical=True to force)",
        )
    return True, None


def _compare(
    m: np.ndarray,
    d: np.ndarray,
    a: np.ndarray,
    numeric: np.ndarray | None,
    scale: float,
    tol: dict[str, float],
) -> dict[str, Any]:
    """The fields of one :class:`TensorCheck` but its name: manual ``m`` against autodiff ``a``,
    the diagonal variant ``d`` against ``m``, and ``m`` against the finite differences
    ``numeric`` when they ran; all of one tensor's shape, errors relative to ``scale``."""
    abs_err, rel_err = _rel_error(m, a, scale)
    _, diag_err = _rel_error(d, m, scale)
    num_abs = num_rel = None
    ok = rel_err <= tol["autodiff"] and diag_err <= tol["diagonal"]
    if numeric is not None:
        num_abs, num_rel = _rel_error(m, numeric, scale)
        ok = ok and num_rel <= max(tol["numerical"], tol["autodiff"])
    return dict(
        shape=tuple(m.shape),
        manual_norm=float(np.linalg.norm(m)),
        autodiff_norm=float(np.linalg.norm(a)),
        max_abs_error=abs_err,
        max_rel_error=rel_err,
        cosine=_cosine(m, a),
        scale=scale,
        diagonal_max_rel_error=diag_err,
        diagonal_agrees=bool(diag_err <= tol["diagonal"]),
        numerical_max_abs_error=num_abs,
        numerical_max_rel_error=num_rel,
        passed=bool(ok),
    )


def check_grads(
    model: MLP,
    x: Array,
    y: Array,
    loss: str | Loss,
    *,
    numerical: bool | None = None,
    tolerances: dict[str, float] | None = None,
) -> GradReport:
    """Compare the hand-written gradient with jax.grad, the diagonal variant and finite differences.

    Arguments:
        model: the network (its dtype sets the default tolerances).
        x: inputs, (in,) or (batch, in).
        y: targets, (out,) or (batch, out).
        loss: a loss name (see ``LOSSES``).
        numerical: compare with finite differences (always float64, one loss
            pair per parameter); None: only for a float64 model with at most
            :data:`NUMERICAL_MAX_PARAMS` parameters.
        tolerances: overrides of the allowed max relative error per comparison,
            keys "autodiff", "diagonal", "numerical"; defaults :data:`TOLERANCES`.
            Errors are relative to each tensor's scale (the module docstring).

    Returns:
        A :class:`GradReport`: ``passed``, ``failing``, ``max_abs_error``,
        ``max_rel_error``, ``min_cosine``, ``dtype`` and one :class:`TensorCheck`
        per tensor; ``str(report)`` is the terminal table.
    """
    loss_fn = check_inputs(model, x, y, loss)
    dtype = np.dtype(model.weights[0].dtype)
    tol = _settings(dtype, tolerances)
    n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(model))
    numerical, note = _run_numerical(numerical, dtype, n_params)

    # Each a compiled program cached per shape when the loss is a name.
    checks = compare_grads(
        manual_grad(model, x, y, loss, variant="hadamard"),
        manual_grad(model, x, y, loss, variant="diagonal"),
        autodiff_grad(model, x, y, loss),
        term_scales(model, x, y, loss),
        tol,
        numerical_grad(model, x, y, loss) if numerical else None,
    )
    batch = int(x.shape[0]) if len(x.shape) == 2 else 1
    return grad_report(model, checks, loss_fn.name, batch, tol, bool(numerical), note)


def compare_grads(
    manual: MLP,
    diagonal: MLP,
    auto: MLP,
    terms: Sequence[float],
    tol: dict[str, float],
    numeric: MLP | None = None,
) -> tuple[TensorCheck, ...]:
    """One :class:`TensorCheck` per tensor: the gradients of one network by the hand-written
    backprop (Hadamard and diagonal variants), ``jax.grad`` and, when given, finite
    differences, against the tensors' term scales (``term_scales``) and the tolerances."""
    scales = _scales(list(terms), np.dtype(manual.weights[0].dtype))
    auto_t = _tensors(auto)
    numerics: list[np.ndarray | None] = [None] * len(auto_t)
    if numeric is not None:
        numerics = [n for *_, n in _tensors(numeric)]
    return tuple(
        TensorCheck(layer=layer, tensor=name, **_compare(m, d, a, num, scale, tol))
        for (layer, name, m), (*_, d), (*_, a), num, scale in zip(
            _tensors(manual), _tensors(diagonal), auto_t, numerics, scales
        )
    )


def grad_report(
    model: MLP,
    checks: tuple[TensorCheck, ...],
    loss: str,
    batch: int,
    tol: dict[str, float],
    numerical: bool = False,
    note: str | None = None,
) -> GradReport:
    """The :class:`GradReport` of ``checks`` on ``model`` (its widths, activations and dtype)."""
    return GradReport(
        checks=checks,
        dtype=np.dtype(model.weights[0].dtype).name,
        sizes=tuple(model.sizes),
        activation=model.activation,
        output_activation=model.output_activation,
        loss=loss,
        batch=batch,
        tolerances=tol,
        numerical=numerical,
        numerical_note=note,
    )
