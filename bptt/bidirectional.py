"""Bidirectional wrapper: one cell reads the sequence forward in time, another reads it backward,
and their outputs are joined (Schuster & Paliwal 1997; Graves & Schmidhuber 2005).

Parameters take PyTorch's names: the forward cell's as they are (``weight_ih``), the backward
cell's with ``_reverse`` appended (``weight_ih_reverse``). Each direction starts from a zero
state at both ends of the chunk, so a Bidirectional part carries no state from one chunk to
the next: it is for whole-sequence training (``value_and_grad``, ``TBPTT(k1=None, k2=None)``).
"""

import numpy as np

from ._validate import choice
from .module import Cell, Module, module_config, module_from_config


def reverse_resets(resets):
    """Resets for the time-reversed sequence: a boundary between steps t-1 and t (a reset
    before t) is, read backward, a reset before reversed step T - t."""
    rr = np.zeros_like(resets)
    rr[1:] = resets[:0:-1]
    return rr


class Bidirectional(Module):
    """``Bidirectional(cell, backward_cell=None, merge="concat")``.

    cell: the forward-direction cell (any :class:`~bptt.Cell`); backward_cell: the
    backward-direction cell (default: a new cell of the same configuration with its own
    parameters); merge: "concat" (output (T, B, 2H), forward half first, as PyTorch) or "sum"
    (output (T, B, H)).
    """

    supports_truncation = False

    def __init__(self, cell, backward_cell=None, merge="concat", seed=None):
        if not isinstance(cell, Cell):
            raise TypeError(f"Bidirectional wraps a recurrent Cell, got {type(cell).__name__}")
        if backward_cell is None:
            backward_cell = module_from_config(module_config(cell))
            backward_cell.reset_parameters(np.random.default_rng(seed))
        if not isinstance(backward_cell, Cell):
            raise TypeError(f"backward_cell must be a recurrent Cell, got "
                            f"{type(backward_cell).__name__}")
        super().__init__(cell.dtype)
        if backward_cell.dtype != cell.dtype:
            backward_cell.astype(cell.dtype)
        self.cells = (cell, backward_cell)
        self.merge = choice("merge", merge, {"concat", "sum"})
        out_f, out_b = cell.output_size(None), backward_cell.output_size(None)
        if merge == "sum" and out_f != out_b:
            raise ValueError(f"merge='sum' needs equal output sizes, got {out_f} and {out_b}")
        self.input_size = getattr(cell, "input_size", None)

    # -- parameters: the two cells own the arrays ------------------------------------------
    @property
    def params(self):
        f, b = self.cells
        return {**f.params, **{f"{k}_reverse": v for k, v in b.params.items()}}

    @params.setter
    def params(self, value):
        pass

    @property
    def grads(self):
        f, b = self.cells
        return {**f.grads, **{f"{k}_reverse": v for k, v in b.grads.items()}}

    @grads.setter
    def grads(self, value):
        pass

    def param_owners(self):
        return [o for c in self.cells for o in c.param_owners()]

    def zero_grad(self):
        for c in self.cells:
            c.zero_grad()

    def astype(self, dtype):
        super().astype(dtype)
        for c in self.cells:
            c.astype(dtype)
        return self

    def _set_params(self, params):
        pass

    def reset_parameters(self, rng):
        for c, r in zip(self.cells, rng.spawn(2)):
            c.reset_parameters(r)

    def train(self, mode=True):
        self.training = bool(mode)
        for c in self.cells:
            c.train(mode)
        return self

    def output_size(self, input_size):
        out = self.cells[0].output_size(input_size)
        return 2 * out if self.merge == "concat" else out

    # -- sequences --------------------------------------------------------------------------
    def forward(self, x, state=None, resets=None):
        """x: (T, B, D) -> (T, B, 2H) (concat) or (T, B, H) (sum)."""
        if state not in (None, ()):
            raise ValueError(f"{self!r} carries no state between chunks; got a state")
        f = self.cells[0]
        x, _, resets = f.check_sequence(np.asarray(x), None, resets)
        return self._forward(x, (), resets)

    def _forward(self, x, state, resets):
        f, b = self.cells
        T, B = x.shape[0], x.shape[1]
        if resets is None:
            resets = np.zeros((T, B), dtype=bool)
        y_f, _, c_f = f._forward(x, f.initial_state(B), resets)
        y_b, _, c_b = b._forward(np.ascontiguousarray(x[::-1]), b.initial_state(B),
                                 reverse_resets(resets))
        y_b = y_b[::-1]
        y = np.concatenate([y_f, y_b], axis=-1) if self.merge == "concat" else y_f + y_b
        return y, (), {"f": c_f, "b": c_b, "split": y_f.shape[-1]}

    def backward(self, dy, dstate, cache, ctx=None):
        if dy is None:
            return None, ()
        f, b = self.cells
        H = cache["split"]
        dy_f, dy_b = (dy[..., :H], dy[..., H:]) if self.merge == "concat" else (dy, dy)
        dx_f, _ = f.backward(np.ascontiguousarray(dy_f), None, cache["f"], ctx)
        dx_b, _ = b.backward(np.ascontiguousarray(dy_b[::-1]), None, cache["b"], ctx)
        return dx_f + dx_b[::-1], ()

    # -- configuration ----------------------------------------------------------------------
    def __repr__(self):
        return f"Bidirectional({self.cells[0]!r}, merge={self.merge!r})"

    def get_config(self):
        return {"cell": module_config(self.cells[0]),
                "backward_cell": module_config(self.cells[1]), "merge": self.merge}

    @classmethod
    def from_config(cls, cfg):
        cfg = dict(cfg)
        cfg.pop("dtype", None)
        return cls(module_from_config(cfg["cell"]), module_from_config(cfg["backward_cell"]),
                   merge=cfg.get("merge", "concat"))
