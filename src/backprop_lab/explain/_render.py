"""Write an :class:`~backprop_lab.explain._explain.Explanation` out as the notes do.

Two renderings of the same document: :func:`render_text` for a terminal
(matrices as aligned rows, vectors as ``[…]ᵀ``) and :func:`render_markdown`
with LaTeX matrices (``$$\\begin{bmatrix} … \\end{bmatrix}$$``, which GitHub
renders). Layers are named as in note 003 (``W[1]``, ``net[1]``, ``out[1]``)
or, with ``names="letters"``, as in note 004 (``W_b``, ``net_b``, with the
input ``out_a``). With ``bias_column="first"`` (note 003) or ``"last"`` (note
001) the bias is shown as a column of W acting on the input with a constant 1
added, X = [1; out]; otherwise as a separate vector b. The document itself
(what is written, in which symbols) is :func:`._document.document`'s.
"""

from __future__ import annotations

import numpy as np

from ._document import Sym, document
from ._explain import Explanation


def _num(v: float, d: int) -> str:
    s = f"{v:.{d}f}"
    return f"{0.0:.{d}f}" if float(s) == 0.0 else s


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
    for item in document(e, d, bias_column, names):
        if item[0] == "h":
            text = item[2]
            body = body or item[1] > 1
            lines += ["", text, "=" * len(text)] if item[1] <= 2 else ["", text]
        elif item[0] == "p":
            lines.append(("  " if body else "") + item[1])
        else:
            head, mats = "", []
            for part in item[1]:
                if isinstance(part, Sym):
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
    for item in document(e, d, bias_column, names):
        if item[0] == "h":
            out += ["#" * item[1] + " " + item[2], ""]
        elif item[0] == "p":
            out += [item[1], ""]
        else:
            tex = "".join(p.tex if isinstance(p, Sym) else _tex_value(p, d) for p in item[1])
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
