"""Sequence kernel of the Elman cell, ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``,
act tanh (flag 0), relu (flag 1) or linear (flag 2), one compiled kernel for all three.

Cache (time on axis 0, T entries): ``x`` (T, B, D), ``h_prev`` (T, B, H) the state entering
each step after resets, ``h`` (T, B, H) the outputs (the same array as ``y``), ``resets`` (T, B).
"""

import numpy as np

from .._config import njit
from . import _common
from ._common import (clip_inplace, load_state, norm, recurrent_gradient, recurrent_product,
                      reset_rows, weight_gradients)
from .fastmath import tanh

TANH, RELU, LINEAR = 0, 1, 2
ACTIVATIONS = {"tanh": TANH, "relu": RELU, "linear": LINEAR}


@njit
def _forward(x, w_ih, w_hh, bias, h0, resets, act, h_prev, y, buf):
    """x (T, B, D); w_ih (H, D), w_hh (H, H), bias (H,) = b_ih + b_hh; h0 (B, H); resets
    (T, B); fills h_prev (T, B, H) with the state entering each step and y (T, B, H) with the
    outputs; buf (B, H) scratch."""
    T, B, H = y.shape
    zero = y.dtype.type(0)
    np.dot(x.reshape(T * B, x.shape[2]), w_ih.T, y.reshape(T * B, H))  # all steps at once
    for t in range(T):
        hp = h_prev[t]
        load_state(hp, h0 if t == 0 else y[t - 1], resets[t])
        recurrent_product(hp, w_hh, buf)
        for b in range(B):
            yb, r = y[t, b], buf[b]
            if act == RELU:
                for j in range(H):
                    a = yb[j] + r[j] + bias[j]
                    yb[j] = zero if a < zero else a  # keeps NaN, like np.maximum
            elif act == LINEAR:
                for j in range(H):
                    yb[j] += r[j] + bias[j]
            else:
                for j in range(H):
                    yb[j] = tanh(yb[j] + r[j] + bias[j])


@njit
def _backward(dy, x, w_ih, w_hh, resets, clip, norms, scratch, g_w_ih, g_w_hh, g_b_ih, g_b_hh,
              dx, act, h, h_prev, dh, da):
    """dy (T, B, H), or (0, B, H) for zeros; x, h (the outputs), h_prev from the cache; dh (B, H)
    the final-state gradient on entry, the initial-state gradient on exit; fills da (T, B, H)
    with the pre-activation gradients and dx (T, B, D); adds the parameter gradients into g_*;
    norms (1, T, B) receives ||dL/dh_t|| per stream, or is (1, 0, B) for no recording.
    Returns the number of steps at which the state clip fired."""
    T, B, H = h.shape
    one, zero = h.dtype.type(1), h.dtype.type(0)
    has_dy = dy.shape[0] != 0
    rec = norms.shape[1] != 0
    do_clip = np.isfinite(clip)
    fired = 0
    for t in range(T - 1, -1, -1):
        for b in range(B):
            d, hb, dhb = da[t, b], h[t, b], dh[b]
            if has_dy:
                dyb = dy[t, b]
                for j in range(H):
                    dhb[j] += dyb[j]
            if rec:
                norms[0, t, b] = norm(dhb)
            if act == RELU:
                for j in range(H):
                    d[j] = dhb[j] * (one if hb[j] > zero else zero)
            elif act == LINEAR:
                for j in range(H):
                    d[j] = dhb[j]
            else:
                for j in range(H):
                    d[j] = dhb[j] * (one - hb[j] * hb[j])
        recurrent_gradient(da[t], w_hh, dh)
        reset_rows(dh, resets[t])
        if do_clip and clip_inplace(dh, clip):
            fired += 1
    weight_gradients(da, da, x, h_prev, w_ih, g_w_ih, g_w_hh, g_b_ih, g_b_hh, dx, scratch)
    return fired


def forward(cell, x, state, resets):
    p, dt = cell.params, cell.dtype
    T, B, _ = x.shape
    H = cell.hidden_size
    h_prev, y = (_common.buffer(cell, k, (T, B, H), dt) for k in ("h_prev", "y"))
    act = ACTIVATIONS[cell.nonlinearity]
    h0 = _common.kernel_array(state[0], dt)
    _forward(x, p["weight_ih"], p["weight_hh"], p["bias_ih"] + p["bias_hh"], h0,
             _common.kernel_array(resets, bool), act, h_prev, y,
             _common.buffer(cell, "step", (B, H), dt))
    final = y[T - 1].copy() if T else h0.copy()
    cache = {"x": x, "h_prev": h_prev, "h": y, "resets": resets}
    return y, (final,), cache


def backward(cell, dy, dstate, cache, ctx=None):
    T, B = cache["resets"].shape
    return _common.run_backward(cell, _backward, dy, dstate, cache, ctx, ("h", "h_prev"),
                                [("da", (T, B, cell.hidden_size))],
                                ACTIVATIONS[cell.nonlinearity])
