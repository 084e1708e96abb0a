"""A recorded plan of a training step: the compiled calls of one step, replayed without the
Python that prepared them.

For the char-rnn model of ../shared/WORKLOADS.md, ``Sequential([Embedding, cell, Dense])``
under softmax cross-entropy, the forward, loss and backward of a step are a fixed sequence of
compiled calls (bptt._parallel.run) on the same work arrays every time; only the tokens, the
targets, the entering state and the input biases change. Preparing those calls (the parts'
checks, work arrays, views, the kernels' argument lists) took about 130 us of Python a step,
against about 70 us of compiled work for the tiny Elman model.

:class:`StepPlan` is built from the calls of one step of the general path, recorded as they
run. Every array a call is given must be one that stays the same from step to step (a work
array of a part or of the loss, a view of the model's flat parameters or gradients, or an
empty array) or one of the few the step makes anew, which the plan owns and fills before each
replay as the general path would: the tokens (time-major, and stream by stream for the weight
gradients) when the Embedding is folded into the cell's input projection (see bptt.cells), or
the embedded tokens when it is not; the targets; the entering state (h, and c for the LSTM);
the cell's input bias (b_ih + b_hh); and arrays that stay constant (all-ones loss weights, no
resets, no state-clip flags). The state-gradient work arrays, which the general path zeroes,
are zeroed; an Embedding that is not folded has its backward (a kernel its part calls
directly, not through bptt._parallel.run) called by the plan. A call holding any other array
makes the plan refuse (the general path then runs every step): a change to the parts that
makes another array per step cannot go unnoticed. The replay calls the same kernels with the
same numbers in the same order, so its results are the general path's bit for bit
(tests/test_plan.py).

The plan holds the parts' work arrays it was recorded with; the general path (evaluation, a
step the plan does not cover) then gets work arrays of its own (bptt._kernels._common.buffer
does not hand out an array someone holds). The engine lets a plan go before a chunk it does
not fit (see bptt.tbptt).
"""

import numpy as np

from . import _parallel
from ._kernels import layers as _layer_kernels
from ._kernels._common import gate_table
from ._kernels.optim import zero
from ._memory import aligned_empty
from .cells import GRU, LSTM, Elman
from .layers import Dense, Embedding
from .losses import SoftmaxCrossEntropy
from .sequential import Sequential

CELLS = (Elman, LSTM, GRU)
# the first and one-past-last byte of an array's memory (numpy 2 moved it, numpy 1 has it here)
_array_utils = getattr(np.lib, "array_utils", np)
_byte_bounds = _array_utils.byte_bounds


def parts_of(model, T, B):
    """``(embedding, cell, dense)`` when ``model`` is the plan's kind of model, else None."""
    if type(model) is not Sequential or len(model.parts) != 3 or model.flat_params is None:
        return None
    emb, cell, dense = model.parts
    if not (type(emb) is Embedding and type(cell) in CELLS and type(dense) is Dense
            and cell.use_kernels and emb.dtype == cell.dtype):
        return None
    return emb, cell, dense


def loss_fits(loss):
    return type(loss) is SoftmaxCrossEntropy and loss.ignore_index is None


class StepPlan:
    """The recorded calls of a step of ``model`` over (T, B) tokens (see the module
    docstring). :meth:`build` makes one from a recording, or returns None; :meth:`fits`
    says whether it still describes the model; :meth:`run` replays it."""

    def __init__(self, model, loss, parts, T, B):
        self.model, self.loss, self.parts, self.T, self.B = model, loss, parts, T, B
        self.loss_config = _loss_config(loss)
        self.flat_params, self.flat_grads = model.flat_params, model.flat_grads
        self.part_list = tuple(model.parts)
        self.dicts = _param_dicts(parts)
        self.config = _config(parts[1])

    def fits(self, model, loss, T, B):
        """Whether the plan still describes a step of ``model`` under ``loss`` over (T, B)
        tokens: the same parts, loss, parameter arrays, number of threads and
        configuration."""
        return (T == self.T and B == self.B and model is self.model and loss is self.loss
                and _loss_config(loss) == self.loss_config
                and _parallel.get_num_threads() == self.threads
                and model.flat_params is self.flat_params and model.flat_grads is self.flat_grads
                and len(model.parts) == 3 and all(a is b for a, b in zip(model.parts,
                                                                         self.part_list))
                and _config(self.parts[1]) == self.config
                and all(a is b for a, b in zip(_param_dicts(self.parts), self.dicts)))

    @classmethod
    def build(cls, model, loss, calls, T, B):
        """A plan from the calls (kernel, n, args, work) recorded during one step's forward,
        loss and backward on (T, B) tokens, or None if a call holds an array the plan does
        not know how to fill."""
        parts = parts_of(model, T, B)
        if parts is None or not loss_fits(loss):
            return None
        plan = cls(model, loss, parts, T, B)
        return plan if plan._adopt(loss, calls) else None

    def _adopt(self, loss, calls):
        emb, cell, dense = self.parts
        T, B = self.T, self.B
        kernels = cell.kernel
        self.folded = cell.folds(emb, T, B)
        regions = _regions([self.flat_params, self.flat_grads],
                           [buf for owner in (emb, cell, dense, loss)
                            for buf in owner.__dict__.get("_buffers", {}).values()])
        self.fills = []      # (plan array, what fills it each step), in the order first needed
        self.zeroed = []     # work arrays zeroed before each replay
        recorded = []        # the calls, with the plan's own arrays in place of the step's
        y = wloss = dx = None
        self.state_c = None
        owned = {}
        for kernel, n, args, work in calls:
            names = _arg_names(kernel)
            if len(names) != len(args) + 2:
                return False
            new = list(args)
            for i, (name, a) in enumerate(zip(names, args)):
                if not isinstance(a, np.ndarray) or a.size == 0:
                    continue
                if kernel is kernels._forward and name == "y":
                    y = a
                if kernel is _layer_kernels.softmax_cross_entropy and name == "wloss":
                    wloss, self.scale = a, float(args[names.index("scale")])
                if kernel is kernels._backward and name in ("dh", "dc"):
                    self.zeroed.append(a)
                if kernel is kernels._backward and name == "dx":
                    dx = a
                if _within(a, regions):
                    continue
                source = _source(kernel, kernels, name, a, T, B)
                if source is None:
                    return False
                if source == "constant":
                    continue
                key = (source, a.shape, a.dtype)
                if key not in owned:
                    owned[key] = aligned_empty(a.shape, a.dtype)
                    self.fills.append((owned[key], source))
                new[i] = owned[key]
                if source == "c":
                    self.state_c = owned[key]
            recorded.append((kernel, n, tuple(new), work))
        needs = {"targets", "h0", "bias"} | ({"c"} if type(cell) is LSTM else set())
        needs |= {"tokens", "tokens_bt"} if self.folded else {"embedded"}
        if (y is None or wloss is None or {s for _, s in self.fills} != needs
                or len(self.zeroed) != len(cell.state_sizes)
                or (not self.folded and (dx is None or dx.shape != (T, B, emb.embedding_dim)))):
            return False
        self.y, self.wloss, self.cell, self.emb = y, wloss, cell, emb
        self.threads = _parallel.get_num_threads()
        self.prepared = [_parallel.prepare(*c) for c in recorded]
        if not self.folded:
            # the Embedding's own backward, which its part runs directly (not a parallel call)
            self.tokens = np.empty((T * B,), np.int64)
            self.embedding_backward = (self.tokens, dx.reshape(T * B, -1), emb.grads["weight"])
        return True

    def run(self, x, y, state):
        """Replay the step on tokens ``x`` and targets ``y`` (T, B), checked, from the model
        state ``state`` (one entry per part). Fills the gradients (zeroed first); returns
        ``(loss, new state)``, the loss as the loss object reports it (the mean over the T*B
        positions, or their sum)."""
        cell_state = state[1]
        for a, source in self.fills:
            if source == "tokens":
                a[...] = x
            elif source == "tokens_bt":
                a.reshape(self.B, self.T)[...] = x.T
            elif source == "embedded":
                np.take(self.emb.params["weight"], x, axis=0, out=a)
            elif source == "targets":
                a.reshape(self.T, self.B)[...] = y
            elif source == "h0":
                a[...] = cell_state[0]
            elif source == "c":
                a[...] = cell_state[1]
            else:   # "bias": as the cell's forward makes it
                self.cell.kernel.input_bias(self.cell, a)
        for a in self.zeroed:
            a.fill(0)
        zero(self.flat_grads)
        _parallel.replay(self.prepared)
        if not self.folded:
            self.tokens.reshape(self.T, self.B)[...] = x
            _layer_kernels.embedding_backward(*self.embedding_backward)
        h = self.y[self.T - 1].copy()
        new = (h, self.state_c.copy()) if self.state_c is not None else (h,)
        value = float(self.wloss.sum()) * self.scale
        return value, ((), new, ())


def _param_dicts(parts):
    """The parts' parameter and gradient dicts (installing parameters makes new ones)."""
    return [d for p in parts for d in (p.params, p.grads)]


def _loss_config(loss):
    return (loss.reduction, loss.ignore_index)


def _config(cell):
    return (getattr(cell, "nonlinearity", None), cell.use_kernels)


def _source(kernel, kernels, name, a, T, B):
    """What fills a step's own array ``a`` given as argument ``name`` of ``kernel``: a key of
    :meth:`StepPlan.run`, "constant" for one that holds the same values every step, or None
    for an array the plan does not know."""
    if name == "tokens" and a.dtype == np.int64:
        if a.shape == (T, B):
            return "tokens"
        if a.shape == (T * B,) and kernel is not kernels._forward:
            return "tokens_bt"
    if kernel is _layer_kernels.softmax_cross_entropy:
        if name == "targets" and a.shape == (T * B,) and a.dtype == np.int64:
            return "targets"
        if name == "weights" and (a == 1).all():
            return "constant"
    if name == "bias" and kernel in (gate_table, kernels._forward):
        return "bias"
    if kernel is kernels._forward and name in ("h0", "c"):
        return name
    if name == "x" and kernel in (kernels._forward, kernels._backward):
        return "embedded"
    if name in ("resets", "fired") and a.dtype == np.bool_ and not a.any():
        return "constant"
    return None


def _arg_names(kernel):
    """The names of a kernel's parameters (() for a callable that is not a plain function)."""
    code = getattr(getattr(kernel, "py_func", kernel), "__code__", None)
    return () if code is None else code.co_varnames[:code.co_argcount]


def _regions(flat, buffers):
    """The byte ranges of the arrays that stay from step to step."""
    out = []
    for a in list(flat) + list(buffers):
        if isinstance(a, np.ndarray) and a.size:
            out.append(_byte_bounds(a))
    return out


def _within(a, regions):
    lo, hi = _byte_bounds(a)
    return any(r0 <= lo and hi <= r1 for r0, r1 in regions)
