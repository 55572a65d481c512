"""The notes' mathematics: the network, its activations and losses, the hand-written
matrix backprop (z, a, δ, dW per layer), autodiff and finite differences beside it, and
:func:`manual_loss`, the backprop as JAX's own gradient.

Pure functions over equinox Modules: no Hydra, no files, no printing.

Modules: ``_activations`` and ``_losses`` (each function beside its derivative, one table
each), ``_network`` (:class:`MLP`, the forward pass), ``_backprop`` (the δ rule),
``_autodiff`` (``jax.grad`` and central differences), ``_manual_loss`` (a custom VJP).
"""
