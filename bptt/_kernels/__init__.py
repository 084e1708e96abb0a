"""Compiled sequence kernels of the built-in cells (one module per cell).

Each module offers ``forward(cell, x, state, resets) -> (y, final_state, cache)`` and
``backward(cell, dy, dstate, cache, ctx) -> (dx, dstate0)`` with the same meaning and numbers as
:class:`~bptt.unroll.Unroller` driving the cell's ``step_forward``/``step_backward``, but the
whole time loop runs in compiled code:

- the batch streams are split across threads (:mod:`bptt._parallel`): each thread runs all T
  steps for its own streams, with no synchronisation per step;
- every matrix product runs on weights packed once per call (:mod:`bptt._kernels.gemm`): the
  input projection of all T steps, then per step the recurrent product ``h_{t-1} @ W_hh^T``
  and the elementwise gate work, allocating nothing; float32 gates use the vectorised
  approximations of :mod:`bptt._kernels.fastmath`, float64 the exact functions;
- backward computes the pre-activation gradients step by step (with the recurrent product
  ``da_t @ W_hh``, resets and state-gradient clipping), then ``dx`` and the weight gradients
  of all T steps at once (the weight gradients split by rows of the weights).

An Embedding right before a cell can be folded into its input projection (a table of V rows,
see ``cells._GatedCell.folds``).

Caches hold arrays indexed by time on axis 0 (exactly T entries each) plus ``"resets"`` (T, B),
so :func:`bptt.module.slice_cache` cuts them like any other cache. They are time-major views
of stream-major arrays (each thread's streams one block of memory, see ``_common``); the
backward takes a whole cache as it is and copies a slice of one. Activation derivatives are
taken from stored outputs (tanh' = 1 - y^2, sigmoid' = y (1 - y)).

The kernel modules must not import :mod:`bptt.cells` (cells.py imports them).
"""

from . import elman, gru, lstm

__all__ = ["elman", "gru", "lstm"]
