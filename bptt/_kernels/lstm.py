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
from ._common import (clip_inplace, load_state, norm, recurrent_gradient, recurrent_product,
                      reset_rows, weight_gradients)
from .fastmath import sigmoid, tanh


@njit
def _forward(x, w_ih, w_hh, bias, h0, c, resets, gates, h_prev, c_prev, tanh_c, y, buf):
    """x (T, B, D); w_ih (4H, D), w_hh (4H, H), bias (4H,) = b_ih + b_hh; h0 (B, H) the initial
    h; c (B, H) the initial c on entry, the final c on exit; resets (T, B). Fills gates
    (T, B, 4H) with the activated gates, h_prev, c_prev, tanh_c and y (T, B, H); buf (B, 4H)
    scratch."""
    T, B, H = y.shape
    G = 4 * H
    np.dot(x.reshape(T * B, x.shape[2]), w_ih.T, gates.reshape(T * B, G))  # all steps at once
    for t in range(T):
        hp, cp = h_prev[t], c_prev[t]
        load_state(hp, h0 if t == 0 else y[t - 1], resets[t])
        load_state(cp, c, resets[t])
        recurrent_product(hp, w_hh, buf)
        for b in range(B):
            g, r = gates[t, b], buf[b]
            for j in range(G):
                g[j] += r[j] + bias[j]
            # every loop starts at 0 over a slice: numba's loops over range(a, b) with a > 0
            # are not vectorised (the index might be negative as far as LLVM can tell)
            gi, gf, gg, go = g[:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:]
            sig = g[:2 * H]
            for j in range(2 * H):
                sig[j] = sigmoid(sig[j])
            for j in range(H):
                gg[j] = tanh(gg[j])
            for j in range(H):
                go[j] = sigmoid(go[j])
            cpb, cb, tcb, yb = cp[b], c[b], tanh_c[t, b], y[t, b]
            for j in range(H):
                cb[j] = gf[j] * cpb[j] + gi[j] * gg[j]
            for j in range(H):
                tcb[j] = tanh(cb[j])
            for j in range(H):
                yb[j] = go[j] * tcb[j]


@njit
def _backward(dy, x, w_ih, w_hh, resets, clip, norms, scratch, g_w_ih, g_w_hh, g_b_ih, g_b_hh,
              dx, gates, c_prev, tanh_c, h_prev, dh, dc, da):
    """dy (T, B, H), or (0, B, H) for zeros; x, gates, c_prev, tanh_c, h_prev from the cache;
    dh, dc (B, H) the final-state gradient on entry, the initial-state gradient on exit;
    fills da (T, B, 4H) with the pre-activation gradients and dx (T, B, D); adds the parameter
    gradients into g_*; norms (2, T, B) receives ||dL/dh_t|| and ||dL/dc_t|| per stream (see
    BackwardContext), or is (2, 0, B) for no recording. Returns the number of steps at which
    the state clip fired."""
    T, B, H = tanh_c.shape
    one = tanh_c.dtype.type(1)
    has_dy = dy.shape[0] != 0
    rec = norms.shape[1] != 0
    do_clip = np.isfinite(clip)
    fired = 0
    for t in range(T - 1, -1, -1):
        for b in range(B):
            g, d, tc, cp, dhb, dcb = gates[t, b], da[t, b], tanh_c[t, b], c_prev[t, b], dh[b], dc[b]
            gi, gf, gg, go = g[:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:]
            di, df, dg, do = d[:H], d[H:2 * H], d[2 * H:3 * H], d[3 * H:]
            if has_dy:
                dyb = dy[t, b]
                for j in range(H):
                    dhb[j] += dyb[j]
            if rec:
                norms[0, t, b] = norm(dhb)
                norms[1, t, b] = norm(dcb)
            # one output array per loop, so that LLVM vectorises each
            for j in range(H):   # dc_t: from later steps and through h_t
                dcb[j] += dhb[j] * go[j] * (one - tc[j] * tc[j])
            for j in range(H):
                di[j] = dcb[j] * gg[j] * gi[j] * (one - gi[j])
            for j in range(H):
                df[j] = dcb[j] * cp[j] * gf[j] * (one - gf[j])
            for j in range(H):
                dg[j] = dcb[j] * gi[j] * (one - gg[j] * gg[j])
            for j in range(H):
                do[j] = dhb[j] * tc[j] * go[j] * (one - go[j])
            for j in range(H):   # to c_{t-1}
                dcb[j] *= gf[j]
        recurrent_gradient(da[t], w_hh, dh)
        reset_rows(dh, resets[t])
        reset_rows(dc, resets[t])
        if do_clip:
            fired_h = clip_inplace(dh, clip)
            fired_c = clip_inplace(dc, clip)
            if fired_h or fired_c:
                fired += 1
    weight_gradients(da, da, x, h_prev, w_ih, g_w_ih, g_w_hh, g_b_ih, g_b_hh, dx, scratch)
    return fired


def forward(cell, x, state, resets):
    p, dt = cell.params, cell.dtype
    T, B, _ = x.shape
    H = cell.hidden_size
    h0 = _common.kernel_array(state[0], dt)
    c = np.array(state[1], dtype=dt, order="C")  # becomes the final c
    buf = _common.buffer
    gates = buf(cell, "gates", (T, B, 4 * H), dt)
    h_prev, c_prev, tanh_c, y = (buf(cell, k, (T, B, H), dt)
                                 for k in ("h_prev", "c_prev", "tanh_c", "y"))
    _forward(x, p["weight_ih"], p["weight_hh"], p["bias_ih"] + p["bias_hh"], h0, c,
             _common.kernel_array(resets, bool), gates, h_prev, c_prev, tanh_c, y,
             buf(cell, "step", (B, 4 * H), dt))
    final = (y[T - 1].copy() if T else h0.copy(), c)
    cache = {"x": x, "h_prev": h_prev, "c_prev": c_prev, "gates": gates, "tanh_c": tanh_c,
             "resets": resets}
    return y, final, cache


def backward(cell, dy, dstate, cache, ctx=None):
    T, B = cache["resets"].shape
    return _common.run_backward(cell, _backward, dy, dstate, cache, ctx,
                                ("gates", "c_prev", "tanh_c", "h_prev"),
                                [("da", (T, B, 4 * cell.hidden_size))])
