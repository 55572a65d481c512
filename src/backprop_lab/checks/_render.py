"""Renderings of a :class:`~backprop_lab.checks._result.GradReport`: terminal table and Markdown.

Both show the same rows, one per parameter tensor: norms of the manual and
autodiff gradients, max absolute and relative error, the scale the relative errors are
measured against, cosine similarity, the
diagonal variant's and the finite differences' relative errors, and a ✓/✗.
"""

from __future__ import annotations

import math

HEADER = [
    "layer",
    "tensor",
    "shape",
    "‖manual‖",
    "‖autodiff‖",
    "max abs err",
    "max rel err",
    "scale",
    "cosine",
    "diag rel err",
    "numeric rel err",
    "ok",
]


def _e(v: float | None, digits: int = 1) -> str:
    return "nan" if v is None or not math.isfinite(v) else f"{v:.{digits}e}"


def _cos(v: float) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.10f}"


def _rows(report) -> list[list[str]]:
    return [
        [
            str(c.layer),
            c.tensor,
            "x".join(map(str, c.shape)),
            _e(c.manual_norm, 4),
            _e(c.autodiff_norm, 4),
            _e(c.max_abs_error),
            _e(c.max_rel_error),
            _e(c.scale),
            _cos(c.cosine),
            _e(c.diagonal_max_rel_error),
            "-" if c.numerical_max_rel_error is None else _e(c.numerical_max_rel_error),
            "✓" if c.passed else "✗",
        ]
        for c in report.checks
    ]


def _title(report) -> list[str]:
    tol = ", ".join(f"{k} {v:g}" for k, v in report.tolerances.items())
    lines = [
        f"Gradient check: sizes {list(report.sizes)}, {report.activation} -> "
        f"{report.output_activation}, loss {report.loss}, batch {report.batch}, {report.dtype}",
        report.scale_rule,
        f"tolerances (max rel err): {tol}",
    ]
    if report.numerical_note:
        lines.append(f"finite differences: {report.numerical_note}")
    return lines


def _verdict(report) -> str:
    if report.passed:
        return f"✓ PASSED: all {len(report.checks)} tensors within tolerance"
    return "✗ FAILED: " + ", ".join(f"layer {l} {t}" for l, t in report.failing)


def render_table(report) -> str:
    """Plain aligned text: settings, a row per tensor, the verdict.

    Arguments:
        report: a GradReport.

    Returns:
        The table as one string (no trailing newline).
    """
    rows = _rows(report)
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = _title(report) + ["", fmt.format(*HEADER).rstrip()]
    lines += [fmt.format(*r).rstrip() for r in rows]
    return "\n".join(lines + ["", _verdict(report)])


def render_markdown(report) -> str:
    """A Markdown section: settings as a list, a table row per tensor, the verdict in bold.

    Arguments:
        report: a GradReport.
    """
    lines = ["## Gradient check", ""] + [f"- {line}" for line in _title(report)] + [""]
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("|" + "|".join("---" for _ in HEADER) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in _rows(report)]
    return "\n".join(lines + ["", f"**{_verdict(report)}**", ""])
