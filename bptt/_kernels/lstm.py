"""Sequence kernel of the LSTM cell (PyTorch's formulation, gate order i, f, g, o):

    i, f, o = sigmoid(.), g = tanh(.)   of   W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

Cache (time on axis 0, T entries; views of stream-major arrays, see _common): ``x`` (T, B, D)
(or the tokens of an embedding folded in), ``h_prev`` and ``c_prev`` (T, B, H) the state
entering each step after resets, ``gates`` (T, 4, B, H) the activated gates i, f, g, o,
``tanh_c`` (T, B, H) tanh(c_t), ``resets`` (T, B).
"""

import numpy as np

from .. import _parallel
from .._config import njit
from .._memory import aligned_copy
from . import _common
from ._common import (add_output_gradient, add_stream_sums, clip_inplace, flat, gate_input,
                      gate_product, gemm_at, input_bias, load_state, norm, pack_streams,
                      pack_time_major, reset_rows, step_input)
from .fastmath import sigmoid, tanh, wide_vectors

G = 4


@njit
def _forward(x, tokens, table, p_ih, bias, p_hh, h0, c, resets, gates, h_prev, c_prev, tanh_c,
             y, lo, hi):
    """Streams lo..hi. x (T, B, D) or, with an embedding folded in, tokens (T, B) and table
    (see _common.gate_input and step_input); p_ih, p_hh the gate panels of W_ih^T and
    W_hh^T; bias (4H,) = b_ih + b_hh (empty with a table); h0 (B, H) the initial h; c (B, H)
    the initial c on entry, the final c on exit; resets (T, B). Fills gates (B, T, 4, H) with
    the activated gates, h_prev, c_prev, tanh_c (B, T, H) and y (T, B, H)."""
    wide_vectors()
    T, B, H = y.shape
    sb, st = T * G * H, G * H   # the gates' stream and step strides
    gflat, hflat = flat(gates), flat(h_prev)
    gate_input(x, tokens, table, p_ih, bias, gflat, sb, st, y.reshape(T * B, H), lo, hi)
    for t in range(T):
        load_state(h_prev, t, h0 if t == 0 else y[t - 1], resets[t], lo, hi)
        load_state(c_prev, t, c, resets[t], lo, hi)
        step_input(tokens, table, gflat, sb, st, t, lo, hi)
        for k in range(G):
            gemm_at(hflat, False, (lo * T + t) * H, T * H, 1, p_hh[k], H, gflat,
                    lo * sb + t * st + k * H, sb, hi - lo, True)
        for b in range(lo, hi):
            gt = gates[b, t]
            gi, gf, gg, go = gt[0], gt[1], gt[2], gt[3]
            ifg = flat(gt)[:2 * H]   # i and f, adjacent: one loop
            cb, cp, tc, yb = c[b], c_prev[b, t], tanh_c[b, t], y[t, b]
            for j in range(ifg.shape[0]):
                ifg[j] = sigmoid(ifg[j])
            for j in range(H):
                gg[j] = tanh(gg[j])
            for j in range(H):
                go[j] = sigmoid(go[j])
            for j in range(H):
                cb[j] = gf[j] * cp[j] + gi[j] * gg[j]
            for j in range(H):
                tc[j] = tanh(cb[j])
            for j in range(H):
                yb[j] = go[j] * tc[j]


@njit
def _backward(dy, x, h_prev, p_hh, p_ih, resets, clip, norms, fired, sums, dx, px, ph, t0,
              gates, c_prev, tanh_c, dh, dc, da, lo, hi):
    """Streams lo..hi, over the T = len(resets) steps of a cache. dy (T, B, H), or (0, B, H)
    for zeros; x (T, B, D); h_prev, gates, c_prev, tanh_c stream-major, the cache's steps at
    t0 .. t0 + T (see _common.run_backward); p_hh, p_ih the gate panels of W_hh and
    W_ih (for d @ W); dh, dc (B, H) the final-state gradient on entry, the initial-state
    gradient on exit; fills da (B, T, 4, H) with the pre-activation gradients, dx (T, B, D),
    and px, ph with the panels of x and h_prev (for the weight gradients); norms (2, T, B)
    receives ||dL/dh_t|| and ||dL/dc_t|| per stream (see BackwardContext), or is (2, 0, B)
    for no recording; fired[t, lo] is set where the state clip changed a value at step t;
    sums[:, 0] (B, 4, H) float64 receives the sum of da over time."""
    wide_vectors()
    T, H = resets.shape[0], h_prev.shape[2]
    one = h_prev.dtype.type(1)
    rec = norms.shape[1] != 0
    do_clip = np.isfinite(clip)
    sums[lo:hi] = 0
    daf, dhf = flat(da), flat(dh)
    for t in range(T - 1, -1, -1):
        for b in range(lo, hi):
            gt, dt = gates[b, t0 + t], da[b, t]
            gi, gf, gg, go = gt[0], gt[1], gt[2], gt[3]
            di, df, dg, do = dt[0], dt[1], dt[2], dt[3]
            tc, cp, dhb, dcb = tanh_c[b, t0 + t], c_prev[b, t0 + t], dh[b], dc[b]
            add_output_gradient(dhb, dy, t, b)
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
        add_stream_sums(sums, 0, da, t, lo, hi)
        for k in range(G):
            gemm_at(daf, False, (lo * T + t) * G * H + k * H, T * G * H, 1, p_hh[k], H, dhf,
                    lo * H, H, hi - lo, k > 0)
        reset_rows(dh, resets[t], lo, hi)
        reset_rows(dc, resets[t], lo, hi)
        if do_clip:
            fired_h = clip_inplace(dh, clip, lo, hi)
            fired_c = clip_inplace(dc, clip, lo, hi)
            if fired_h or fired_c:
                fired[t, lo] = True
    if dx.shape[0] != 0:   # (no rows: an embedding folded in, see _common.run_backward)
        gate_product(da, p_ih, dx, False, lo, hi)
        pack_time_major(x, px, lo, hi)
    pack_streams(h_prev, t0, T, ph, lo, hi)


def forward(cell, x, state, resets, fold=None):
    p, dt = cell.params, cell.dtype
    T, B = resets.shape
    D, H = cell.input_size, cell.hidden_size
    h0 = _common.kernel_array(state[0], dt)
    c = aligned_copy(state[1], dt)  # becomes the final c
    buf = _common.buffer
    gates = buf(cell, "gates", (B, T, G, H), dt)
    h_prev, c_prev, tanh_c = (buf(cell, k, (B, T, H), dt) for k in ("h_prev", "c_prev", "tanh_c"))
    y = buf(cell, "y", (T, B, H), dt)
    p_ih, p_hh = _common.weight_panels(cell, True)
    bias = input_bias(cell)
    _parallel.run(_forward, B,
                  (*_common.input_arrays(cell, x, fold, bias, p_ih, T, B),
                   p_hh, h0, c,
                   _common.kernel_array(resets, bool), gates, h_prev, c_prev, tanh_c, y),
                  work=T * B * (D + H) * G * H)
    final = (y[T - 1].copy() if T else h0.copy(), c)
    cache = {**_common.input_cache(x, fold), "resets": resets,
             **_common.stream_major_cache(h_prev=h_prev, c_prev=c_prev, gates=gates,
                                          tanh_c=tanh_c)}
    return y, final, cache


def backward(cell, dy, dstate, cache, ctx=None):
    T, B = cache["resets"].shape
    return _common.run_backward(cell, _backward, dy, dstate, cache, ctx,
                                ("gates", "c_prev", "tanh_c"),
                                [("da", (B, T, G, cell.hidden_size))])
