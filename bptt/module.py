"""The one interface shared by static layers and recurrent cells.

Every part of a model is a :class:`Module`:

- ``params`` / ``grads``: dicts ``name -> array`` (gradients allocated once, accumulated with
  ``+=``, zeroed only by :meth:`Module.zero_grad`);
- ``initial_state(B)``: a tuple of ``(B, ...)`` arrays, the empty tuple for a static layer;
- ``forward(x, state, resets)`` over a time-major sequence ``x`` of shape ``(T, B, ...)``
  returns ``(y, final_state, cache)``;
- ``backward(dy, dstate, cache, ctx)`` returns ``(dx, dstate0)`` and *adds* the parameter
  gradients into ``grads``. ``dy=None`` means a zero output gradient (the steps of a TBPTT
  window that lie before the chunk whose losses are backpropagated); ``dstate=None`` means a
  zero final-state gradient. A static layer given ``dy=None`` returns ``dx=None``.

A cache is a dict whose values are time-indexed (numpy arrays with time on axis 0, Python lists
of per-step objects, or nested caches) or else time-independent metadata (tuples, numbers), so
any cache can be cut in time (:func:`slice_cache`); the TBPTT engine relies on this to
backpropagate through the last k2 steps of a chunk and to locate non-finite values step by
step.
"""

import numpy as np

from ._validate import as_dtype, same_names

REGISTRY = {}


class BackwardContext:
    """Options and counters for one backward pass.

    state_clip: if not None, each element of the state gradient flowing from step t to step
        t - 1 is clipped to [-state_clip, state_clip] (Graves 2013).
    state_clip_fired: incremented by the number of (cell, step) pairs at which clipping changed
        at least one element.
    record_state_grads: if True, every cell records the norm of the loss gradient with respect
        to its state at every step, per stream, into ``state_grad_norms``: a dict
        ``cell -> list of tuples of (T, B) arrays`` (one tuple per backward call, one array per
        state array: (h,) or (h, c)). Entry [t, b] is ||dL/ds_t|| for stream b, where s_t is
        the state after step t as carried to step t + 1: for h (the output too) the gradient
        from the loss at t plus the one from later steps; for c the one from later steps. The
        gradient arriving from step t + 1 has been state-clipped already (if clipping is on);
        the clip on the way to step t - 1 comes after the record. The compiled kernels record
        at no cost when not asked.
    """

    __slots__ = ("state_clip", "state_clip_fired", "record_state_grads", "state_grad_norms")

    def __init__(self, state_clip=None, record_state_grads=False):
        self.state_clip = state_clip
        self.state_clip_fired = 0
        self.record_state_grads = bool(record_state_grads)
        self.state_grad_norms = {}

    def record(self, cell, norms):
        self.state_grad_norms.setdefault(cell, []).append(tuple(norms))


def slice_cache(cache, start, stop):
    """The steps ``start:stop`` of a cache (views, no copies)."""
    if cache is None:
        return None
    if isinstance(cache, dict):
        return {k: slice_cache(v, start, stop) for k, v in cache.items()}
    if isinstance(cache, (np.ndarray, list)):
        return cache[start:stop]
    return cache  # metadata that does not depend on time (a tuple of sizes, a flag)


def cache_length(cache):
    """Number of time steps a cache covers (None if it holds nothing time-indexed)."""
    if isinstance(cache, dict):
        for v in cache.values():
            n = cache_length(v)
            if n is not None:
                return n
        return None
    if isinstance(cache, (np.ndarray, list)):
        return len(cache)
    return None


class Module:
    """Base of every part. Subclasses fill ``self.params`` in ``reset_parameters``."""

    stateful = False  # True for parts that carry a recurrent state

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        REGISTRY[cls.__name__] = cls

    def __init__(self, dtype=np.float32):
        self.params = {}
        self.grads = {}
        self.training = True
        self._dtype = as_dtype(dtype)

    def __getstate__(self):
        # work buffers (bptt._kernels._common.buffer) are not part of a copy or a pickle
        state = dict(self.__dict__)
        state.pop("_buffers", None)
        return state

    # -- parameters -----------------------------------------------------------------------
    @property
    def dtype(self):
        return self._dtype

    def _set_params(self, params):
        """Install parameter values (model dtype, C order) with zeroed gradients. Where an
        array of the same name, shape and dtype exists it is written in place, so that arrays
        held elsewhere (an optimizer, a model's flat buffer) stay the live ones."""
        old_p, old_g = getattr(self, "params", {}), getattr(self, "grads", {})
        new_p, new_g = {}, {}
        for k, v in params.items():
            v = np.asarray(v)
            cur = old_p.get(k)
            if cur is not None and cur.shape == v.shape and cur.dtype == self._dtype:
                cur[...] = v
                new_p[k], new_g[k] = cur, old_g[k]
                new_g[k].fill(0)
            else:
                new_p[k] = np.array(v, dtype=self._dtype, order="C")
                new_g[k] = np.zeros_like(new_p[k])
        self.params, self.grads = new_p, new_g

    def param_owners(self):
        """``[(module, name)]`` for every parameter, in ``named_parameters()`` order: the module
        whose ``params``/``grads`` dicts actually hold the array."""
        return [(self, k) for k in self.params]

    def reset_parameters(self, rng):
        """Draw fresh parameters from ``rng`` (a numpy Generator)."""

    def named_parameters(self):
        return dict(self.params)

    def named_grads(self):
        return dict(self.grads)

    def zero_grad(self):
        for g in self.grads.values():
            g.fill(0)

    def load_parameters(self, values):
        """Copy ``values`` (a dict ``name -> array`` with exactly this model's names and shapes,
        as ``named_parameters()`` gives, for example from PyTorch's ``state_dict()`` converted
        to numpy) into the live parameter arrays. Nothing is changed unless all of them fit."""
        params = self.named_parameters()
        same_names("parameter names do not match", params, values)
        arrays = {}
        for k, p in params.items():
            v = np.asarray(values[k])
            if v.shape != p.shape:
                raise ValueError(f"parameter '{k}': expected shape {p.shape}, got {v.shape}")
            if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
                raise TypeError(f"parameter '{k}': expected numbers, got dtype {v.dtype}")
            if not np.isfinite(v).all():
                raise ValueError(f"parameter '{k}' holds non-finite values")
            arrays[k] = v
        for k, p in params.items():
            p[...] = arrays[k]

    def astype(self, dtype):
        """Cast parameters (and gradients) to ``dtype``; returns self. A new dtype means new
        arrays: build optimizers after casting."""
        dtype = as_dtype(dtype)
        if dtype != self._dtype:
            self._dtype = dtype
            self._set_params({k: v.astype(dtype) for k, v in self.params.items()})
        return self

    def num_parameters(self):
        return int(sum(p.size for p in self.params.values()))

    # -- modes and randomness -------------------------------------------------------------
    def train(self, mode=True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def get_rng_state(self):
        """Anything random the part draws from (Dropout's counter); None if nothing."""
        return None

    def set_rng_state(self, state):
        pass

    # -- sequences ------------------------------------------------------------------------
    def initial_state(self, batch_size):
        return ()

    def check_state(self, state, batch_size):
        """Validate a state given by the caller; return it as a tuple of model-dtype arrays."""
        if state is None:
            return self.initial_state(batch_size)
        want = self.initial_state(batch_size)
        if not isinstance(state, (tuple, list)) or len(state) != len(want):
            raise ValueError(f"{self!r}: expected a state of {len(want)} arrays, got {state!r:.80}")
        out = []
        for i, (s, w) in enumerate(zip(state, want)):
            s = np.asarray(s)
            if s.shape != w.shape:
                raise ValueError(f"{self!r}: expected state[{i}] of shape {w.shape}, "
                                 f"got {s.shape}")
            if s.dtype.kind != "f":
                raise TypeError(f"{self!r}: state[{i}] must be floating, got {s.dtype}")
            out.append(np.ascontiguousarray(s, dtype=self._dtype))
        return tuple(out)

    def forward(self, x, state=None, resets=None):
        """Run over ``x`` (T, B, ...): returns ``(y, final_state, cache)``."""
        raise NotImplementedError

    def _forward(self, x, state, resets):
        """``forward`` on inputs a container has already checked: x in this part's dtype and C
        order, state a checked tuple, resets a boolean (T, B) array or None. Built-in parts
        skip their own checks here; the default simply calls ``forward``."""
        return self.forward(x, state, resets)

    def backward(self, dy, dstate, cache, ctx=None):
        """Given dL/dy (T, B, ...) and dL/d(final state) (None for zeros), return
        ``(dx, dstate0)`` and add the parameter gradients into ``self.grads``."""
        raise NotImplementedError

    def output_size(self, input_size):
        """Feature size of the output for an input of ``input_size`` features."""
        return input_size

    # -- configuration --------------------------------------------------------------------
    def get_config(self):
        """Constructor arguments (JSON-able) that rebuild this part."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def consolidate(module):
    """Move every parameter and gradient of ``module`` into two flat buffers (one for the
    values, one for the gradients, in ``named_parameters()`` order) and make the parts' arrays
    views of them. Returns ``(flat_params, flat_grads)``.

    Global operations then take one call each (zeroing the gradients, their norm, a global
    clip, an elementwise optimizer update, an all-reduce across processes), however many
    parameters there are. Values and gradients are unchanged.
    """
    owners = module.param_owners()
    dtype = module.dtype
    total = sum(m.params[k].size for m, k in owners)
    flat_p, flat_g = np.empty(total, dtype=dtype), np.empty(total, dtype=dtype)
    offset = 0
    for m, k in owners:
        p, g = m.params[k], m.grads[k]
        n = p.size
        view_p = flat_p[offset:offset + n].reshape(p.shape)
        view_g = flat_g[offset:offset + n].reshape(p.shape)
        view_p[...] = p
        view_g[...] = g
        m.params[k], m.grads[k] = view_p, view_g
        offset += n
    return flat_p, flat_g


def module_from_config(cfg):
    """Rebuild a part from ``{"class": name, "config": {...}}`` (see :func:`module_config`)."""
    try:
        cls = REGISTRY[cfg["class"]]
    except KeyError:
        raise ValueError(f"unknown part class {cfg.get('class')!r}; known: "
                         f"{sorted(REGISTRY)}") from None
    kwargs = dict(cfg.get("config", {}))
    if "dtype" in kwargs:
        kwargs["dtype"] = np.dtype(kwargs["dtype"])
    return cls.from_config(kwargs) if hasattr(cls, "from_config") else cls(**kwargs)


def module_config(module):
    cfg = dict(module.get_config())
    cfg["dtype"] = module.dtype.name
    return {"class": type(module).__name__, "config": cfg}


class Cell(Module):
    """A recurrent cell written as one time step; the :class:`~bptt.unroll.Unroller` drives it.

    Subclasses set ``state_sizes`` (one feature size per state array) and implement:

    - ``step_forward(x_t, state) -> (y_t, new_state, step_cache)`` for ``x_t`` of shape (B, D);
    - ``step_backward(dy_t, dstate_new, step_cache) -> (dx_t, dstate_prev)``, adding the
      parameter gradients of the step into ``self.grads``.

    Built-in cells also override ``forward``/``backward`` with compiled sequence kernels that give
    the same numbers; ``use_kernels = False`` makes them use the step path.
    """

    stateful = True
    state_sizes = ()
    use_kernels = False

    def initial_state(self, batch_size):
        return tuple(np.zeros((batch_size, n), dtype=self._dtype) for n in self.state_sizes)

    def step_forward(self, x_t, state):
        raise NotImplementedError

    def step_backward(self, dy_t, dstate_new, step_cache):
        raise NotImplementedError

    def forward(self, x, state=None, resets=None):
        """x: (T, B, D) floats. Runs the cell's steps through the :class:`~bptt.Unroller`."""
        x, state, resets = self.check_sequence(x, state, resets)
        return self._forward(x, state, resets)

    def _forward(self, x, state, resets):
        from .unroll import Unroller
        if resets is None:
            resets = np.zeros(x.shape[:2], dtype=bool)
        return Unroller.forward(self, x, state, resets)

    def check_sequence(self, x, state, resets):
        """Validate a sequence call: float (T, B, ...) input in the model dtype, the state, and a
        boolean (T, B) reset mask (all False when None)."""
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"{self!r}: expected floating-point input, got dtype {x.dtype}")
        if x.ndim < 3:
            raise ValueError(f"{self!r}: expected a time-major input (T, B, D), got {x.shape}")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        T, B = x.shape[0], x.shape[1]
        state = self.check_state(state, B)
        if resets is None:
            resets = np.zeros((T, B), dtype=bool)
        elif np.shape(resets) != (T, B):
            raise ValueError(f"{self!r}: resets must have shape {(T, B)}, got {np.shape(resets)}")
        return x, state, np.ascontiguousarray(resets, dtype=bool)

    def backward(self, dy, dstate, cache, ctx=None):
        from .unroll import Unroller
        return Unroller.backward(self, dy, dstate, cache, ctx)
