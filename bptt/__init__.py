"""bptt: recurrent networks trained by backpropagation through time, on numpy and numba.

Arrays are time-major: inputs (T, B, D) or tokens (T, B), outputs (T, B, ...).
"""

from . import _config  # noqa: F401  (first: it settles numba's cache directory)
from . import data, diagnostics, init, optim
from .bidirectional import Bidirectional
from .cells import GRU, LSTM, Elman
from .checkpoint import Checkpoint, load, save
from .data import SequenceDataset, pad_sequences
from .clip import (ClipGlobalNorm, ClipNormPerParameter, ClipStateGradient, ClipValue,
                   global_norm)
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
    "BackwardContext", "Bidirectional", "BinaryCrossEntropyWithLogits", "Cell", "Checkpoint",
    "CheckpointError",
    "ClipGlobalNorm", "ClipNormPerParameter", "ClipStateGradient", "ClipValue", "Dense",
    "Dropout", "Elman", "Embedding", "FitReport", "GRU", "GradcheckReport", "LSTM",
    "MeanSquaredError", "Module", "NonFiniteError", "ReLU", "Sequential", "Sigmoid",
    "SoftmaxCrossEntropy", "StepStats", "TBPTT", "Tanh", "Unroller", "global_norm",
    "gradcheck", "init", "load", "optim", "save", "value_and_grad",
    "History", "Penalty", "SequenceDataset", "data", "diagnostics", "evaluate", "fit", "pad_sequences",
    "penalized_value_and_grad", "predict",
]
