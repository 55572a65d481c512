"""network.png of the explain app: one explained step drawn as the network it ran on.

Neurons hold their out values, edges are coloured and thickened by their weight
and labelled by their gradient ∂L/∂W; :func:`draw_network` places each label
where it overlaps no neuron and no other label. Matplotlib is imported when a
figure is drawn, not with this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["draw_network"]


class _Layout:
    """Where the network's parts go: layer l at x = ``sx``·l, its neurons 1 apart vertically and
    centred on the tallest layer, the bias neuron "1" of a layer's input above it; edges coloured
    and thickened by their weight on a scale symmetric about 0."""

    sx = 3.2  # horizontal distance between layers
    radius = 0.34  # of a neuron

    def __init__(self, e):
        import matplotlib.pyplot as plt
        import numpy as np
        from matplotlib.colors import Normalize

        self.sizes = e.sizes
        self.has_bias = any(layer.b is not None for layer in e.layers)
        self.top = (max(self.sizes) - 1) / 2.0
        vmax = max(float(np.abs(layer.W).max()) for layer in e.layers)
        biases = [float(np.abs(layer.b).max()) for layer in e.layers if layer.b is not None]
        self.vmax = max([vmax] + biases) or 1.0
        self.norm, self.cmap = Normalize(-self.vmax, self.vmax), plt.get_cmap("RdBu_r")
        d = 3 if e.round_each_step is None else e.round_each_step
        self.fmt = lambda v: f"{0.0:.{d}f}" if float(f"{v:.{d}f}") == 0.0 else f"{v:.{d}f}"

    def ys(self, n: int) -> np.ndarray:
        """Heights of a layer of n neurons, top first."""
        import numpy as np

        return self.top - np.arange(n) - (max(self.sizes) - n) / 2.0

    def edge_style(self, w: float) -> dict:
        return {"color": self.cmap(self.norm(w)), "lw": 0.8 + 2.5 * abs(w) / self.vmax, "zorder": 1}


def _draw_edges(ax, e, at: _Layout) -> list[tuple]:
    """Every weight as a line (bias weights from the "1" above the layer's input).

    Returns:
        One ``(x0, y0, x1, y1, gradient, preferred position along the edge)`` per edge, for its label.
    """
    import matplotlib.pyplot as plt

    edges = []
    for l, layer in enumerate(e.layers, start=1):
        x0, x1 = at.sx * (l - 1), at.sx * l
        y_in, y_out, y_one = at.ys(at.sizes[l - 1]), at.ys(at.sizes[l]), at.top + 1.0
        for i in range(at.sizes[l]):
            for j in range(at.sizes[l - 1]):
                ax.plot([x0, x1], [y_in[j], y_out[i]], **at.edge_style(layer.W[i, j]))
                edges.append(
                    (x0, y_in[j], x1, y_out[i], layer.dW[i, j], 0.3 + 0.4 * (j + 0.5) / at.sizes[l - 1])
                )
            if layer.b is not None:
                ax.plot([x0, x1], [y_one, y_out[i]], **at.edge_style(layer.b[i]))
                edges.append((x0, y_one, x1, y_out[i], layer.db[i], 0.25))
        if layer.b is not None:
            ax.add_patch(plt.Circle((x0, y_one), 0.22, fc="0.85", ec="0.5", zorder=4))
            ax.text(x0, y_one, "1", ha="center", va="center", fontsize=8, zorder=5)
    return edges


def _draw_neurons(ax, e, at: _Layout, names: str) -> list:
    """Every neuron as a circle holding its out value, each layer named below; returns the circles."""
    import matplotlib.pyplot as plt

    neurons = []
    for l, n in enumerate(at.sizes):
        for y, v in zip(at.ys(n), e.out(l)):
            neurons.append(
                ax.add_patch(plt.Circle((at.sx * l, y), at.radius, fc="white", ec="black", zorder=4))
            )
            ax.text(at.sx * l, y, at.fmt(v), ha="center", va="center", fontsize=7, zorder=5)
        label = f"out[{l}]" if names == "numbers" else f"out_{chr(97 + l)}"
        bottom = at.top - max(at.sizes) + 0.35
        ax.text(at.sx * l, bottom, label + (" (input)" if l == 0 else ""), ha="center", fontsize=9)
    return neurons


def _frame(fig, ax, e, at: _Layout) -> None:
    """The colour bar, the visible area and the title, then the final layout."""
    import matplotlib.pyplot as plt

    sm = plt.cm.ScalarMappable(norm=at.norm, cmap=at.cmap)
    fig.colorbar(sm, ax=ax, fraction=0.04, pad=0.02, label="weight (edge colour); edge labels: ∂L/∂W")
    ax.set_xlim(-0.7, at.sx * (len(at.sizes) - 1) + 0.7)
    ax.set_ylim(at.top - max(at.sizes) + 0.1, at.top + (1.5 if at.has_bias else 0.6))
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(
        f"{list(at.sizes)} {e.layers[0].activation}/{e.layers[-1].activation}, loss {e.loss} "
        f"= {at.fmt(e.loss_value)}, lr {e.lr:g}",
        fontsize=10,
    )
    fig.tight_layout()


def _overlap(a, b) -> float:
    """Area shared by two boxes (0 when apart)."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _place_labels(fig, ax, edges: list[tuple], neurons: list, fmt) -> None:
    """Each edge's ∂L/∂W label at the free spot along it nearest its preferred one.

    Measured on the final layout: a spot is free when the label's box overlaps no
    neuron and no label placed before it; with no free spot, the least crowded.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    assert isinstance(fig.canvas, FigureCanvasAgg)  # draw_network draws with Agg
    renderer = fig.canvas.get_renderer()
    taken = [c.get_window_extent(renderer) for c in neurons]
    spots = np.linspace(0.14, 0.86, 25)
    for x0, y0, x1, y1, g, preferred in edges:
        angle = float(np.degrees(np.arctan2(y1 - y0, x1 - x0)))  # along the edge (aspect is equal)
        text = ax.text(
            x0,
            y0,
            fmt(g),
            fontsize=6.5,
            ha="center",
            va="center",
            zorder=3,
            rotation=angle,
            rotation_mode="anchor",
            bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.9),
        )
        best = None
        for t in sorted(spots, key=lambda t: abs(t - preferred)):
            text.set_position((x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
            box = text.get_window_extent(renderer).expanded(1.1, 1.25)
            clash = sum(_overlap(box, other) for other in taken)
            if best is None or clash < best[0]:
                best = (clash, t, box)
            if clash == 0:
                break
        assert best is not None
        _, t, box = best
        text.set_position((x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
        taken.append(box)


def draw_network(e, path: Path, names: str = "numbers") -> None:
    """network.png: neurons with their out values, edges coloured by W and labelled by ∂L/∂W.

    Each edge's label goes at the first point along the edge (nearest the middle
    first) where it overlaps no label placed before it and no neuron, measured
    on the drawn figure, so the labels of crossing edges stay apart.

    Arguments:
        e: an Explanation.
        path: the PNG file to write.
        names: "numbers" or "letters", as in the text.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    at = _Layout(e)
    width, height = at.sx * (len(at.sizes) - 1) + 1.4, max(at.sizes) + (1 if at.has_bias else 0) + 1.4
    fig, ax = plt.subplots(figsize=(0.85 * width + 1.6, 0.85 * height + 0.6))
    edges = _draw_edges(ax, e, at)
    neurons = _draw_neurons(ax, e, at, names)
    _frame(fig, ax, e, at)
    _place_labels(fig, ax, edges, neurons, at.fmt)  # last, on the final layout
    fig.savefig(path, dpi=120)
    plt.close(fig)
