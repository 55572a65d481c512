"""The names a config chooses from, without JAX: what ``backprop-lab <app> --help`` lists.

The tables that define these things (``ACTIVATIONS``, ``LOSSES``, ``OPTIMIZERS``,
...) live in modules that import JAX, which takes seconds; ``--help`` should take
the time Python needs to start. So the names are written out here once more, and
``tests/test_cli.py`` checks that each tuple equals the keys of its table.
"""

from __future__ import annotations

#: Activations of hidden layers (``model.activation``): ``_activations.ACTIVATIONS``
#: less the output-only ones.
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "silu", "identity")
#: Activations only an output layer may have (``Activation.output_only``).
OUTPUT_ONLY_ACTIVATIONS = ("softmax",)
#: Losses (``_losses.LOSSES``) → the output activation each requires (None: any).
LOSSES = {
    "half_sse": None,
    "sse": None,
    "mse": None,
    "cross_entropy": "softmax",
    "binary_cross_entropy": "sigmoid",
}
#: ``_optimizers.OPTIMIZERS`` and ``_optimizers.SCHEDULES``.
OPTIMIZERS = ("sgd", "momentum", "adam")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "exponential")
#: ``_network.INITS`` (``model.init``; null picks each layer's default for its activation).
INITS = ("glorot", "he", "lecun", "uniform3")
#: ``_training.GRADS``: where the gradients come from.
GRADS = ("manual", "autodiff")
#: ``runs._config.DTYPES``.
DTYPES = ("float32", "float64")
#: ``_data.DATASETS`` (``data.name``).
DATASETS = ("xor", "and", "or", "swap", "note003", "note004", "moons", "circles", "digits", "file")
#: ``trackers.TRACKERS`` (``logger=NAME``, or several: ``logger=[csv,tensorboard]``).
LOGGERS = ("none", "csv", "tensorboard", "mlflow", "wandb")
#: The loss axis of a run's plots (``plot.scale``).
PLOT_SCALES = ("auto", "log", "linear")
#: ``_early_stopping.MAXIMIZE`` (``early_stopping.metric``).
EARLY_STOPPING_METRICS = ("test_loss", "train_loss", "test_accuracy")


def valid_values(app: str) -> list[tuple[str, str]]:
    """``(key, what it accepts)`` for the keys of ``app`` (train, compare or explain) that
    take one of a fixed set of names."""
    losses = ", ".join(name + (f" (needs {out} output)" if out else "") for name, out in LOSSES.items())
    data = ", ".join(DATASETS + (("random (model.sizes' own widths)",) if app == "compare" else ()))
    rows = [
        ("model.activation", ", ".join(ACTIVATIONS)),
        ("model.output_activation", ", ".join(ACTIVATIONS + OUTPUT_ONLY_ACTIVATIONS)),
        ("model.init", "null (each layer's default for its activation), " + ", ".join(INITS)),
        ("loss", losses),
        ("data.name", data),
        ("dtype", ", ".join(DTYPES)),
    ]
    if app == "explain":
        rows += [
            ("names", "numbers, letters"),
            ("round_each_step", "null (exact), or an integer k from 0 to 12"),
        ]
        return rows
    rows += [("optimizer.name", ", ".join(OPTIMIZERS)), ("optimizer.schedule", ", ".join(SCHEDULES))]
    if app == "train":
        rows += [
            ("grad", ", ".join(GRADS)),
            ("logger", ", ".join(LOGGERS) + ", or several, e.g. [csv,tensorboard]"),
            ("early_stopping.metric", "null (never), " + ", ".join(EARLY_STOPPING_METRICS)),
        ]
    return rows
