"""Sequence kernel of the LSTM cell (PyTorch's formulation, gate order i, f, g, o):

    i, f, o = sigmoid(.), g = tanh(.)   of   W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

Cache (time on axis 0, T entries): ``x`` (T, B, D) (or the tokens of an embedding folded in),
``h_prev`` and ``c_prev`` (T, B, H) the state entering each step after resets, ``gates``
(T, 4, B, H) the activated gates i, f, g, o (gate-major, see _common), ``tanh_c`` (T, B, H)
tanh(c_t), ``resets`` (T, B).
"""

import numpy as np

from .. import _parallel
from .._config import njit
from .._memory import aligned_copy
from . import _common
from ._common import (add_stream_sums, clip_inplace, gate_input, gate_product, gemm, load_state,
                      norm, pack_steps, reset_rows, rows, step_input)
from .fastmath import sigmoid, tanh, wide_vectors


@njit
def _forward(x, tokens, table, p_ih, bias, p_hh, h0, c, resets, gates, h_prev, c_prev, tanh_c,
             y, lo, hi):
    """Streams lo..hi. x (T, B, D) or, with an embedding folded in, tokens (T, B) and table
    (see _common.gate_input and step_input); p_ih, p_hh the gate panels of W_ih^T and
    W_hh^T; bias (4H,) = b_ih + b_hh (empty with a table); h0 (B, H) the initial h; c (B, H)
    the initial c on entry, the final c on exit; resets (T, B). Fills gates (T, 4, B, H) with
    the activated gates, h_prev, c_prev, tanh_c and y (T, B, H)."""
    wide_vectors()
    T, B, H = y.shape
    gate_input(x, tokens, table, p_ih, bias, gates, y.reshape(T * B, H), lo, hi)
    for t in range(T):
        hp, cp, gt = h_prev[t], c_prev[t], gates[t]
        load_state(hp, h0 if t == 0 else y[t - 1], resets[t], lo, hi)
        load_state(cp, c, resets[t], lo, hi)
        step_input(tokens, table, gt, t, lo, hi)
        for k in range(4):
            gemm(hp, False, p_hh[k], H, gt[k], lo, hi, True)
        # each loop runs over all of this thread's streams at once (gate-major layout)
        gi, gf = rows(gt[0], lo, hi), rows(gt[1], lo, hi)
        gg, go = rows(gt[2], lo, hi), rows(gt[3], lo, hi)
        cpb, cb = rows(cp, lo, hi), rows(c, lo, hi)
        tcb, yb = rows(tanh_c[t], lo, hi), rows(y[t], lo, hi)
        for j in range(gi.shape[0]):
            gi[j] = sigmoid(gi[j])
        for j in range(gf.shape[0]):
            gf[j] = sigmoid(gf[j])
        for j in range(gg.shape[0]):
            gg[j] = tanh(gg[j])
        for j in range(go.shape[0]):
            go[j] = sigmoid(go[j])
        for j in range(cb.shape[0]):
            cb[j] = gf[j] * cpb[j] + gi[j] * gg[j]
        for j in range(tcb.shape[0]):
            tcb[j] = tanh(cb[j])
        for j in range(yb.shape[0]):
            yb[j] = go[j] * tcb[j]


@njit
def _backward(dy, x, h_prev, p_hh, p_ih, resets, clip, norms, fired, sums, dx, px, ph,
              gates, c_prev, tanh_c, dh, dc, da, lo, hi):
    """Streams lo..hi. dy (T, B, H), or (0, B, H) for zeros; x, h_prev, gates, c_prev, tanh_c
    from the cache; p_hh, p_ih the gate panels of W_hh and W_ih (for d @ W); dh, dc (B, H) the
    final-state gradient on entry, the initial-state gradient on exit; fills da (4, T, B, H)
    with the pre-activation gradients, dx (T, B, D), and px, ph with the panels of x and
    h_prev (for the weight gradients); norms (2, T, B) receives ||dL/dh_t|| and ||dL/dc_t||
    per stream (see BackwardContext), or is (2, 0, B) for no recording; fired[t, lo] is set
    where the state clip changed a value at step t; sums[:, 0] (B, 4, H) float64 receives the
    sum of da over time."""
    wide_vectors()
    T, B, H = tanh_c.shape
    one = tanh_c.dtype.type(1)
    has_dy = dy.shape[0] != 0
    rec = norms.shape[1] != 0
    do_clip = np.isfinite(clip)
    sums[lo:hi] = 0
    dhb, dcb = rows(dh, lo, hi), rows(dc, lo, hi)
    for t in range(T - 1, -1, -1):
        gt = gates[t]
        gi, gf = rows(gt[0], lo, hi), rows(gt[1], lo, hi)
        gg, go = rows(gt[2], lo, hi), rows(gt[3], lo, hi)
        di, df = rows(da[0, t], lo, hi), rows(da[1, t], lo, hi)
        dg, do = rows(da[2, t], lo, hi), rows(da[3, t], lo, hi)
        tc, cp = rows(tanh_c[t], lo, hi), rows(c_prev[t], lo, hi)
        if has_dy:
            dyb = rows(dy[t], lo, hi)
            for j in range(dhb.shape[0]):
                dhb[j] += dyb[j]
        if rec:
            for b in range(lo, hi):
                norms[0, t, b] = norm(dh[b])
                norms[1, t, b] = norm(dc[b])
        # one output array per loop, so that LLVM vectorises each
        for j in range(dcb.shape[0]):   # dc_t: from later steps and through h_t
            dcb[j] += dhb[j] * go[j] * (one - tc[j] * tc[j])
        for j in range(di.shape[0]):
            di[j] = dcb[j] * gg[j] * gi[j] * (one - gi[j])
        for j in range(df.shape[0]):
            df[j] = dcb[j] * cp[j] * gf[j] * (one - gf[j])
        for j in range(dg.shape[0]):
            dg[j] = dcb[j] * gi[j] * (one - gg[j] * gg[j])
        for j in range(do.shape[0]):
            do[j] = dhb[j] * tc[j] * go[j] * (one - go[j])
        for j in range(dcb.shape[0]):   # to c_{t-1}
            dcb[j] *= gf[j]
        for k in range(4):
            add_stream_sums(sums, 0, k, da[k, t], lo, hi)
        for k in range(4):
            gemm(da[k, t], False, p_hh[k], H, dh, lo, hi, k > 0)
        reset_rows(dh, resets[t], lo, hi)
        reset_rows(dc, resets[t], lo, hi)
        if do_clip:
            fired_h = clip_inplace(dh, clip, lo, hi)
            fired_c = clip_inplace(dc, clip, lo, hi)
            if fired_h or fired_c:
                fired[t, lo] = True
    if dx.shape[0] != 0:   # (no rows: an embedding folded in, see _common.run_backward)
        gate_product(da, p_ih, dx, False, lo, hi)
        pack_steps(x.reshape(T * B, x.shape[2]), px, T, B, lo, hi)
    pack_steps(h_prev.reshape(T * B, H), ph, T, B, lo, hi)


def forward(cell, x, state, resets, fold=None):
    p, dt = cell.params, cell.dtype
    T, B = resets.shape
    D, H = cell.input_size, cell.hidden_size
    h0 = _common.kernel_array(state[0], dt)
    c = aligned_copy(state[1], dt)  # becomes the final c
    buf = _common.buffer
    gates = buf(cell, "gates", (T, 4, B, H), dt)
    h_prev, c_prev, tanh_c, y = (buf(cell, k, (T, B, H), dt)
                                 for k in ("h_prev", "c_prev", "tanh_c", "y"))
    p_ih, p_hh = _common.weight_panels(cell, True)
    bias = p["bias_ih"] + p["bias_hh"]
    _parallel.run(_forward, B,
                  (*_common.input_arrays(cell, x, fold, bias, p_ih, T, B),
                   p_hh, h0, c,
                   _common.kernel_array(resets, bool), gates, h_prev, c_prev, tanh_c, y),
                  work=T * B * (D + H) * 4 * H)
    final = (y[T - 1].copy() if T else h0.copy(), c)
    cache = {**_common.input_cache(x, fold), "h_prev": h_prev, "c_prev": c_prev,
             "gates": gates, "tanh_c": tanh_c, "resets": resets}
    return y, final, cache


def backward(cell, dy, dstate, cache, ctx=None):
    T, B = cache["resets"].shape
    return _common.run_backward(cell, _backward, dy, dstate, cache, ctx,
                                ("gates", "c_prev", "tanh_c"),
                                [("da", (4, T, B, cell.hidden_size))])
