"""backprop-lab: hand-written matrix backpropagation that matches jax.grad.

The network is an equinox Module (:class:`MLP`); :func:`manual_grad` is the
notes' δ rule written with matrix and Hadamard products only, and
:func:`autodiff_grad` and :func:`numerical_grad` are the second and third
opinions it is tested against.

The public names are loaded lazily (PEP 562): ``import backprop_lab`` imports
no JAX, and ``bl.manual_grad`` or ``from backprop_lab import manual_grad``
imports the submodule that defines the name on first use. So importing one
submodule (``backprop_lab.apps._hydra``, ``backprop_lab.training._xla``) costs only what that
submodule needs, and a Hydra app's ``--help`` starts no JAX. :data:`_EXPORTS`
is the table of public name → submodule; ``dir(backprop_lab)`` and
``__all__`` list its names. The ``X as X`` re-exports under ``TYPE_CHECKING``
below say the same to type checkers and IDEs; a test keeps the two in step.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.2.0"

#: Public name → the submodule (relative to this package) that defines it.
#: A name equal to its submodule's (``reference``) is the submodule itself.
_EXPORTS: dict[str, str] = {
    "reference": "reference",
    "ACTIVATIONS": "nn._activations",
    "Activation": "nn._activations",
    "get_activation": "nn._activations",
    "autodiff_grad": "nn._autodiff",
    "numerical_grad": "nn._autodiff",
    "VARIANTS": "nn._backprop",
    "BackpropTrace": "nn._backprop",
    "backprop_trace": "nn._backprop",
    "loss_value": "nn._backprop",
    "manual_grad": "nn._backprop",
    "manual_value_and_grad": "nn._backprop",
    "sgd_step": "nn._backprop",
    "manual_loss": "nn._manual_loss",
    "DATASETS": "data._registry",
    "Dataset": "data._dataset",
    "dataset_names": "data._registry",
    "load_dataset": "data._registry",
    "validate_against_model": "data._registry",
    "LOSSES": "nn._losses",
    "Loss": "nn._losses",
    "get_loss": "nn._losses",
    "INITS": "nn._network",
    "MLP": "nn._network",
    "Trace": "nn._network",
    "forward_trace": "nn._network",
    "run_lanes": "training._lanes",
    "stack_lanes": "training._lanes",
    "train_sweep": "training._lanes",
    "unstack_lanes": "training._lanes",
    "accuracy": "checks._evaluation",
    "evaluate": "checks._evaluation",
    "OPTIMIZERS": "training._optimizers",
    "make_optimizer": "training._optimizers",
    "GRADS": "training._train",
    "run_steps": "training._train",
    "train": "training._train",
    "configure_cpu": "training._xla",
    "GradReport": "checks._report",
    "check_grads": "checks._report",
    "CheckpointError": "files._checkpoint",
    "environment": "runs._environment",
    "Run": "runs._load",
    "load_run": "runs._load",
    "load_checkpoint_state": "runs._load",
    "evaluate_run": "runs._load",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from . import reference as reference
    from .checks._evaluation import accuracy as accuracy
    from .checks._evaluation import evaluate as evaluate
    from .checks._report import GradReport as GradReport
    from .checks._report import check_grads as check_grads
    from .data._dataset import Dataset as Dataset
    from .data._registry import DATASETS as DATASETS
    from .data._registry import dataset_names as dataset_names
    from .data._registry import load_dataset as load_dataset
    from .data._registry import validate_against_model as validate_against_model
    from .files._checkpoint import CheckpointError as CheckpointError
    from .nn._activations import ACTIVATIONS as ACTIVATIONS
    from .nn._activations import Activation as Activation
    from .nn._activations import get_activation as get_activation
    from .nn._autodiff import autodiff_grad as autodiff_grad
    from .nn._autodiff import numerical_grad as numerical_grad
    from .nn._backprop import VARIANTS as VARIANTS
    from .nn._backprop import BackpropTrace as BackpropTrace
    from .nn._backprop import backprop_trace as backprop_trace
    from .nn._backprop import loss_value as loss_value
    from .nn._backprop import manual_grad as manual_grad
    from .nn._backprop import manual_value_and_grad as manual_value_and_grad
    from .nn._backprop import sgd_step as sgd_step
    from .nn._losses import LOSSES as LOSSES
    from .nn._losses import Loss as Loss
    from .nn._losses import get_loss as get_loss
    from .nn._manual_loss import manual_loss as manual_loss
    from .nn._network import INITS as INITS
    from .nn._network import MLP as MLP
    from .nn._network import Trace as Trace
    from .nn._network import forward_trace as forward_trace
    from .runs._environment import environment as environment
    from .runs._load import Run as Run
    from .runs._load import evaluate_run as evaluate_run
    from .runs._load import load_checkpoint_state as load_checkpoint_state
    from .runs._load import load_run as load_run
    from .training._lanes import run_lanes as run_lanes
    from .training._lanes import stack_lanes as stack_lanes
    from .training._lanes import train_sweep as train_sweep
    from .training._lanes import unstack_lanes as unstack_lanes
    from .training._optimizers import OPTIMIZERS as OPTIMIZERS
    from .training._optimizers import make_optimizer as make_optimizer
    from .training._train import GRADS as GRADS
    from .training._train import run_steps as run_steps
    from .training._train import train as train
    from .training._xla import configure_cpu as configure_cpu


def __getattr__(name: str):
    """Import the submodule behind a public name on first use, then keep the value here."""
    try:
        submodule = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(f".{submodule}", __name__)
    value = module if name == submodule else getattr(module, name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
