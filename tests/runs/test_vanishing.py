"""The vanishing gradient (Nielsen, ch. 5) from the ``experiment=vanishing`` preset.

Each activation trains the preset's deep network ([64, 30, 30, 30, 30, 10] on
digits) for one epoch through the training app. The classic result must show
in metrics.jsonl: with sigmoid the first layer's gradient is at least ten times
smaller than the last layer's, with tanh and relu it is not. And the recorded
``grad_norms`` must be the norms of the gradient that ``manual_grad`` and
``jax.grad`` compute afresh on the whole training set, from the initial
network and from the checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra

import backprop_lab as bl
from backprop_lab.files._checkpoint import load_checkpoint
from backprop_lab.runs._experiment import build_experiment
from helpers.train_app import app, cfg_of

# Its tests share the module's runs: one xdist worker runs them all (tests/conftest.py).
pytestmark = pytest.mark.xdist_group("vanishing")

ACTIVATIONS = ("sigmoid", "tanh", "relu")
VANISHED = 0.1  # first layer at least ten times smaller than the last


def _overrides(activation: str) -> tuple[str, ...]:
    return ("experiment=vanishing", f"model.activation={activation}", "epochs=1")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One epoch of the preset per activation, each in its own run directory."""
    out = {}
    for activation in ACTIVATIONS:
        GlobalHydra.instance().clear()
        out[activation] = tmp_path_factory.mktemp(activation)
        app.train(cfg_of(*_overrides(activation)), out_dir=out[activation])
    GlobalHydra.instance().clear()
    return out


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _first_over_last(record: dict) -> float:
    return record["grad_norms"][0] / record["grad_norms"][-1]


def test_preset_is_the_deep_sigmoid_network():
    GlobalHydra.instance().clear()
    cfg = cfg_of("experiment=vanishing")
    assert list(cfg.model.sizes) == [64, 30, 30, 30, 30, 10]
    assert (cfg.model.activation, cfg.data.name, cfg.diagnostics, cfg.log_every) == (
        "sigmoid",
        "digits",
        True,
        1,
    )


@pytest.mark.slow
def test_sigmoid_gradient_vanishes_in_the_first_epoch(runs):
    after_one_epoch = {a: next(r for r in _records(runs[a]) if r["step"] > 0) for a in ACTIVATIONS}
    assert all(r["epoch"] == 1 for r in after_one_epoch.values())
    ratio = {a: _first_over_last(r) for a, r in after_one_epoch.items()}
    assert ratio["sigmoid"] <= VANISHED, ratio
    for activation in ("tanh", "relu"):
        assert ratio[activation] > VANISHED, ratio
        assert ratio[activation] >= 10 * ratio["sigmoid"], ratio
    # the norms shrink layer by layer towards the input with sigmoid
    norms = after_one_epoch["sigmoid"]["grad_norms"]
    assert all(a < b for a, b in zip(norms, norms[1:])), norms


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_recorded_norms_are_the_gradients_norms(runs, activation):
    """Step 0 from the initial network, the last record from the checkpoint: ‖∂L/∂Wˡ‖_F by
    manual_grad and by jax.grad on the whole training set, loaded here on its own."""
    GlobalHydra.instance().clear()
    cfg = cfg_of(*_overrides(activation))
    exp = build_experiment(cfg)
    data = bl.load_dataset("digits", seed=cfg.seed, test_fraction=cfg.data.test_fraction, one_hot=True)
    (final, _), header = load_checkpoint(
        runs[activation] / "checkpoint.eqx", (exp.model, exp.optimizer.init(exp.model))
    )
    records = _records(runs[activation])
    assert records[-1]["step"] == header["step"] > 0
    for model, record in ((exp.model, records[0]), (final, records[-1])):
        for grad in (bl.manual_grad, bl.autodiff_grad):
            grads = grad(model, data.x_train, data.y_train, cfg.loss)
            expected = [float(np.linalg.norm(np.asarray(w))) for w in grads.weights]
            np.testing.assert_allclose(record["grad_norms"], expected, rtol=1e-4)
            bias = [float(np.linalg.norm(np.asarray(b))) for b in grads.biases]
            np.testing.assert_allclose(record["bias_grad_norms"], bias, rtol=1e-4)
