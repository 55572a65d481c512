"""Write an :class:`~backprop_lab.explain._explain.Explanation` out as the notes do.

Two renderings of the same document: :func:`render_text` for a terminal
(matrices as aligned rows, vectors as ``[…]ᵀ``) and :func:`render_markdown`
with LaTeX matrices (``$$\\begin{bmatrix} … \\end{bmatrix}$$``, which GitHub
renders). Layers are named as in note 003 (``W[1]``, ``net[1]``, ``out[1]``)
or, with ``names="letters"``, as in note 004 (``W_b``, ``net_b``, with the
input ``out_a``). With ``bias_column="first"`` (note 003) or ``"last"`` (note
001) the bias is shown as a column of W acting on the input with a constant 1
added, X = [1; out]; otherwise as a separate vector b.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._explain import Explanation

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


@dataclasses.dataclass(frozen=True)
class _Sym:
    text: str
    tex: str


def _s(text: str, tex: str | None = None) -> _Sym:
    return _Sym(text, text if tex is None else tex)


class _Names:
    """Symbols of layer l in the chosen style."""

    def __init__(self, style: str):
        if style not in ("numbers", "letters"):
            raise ValueError(f"names must be 'numbers' or 'letters', got {style!r}")
        self.style = style

    def __call__(self, base: str, l: int, tex_base: str | None = None) -> _Sym:
        tex_base = tex_base or (rf"\mathrm{{{base}}}" if base in ("net", "out") else base)
        if self.style == "letters":
            return _Sym(f"{base}_{chr(97 + l)}", f"{tex_base}_{{{chr(97 + l)}}}")
        return _Sym(f"{base}[{l}]", f"{tex_base}^{{[{l}]}}")

    def layer(self, l: int) -> str:
        """How a heading names layer l."""
        return chr(97 + l) if self.style == "letters" else str(l)

    def grad(self, what: _Sym) -> _Sym:
        return _Sym(f"∂L/∂{what.text}", rf"\frac{{\partial L}}{{\partial {what.tex}}}")


def _num(v: float, d: int) -> str:
    s = f"{v:.{d}f}"
    return f"{0.0:.{d}f}" if float(s) == 0.0 else s


def _items(e: Explanation, decimals: int, bias_column: str | None, names: str) -> list:
    """The document as a list of ("h", level, text), ("p", text) and ("eq", parts)."""
    N = _Names(names)
    eq = lambda *parts: ("eq", parts)  # noqa: E731
    EQ, DOT = _s(" = "), _s("·", r" \cdot ")
    n = len(e.layers)
    mode = (
        "exact float64 arithmetic"
        if e.round_each_step is None
        else f"every intermediate rounded to {e.round_each_step} decimals (half up) before it is used again"
    )
    loss_text = _LOSS_TEXT.get(e.loss, (e.loss, rf"\mathrm{{{e.loss}}}"))
    doc: list = [
        ("h", 1, "Backpropagation, step by step"),
        (
            "p",
            (
                f"Network {list(e.sizes)}: hidden activation {e.layers[0].activation if n > 1 else '-'}, "
                f"output activation {e.layers[-1].activation}; loss {e.loss}, L = {loss_text[0]}; "
                f"learning rate {e.lr:g}. {mode.capitalize()}, printed to {decimals} decimals."
            ),
        ),
        eq(N("out", 0), _s(" = x = "), e.x),
        eq(_s("y"), EQ, e.y),
    ]
    aug, first = bias_column is not None, bias_column == "first"

    def inputs(l: int) -> tuple[bool, _Sym, np.ndarray, np.ndarray, np.ndarray | None]:
        """(bias shown as a column?, symbol and vector the layer multiplies, W, b)."""
        layer, prev = e.layers[l - 1], e.out(l - 1)
        if aug and layer.b is not None:
            X = np.concatenate([[1.0], prev] if first else [prev, [1.0]])
            return True, N("X", l), X, _join(layer.W, layer.b, first), None
        return False, N("out", l - 1), prev, layer.W, layer.b

    doc.append(("h", 2, "Forward pass"))
    for l, layer in enumerate(e.layers, start=1):
        augmented, sym, vec, W, b = inputs(l)
        doc.append(("h", 3, f"Layer {N.layer(l)} ({layer.activation})"))
        doc.append(eq(N("W", l), EQ, W))
        if b is not None:
            doc.append(eq(N("b", l), EQ, b))
        if augmented:
            prev = N("out", l - 1)
            parts = ("1", prev.tex) if first else (prev.tex, "1")
            doc.append(
                eq(
                    sym,
                    _s(
                        f" = [1; {prev.text}]" if first else f" = [{prev.text}; 1]",
                        r" = \begin{bmatrix} %s \\ %s \end{bmatrix}" % parts,  # noqa: UP031 (LaTeX's braces)
                    ),
                    EQ,
                    vec,
                )
            )
        plus = [] if b is None else [_s(" + "), N("b", l)]
        doc.append(eq(N("net", l), EQ, N("W", l), DOT, sym, *plus, EQ, layer.net))
        doc.append(
            eq(
                N("out", l),
                _s(f" = {layer.activation}(", rf" = \mathrm{{{layer.activation}}}("),
                N("net", l),
                _s(")"),
                EQ,
                layer.out,
            )
        )
    doc.append(("h", 2, "Loss"))
    doc.append(eq(_s("L", "L"), _s(f" = {loss_text[0]} = ", f" = {loss_text[1]} = "), e.loss_value))

    doc.append(("h", 2, f"Backward pass (learning rate {e.lr:g})"))
    for l in range(n, 0, -1):
        layer = e.layers[l - 1]
        augmented, sym, vec, W, b = inputs(l)
        doc.append(("h", 3, f"Layer {N.layer(l)}" + (" (output)" if l == n else "")))
        dout, dnet = N.grad(N("out", l)), N.grad(N("net", l))
        delta = N("δ", l, r"\delta")
        if l < n:
            nxt = N("W", l + 1)
            augmented_up, sym_up, *_ = inputs(l + 1)
            if augmented_up:
                g = np.concatenate(
                    [[layer.dL_dconst], layer.dL_dout] if first else [layer.dL_dout, [layer.dL_dconst]]
                )
                doc.append(
                    eq(
                        N.grad(sym_up),
                        _s(" = (", " = ("),
                        nxt,
                        _s(")ᵀ·", r")^T \cdot "),
                        N("δ", l + 1, r"\delta"),
                        EQ,
                        g,
                    )
                )
                doc.append(
                    (
                        "p",
                        f"The {'first' if first else 'last'} entry belongs to the constant 1 "
                        "(the bias input) and is dropped:",
                    )
                )
                doc.append(eq(dout, EQ, layer.dL_dout))
            else:
                doc.append(
                    eq(
                        dout,
                        _s(" = (", " = ("),
                        nxt,
                        _s(")ᵀ·", r")^T \cdot "),
                        N("δ", l + 1, r"\delta"),
                        EQ,
                        layer.dL_dout,
                    )
                )
        elif layer.dL_dout is not None:
            doc.append(eq(dout, EQ, layer.dL_dout))
        act = layer.activation
        fsym = _s(f"{act}'(", rf"\mathrm{{{act}}}'(")
        if layer.dL_dout is None:
            rule = _FUSED_TEXT.get((e.loss, act), ("LOSSES[{loss}].fused[{act}](net, out, y)",) * 2)
            out_sym = N("out", l)
            doc.append(("p", f"{e.loss} with a {act} output: δ has a closed form, no f′ factor."))
            doc.append(
                eq(
                    delta,
                    EQ,
                    dnet,
                    _s(
                        " = " + rule[0].format(out=out_sym.text, loss=e.loss, act=act),
                        " = " + rule[1].format(out=out_sym.tex, loss=e.loss, act=act),
                    ),
                    EQ,
                    layer.delta,
                )
            )
        elif layer.fprime is not None:
            doc.append(eq(fsym, N("net", l), _s(")"), EQ, layer.fprime))
            doc.append(
                eq(
                    delta,
                    EQ,
                    dnet,
                    EQ,
                    dout,
                    _s(" ⊙ ", r" \odot "),
                    fsym,
                    N("net", l),
                    _s(")"),
                    EQ,
                    layer.delta,
                )
            )
            if l == n and e.round_each_step is not None:
                doc.append(
                    (
                        "p",
                        "(δ is formed in one expression from the unrounded f′, as note 004 "
                        "writes (out − target)·out·(1 − out); f′ is shown rounded.)",
                    )
                )
        else:
            jac = _Sym(
                f"∂{N('out', l).text}/∂{N('net', l).text}",
                rf"\frac{{\partial {N('out', l).tex}}}{{\partial {N('net', l).tex}}}",
            )
            doc.append(eq(jac, EQ, layer.jacobian))
            doc.append(eq(delta, EQ, _s("("), jac, _s(")ᵀ·", r")^T \cdot "), dout, EQ, layer.delta))
        if augmented:
            dW, step, W_new = (
                _join(a, c, first)
                for a, c in ((layer.dW, layer.db), (layer.step_W, layer.step_b), (layer.W_new, layer.b_new))
            )
        else:
            dW, step, W_new = layer.dW, layer.step_W, layer.W_new
        doc.append(eq(N.grad(N("W", l)), EQ, delta, DOT, _s(f"{sym.text}ᵀ", f"({sym.tex})^T"), EQ, dW))
        if b is not None:
            doc.append(eq(N.grad(N("b", l)), EQ, delta, EQ, layer.db))
        lr = _s(f"{e.lr:g}·", rf"{e.lr:g} \cdot ")
        new = lambda s: _Sym(f"{s.text} new", rf"\widetilde{{{s.tex}}}")  # noqa: E731
        if e.round_each_step is not None:
            doc.append(eq(lr, N.grad(N("W", l)), EQ, step))
        doc.append(eq(new(N("W", l)), EQ, N("W", l), _s(" − ", " - "), lr, N.grad(N("W", l)), EQ, W_new))
        if b is not None:
            doc.append(
                eq(new(N("b", l)), EQ, N("b", l), _s(" − ", " - "), lr, N.grad(N("b", l)), EQ, layer.b_new)
            )
    return doc


def _join(W: np.ndarray, b: np.ndarray | None, first: bool) -> np.ndarray:
    if b is None:
        b = np.zeros(W.shape[0])
    return np.concatenate([b[:, None], W] if first else [W, b[:, None]], axis=1)


def render_text(
    e: Explanation, *, decimals: int | None = None, bias_column: str | None = None, names: str = "numbers"
) -> str:
    """The plain terminal rendering: one line per equation, matrices as aligned rows.

    Arguments:
        e: the explanation.
        decimals: places printed; None: ``e.round_each_step`` or 8.
        bias_column: "first"/"last" to show the bias as a column of W, None for a vector b.
        names: "numbers" (W[1], net[1]) or "letters" (W_b, net_b).
    """
    d = _decimals(e, decimals)
    lines: list[str] = []
    body = False  # paragraphs under the title start at the margin, later ones are indented
    for item in _items(e, d, bias_column, names):
        if item[0] == "h":
            text = item[2]
            body = body or item[1] > 1
            lines += ["", text, "=" * len(text)] if item[1] <= 2 else ["", text]
        elif item[0] == "p":
            lines.append(("  " if body else "") + item[1])
        else:
            head, mats = "", []
            for part in item[1]:
                if isinstance(part, _Sym):
                    head += part.text
                elif np.ndim(part) == 2:  # matrices end an equation; printed below it
                    mats.append(_text_matrix(part, d))
                elif np.ndim(part) == 1:
                    head += "[" + "  ".join(_num(v, d) for v in part) + "]ᵀ"
                else:
                    head += _num(float(part), d)
            lines.append("  " + head.rstrip())
            for m in mats:
                lines += ["      " + row for row in m]
    return "\n".join(lines).lstrip("\n") + "\n"


def _text_matrix(m: np.ndarray, d: int) -> list[str]:
    cells = [[_num(v, d) for v in row] for row in m]
    width = max(len(c) for row in cells for c in row)
    return ["[" + "  ".join(c.rjust(width) for c in row) + "]" for row in cells]


def render_markdown(
    e: Explanation, *, decimals: int | None = None, bias_column: str | None = None, names: str = "numbers"
) -> str:
    """The Markdown rendering with LaTeX matrices in ``$$…$$`` blocks.

    Arguments: as :func:`render_text`.
    """
    d = _decimals(e, decimals)
    out: list[str] = []
    for item in _items(e, d, bias_column, names):
        if item[0] == "h":
            out += ["#" * item[1] + " " + item[2], ""]
        elif item[0] == "p":
            out += [item[1], ""]
        else:
            tex = "".join(p.tex if isinstance(p, _Sym) else _tex_value(p, d) for p in item[1])
            out += ["$$" + tex + "$$", ""]
    return "\n".join(out)


def _tex_value(v, d: int) -> str:
    if np.ndim(v) == 0:
        return _num(float(v), d)
    rows = np.atleast_2d(v).T if np.ndim(v) == 1 else v
    body = r" \\ ".join(" & ".join(_num(x, d) for x in row) for row in rows)
    return r"\begin{bmatrix} " + body + r" \end{bmatrix}"


def _decimals(e: Explanation, decimals: int | None) -> int:
    if decimals is not None:
        return int(decimals)
    return 8 if e.round_each_step is None else int(e.round_each_step)
