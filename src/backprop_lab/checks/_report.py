"""A gradient check as a report: the hand-written backprop against its second opinions.

:func:`check_grads` computes ∂L/∂W and ∂L/∂b of every layer four ways: the
notes' matrix backprop with Hadamard products (``manual_grad``), the same with
the materialised diagonal D (``variant="diagonal"``), ``jax.grad``, and, in
float64, central finite differences. It compares them tensor by tensor and
returns a :class:`GradReport` that renders as a terminal table, Markdown and
JSON.

Relative error and its floor
----------------------------
For a tensor with manual entries m and autodiff entries a::

    rel = max_i |m_i − a_i| / max(|a_i|, floor)
    floor = max(rel_floor × max_i |a_i|,  eps(dtype) × max |a| over all tensors,  tiny(dtype))

Both gradients are sums over the batch and the layer widths taken in
different orders, so their rounding error scales with the size of the summed
terms (about the largest entry of the tensor), not with the entry itself: an
entry that nearly cancels to zero would otherwise show a huge relative error
that means nothing. Entries smaller than ``rel_floor`` times the tensor's
largest are therefore compared against that fraction of the largest. The second
term covers a tensor that is all (near) zero, the third an all-zero gradient.

Default floors and tolerances, per dtype (:data:`REL_FLOOR`, :data:`TOLERANCES`)
--------------------------------------------------------------------------------
A wrong derivative shows up as a relative error of order 0.01 to 1; rounding as
a few eps(dtype) / rel_floor. Measured over every hidden activation, softmax and
sigmoid outputs, widths up to 256 and batches up to 256, the worst manual vs
jax.grad error was 3.6e-12 in float64 (rel_floor 1e-4) and 1.3e-5 in float32
(rel_floor 3e-2), so

* float64 (eps 2.2e-16): rel_floor 1e-4, tolerance 1e-10, a margin of about 30;
* float32 (eps 1.2e-7): rel_floor 3e-2, tolerance 1e-4, a margin of about 8.

The diagonal variant is held to the same tolerance as jax.grad. Finite
differences (step 1e-6, float64) carry a rounding error of about
eps·|L|·(terms summed)/1e-6 ≈ 1e-8 absolute, up to ~1e-4 relative at the
floor, so they are held to 1e-3: loose enough for their noise, still orders of
magnitude tighter than a wrong derivative.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from ..nn._autodiff import autodiff_grad, numerical_grad
from ..nn._backprop import check_inputs, manual_grad
from ..nn._losses import Loss
from ..nn._network import MLP
from ._result import GradReport, TensorCheck

__all__ = ["NUMERICAL_MAX_PARAMS", "REL_FLOOR", "TOLERANCES", "GradReport", "TensorCheck", "check_grads"]

Array = jax.Array

#: Fraction of a tensor's largest |entry| below which entries are compared absolutely.
REL_FLOOR: dict[str, float] = {"float64": 1e-4, "float32": 3e-2}
#: Allowed max relative error per comparison and dtype (see the module docstring).
TOLERANCES: dict[str, dict[str, float]] = {
    "float64": {"autodiff": 1e-10, "diagonal": 1e-10, "numerical": 1e-3},
    "float32": {"autodiff": 1e-4, "diagonal": 1e-4, "numerical": 1e-3},
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


def _rel_error(m: np.ndarray, ref: np.ndarray, floor: float) -> tuple[float, float]:
    """(max |m − ref|, max |m − ref| / max(|ref|, floor)); NaN anywhere gives NaN."""
    diff = np.abs(m - ref)
    if not (np.all(np.isfinite(diff))):
        return float("nan"), float("nan")
    return float(diff.max(initial=0.0)), float((diff / np.maximum(np.abs(ref), floor)).max(initial=0.0))


def _cosine(m: np.ndarray, a: np.ndarray) -> float:
    nm, na = np.linalg.norm(m), np.linalg.norm(a)
    if nm == 0.0 and na == 0.0:
        return 1.0
    if nm == 0.0 or na == 0.0:
        return 0.0
    return float(np.clip(np.vdot(m, a) / (nm * na), -1.0, 1.0))


def _floors(ref: list[np.ndarray], rel_floor: float, dtype: np.dtype) -> list[float]:
    info = np.finfo(dtype)
    overall = max((float(np.abs(r).max(initial=0.0)) for r in ref), default=0.0)
    base = max(float(info.eps) * overall, float(info.tiny))
    return [max(rel_floor * float(np.abs(r).max(initial=0.0)), base) for r in ref]


def _settings(
    dtype: np.dtype, rel_floor: float | None, tolerances: dict[str, float] | None
) -> tuple[float, dict[str, float]]:
    """The floor fraction and the tolerances: the dtype's defaults with the overrides given."""
    row = dtype.name if dtype.name in TOLERANCES else _LOW_PRECISION
    tol = dict(TOLERANCES[row])
    unknown = set(tolerances or {}) - set(tol)
    if unknown:
        raise ValueError(f"unknown tolerance keys {sorted(unknown)}; valid keys are: {', '.join(tol)}")
    tol.update(tolerances or {})
    rel_floor = REL_FLOOR[row] if rel_floor is None else float(rel_floor)
    if not rel_floor >= 0.0:
        raise ValueError(f"rel_floor must be a number >= 0, got {rel_floor}")
    return rel_floor, tol


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
    numeric: tuple[np.ndarray, float] | None,
    floor: float,
    tol: dict[str, float],
) -> dict[str, Any]:
    """The fields of one :class:`TensorCheck` but its name: manual ``m`` against autodiff ``a``,
    the diagonal variant ``d`` against ``m``, and ``m`` against finite differences
    ``numeric = (gradient, its floor)`` when they ran; all of one tensor's shape."""
    abs_err, rel_err = _rel_error(m, a, floor)
    _, diag_err = _rel_error(d, m, floor)
    num_abs = num_rel = None
    ok = rel_err <= tol["autodiff"] and diag_err <= tol["diagonal"]
    if numeric is not None:
        num_abs, num_rel = _rel_error(m, *numeric)
        ok = ok and num_rel <= max(tol["numerical"], tol["autodiff"])
    return dict(
        shape=tuple(m.shape),
        manual_norm=float(np.linalg.norm(m)),
        autodiff_norm=float(np.linalg.norm(a)),
        max_abs_error=abs_err,
        max_rel_error=rel_err,
        cosine=_cosine(m, a),
        floor=floor,
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
    rel_floor: float | None = None,
    tolerances: dict[str, float] | None = None,
) -> GradReport:
    """Compare the hand-written gradient with jax.grad, the diagonal variant and finite differences.

    Arguments:
        model: the network (its dtype sets the default floor and tolerances).
        x: inputs, (in,) or (batch, in).
        y: targets, (out,) or (batch, out).
        loss: a loss name (see ``LOSSES``).
        numerical: compare with finite differences (always float64, one loss
            pair per parameter); None: only for a float64 model with at most
            :data:`NUMERICAL_MAX_PARAMS` parameters.
        rel_floor: fraction of each tensor's largest |entry| used as the floor of
            relative errors; None: :data:`REL_FLOOR` of the dtype.
        tolerances: overrides of the allowed max relative error per comparison,
            keys "autodiff", "diagonal", "numerical"; defaults :data:`TOLERANCES`.

    Returns:
        A :class:`GradReport`: ``passed``, ``failing``, ``max_abs_error``,
        ``max_rel_error``, ``min_cosine``, ``dtype`` and one :class:`TensorCheck`
        per tensor; ``str(report)`` is the terminal table.
    """
    loss_fn = check_inputs(model, x, y, loss)
    dtype = np.dtype(model.weights[0].dtype)
    rel_floor, tol = _settings(dtype, rel_floor, tolerances)
    n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(model))
    numerical, note = _run_numerical(numerical, dtype, n_params)

    # Each a compiled program cached per shape when the loss is a name.
    manual = _tensors(manual_grad(model, x, y, loss, variant="hadamard"))
    diagonal = _tensors(manual_grad(model, x, y, loss, variant="diagonal"))
    auto = _tensors(autodiff_grad(model, x, y, loss))
    floors = _floors([a for *_, a in auto], rel_floor, dtype)
    numeric: list[tuple[np.ndarray, float] | None] = [None] * len(auto)
    if numerical:
        finite_differences = [n for *_, n in _tensors(numerical_grad(model, x, y, loss))]
        numeric = list(zip(finite_differences, _floors(finite_differences, rel_floor, dtype)))
    checks = tuple(
        TensorCheck(layer=layer, tensor=name, **_compare(m, d, a, num, floor, tol))
        for (layer, name, m), (*_, d), (*_, a), num, floor in zip(manual, diagonal, auto, numeric, floors)
    )
    return GradReport(
        checks=checks,
        dtype=dtype.name,
        sizes=tuple(model.sizes),
        activation=model.activation,
        output_activation=model.output_activation,
        loss=loss_fn.name,
        batch=int(x.shape[0]) if len(x.shape) == 2 else 1,
        rel_floor=rel_floor,
        tolerances=tol,
        numerical=bool(numerical),
        numerical_note=note,
    )
