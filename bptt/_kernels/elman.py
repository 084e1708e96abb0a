"""Sequence kernel of the Elman cell, ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``,
act tanh (flag 0) or relu (flag 1), one compiled kernel for both.

Cache (time on axis 0, T entries): ``x`` (T, B, D), ``h_prev`` (T, B, H) the state entering
each step after resets, ``h`` (T, B, H) the outputs (the same array as ``y``), ``resets`` (T, B).
"""

import numpy as np

from .._config import njit
from . import _common
from ._common import clip_inplace, load_state, reset_rows

TANH, RELU = 0, 1


@njit
def _forward(y, h0, w_hh_t, resets, act, h_prev, buf):
    """y (T, B, H) holds the input projection on entry and the outputs on exit.

    h0 (B, H) the initial state; w_hh_t (H, H) = W_hh^T (C order); resets (T, B);
    h_prev (T, B, H) filled with the state entering each step; buf (B, H) scratch."""
    T, B, H = y.shape
    zero = y.dtype.type(0)
    for t in range(T):
        hp = h_prev[t]
        load_state(hp, h0 if t == 0 else y[t - 1], resets[t])
        np.dot(hp, w_hh_t, buf)
        yt = y[t]
        for b in range(B):
            for j in range(H):
                a = yt[b, j] + buf[b, j]
                if act == RELU:
                    yt[b, j] = zero if a < zero else a  # keeps NaN, like np.maximum
                else:
                    yt[b, j] = np.tanh(a)


@njit
def _backward(dy, h, w_hh, resets, act, clip, dh, da):
    """dy (T, B, H), or (0, B, H) for zeros; h (T, B, H) the outputs; w_hh (H, H);
    dh (B, H) the final-state gradient on entry, the initial-state gradient on exit;
    da (T, B, H) filled with the pre-activation gradients. Returns the clip count."""
    T, B, H = h.shape
    one, zero = h.dtype.type(1), h.dtype.type(0)
    has_dy = dy.shape[0] != 0
    do_clip = np.isfinite(clip)
    fired = 0
    for t in range(T - 1, -1, -1):
        dat, ht = da[t], h[t]
        for b in range(B):
            for j in range(H):
                g = dh[b, j]
                if has_dy:
                    g += dy[t, b, j]
                v = ht[b, j]
                if act == RELU:
                    dat[b, j] = g * (one if v > zero else zero)
                else:
                    dat[b, j] = g * (one - v * v)
        np.dot(dat, w_hh, dh)
        reset_rows(dh, resets[t])
        if do_clip and clip_inplace(dh, clip):
            fired += 1
    return fired


def forward(cell, x, state, resets):
    p, dt = cell.params, cell.dtype
    T, B, _ = x.shape
    H = cell.hidden_size
    y = _common.input_projection(x, p["weight_ih"], p["bias_ih"] + p["bias_hh"])
    h0 = _common.kernel_array(state[0], dt)
    h_prev = np.empty((T, B, H), dtype=dt)
    act = RELU if cell.nonlinearity == "relu" else TANH
    _forward(y, h0, np.ascontiguousarray(p["weight_hh"].T), _common.kernel_array(resets, bool),
             act, h_prev, np.empty((B, H), dtype=dt))
    final = y[T - 1].copy() if T else h0.copy()
    cache = {"x": x, "h_prev": h_prev, "h": y, "resets": resets}
    return y, (final,), cache


def backward(cell, dy, dstate, cache, ctx=None):
    resets, h = cache["resets"], cache["h"]
    T, B = resets.shape
    dt = cell.dtype
    (dh,) = _common.state_gradient(cell, dstate, B)
    da = np.empty((T, B, cell.hidden_size), dtype=dt)
    act = RELU if cell.nonlinearity == "relu" else TANH
    w_hh = _common.kernel_array(cell.params["weight_hh"], dt)
    fired = _backward(_common.output_gradient(cell, dy, T, B), _common.kernel_array(h, dt), w_hh,
                      _common.kernel_array(resets, bool), act, _common.clip_value(ctx, dt),
                      dh, da)
    _common.count_fired(ctx, fired)
    dx, bias_sum = _common.input_gradients(cell, da, cache["x"])
    _common.recurrent_gradients(cell, da, cache["h_prev"], bias_sum)
    return dx, (dh,)
