"""The result of a gradient check (:func:`._report.check_grads`): one :class:`TensorCheck`
per parameter tensor, gathered in a :class:`GradReport` that gives the verdict and renders
as a terminal table, Markdown (``_render``) and JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from ._render import render_markdown, render_table

__all__ = ["GradReport", "TensorCheck"]


@dataclasses.dataclass(frozen=True)
class TensorCheck:
    """The comparison for one parameter tensor (W or b of one layer).

    Attributes:
        layer: the layer number l = 1..L as the notes count (``model.weights[l - 1]``).
        tensor: "W" or "b".
        shape: the tensor's shape, (out, in) or (out,).
        manual_norm, autodiff_norm: Frobenius norms of the two gradients.
        max_abs_error: max |manual − autodiff|.
        max_rel_error: max |manual − autodiff| / scale.
        cosine: cosine similarity of manual and autodiff (1 when both are zero).
        scale: the largest entry of this tensor's gradient taken in absolute
            values (every term of every sum counted positive), which every
            relative error here is measured against (``_report``'s docstring).
        diagonal_max_rel_error: max |diagonal − manual| / scale.
        numerical_max_abs_error, numerical_max_rel_error: manual vs finite
            differences (relative to the same scale), None when not run.
        passed: every comparison that ran is within its tolerance.
    """

    layer: int
    tensor: str
    shape: tuple[int, ...]
    manual_norm: float
    autodiff_norm: float
    max_abs_error: float
    max_rel_error: float
    cosine: float
    scale: float
    diagonal_max_rel_error: float
    diagonal_agrees: bool
    numerical_max_abs_error: float | None
    numerical_max_rel_error: float | None
    passed: bool


@dataclasses.dataclass(frozen=True)
class GradReport:
    """The result of :func:`check_grads`; ``report.passed`` is the verdict.

    Attributes:
        checks: one :class:`TensorCheck` per parameter tensor, layer by layer, W before b.
        dtype: the model's dtype name ("float64", "float32", …).
        sizes, activation, output_activation, loss: the network and loss checked.
        batch: the number of examples the gradient was taken over.
        tolerances: allowed max relative error per comparison ("autodiff", "diagonal", "numerical").
        numerical: whether finite differences were compared.
        numerical_note: why they were not, when they were not.
    """

    checks: tuple[TensorCheck, ...]
    dtype: str
    sizes: tuple[int, ...]
    activation: str
    output_activation: str
    loss: str
    batch: int
    tolerances: dict[str, float]
    numerical: bool
    numerical_note: str | None = None

    @property
    def passed(self) -> bool:
        """True when every tensor passes every comparison that ran."""
        return all(c.passed for c in self.checks)

    @property
    def failing(self) -> list[tuple[int, str]]:
        """(layer, tensor) of each failing tensor, e.g. [(1, "W"), (1, "b")]."""
        return [(c.layer, c.tensor) for c in self.checks if not c.passed]

    @property
    def max_abs_error(self) -> float:
        """Largest |manual − autodiff| over all tensors."""
        return _worst(c.max_abs_error for c in self.checks)

    @property
    def max_rel_error(self) -> float:
        """Largest relative error manual vs autodiff over all tensors."""
        return _worst(c.max_rel_error for c in self.checks)

    @property
    def min_cosine(self) -> float:
        """Smallest cosine similarity manual vs autodiff over all tensors."""
        values = [c.cosine for c in self.checks]
        return float("nan") if any(math.isnan(v) for v in values) else min(values)

    @property
    def diagonal_agrees(self) -> bool:
        """Whether the diagonal-D variant agrees with the Hadamard one everywhere."""
        return all(c.diagonal_agrees for c in self.checks)

    @property
    def numerical_max_rel_error(self) -> float | None:
        """Largest relative error manual vs finite differences, None when not run."""
        if not self.numerical:
            return None
        return _worst(c.numerical_max_rel_error for c in self.checks)

    @property
    def scale_rule(self) -> str:
        """What the relative errors are relative to, in words."""
        return (
            "rel = max|manual - reference| / scale, scale = largest entry of the tensor's gradient "
            "with every term taken in absolute value"
        )

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready values (non-finite numbers become None)."""
        return _finite_only(
            {
                "passed": self.passed,
                "max_abs_error": self.max_abs_error,
                "max_rel_error": self.max_rel_error,
                "min_cosine": self.min_cosine,
                "failing": [list(f) for f in self.failing],
                "dtype": self.dtype,
                "diagonal_agrees": self.diagonal_agrees,
                "numerical": self.numerical,
                "numerical_note": self.numerical_note,
                "numerical_max_rel_error": self.numerical_max_rel_error,
                "sizes": list(self.sizes),
                "activation": self.activation,
                "output_activation": self.output_activation,
                "loss": self.loss,
                "batch": self.batch,
                "scale_rule": self.scale_rule,
                "tolerances": dict(self.tolerances),
                "tensors": [dict(dataclasses.asdict(c), shape=list(c.shape)) for c in self.checks],
            }
        )

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as a JSON string (strict: no NaN literals)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, ensure_ascii=False)

    def to_table(self) -> str:
        """A plain, aligned terminal table with ✓/✗ marks."""
        return render_table(self)

    def to_markdown(self) -> str:
        """A Markdown section: settings, one table row per tensor, the verdict."""
        return render_markdown(self)

    def __str__(self) -> str:
        return self.to_table()


def _worst(values) -> float:
    values = [float("nan") if v is None else v for v in values]
    return float("nan") if any(math.isnan(v) for v in values) else max(values, default=0.0)


def _finite_only(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_only(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_only(v) for v in obj]
    return obj
