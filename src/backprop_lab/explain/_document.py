"""The worked example as a document in the notes' symbols, before it is rendered.

:func:`document` lists what the notes write for one step, in their order: a
heading and the setting, the forward pass layer by layer, the loss, then the
backward pass from the output layer down (per layer: ∂L/∂out from the layer
above, δ, the change matrices and the updated weights). Each item is
``("h", level, text)``, ``("p", text)`` or ``("eq", parts)``, where the parts of
an equation are symbols (:class:`Sym`: text and TeX) and numbers, vectors
``(n,)`` or matrices ``(rows, columns)``; ``_render`` lays them out for a
terminal or as Markdown.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._explain import Explanation

__all__ = ["Sym", "document"]

# How losses and closed-form output deltas read; display text only, the
# derivatives themselves come from the LOSSES and ACTIVATIONS tables.
_LOSS_TEXT = {
    "half_sse": ("½‖out − y‖²", r"\tfrac12 \lVert \mathrm{out} - y \rVert^2"),
    "sse": ("‖out − y‖²", r"\lVert \mathrm{out} - y \rVert^2"),
    "mse": ("mean((out − y)²)", r"\tfrac1n \lVert \mathrm{out} - y \rVert^2"),
    "cross_entropy": ("−Σ y log out", r"-\sum_k y_k \log \mathrm{out}_k"),
    "binary_cross_entropy": (
        "−Σ [y log out + (1 − y) log(1 − out)]",
        r"-\sum_k [y_k \log \mathrm{out}_k + (1 - y_k)\log(1 - \mathrm{out}_k)]",
    ),
}
_FUSED_TEXT = {
    ("cross_entropy", "softmax"): ("(Σ y)·{out} − y", r"(\textstyle\sum_j y_j)\, {out} - y"),
    ("binary_cross_entropy", "sigmoid"): ("{out} − y", r"{out} - y"),
}


#: The rounding rule, stated once in a rounded walk-through: the same in every layer.
ROUNDED_RULE = (
    "In every layer, a number shown on a line of its own is rounded and used as shown. "
    "A hidden layer shows f′(net), so its δ = ∂L/∂out ⊙ f′ multiplies the two shown vectors; "
    "the output layer's δ is one expression, ∂L/∂out ⊙ f′(net), rounded once, with f′ not "
    "shown (as note 004 writes (out − target)·out·(1 − out))."
)


@dataclasses.dataclass(frozen=True)
class Sym:
    """A symbol or operator of an equation, as terminal text and as TeX."""

    text: str
    tex: str


def _s(text: str, tex: str | None = None) -> Sym:
    return Sym(text, text if tex is None else tex)


EQ, DOT, MINUS = _s(" = "), _s("·", r" \cdot "), _s(" − ", " - ")
TRANSPOSED_TIMES = _s(")ᵀ·", r")^T \cdot ")


class _Names:
    """Symbols of layer l in the chosen style."""

    def __init__(self, style: str):
        if style not in ("numbers", "letters"):
            raise ValueError(f"names must be 'numbers' or 'letters', got {style!r}")
        self.style = style

    def __call__(self, base: str, l: int, tex_base: str | None = None) -> Sym:
        tex_base = tex_base or (rf"\mathrm{{{base}}}" if base in ("net", "out") else base)
        if self.style == "letters":
            return Sym(f"{base}_{chr(97 + l)}", f"{tex_base}_{{{chr(97 + l)}}}")
        return Sym(f"{base}[{l}]", f"{tex_base}^{{[{l}]}}")

    def layer(self, l: int) -> str:
        """How a heading names layer l."""
        return chr(97 + l) if self.style == "letters" else str(l)

    def grad(self, what: Sym) -> Sym:
        return Sym(f"∂L/∂{what.text}", rf"\frac{{\partial L}}{{\partial {what.tex}}}")

    def delta(self, l: int) -> Sym:
        return self("δ", l, r"\delta")


def join_bias(W: np.ndarray, b: np.ndarray | None, first: bool) -> np.ndarray:
    """W (out, in) with b (out,) (zeros if None) as its first or last column: (out, in + 1)."""
    if b is None:
        b = np.zeros(W.shape[0])
    return np.concatenate([b[:, None], W] if first else [W, b[:, None]], axis=1)


class _Writer:
    """Appends the items of one explanation to ``doc``, a step of the notes per method."""

    def __init__(self, e: Explanation, bias_column: str | None, names: str):
        self.e, self.N = e, _Names(names)
        self.doc: list[tuple] = []
        self.augment, self.first = bias_column is not None, bias_column == "first"

    def eq(self, *parts) -> None:
        self.doc.append(("eq", parts))

    def inputs(self, l: int) -> tuple[bool, Sym, np.ndarray, np.ndarray, np.ndarray | None]:
        """(bias shown as a column?, symbol and vector layer l multiplies, W, b)."""
        layer, prev = self.e.layers[l - 1], self.e.out(l - 1)
        if self.augment and layer.b is not None:
            X = np.concatenate([[1.0], prev] if self.first else [prev, [1.0]])
            return True, self.N("X", l), X, join_bias(layer.W, layer.b, self.first), None
        return False, self.N("out", l - 1), prev, layer.W, layer.b

    def setting(self, decimals: int) -> None:
        """Title, the network, loss, rate and arithmetic, the example."""
        e, n = self.e, len(self.e.layers)
        mode = (
            "exact float64 arithmetic"
            if e.round_each_step is None
            else f"every intermediate rounded to {e.round_each_step} decimals (half up) before it is used again"
        )
        loss_text = _LOSS_TEXT.get(e.loss, (e.loss, rf"\mathrm{{{e.loss}}}"))[0]
        self.doc.append(("h", 1, "Backpropagation, step by step"))
        self.doc.append(
            (
                "p",
                f"Network {list(e.sizes)}: hidden activation {e.layers[0].activation if n > 1 else '-'}, "
                f"output activation {e.layers[-1].activation}; loss {e.loss}, L = {loss_text}; "
                f"learning rate {e.lr:g}. {mode.capitalize()}, printed to {decimals} decimals.",
            )
        )
        if e.round_each_step is not None:
            self.doc.append(("p", ROUNDED_RULE))
        self.eq(self.N("out", 0), _s(" = x = "), e.x)
        self.eq(_s("y"), EQ, e.y)

    def forward(self, l: int) -> None:
        """Layer l's W (and b or the augmented input X), net = W·out + b and out = f(net)."""
        N, layer = self.N, self.e.layers[l - 1]
        augmented, sym, vec, W, b = self.inputs(l)
        self.doc.append(("h", 3, f"Layer {N.layer(l)} ({layer.activation})"))
        self.eq(N("W", l), EQ, W)
        if b is not None:
            self.eq(N("b", l), EQ, b)
        if augmented:
            prev = N("out", l - 1)
            parts = ("1", prev.tex) if self.first else (prev.tex, "1")
            self.eq(
                sym,
                _s(
                    f" = [1; {prev.text}]" if self.first else f" = [{prev.text}; 1]",
                    r" = \begin{bmatrix} %s \\ %s \end{bmatrix}" % parts,  # noqa: UP031 (LaTeX's braces)
                ),
                EQ,
                vec,
            )
        plus = [] if b is None else [_s(" + "), N("b", l)]
        self.eq(N("net", l), EQ, N("W", l), DOT, sym, *plus, EQ, layer.net)
        act = _s(f" = {layer.activation}(", rf" = \mathrm{{{layer.activation}}}(")
        self.eq(N("out", l), act, N("net", l), _s(")"), EQ, layer.out)

    def loss(self) -> None:
        e = self.e
        text, tex = _LOSS_TEXT.get(e.loss, (e.loss, rf"\mathrm{{{e.loss}}}"))
        self.doc.append(("h", 2, "Loss"))
        self.eq(_s("L", "L"), _s(f" = {text} = ", f" = {tex} = "), e.loss_value)

    def error_from_above(self, l: int) -> None:
        """∂L/∂out of hidden layer l, (W[l+1])ᵀ·δ[l+1], less the bias input's entry if augmented."""
        N, layer = self.N, self.e.layers[l - 1]
        dout, up = N.grad(N("out", l)), (N("W", l + 1), TRANSPOSED_TIMES, N.delta(l + 1))
        augmented_up, sym_up, *_ = self.inputs(l + 1)
        if not augmented_up:
            self.eq(dout, _s(" = (", " = ("), *up, EQ, layer.dL_dout)
            return
        assert layer.dL_dout is not None and layer.dL_dconst is not None  # a hidden layer below a bias
        pair = ([layer.dL_dconst], layer.dL_dout) if self.first else (layer.dL_dout, [layer.dL_dconst])
        self.eq(N.grad(sym_up), _s(" = (", " = ("), *up, EQ, np.concatenate(pair))
        self.doc.append(
            (
                "p",
                f"The {'first' if self.first else 'last'} entry belongs to the constant 1 "
                "(the bias input) and is dropped:",
            )
        )
        self.eq(dout, EQ, layer.dL_dout)

    def delta(self, l: int) -> None:
        """δ of layer l: the loss's closed form, ∂L/∂out ⊙ f′(net), or (∂out/∂net)ᵀ·∂L/∂out."""
        e, N, layer = self.e, self.N, self.e.layers[l - 1]
        act, delta, dnet, dout = layer.activation, N.delta(l), N.grad(N("net", l)), N.grad(N("out", l))
        if layer.dL_dout is None:
            rule = _FUSED_TEXT.get((e.loss, act), ("LOSSES[{loss}].fused[{act}](net, out, y)",) * 2)
            out = N("out", l)
            self.doc.append(("p", f"{e.loss} with a {act} output: δ has a closed form, no f′ factor."))
            closed = _s(
                " = " + rule[0].format(out=out.text, loss=e.loss, act=act),
                " = " + rule[1].format(out=out.tex, loss=e.loss, act=act),
            )
            self.eq(delta, EQ, dnet, closed, EQ, layer.delta)
        elif layer.jacobian is not None:
            jac = Sym(
                f"∂{N('out', l).text}/∂{N('net', l).text}",
                rf"\frac{{\partial {N('out', l).tex}}}{{\partial {N('net', l).tex}}}",
            )
            self.eq(jac, EQ, layer.jacobian)
            self.eq(delta, EQ, _s("("), jac, TRANSPOSED_TIMES, dout, EQ, layer.delta)
        elif layer.fprime is not None or e.elementwise(l):
            fprime = (_s(f"{act}'(", rf"\mathrm{{{act}}}'("), N("net", l), _s(")"))
            if layer.fprime is not None:  # else f′ is inside δ's one expression (ROUNDED_RULE)
                self.eq(*fprime, EQ, layer.fprime)
            self.eq(delta, EQ, dnet, EQ, dout, _s(" ⊙ ", r" \odot "), *fprime, EQ, layer.delta)
        else:  # a Jacobian inside δ's one expression (ROUNDED_RULE)
            self.eq(
                delta, EQ, _s(f"({act} Jacobian)ᵀ·", rf"(J_{{\mathrm{{{act}}}}})^T "), dout, EQ, layer.delta
            )

    def step(self, l: int) -> None:
        """The change matrix δ·inputᵀ (and ∂L/∂b = δ), then W ← W − lr·∂L/∂W (and b)."""
        e, N, layer = self.e, self.N, self.e.layers[l - 1]
        augmented, sym, _, _, b = self.inputs(l)
        if augmented:
            dW, step, W_new = (
                join_bias(a, c, self.first)
                for a, c in ((layer.dW, layer.db), (layer.step_W, layer.step_b), (layer.W_new, layer.b_new))
            )
        else:
            dW, step, W_new = layer.dW, layer.step_W, layer.W_new
        dL_dW = N.grad(N("W", l))
        self.eq(dL_dW, EQ, N.delta(l), DOT, _s(f"{sym.text}ᵀ", f"({sym.tex})^T"), EQ, dW)
        if b is not None:
            self.eq(N.grad(N("b", l)), EQ, N.delta(l), EQ, layer.db)
        lr = _s(f"{e.lr:g}·", rf"{e.lr:g} \cdot ")
        new = lambda s: Sym(f"{s.text} new", rf"\widetilde{{{s.tex}}}")  # noqa: E731
        if e.round_each_step is not None:
            self.eq(lr, dL_dW, EQ, step)
        self.eq(new(N("W", l)), EQ, N("W", l), MINUS, lr, dL_dW, EQ, W_new)
        if b is not None:
            self.eq(new(N("b", l)), EQ, N("b", l), MINUS, lr, N.grad(N("b", l)), EQ, layer.b_new)


def document(e: Explanation, decimals: int, bias_column: str | None, names: str) -> list[tuple]:
    """The items of the worked example (module docstring), in the notes' order.

    Arguments:
        e: the explanation.
        decimals: places the numbers will be printed to (named in the text).
        bias_column: "first"/"last" to show the bias as a column of W, None for a vector b.
        names: "numbers" (W[1], net[1]) or "letters" (W_b, net_b).
    """
    w, n = _Writer(e, bias_column, names), len(e.layers)
    w.setting(decimals)
    w.doc.append(("h", 2, "Forward pass"))
    for l in range(1, n + 1):
        w.forward(l)
    w.loss()
    w.doc.append(("h", 2, f"Backward pass (learning rate {e.lr:g})"))
    for l in range(n, 0, -1):
        w.doc.append(("h", 3, f"Layer {w.N.layer(l)}" + (" (output)" if l == n else "")))
        if l < n:
            w.error_from_above(l)
        elif e.layers[l - 1].dL_dout is not None:
            w.eq(w.N.grad(w.N("out", l)), EQ, e.layers[l - 1].dL_dout)
        w.delta(l)
        w.step(l)
    return w.doc
