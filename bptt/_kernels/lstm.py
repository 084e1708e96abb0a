"""Sequence kernel of the LSTM cell (PyTorch's formulation, gate order i, f, g, o):

    i, f, o = sigmoid(.), g = tanh(.)   of   W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

Cache (time on axis 0, T entries): ``x`` (T, B, D), ``h_prev`` and ``c_prev`` (T, B, H) the
state entering each step after resets, ``gates`` (T, B, 4H) the activated gates i, f, g, o,
``tanh_c`` (T, B, H) tanh(c_t), ``resets`` (T, B).
"""

import numpy as np

from .._config import njit
from . import _common
from ._common import clip_inplace, load_state, reset_rows


@njit
def _forward(gates, h0, c, w_hh_t, resets, h_prev, c_prev, tanh_c, y, buf):
    """gates (T, B, 4H) holds the input projection (biases included) on entry and the activated
    gates on exit. h0 (B, H) the initial h; c (B, H) the initial c on entry, the final c on
    exit; w_hh_t (H, 4H) = W_hh^T (C order); resets (T, B); fills h_prev, c_prev, tanh_c and
    y (T, B, H); buf (B, 4H) scratch."""
    T, B, H = y.shape
    one = y.dtype.type(1)
    half = one / (one + one)  # not dtype.type(0.5): no float64 constant at all
    for t in range(T):
        hp, cp = h_prev[t], c_prev[t]
        load_state(hp, h0 if t == 0 else y[t - 1], resets[t])
        load_state(cp, c, resets[t])
        np.dot(hp, w_hh_t, buf)
        gt, tct, yt = gates[t], tanh_c[t], y[t]
        for b in range(B):
            for j in range(H):
                i = (np.tanh((gt[b, j] + buf[b, j]) * half) + one) * half
                f = (np.tanh((gt[b, H + j] + buf[b, H + j]) * half) + one) * half
                g = np.tanh(gt[b, 2 * H + j] + buf[b, 2 * H + j])
                o = (np.tanh((gt[b, 3 * H + j] + buf[b, 3 * H + j]) * half) + one) * half
                gt[b, j], gt[b, H + j], gt[b, 2 * H + j], gt[b, 3 * H + j] = i, f, g, o
                c_new = f * cp[b, j] + i * g
                tc = np.tanh(c_new)
                c[b, j] = c_new
                tct[b, j] = tc
                yt[b, j] = o * tc


@njit
def _backward(dy, gates, c_prev, tanh_c, w_hh, resets, clip, dh, dc, da):
    """dy (T, B, H), or (0, B, H) for zeros; gates (T, B, 4H), c_prev and tanh_c (T, B, H) from
    the cache; w_hh (4H, H); dh, dc (B, H) the final-state gradient on entry, the initial-state
    gradient on exit; da (T, B, 4H) filled with the pre-activation gradients.
    Returns the clip count."""
    T, B, H = tanh_c.shape
    one = tanh_c.dtype.type(1)
    has_dy = dy.shape[0] != 0
    do_clip = np.isfinite(clip)
    fired = 0
    for t in range(T - 1, -1, -1):
        gt, dat, tct, cpt = gates[t], da[t], tanh_c[t], c_prev[t]
        for b in range(B):
            for j in range(H):
                gh = dh[b, j]
                if has_dy:
                    gh += dy[t, b, j]
                i, f, g, o = gt[b, j], gt[b, H + j], gt[b, 2 * H + j], gt[b, 3 * H + j]
                tc = tct[b, j]
                dcv = dc[b, j] + gh * o * (one - tc * tc)
                dat[b, j] = dcv * g * i * (one - i)
                dat[b, H + j] = dcv * cpt[b, j] * f * (one - f)
                dat[b, 2 * H + j] = dcv * i * (one - g * g)
                dat[b, 3 * H + j] = gh * tc * o * (one - o)
                dc[b, j] = dcv * f
        np.dot(dat, w_hh, dh)
        reset_rows(dh, resets[t])
        reset_rows(dc, resets[t])
        if do_clip:
            fired_h = clip_inplace(dh, clip)
            fired_c = clip_inplace(dc, clip)
            if fired_h or fired_c:
                fired += 1
    return fired


def forward(cell, x, state, resets):
    p, dt = cell.params, cell.dtype
    T, B, _ = x.shape
    H = cell.hidden_size
    gates = _common.input_projection(x, p["weight_ih"], p["bias_ih"] + p["bias_hh"])
    h0 = _common.kernel_array(state[0], dt)
    c = np.array(state[1], dtype=dt, order="C")  # becomes the final c
    h_prev, c_prev, tanh_c, y = (np.empty((T, B, H), dtype=dt) for _ in range(4))
    _forward(gates, h0, c, np.ascontiguousarray(p["weight_hh"].T),
             _common.kernel_array(resets, bool), h_prev, c_prev, tanh_c, y,
             np.empty((B, 4 * H), dtype=dt))
    final = (y[T - 1].copy() if T else h0.copy(), c)
    cache = {"x": x, "h_prev": h_prev, "c_prev": c_prev, "gates": gates, "tanh_c": tanh_c,
             "resets": resets}
    return y, final, cache


def backward(cell, dy, dstate, cache, ctx=None):
    resets = cache["resets"]
    T, B = resets.shape
    dt = cell.dtype
    dh, dc = _common.state_gradient(cell, dstate, B)
    da = np.empty((T, B, 4 * cell.hidden_size), dtype=dt)
    k = _common.kernel_array
    fired = _backward(_common.output_gradient(cell, dy, T, B), k(cache["gates"], dt),
                      k(cache["c_prev"], dt), k(cache["tanh_c"], dt),
                      k(cell.params["weight_hh"], dt), k(resets, bool),
                      _common.clip_value(ctx, dt), dh, dc, da)
    _common.count_fired(ctx, fired)
    dx, bias_sum = _common.input_gradients(cell, da, cache["x"])
    _common.recurrent_gradients(cell, da, cache["h_prev"], bias_sum)
    return dx, (dh, dc)
