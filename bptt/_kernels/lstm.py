"""Sequence kernel of the LSTM cell (PyTorch's formulation, gate order i, f, g, o):

    i, f, o = sigmoid(.), g = tanh(.)   of   W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

Cache (time on axis 0, T entries): ``x`` (T, B, D), ``h_prev`` and ``c_prev`` (T, B, H) the
state entering each step after resets, ``gates`` (T, B, 4H) the activated gates i, f, g, o,
``tanh_c`` (T, B, H) tanh(c_t), ``resets`` (T, B).
"""

import numpy as np

from .. import _parallel
from .._config import njit
from . import _common
from ._common import (add_row, clip_inplace, gemm, input_projection, load_state, norm,
                      pack_steps, reset_rows, steps_product)
from .fastmath import sigmoid, tanh


@njit
def _forward(x, tokens, table, p_ih, p_hh, bias, h0, c, resets, gates, h_prev, c_prev, tanh_c,
             y, lo, hi):
    """Streams lo..hi. x (T, B, D) or, with an embedding folded in, tokens (T, B) and table
    (see _common.input_projection); p_ih, p_hh the panels of W_ih^T (D, 4H) and W_hh^T (H, 4H);
    bias (4H,) = b_ih + b_hh; h0 (B, H) the initial h; c (B, H) the initial c on entry, the
    final c on exit; resets (T, B). Fills gates (T, B, 4H) with the activated gates, h_prev,
    c_prev, tanh_c and y (T, B, H)."""
    T, B, H = y.shape
    G = 4 * H
    bi, bg, bo = bias[:2 * H], bias[2 * H:3 * H], bias[3 * H:]
    input_projection(x, tokens, table, p_ih, gates, lo, hi)
    for t in range(T):
        hp, cp, gt = h_prev[t], c_prev[t], gates[t]
        load_state(hp, h0 if t == 0 else y[t - 1], resets[t], lo, hi)
        load_state(cp, c, resets[t], lo, hi)
        gemm(hp, False, p_hh, G, gt, lo, hi, True)
        for b in range(lo, hi):
            g = gt[b]
            # every loop starts at 0 over a slice: numba's loops over range(a, b) with a > 0
            # are not vectorised (the index might be negative as far as LLVM can tell)
            gi, gf, gg, go = g[:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:]
            sig = g[:2 * H]
            for j in range(2 * H):
                sig[j] = sigmoid(sig[j] + bi[j])
            for j in range(H):
                gg[j] = tanh(gg[j] + bg[j])
            for j in range(H):
                go[j] = sigmoid(go[j] + bo[j])
            cpb, cb, tcb, yb = cp[b], c[b], tanh_c[t, b], y[t, b]
            for j in range(H):
                cb[j] = gf[j] * cpb[j] + gi[j] * gg[j]
            for j in range(H):
                tcb[j] = tanh(cb[j])
            for j in range(H):
                yb[j] = go[j] * tcb[j]


@njit
def _backward(dy, x, h_prev, p_hh, p_ih, resets, clip, norms, fired, sums, dx, px, ph,
              gates, c_prev, tanh_c, dh, dc, da, lo, hi):
    """Streams lo..hi. dy (T, B, H), or (0, B, H) for zeros; x, h_prev, gates, c_prev, tanh_c
    from the cache; p_hh, p_ih the panels of W_hh (4H, H) and W_ih (4H, D); dh, dc (B, H) the
    final-state gradient on entry, the initial-state gradient on exit; fills da (T, B, 4H)
    with the pre-activation gradients, dx (T, B, D), and px, ph with the panels of x and
    h_prev (for the weight gradients); norms (2, T, B) receives ||dL/dh_t|| and ||dL/dc_t||
    per stream (see BackwardContext), or is (2, 0, B) for no recording; fired[t, lo] is set
    where the state clip changed a value at step t; sums[b, 0] (float64) receives the sum of
    da[:, b] over time. da may have padded rows (more than 4H columns)."""
    T, B, H = tanh_c.shape
    one = tanh_c.dtype.type(1)
    has_dy = dy.shape[0] != 0
    rec = norms.shape[1] != 0
    do_clip = np.isfinite(clip)
    sums[lo:hi] = 0
    for t in range(T - 1, -1, -1):
        for b in range(lo, hi):
            g, d, tc, cp, dhb, dcb = gates[t, b], da[t, b], tanh_c[t, b], c_prev[t, b], dh[b], dc[b]
            gi, gf, gg, go = g[:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:]
            di, df, dg, do = d[:H], d[H:2 * H], d[2 * H:3 * H], d[3 * H:4 * H]
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
            add_row(sums[b, 0], d)
        gemm(da[t], False, p_hh, H, dh, lo, hi, False)
        reset_rows(dh, resets[t], lo, hi)
        reset_rows(dc, resets[t], lo, hi)
        if do_clip:
            fired_h = clip_inplace(dh, clip, lo, hi)
            fired_c = clip_inplace(dc, clip, lo, hi)
            if fired_h or fired_c:
                fired[t, lo] = True
    if dx.shape[0] != 0:   # (no rows: an embedding folded in, see _common.run_backward)
        steps_product(da, p_ih, dx, lo, hi)
        pack_steps(x.reshape(T * B, x.shape[2]), px, T, B, lo, hi)
    pack_steps(h_prev.reshape(T * B, H), ph, T, B, lo, hi)


def forward(cell, x, state, resets, fold=None):
    p, dt = cell.params, cell.dtype
    T, B = resets.shape
    D = cell.input_size
    H = cell.hidden_size
    h0 = _common.kernel_array(state[0], dt)
    c = np.array(state[1], dtype=dt, order="C")  # becomes the final c
    buf = _common.buffer
    gates = buf(cell, "gates", (T, B, 4 * H), dt)
    h_prev, c_prev, tanh_c, y = (buf(cell, k, (T, B, H), dt)
                                 for k in ("h_prev", "c_prev", "tanh_c", "y"))
    _parallel.run(_forward, B,
                  (*_common.input_arrays(cell, x, fold, T, B),
                   _common.packed(cell, "p_hh", p["weight_hh"], True),
                   p["bias_ih"] + p["bias_hh"], h0, c, _common.kernel_array(resets, bool),
                   gates, h_prev, c_prev, tanh_c, y),
                  work=T * B * (D + H) * 4 * H)
    final = (y[T - 1].copy() if T else h0.copy(), c)
    cache = {**_common.input_cache(x, fold), "h_prev": h_prev, "c_prev": c_prev,
             "gates": gates, "tanh_c": tanh_c, "resets": resets}
    return y, final, cache


def backward(cell, dy, dstate, cache, ctx=None):
    T, B = cache["resets"].shape
    return _common.run_backward(cell, _backward, dy, dstate, cache, ctx,
                                ("gates", "c_prev", "tanh_c"),
                                [("da", (T, B, 4 * cell.hidden_size))])
