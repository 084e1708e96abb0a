"""The unroller: expands a sequence into time steps of a :class:`~bptt.module.Cell`, keeps what
backward needs, and walks the steps back in reverse order.

Per-stream resets: ``resets`` is a boolean (T, B) mask; where ``resets[t, b]`` is true the
state of stream ``b`` is replaced by zeros before step ``t``. The zeroed state is a constant, so
no gradient flows from step ``t`` into step ``t - 1`` of that stream.
"""

import numpy as np


def _zero_rows(state, rows):
    return tuple(np.where(rows[:, None], 0, s).astype(s.dtype, copy=False) for s in state)


def clip_state_gradient(dstate, ctx):
    """Clip each state-gradient array in place to [-v, v]; count one firing per call that
    changed at least one element."""
    if ctx is None or ctx.state_clip is None:
        return dstate
    v = ctx.state_clip
    fired = False
    for d in dstate:
        if (np.abs(d) > v).any():
            fired = True
            np.clip(d, -v, v, out=d)
    if fired:
        ctx.state_clip_fired += 1
    return dstate


class Unroller:
    """Drives a cell's ``step_forward``/``step_backward`` over a time-major sequence.

    The cache holds, per step, whatever the cell's ``step_forward`` returned as its step cache,
    plus the reset mask; it can be cut in time with :func:`~bptt.module.slice_cache`.
    """

    @staticmethod
    def forward(cell, x, state, resets):
        """x: (T, B, D); state: a checked state tuple; resets: (T, B) bool.
        Returns ``(y (T, B, H), final_state, cache)``."""
        steps, ys = [], []
        for t in range(x.shape[0]):
            if resets[t].any():
                state = _zero_rows(state, resets[t])
            y_t, state, step_cache = cell.step_forward(x[t], state)
            state = tuple(state)
            ys.append(y_t)
            steps.append(step_cache)
        y = np.stack(ys)
        return y, state, {"steps": steps, "resets": resets, "out_shape": y.shape[2:]}

    @staticmethod
    def backward(cell, dy, dstate, cache, ctx=None):
        """dy: (T, B, H) or None (zeros); dstate: gradient of the final state or None.
        Returns ``(dx (T, B, D), dstate0)``."""
        steps, resets = cache["steps"], cache["resets"]
        T, B = resets.shape
        if dstate is None:
            dstate = cell.initial_state(B)
        else:
            dstate = tuple(np.array(d, dtype=cell.dtype) for d in dstate)
        zero_dy = None if dy is not None else np.zeros((B,) + cache["out_shape"], cell.dtype)
        dxs = [None] * T
        record = ctx is not None and ctx.record_state_grads
        norms = [np.zeros((T, B)) for _ in dstate] if record else None
        for t in range(T - 1, -1, -1):
            dy_t = zero_dy if dy is None else dy[t]
            if record:
                for i, d in enumerate(dstate):
                    # the output is the first state array in the built-in cells: add dy there
                    d = d + dy_t if i == 0 and dy_t.shape == d.shape else d
                    norms[i][t] = np.sqrt(np.sum(np.square(d.reshape(B, -1), dtype=np.float64),
                                                 axis=1))
            dx_t, dstate = cell.step_backward(dy_t, dstate, steps[t])
            dstate = tuple(np.array(d, dtype=cell.dtype) for d in dstate)
            if resets[t].any():
                dstate = _zero_rows(dstate, resets[t])
            dstate = clip_state_gradient(dstate, ctx)
            dxs[t] = dx_t
        if record:
            ctx.record(cell, norms)
        return np.stack(dxs), dstate
