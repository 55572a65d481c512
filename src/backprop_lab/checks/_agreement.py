"""The gradient-agreement fields a run's summary records: manual vs autodiff on a few rows."""

from __future__ import annotations

from ..files._rundir import finite_or_none
from ._report import check_grads

__all__ = ["AGREEMENT_ROWS", "grad_agreement"]

#: Examples (the first ones) a summary's gradient-agreement check compares on.
AGREEMENT_ROWS = 32


def grad_agreement(model, x, y, loss: str, n: int = AGREEMENT_ROWS) -> dict:
    """Manual vs autodiff gradient on the first n examples, as summary fields.

    Returns:
        ``passed`` (every tensor's max_rel_error within ``tolerance``), ``max_abs_error``
        (max |manual − autodiff|), ``max_rel_error`` (that difference over the
        tensor's scale, the gradient with every term taken in absolute value; the
        largest over the tensors), ``tolerance`` (the dtype's, see ``TOLERANCES``)
        and ``min_cosine``.
    """
    report = check_grads(model, x[:n], y[:n], loss, numerical=False)
    return {
        "passed": bool(report.passed),
        "max_abs_error": finite_or_none(report.max_abs_error),
        "max_rel_error": finite_or_none(report.max_rel_error),
        "tolerance": report.tolerances["autodiff"],
        "min_cosine": finite_or_none(report.min_cosine),
    }
