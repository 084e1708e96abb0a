"""Sequential: a chain of parts (static layers and recurrent cells) run one after another.

Parameters are named ``"<index>.<name>"`` in order (``"1.weight_ih"``, ``"2.bias"``), as in
PyTorch's ``nn.Sequential``. All parameters live in one flat buffer (``flat_params``) and all
gradients in another (``flat_grads``), in that order; the parts' arrays are views of them.
The state is a tuple with one entry per part (``()`` for static layers). Inputs are
time-major: tokens (T, B) when the first part is an Embedding, else floats (T, B, D).
"""

import copy

import numpy as np

from ._kernels.optim import zero
from ._validate import as_dtype, bool_mask, float_sequence, token_sequence
from .layers import Embedding
from .module import Module, consolidate, module_config, module_from_config


class Sequential(Module):
    """``Sequential(parts, dtype=None, seed=None)``.

    dtype: cast every part to this dtype (float32 or float64); if None the parts must agree.
    seed: if given, every part draws fresh parameters from ``default_rng(seed)`` (one child
        generator per part, in order), so a model is reproducible from its seed alone.
    """

    def __init__(self, parts, dtype=None, seed=None):
        parts = list(parts)
        if not parts:
            raise ValueError("Sequential needs at least one part, got an empty list")
        for i, p in enumerate(parts):
            if not isinstance(p, Module):
                raise TypeError(f"part {i} must be a bptt Module, got {type(p).__name__}")
        if dtype is None:
            dts = {p.dtype for p in parts}
            if len(dts) > 1:
                raise TypeError(f"parts have different dtypes {sorted(d.name for d in dts)}; "
                                "pass dtype= to cast them to one")
            dtype = parts[0].dtype
        super().__init__(as_dtype(dtype))
        self.parts = parts
        for p in parts:
            if p.dtype != self.dtype:
                p.astype(self.dtype)
        if seed is not None:
            for p, rng in zip(parts, np.random.default_rng(seed).spawn(len(parts))):
                p.reset_parameters(rng)
        self.seed = seed
        self._check_chain()
        self.flat_params, self.flat_grads = consolidate(self)

    def _check_chain(self):
        size = None
        for i, p in enumerate(self.parts):
            if isinstance(p, Embedding) and i > 0:
                raise ValueError(f"part {i} {p!r}: an Embedding takes tokens and must come first")
            want = getattr(p, "input_size", getattr(p, "in_features", None))
            if size is not None and want is not None and want != size:
                raise ValueError(f"part {i} {p!r} expects {want} input features, but part {i - 1} "
                                 f"gives {size}")
            size = p.output_size(size if size is not None else want)

    def output_size(self, input_size=None):
        """Features of the model's output (None if a part cannot say)."""
        size = input_size
        for p in self.parts:
            size = p.output_size(size)
        return size

    def __len__(self):
        return len(self.parts)

    def __getitem__(self, i):
        return self.parts[i]

    # -- parameters -----------------------------------------------------------------------
    @property
    def params(self):
        return {f"{i}.{k}": v for i, p in enumerate(self.parts) for k, v in p.params.items()}

    @params.setter
    def params(self, value):
        pass  # set by Module.__init__; the parts own the arrays

    @property
    def grads(self):
        return {f"{i}.{k}": v for i, p in enumerate(self.parts) for k, v in p.grads.items()}

    @grads.setter
    def grads(self, value):
        pass

    def param_owners(self):
        return [o for p in self.parts for o in p.param_owners()]

    def __deepcopy__(self, memo):
        # numpy copies views as separate arrays: rebuild the flat buffers of the copy
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            new.__dict__[k] = copy.deepcopy(v, memo)
        new.flat_params, new.flat_grads = consolidate(new)
        return new

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.flat_params, self.flat_grads = consolidate(self)

    def zero_grad(self):
        zero(self.flat_grads)

    def astype(self, dtype):
        """Cast every part to ``dtype`` (new arrays: build optimizers after casting)."""
        dtype = as_dtype(dtype)
        if dtype != self._dtype:
            self._dtype = dtype
            for p in self.parts:
                p.astype(dtype)
            self.flat_params, self.flat_grads = consolidate(self)
        return self

    def reset_parameters(self, rng):
        for p, r in zip(self.parts, rng.spawn(len(self.parts))):
            p.reset_parameters(r)

    def train(self, mode=True):
        self.training = bool(mode)
        for p in self.parts:
            p.train(mode)
        return self

    def get_rng_state(self):
        return [p.get_rng_state() for p in self.parts]

    def set_rng_state(self, state):
        for p, s in zip(self.parts, state):
            p.set_rng_state(s)

    # -- sequences ------------------------------------------------------------------------
    @property
    def stateful(self):
        return any(p.stateful for p in self.parts)

    @property
    def supports_truncation(self):
        """False if a part needs whole sequences (Bidirectional)."""
        return all(getattr(p, "supports_truncation", True) for p in self.parts)

    @property
    def takes_tokens(self):
        return isinstance(self.parts[0], Embedding)

    def initial_state(self, batch_size):
        return tuple(p.initial_state(batch_size) for p in self.parts)

    def check_state(self, state, batch_size):
        if state is None:
            return self.initial_state(batch_size)
        if not isinstance(state, (tuple, list)) or len(state) != len(self.parts):
            raise ValueError(f"expected a state with one entry per part ({len(self.parts)}), "
                             f"got {type(state).__name__} of length "
                             f"{len(state) if hasattr(state, '__len__') else '?'}")
        return tuple(p.check_state(s, batch_size) for p, s in zip(self.parts, state))

    def check_input(self, x):
        """Validate the model input at the boundary (shape, dtype, range, finiteness)."""
        if self.takes_tokens:
            x = np.asarray(x)
            if x.dtype.kind not in "iu":
                raise TypeError(f"the model starts with {self.parts[0]!r} and takes integer "
                                f"tokens (T, B), got dtype {x.dtype}")
            return token_sequence("tokens", x, self.parts[0].num_embeddings)
        first = self.parts[0]
        size = getattr(first, "input_size", getattr(first, "in_features", None))
        return float_sequence("x", x, self.dtype, ndim=3, last=size)

    def forward(self, x, state=None, resets=None):
        """x: (T, B) tokens or (T, B, D) floats. Returns ``(y (T, B, out), state, cache)``."""
        x = self.check_input(x)
        T, B = x.shape[0], x.shape[1]
        return self._forward(x, self.check_state(state, B), bool_mask("resets", resets, (T, B)))

    def _forward(self, x, state, resets):
        caches, new_state = {}, []
        parts, i = self.parts, 0
        while i < len(parts):
            p, s = parts[i], state[i]
            if (isinstance(p, Embedding) and i + 1 < len(parts)
                    and getattr(parts[i + 1], "folds", None) is not None
                    and parts[i + 1].folds(p, *x.shape)):
                # the cell computes the embedding's output within its input projection
                caches[str(i)] = {"x": x}
                new_state.append(s)
                x, s, caches[str(i + 1)] = parts[i + 1]._forward_tokens(x, p, state[i + 1],
                                                                        resets)
                new_state.append(s)
                i += 2
                continue
            x, s, caches[str(i)] = p._forward(x, s, resets)
            new_state.append(s)
            i += 1
        return x, tuple(new_state), caches

    def backward(self, dy, dstate, cache, ctx=None):
        """dy: (T, B, out) or None (zeros). Returns ``(dx, dstate0)``; dx is None when the model
        starts with an Embedding."""
        n = len(self.parts)
        if dstate is None:
            dstate = (None,) * n
        d0 = [None] * n
        d = None if dy is None else np.ascontiguousarray(dy, dtype=self.dtype)
        for i in range(n - 1, -1, -1):
            p = self.parts[i]
            ds = dstate[i] if p.stateful else None
            d, d0[i] = p.backward(d, ds if ds else None, cache[str(i)], ctx)
        return d, tuple(d0)

    # -- configuration --------------------------------------------------------------------
    def get_config(self):
        return {"parts": [module_config(p) for p in self.parts]}

    @classmethod
    def from_config(cls, cfg):
        dtype = cfg.get("dtype")
        return cls([module_from_config(c) for c in cfg["parts"]], dtype=dtype)

    def __repr__(self):
        inner = ",\n  ".join(repr(p) for p in self.parts)
        return f"Sequential([\n  {inner}\n], dtype={self.dtype.name})"
