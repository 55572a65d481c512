"""backprop-lab: hand-written matrix backpropagation that matches jax.grad.

The network is an equinox Module (:class:`MLP`); :func:`manual_grad` is the
notes' δ rule written with matrix and Hadamard products only, and
:func:`autodiff_grad` and :func:`numerical_grad` are the second and third
opinions it is tested against.
"""

from . import reference as reference
from ._activations import ACTIVATIONS as ACTIVATIONS
from ._activations import Activation as Activation
from ._activations import get_activation as get_activation
from ._autodiff import autodiff_grad as autodiff_grad
from ._autodiff import numerical_grad as numerical_grad
from ._backprop import VARIANTS as VARIANTS
from ._backprop import BackpropTrace as BackpropTrace
from ._backprop import backprop_trace as backprop_trace
from ._backprop import loss_value as loss_value
from ._backprop import manual_grad as manual_grad
from ._backprop import manual_value_and_grad as manual_value_and_grad
from ._backprop import sgd_step as sgd_step
from ._data import DATASETS as DATASETS
from ._data import Dataset as Dataset
from ._data import dataset_names as dataset_names
from ._data import load_dataset as load_dataset
from ._data import validate_against_model as validate_against_model
from ._losses import LOSSES as LOSSES
from ._losses import Loss as Loss
from ._losses import get_loss as get_loss
from ._network import INITS as INITS
from ._network import MLP as MLP
from ._network import Trace as Trace
from ._network import forward_trace as forward_trace
from ._sweep import run_lanes as run_lanes
from ._sweep import stack_lanes as stack_lanes
from ._sweep import train_sweep as train_sweep
from ._sweep import unstack_lanes as unstack_lanes
from ._evaluation import accuracy as accuracy
from ._evaluation import evaluate as evaluate
from ._optimizers import OPTIMIZERS as OPTIMIZERS
from ._optimizers import make_optimizer as make_optimizer
from ._training import GRADS as GRADS
from ._training import run_steps as run_steps
from ._training import train as train
from ._xla import configure_cpu as configure_cpu

__version__ = "0.1.0"
from ._report import GradReport as GradReport
from ._report import check_grads as check_grads
