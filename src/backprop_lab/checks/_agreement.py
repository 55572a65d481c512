"""The gradient-agreement fields a run's summary records: manual vs autodiff on a few rows.

:func:`grad_agreement` checks one network (:func:`check_grads`). :func:`lane_agreements`
checks the lanes of a program at once: one compiled program, mapped over the lanes, computes
each lane's hand-written gradient (Hadamard and diagonal variants), its ``jax.grad`` and its
term scales, masked as training masks them (``nn._padding``); the host then compares each
lane's own tensors (its real units and layers: the identity layers of a shallower lane and
padded units are not part of its network) as :func:`check_grads` compares a network's, with
the same definitions and tolerances.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from ..files._rundir import finite_or_none
from ..nn._backprop import backprop_trace_body, loss_value
from ..nn._group import unpad_network
from ..nn._losses import get_loss
from ..nn._network import MLP
from ..nn._padding import MASKED_GRADS, LaneMask
from ._report import _settings, check_grads, compare_grads, grad_report
from ._result import GradReport
from ._scale import _term_scales

__all__ = ["AGREEMENT_ROWS", "grad_agreement", "lane_agreements", "lane_opinions"]

Array = jax.Array

#: Examples (the first ones) a summary's gradient-agreement check compares on.
AGREEMENT_ROWS = 32
#: Bytes the diagonal variant's materialised D (rows × width² per lane) may take at once:
#: lanes beyond that go through the program in turns.
LANE_BYTES = 2**28


def agreement_fields(report: GradReport) -> dict:
    """The summary's fields of a gradient check (see :func:`grad_agreement`)."""
    return {
        "passed": bool(report.passed),
        "max_abs_error": finite_or_none(report.max_abs_error),
        "max_rel_error": finite_or_none(report.max_rel_error),
        "tolerance": report.tolerances["autodiff"],
        "min_cosine": finite_or_none(report.min_cosine),
    }


def grad_agreement(model, x, y, loss: str, n: int = AGREEMENT_ROWS) -> dict:
    """Manual vs autodiff gradient on the first n examples, as summary fields.

    Returns:
        ``passed`` (every tensor's max_rel_error within ``tolerance``), ``max_abs_error``
        (max |manual − autodiff|), ``max_rel_error`` (that difference over the
        tensor's scale, the gradient with every term taken in absolute value; the
        largest over the tensors), ``tolerance`` (the dtype's, see ``TOLERANCES``)
        and ``min_cosine``.
    """
    return agreement_fields(check_grads(model, x[:n], y[:n], loss, numerical=False))


def _opinions(model: MLP, mask: LaneMask | None, x: Array, y: Array, loss: str):
    """One lane's gradients by the hand-written backprop (Hadamard, diagonal) and jax.grad,
    and its term scales; with ``mask``, of the lane's own network inside the padded one."""
    manual, diagonal = (
        backprop_trace_body(model, x, y, loss, v, mask).grads for v in ("hadamard", "diagonal")
    )
    if mask is None:
        auto = jax.grad(loss_value)(model, x, y, loss)
    else:
        auto = MASKED_GRADS["autodiff"](model, mask, x, y, loss)[1]
    return manual, diagonal, auto, _term_scales(model, x, y, loss, mask)


@functools.partial(jax.jit, static_argnames=("loss", "batch_size"))
def _lanes_opinions(models: MLP, masks: LaneMask | None, x: Array, y: Array, *, loss: str, batch_size: int):
    def one(lane):
        model, mask, x_lane, y_lane = lane
        return _opinions(model, mask, x_lane, y_lane, loss)

    return jax.lax.map(one, (models, masks, x, y), batch_size=batch_size)


def _take(tree, i: int):
    return jax.tree.map(lambda leaf: leaf[i], tree)


def lane_opinions(models: MLP, masks: LaneMask | None, x, y, loss: str) -> list[tuple[MLP, MLP, MLP, list]]:
    """Each lane's own gradients, by the hand-written backprop (Hadamard and diagonal variants)
    and ``jax.grad``, and its tensors' term scales (``term_scales``): one compiled program
    for all lanes, then each lane's real units and layers taken out on the host.

    Arguments as :func:`lane_agreements`.

    Returns:
        Per lane ``(manual, diagonal, autodiff, scales)``: three gradients shaped as the
        lane's own network and one scale per tensor of it.
    """
    lanes, rows = np.shape(x)[:2]
    dtype = np.dtype(models.weights[0].dtype)
    width = max(models.sizes)
    batch_size = int(max(1, min(lanes, LANE_BYTES // (rows * width * width * dtype.itemsize))))
    manual, diagonal, auto, terms = jax.device_get(
        _lanes_opinions(models, masks, x, y, loss=loss, batch_size=batch_size)
    )
    per_layer = 2 if models.biases[0] is not None else 1
    out = []
    for i in range(lanes):
        m, d, a = (_take(g, i) for g in (manual, diagonal, auto))
        scales = np.asarray(terms[i])
        if masks is not None:  # the lane's own tensors: its real layers' real blocks
            own = _take(masks, i)
            m, d, a = (unpad_network(g, own) for g in (m, d, a))
            scales = scales.reshape(-1, per_layer)[np.asarray(own.real)].ravel()
        out.append((m, d, a, scales.tolist()))
    return out


def lane_agreements(models: MLP, masks: LaneMask | None, x, y, loss: str) -> list[dict]:
    """:func:`grad_agreement`'s fields of every lane of a program, from one compiled program
    (:func:`lane_opinions`), compared as :func:`check_grads` compares.

    Arguments:
        models: the lanes' networks stacked (a leading lanes axis on every array): one
            architecture as they are (``masks`` None), or padded to one shape with their
            stacked :class:`LaneMask` (``training.stack_networks``).
        x, y: each lane's rows to check (lanes, rows, width), e.g. its first
            :data:`AGREEMENT_ROWS` training rows.
        loss: the loss name.

    Returns:
        Per lane, the fields :func:`grad_agreement` returns for the lane's own network.

    >>> import jax, numpy as np
    >>> from backprop_lab.training._masked import stack_networks
    >>> nets = [MLP([2, 3, 1], "tanh", key=jax.random.PRNGKey(0)), MLP([2, 4, 4, 1], "relu", key=jax.random.PRNGKey(1))]
    >>> models, masks = stack_networks(nets)
    >>> x, y = np.ones((2, 5, 2), np.float32), np.zeros((2, 5, 1), np.float32)
    >>> [fields["passed"] for fields in lane_agreements(models, masks, x, y, "half_sse")]
    [True, True]
    """
    tol = _settings(np.dtype(models.weights[0].dtype), None)
    name = get_loss(loss, models.output_activation).name
    rows = int(np.shape(x)[1])
    return [
        agreement_fields(grad_report(m, compare_grads(m, d, a, scales, tol), name, rows, tol))
        for m, d, a, scales in lane_opinions(models, masks, x, y, loss)
    ]
