"""The explainer writes out the notes' worked examples with the notes' own numbers.

Note 003 in exact arithmetic (8 decimals), note 004 with every intermediate
rounded to 4 decimals as the note does (``round_each_step=4``), and any small
network checked against the library's own backprop_trace.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import backprop_lab
from backprop_lab import MLP, Activation, backprop_trace
from backprop_lab.explain._explain import MAX_LAYERS, MAX_WIDTH, TooLargeToExplain, explain, round_half_up
from backprop_lab.explain._render import render_markdown, render_text
from helpers import notes_data as nd

ROOT = Path(__file__).resolve().parents[2]


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("explain", overrides=overrides)


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("_app_explain", ROOT / "experiments" / "explain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tol(decimals) -> np.ndarray:
    """Half a unit in the last printed place, entry by entry; note 003 works to 8
    decimals, so the few entries it prints with more are significant to 8 only."""
    return 0.5 * 10.0 ** -np.minimum(np.asarray(decimals, dtype=np.float64), 8)


def _close(name, got, note, decimals, extra=0.0):
    got, note = np.asarray(got, np.float64), np.asarray(note, np.float64)
    assert got.shape == note.shape, name
    tol = np.broadcast_to(_tol(decimals), note.shape) + extra + 1e-12
    assert np.all(np.abs(got - note) <= tol), f"{name}: explain {got.tolist()}, note {note.tolist()}"


def _augmented(W, b):
    return np.concatenate([np.asarray(b)[:, None], np.asarray(W)], axis=1)


def _note003_quantities(e) -> dict:
    l1, l2 = e.layers
    return {
        "net1": l1.net,
        "a1": l1.out,
        "X2": np.concatenate([[1.0], l1.out]),
        "net2": l2.net,
        "a2": l2.out,
        "dL_da2": l2.dL_dout,
        "delta2": l2.delta,
        "dW2": _augmented(l2.dW, l2.db),
        "W2_new": _augmented(l2.W_new, l2.b_new),
        "dL_dX2": np.concatenate([[l1.dL_dconst], l1.dL_dout]),
        "dL_da1": l1.dL_dout,
        "delta1": l1.delta,
        "dW1": _augmented(l1.dW, l1.db),
        "W1_new": _augmented(l1.W_new, l1.b_new),
    }


def test_note003_printed_numbers(app, tmp_path):
    result = app.explain_config(_compose(["experiment=note003"]), out_dir=tmp_path)
    text, markdown = result["text"], (tmp_path / "explain.md").read_text()
    assert (tmp_path / "network.png").stat().st_size > 0
    note = nd.Note003Sigmoid
    model = MLP.from_augmented([note.W1, note.W2], "first")
    e = explain(model, note.x, note.y, "half_sse", note.lr)
    for name, got in _note003_quantities(e).items():
        _close(name, got, getattr(note, name), note.decimals[name])
        # every entry the note prints to 8 or more decimals is in both renderings, to 8 decimals
        printed = np.broadcast_to(np.asarray(note.decimals[name]), np.shape(getattr(note, name)))
        for value, d in zip(np.ravel(getattr(note, name)), np.ravel(printed)):
            if d >= 8:
                assert f"{value:.8f}" in text and f"{value:.8f}" in markdown, (name, value)
    assert "0.47502081" in text and "-0.11033497" in text
    assert r"\begin{bmatrix}" in markdown and "$$" in markdown


def test_note003_softmax_remark(app, tmp_path):
    cfg = _compose(["experiment=note003", "model.output_activation=softmax", "loss=cross_entropy"])
    text = app.explain_config(cfg, out_dir=tmp_path)["text"]
    note = nd.Note003Softmax
    e = explain(
        MLP.from_augmented([note.W1, note.W2], "first", output_activation="softmax"),
        note.x,
        note.y,
        "cross_entropy",
        note.lr,
    )
    assert e.fused and e.layers[1].dL_dout is None and e.layers[1].fprime is None
    got = {k: v for k, v in _note003_quantities(e).items() if k in note.decimals}
    # The note carries a2 rounded to 5 decimals through the rest: allow that 1e-7.
    for name, value in got.items():
        _close(name, value, getattr(note, name), note.decimals[name], extra=1e-7)
    assert "(Σ y)·out[2] − y" in text and "-0.32191993" in text


NOTE004_SLIPS = {k: v for k, v in nd.Note004.slips.items()}


def _note004_value(name):
    value = np.array(getattr(nd.Note004, name), dtype=np.float64)
    for (slip, index), used in NOTE004_SLIPS.items():
        if slip == name:
            value.flat[index] = used
    return value


def _note004_quantities(e) -> dict:
    b, c, d = e.layers
    return {
        "net_b": b.net,
        "out_b": b.out,
        "net_c": c.net,
        "out_c": c.out,
        "net_d": d.net,
        "out_d": d.out,
        "dE_dnet_d": d.delta,
        "W_dg": d.dW,
        "dE_dout_c": c.dL_dout,
        "dsig_net_c": c.fprime,
        "dE_dnet_c": c.delta,
        "W_cg": c.dW,
        "dE_dout_b": b.dL_dout,
        "dsig_net_b": b.fprime,
        "dE_dnet_b": b.delta,
        "W_bg": b.dW,
        "lr_W_cg": c.step_W,
        "W_c_new": c.W_new,
    }


def test_note004_rounded_as_it_goes(app, tmp_path):
    cfg = _compose(["experiment=note004", "data=note004", "round_each_step=4", "names=letters"])
    text = app.explain_config(cfg, out_dir=tmp_path)["text"]
    note = nd.Note004
    e = explain(
        MLP.from_weights([note.W_b, note.W_c, note.W_d]),
        note.x,
        note.target,
        "half_sse",
        note.lr,
        round_each_step=4,
    )
    for name, got in _note004_quantities(e).items():
        # rounded as the note rounds: equal to the printed value, not merely close
        np.testing.assert_allclose(got, _note004_value(name), rtol=0, atol=1e-12, err_msg=name)
    for line in (
        "out_b = sigmoid(net_b) = [0.5250  0.5744  0.6225  0.6682]ᵀ",
        "net_c = W_c·out_b = [0.7887  1.2667  1.7448]ᵀ",
        "δ_d = ∂L/∂net_d = ∂L/∂out_d ⊙ sigmoid'(net_d) = [0.1452  -0.0221]ᵀ",
        "sigmoid'(net_c) = [0.2148  0.1715  0.1266]ᵀ",
        "[0.2483  0.2981  0.3480  0.3978]",
        "[0.6481  0.6980  0.7478  0.7976]",
    ):
        assert line in text, line
    # the preset alone explains the note's worked example: row 0 of its swap table
    same = app.explain_config(
        _compose(["experiment=note004", "round_each_step=4", "names=letters"]), out_dir=tmp_path / "swap"
    )["text"]
    assert same == text


def test_note004_exact_arithmetic():
    note = nd.Note004
    model = MLP.from_weights([note.W_b, note.W_c, note.W_d])
    e = explain(model, note.x, note.target, "half_sse", note.lr)
    for name, got in _note004_quantities(e).items():
        # the note's rounding as it goes moves its later numbers by up to a few units in the 4th place
        np.testing.assert_allclose(got, _note004_value(name), rtol=0, atol=3e-4, err_msg=name)
    assert "0.24829262" in render_text(e)


@pytest.mark.parametrize(
    "sizes, activation, output, loss, bias",
    [
        ([2, 3, 2], "tanh", "softmax", "cross_entropy", True),
        ([3, 2, 3, 2], "relu", "softmax", "half_sse", True),  # softmax Jacobian, no closed form
        ([2, 4, 1], "gelu", "identity", "mse", False),
    ],
)
def test_any_small_network_matches_backprop_trace(sizes, activation, output, loss, bias):
    model = MLP(sizes, activation, output, bias, key=jax.random.PRNGKey(4), dtype=jnp.float64)
    x = np.linspace(-1.0, 1.0, sizes[0])
    y = np.eye(sizes[-1])[0] if loss == "cross_entropy" else np.linspace(0.2, 0.8, sizes[-1])
    e = explain(model, x, y, loss, lr=0.3)
    t = backprop_trace(model, jnp.asarray(x), jnp.asarray(y), loss)
    for l, layer in enumerate(e.layers):
        np.testing.assert_allclose(layer.net, t.z[l], atol=1e-12)
        np.testing.assert_allclose(layer.out, t.a[l + 1], atol=1e-12)
        np.testing.assert_allclose(layer.delta, t.delta[l], atol=1e-12)
        np.testing.assert_allclose(layer.dW, t.grads.weights[l], atol=1e-12)
        np.testing.assert_allclose(layer.W_new, model.weights[l] - 0.3 * t.grads.weights[l], atol=1e-12)
    assert e.loss_value == pytest.approx(float(t.loss))
    assert (e.layers[-1].jacobian is not None) == (output == "softmax" and loss == "half_sse")
    md = render_markdown(e)
    assert md.count("$$") % 2 == 0 and r"\delta^{[1]}" in md


def test_derivatives_come_from_the_table(monkeypatch):
    monkeypatch.setitem(
        backprop_lab.ACTIVATIONS, "bad_tanh", Activation("bad_tanh", jnp.tanh, lambda z, a: 1.0 - a)
    )
    model = MLP([2, 3, 2], "bad_tanh", "sigmoid", key=jax.random.PRNGKey(0), dtype=jnp.float64)
    for rnd in (None, 6):
        hidden = explain(model, [1.0, -1.0], [0.0, 1.0], "half_sse", 0.1, round_each_step=rnd).layers[0]
        expected = 1.0 - hidden.out if rnd is None else round_half_up(1.0 - hidden.out, rnd)
        np.testing.assert_allclose(hidden.fprime, expected, atol=1e-12)


def test_round_half_up_rounds_as_on_paper():
    got = round_half_up([0.00185, -0.00185, 0.0037 * 0.5, 0.78875, 0.7887499999999999, 0.78874999], 4)
    np.testing.assert_array_equal(got, [0.0019, -0.0019, 0.0019, 0.7888, 0.7888, 0.7887])


def test_too_large_network_is_refused(app):
    with pytest.raises(TooLargeToExplain, match=f"at most {MAX_WIDTH} neurons per layer"):
        explain(
            MLP([2, MAX_WIDTH + 1, 2], key=jax.random.PRNGKey(0)), [0.0, 1.0], [1.0, 0.0], "half_sse", 0.1
        )
    deep = MLP([2] * (MAX_LAYERS + 2), key=jax.random.PRNGKey(0))
    with pytest.raises(TooLargeToExplain, match=f"at most {MAX_LAYERS} layers"):
        explain(deep, [0.0, 1.0], [1.0, 0.0], "half_sse", 0.1)
    from backprop_lab.runs._experiment import ConfigError

    with pytest.raises(ConfigError, match="at most 8 neurons per layer"):
        app.explain_config(_compose(["data=digits", "model.sizes=[64,128,10]"]), out_dir="unused")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["round_each_step=13"],
            r"^round_each_step=13 is invalid: expected null .*or an integer from 0 to 12$",
        ),
        (["round_each_step=true"], r"^round_each_step=true is invalid"),
        (["decimals=-1"], r"^decimals=-1 is invalid: expected null .*or an integer from 0 to 16$"),
        (["names=greek"], r"^names='greek' is invalid: expected one of: letters, numbers$"),
        (["x=[1,0]"], r"^y=null is invalid: give both x and y, or neither"),
        (
            ["x=[1,true]", "y=[1,0]"],
            r"^x=\[1, True\] is invalid: expected null .*or a list of finite numbers",
        ),
        (["x=[nan,0]", "y=[1,0]"], r"^x=\[nan, 0\] is invalid: expected null .*or a list of finite numbers"),
        (
            ["x=[1,0]", "y=[1,-inf]"],
            r"^y=\[1, -inf\] is invalid: expected null .*or a list of finite numbers",
        ),
        (["x=[1,0,3]", "y=[1,0]"], r"^x=\[1, 0, 3\] is invalid: expected a list of 2 numbers"),
        (["example=1"], r"^example=1 is invalid: expected a row index from 0 to 0 of data set 'note003'$"),
        (["example=-1"], r"^example=-1 is invalid: expected a row index >= 0"),
        (["+exmaple=1"], r"^exmaple=1 is invalid: the config has no key 'exmaple'; its keys are: .*example"),
    ],
)
def test_config_errors_are_one_line_before_any_output(app, tmp_path, overrides, message):
    from backprop_lab.runs._experiment import ConfigError

    with pytest.raises(ConfigError, match=message) as info:
        app.explain_config(_compose(overrides), out_dir=tmp_path / "out")
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


def test_training_presets_keys_are_accepted(app, tmp_path):
    """experiment=xor sets epochs, batch_size and log_every, which one explained step does not use."""
    cfg = _compose(["experiment=xor"])
    assert {"epochs", "batch_size", "log_every"} <= set(cfg)
    assert app.explain_config(cfg, out_dir=tmp_path)["sizes"] == list(cfg.model.sizes)


def test_explain_command_line(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "experiments/explain.py", "experiment=note003", f"hydra.run.dir={run}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "out[1] = sigmoid(net[1]) = [0.47502081  0.52497919]ᵀ" in proc.stdout
    assert (run / "explain.md").exists() and (run / "network.png").exists()
    too_big = subprocess.run(
        [
            sys.executable,
            "experiments/explain.py",
            "data=digits",
            "model.sizes=[64,8,10]",
            f"hydra.run.dir={tmp_path / 'big'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert too_big.returncode != 0 and "Traceback" not in too_big.stdout + too_big.stderr
    assert "MAX_WIDTH" in too_big.stdout + too_big.stderr


@pytest.mark.parametrize("output, loss", [("sigmoid", "half_sse"), ("softmax", "half_sse")])
def test_one_rounding_rule_in_every_layer_stated_in_the_output(output, loss):
    """A number shown on a line of its own is rounded and used as shown: hidden δ is the
    rounded product of the shown ∂L/∂out and f′; the output δ is one expression, rounded
    once, with f′ (or the Jacobian) not shown. Recomputed here from the shown numbers."""
    model = MLP([2, 3, 3, 2], "sigmoid", output, key=jax.random.PRNGKey(7), dtype=jnp.float64)
    x, y = jnp.array([0.3, -1.2]), jnp.array([1.0, 0.0])
    e = explain(model, x, y, loss, lr=0.5, round_each_step=3)
    hidden, last = e.layers[:-1], e.layers[-1]
    for layer in hidden:
        np.testing.assert_array_equal(layer.delta, round_half_up(layer.dL_dout * layer.fprime, 3))
    assert last.fprime is None and last.jacobian is None
    # σ′ and the softmax Jacobian written out here, not read from the table
    if output == "sigmoid":
        want = last.dL_dout * (1.0 / (1.0 + np.exp(-last.net))) * (1.0 / (1.0 + np.exp(last.net)))
    else:
        s = np.exp(last.net - last.net.max()) / np.exp(last.net - last.net.max()).sum()
        want = (np.diag(s) - np.outer(s, s)).T @ last.dL_dout
    np.testing.assert_array_equal(last.delta, round_half_up(want, 3))
    text = render_text(e)
    assert "In every layer, a number shown on a line of its own is rounded and used as shown." in text
    shown = [line for line in text.splitlines() if line.strip().startswith(("sigmoid'(", "∂out"))]
    assert len(shown) == len(hidden)  # an f′ line per hidden layer, none at the output
