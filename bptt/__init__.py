"""bptt: recurrent networks trained by backpropagation through time, on numpy and numba.

Arrays are time-major: inputs (T, B, D) or tokens (T, B), outputs (T, B, ...).
"""

from . import _config  # noqa: F401  (first: it settles numba's cache directory)
from . import data, diagnostics, init, optim
from ._parallel import get_num_threads, set_num_threads
from .bidirectional import Bidirectional
from .cells import GRU, LSTM, Elman
from .checkpoint import Checkpoint, load, save
from .clip import (ClipGlobalNorm, ClipNormPerParameter, ClipStateGradient, ClipValue,
                   global_norm)
from .data import SequenceDataset, pad_sequences
from .errors import CheckpointError, NonFiniteError
from .gradcheck import GradcheckReport, gradcheck
from .layers import Dense, Dropout, Embedding, ReLU, Sigmoid, Tanh
from .losses import BinaryCrossEntropyWithLogits, MeanSquaredError, SoftmaxCrossEntropy
from .module import BackwardContext, Cell, Module
from .sequences import History, Penalty, evaluate, fit, penalized_value_and_grad, predict
from .sequential import Sequential
from .tbptt import TBPTT, FitReport, StepStats
from .unroll import Unroller
from .value_and_grad import value_and_grad

__version__ = "0.1.0"

__all__ = [
    # parts and models
    "Bidirectional", "Cell", "Dense", "Dropout", "Elman", "Embedding", "GRU", "LSTM", "Module",
    "ReLU", "Sequential", "Sigmoid", "Tanh", "Unroller", "BackwardContext",
    # losses, training, clipping
    "BinaryCrossEntropyWithLogits", "MeanSquaredError", "SoftmaxCrossEntropy", "TBPTT",
    "FitReport", "StepStats", "ClipGlobalNorm", "ClipNormPerParameter", "ClipStateGradient",
    "ClipValue", "global_norm", "value_and_grad", "gradcheck", "GradcheckReport",
    "NonFiniteError",
    # datasets of sequences
    "History", "Penalty", "SequenceDataset", "evaluate", "fit", "pad_sequences",
    "penalized_value_and_grad", "predict",
    # checkpoints
    "Checkpoint", "CheckpointError", "load", "save",
    # threads of the compiled kernels
    "get_num_threads", "set_num_threads",
    # modules
    "data", "diagnostics", "init", "optim",
]
