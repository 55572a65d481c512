"""The loss axis of a run's plots: its scale (``plot.scale``) and its limits.

Losses are positive, or exactly 0 (a saturated cross entropy, a fitted regression; -0.0
too): a log axis drops the zeros and a linear one flattens everything near them, so
``auto`` draws them on a symlog axis (linear from 0 to a power of ten, log above).
"""

from __future__ import annotations

import numpy as np

from ..config._names import PLOT_SCALES as SCALES


def axis_scale(values: np.ndarray, scale: str = "auto") -> str:
    """The loss axis's scale for ``values`` under ``plot.scale``: ``log`` and ``linear`` as
    asked; ``auto`` gives log when the positive values span a decade (symlog, linear around 0
    and log above the smallest positive value, when some values are 0 or -0.0 as well), else
    linear.

    >>> axis_scale(np.array([2.3, 0.5, 4.5e-9])), axis_scale(np.array([2.3, 0.0, 4.5e-9]))
    ('log', 'symlog')
    >>> axis_scale(np.array([0.17, 0.16])), axis_scale(np.array([0.17, 0.16]), "log")
    ('linear', 'log')
    """
    if scale not in SCALES:
        raise ValueError(f"plot.scale={scale!r}: expected one of {', '.join(SCALES)}")
    if scale != "auto":
        return scale
    shown = values[np.isfinite(values)]
    positive = shown[shown > 0]
    if positive.size < 2 or positive.max() / positive.min() < 10:
        return "linear"
    return "log" if positive.size == shown.size else "symlog"


def scale_losses(ax, kind: str, values: np.ndarray, labels: bool) -> None:
    """The loss axis in scale ``kind`` (:func:`axis_scale`) for ``values``; for symlog, linear
    below the smallest positive value's power of ten, so that it and 0 are both drawn; room
    above and below for values written on the points (``labels``)."""
    if kind == "symlog":
        positive = values[np.isfinite(values) & (values > 0)]
        # linear from 0 to the power of ten below the smallest positive value, a decade high
        ax.set_yscale("symlog", linthresh=10.0 ** np.floor(np.log10(positive.min())), linscale=1.0)
    else:
        ax.set_yscale(kind)
    if kind == "linear":
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax.set_autoscaley_on(True)  # (a kept figure's symlog axis had its bottom set)
    ax.margins(y=0.15 if kind == "linear" or labels else 0.05)
    ax.relim()
    ax.autoscale_view()
    if kind == "symlog":
        ax.set_ylim(bottom=0.0)  # 0 at the bottom, not a margin below it
