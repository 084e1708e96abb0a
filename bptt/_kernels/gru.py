"""Sequence kernel of the GRU cell (PyTorch's formulation, gate order r, z, n):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),   h_t = (1 - z) * n + z * h_{t-1}

Cache (time on axis 0, T entries): ``x`` (T, B, D) (or the tokens of an embedding folded in),
``h_prev`` (T, B, H) the state entering each step after resets, ``gates`` (T, 3, B, H) the
activated r, z, n (gate-major, see _common), ``hn`` (T, B, H) W_hn h_{t-1} + b_hn,
``resets`` (T, B).
"""

import numpy as np

from .. import _parallel
from .._config import njit
from . import _common
from ._common import (add_stream_sums, clip_inplace, gate_input, gate_product, gemm, load_state,
                      norm, pack_steps, reset_rows, rows, step_input)
from .fastmath import sigmoid, tanh, wide_vectors


@njit
def _forward(x, tokens, table, p_ih, bias, p_hh, b_hn, h0, resets, gates, h_prev, hn, y, lo,
             hi):
    """Streams lo..hi. x (T, B, D) or, with an embedding folded in, tokens (T, B) and table
    (see _common.gate_input and step_input); p_ih, p_hh the gate panels of W_ih^T and
    W_hh^T; bias (3H,) the input projection's bias, b_ir + b_hr, b_iz + b_hz, b_in (empty
    with a table); b_hn (B, H) that bias repeated for every stream; h0 (B, H); resets (T, B).
    Fills gates (T, 3, B, H) with the activated r, z, n, h_prev, hn and y (T, B, H)."""
    wide_vectors()
    T, B, H = y.shape
    one = y.dtype.type(1)
    gate_input(x, tokens, table, p_ih, bias, gates, y.reshape(T * B, H), lo, hi)
    bn = rows(b_hn, lo, hi)
    for t in range(T):
        hp, gt = h_prev[t], gates[t]
        load_state(hp, h0 if t == 0 else y[t - 1], resets[t], lo, hi)
        step_input(tokens, table, gt, t, lo, hi)
        gemm(hp, False, p_hh[0], H, gt[0], lo, hi, True)
        gemm(hp, False, p_hh[1], H, gt[1], lo, hi, True)
        gemm(hp, False, p_hh[2], H, hn[t], lo, hi, False)
        # each loop runs over all of this thread's streams at once (gate-major layout)
        gr, gz, gn = rows(gt[0], lo, hi), rows(gt[1], lo, hi), rows(gt[2], lo, hi)
        hnb, yb, hpb = rows(hn[t], lo, hi), rows(y[t], lo, hi), rows(hp, lo, hi)
        for j in range(gr.shape[0]):
            gr[j] = sigmoid(gr[j])
        for j in range(gz.shape[0]):
            gz[j] = sigmoid(gz[j])
        for j in range(hnb.shape[0]):
            hnb[j] += bn[j]
        for j in range(gn.shape[0]):
            gn[j] = tanh(gn[j] + gr[j] * hnb[j])
        for j in range(yb.shape[0]):
            yb[j] = (one - gz[j]) * gn[j] + gz[j] * hpb[j]


@njit
def _backward(dy, x, h_prev, p_hh, p_ih, resets, clip, norms, fired, sums, dx, px, ph,
              gates, hn, dh, dai, dah, lo, hi):
    """Streams lo..hi. dy (T, B, H), or (0, B, H) for zeros; x, h_prev, gates, hn from the
    cache; p_hh, p_ih the gate panels of W_hh and W_ih (for d @ W); dh (B, H) the final-state
    gradient on entry, the initial-state gradient on exit; fills dai (3, T, B, H) with the
    gradients of the input-side pre-activations (dr, dz, dn), dah (3, T, B, H) with those of
    the recurrent side (dr, dz, dn * r), dx (T, B, D), and px, ph with the panels of x and
    h_prev; norms (1, T, B) receives ||dL/dh_t|| per stream, or is (1, 0, B) for no
    recording; fired[t, lo] is set where the state clip changed a value at step t; sums[:, 0]
    and sums[:, 1] (B, 3, H) float64 receive the sums of dai and dah over time."""
    wide_vectors()
    T, B, H = hn.shape
    one = hn.dtype.type(1)
    has_dy = dy.shape[0] != 0
    rec = norms.shape[1] != 0
    do_clip = np.isfinite(clip)
    sums[lo:hi] = 0
    dhb = rows(dh, lo, hi)
    for t in range(T - 1, -1, -1):
        gt = gates[t]
        gr, gz, gn = rows(gt[0], lo, hi), rows(gt[1], lo, hi), rows(gt[2], lo, hi)
        dr, dz, dn = rows(dai[0, t], lo, hi), rows(dai[1, t], lo, hi), rows(dai[2, t], lo, hi)
        er, ez, en = rows(dah[0, t], lo, hi), rows(dah[1, t], lo, hi), rows(dah[2, t], lo, hi)
        hnb, hpb = rows(hn[t], lo, hi), rows(h_prev[t], lo, hi)
        if has_dy:
            dyb = rows(dy[t], lo, hi)
            for j in range(dhb.shape[0]):
                dhb[j] += dyb[j]
        if rec:
            for b in range(lo, hi):
                norms[0, t, b] = norm(dh[b])
        # one output array per loop, so that LLVM vectorises each
        for j in range(dn.shape[0]):
            dn[j] = dhb[j] * (one - gz[j]) * (one - gn[j] * gn[j])
        for j in range(dz.shape[0]):
            dz[j] = dhb[j] * (hpb[j] - gn[j]) * gz[j] * (one - gz[j])
        for j in range(dr.shape[0]):
            dr[j] = dn[j] * hnb[j] * gr[j] * (one - gr[j])
        for j in range(er.shape[0]):
            er[j] = dr[j]
        for j in range(ez.shape[0]):
            ez[j] = dz[j]
        for j in range(en.shape[0]):
            en[j] = dn[j] * gr[j]
        for j in range(dhb.shape[0]):
            dhb[j] *= gz[j]
        for k in range(3):
            add_stream_sums(sums, 0, k, dai[k, t], lo, hi)
            add_stream_sums(sums, 1, k, dah[k, t], lo, hi)
        for k in range(3):   # dh = dh * z + dah @ W_hh
            gemm(dah[k, t], False, p_hh[k], H, dh, lo, hi, True)
        reset_rows(dh, resets[t], lo, hi)
        if do_clip and clip_inplace(dh, clip, lo, hi):
            fired[t, lo] = True
    if dx.shape[0] != 0:   # (no rows: an embedding folded in, see _common.run_backward)
        gate_product(dai, p_ih, dx, False, lo, hi)
        pack_steps(x.reshape(T * B, x.shape[2]), px, T, B, lo, hi)
    pack_steps(h_prev.reshape(T * B, H), ph, T, B, lo, hi)


def forward(cell, x, state, resets, fold=None):
    p, dt = cell.params, cell.dtype
    T, B = resets.shape
    D, H = cell.input_size, cell.hidden_size
    h0 = _common.kernel_array(state[0], dt)
    buf = _common.buffer
    gates = buf(cell, "gates", (T, 3, B, H), dt)
    h_prev, hn, y = (buf(cell, k, (T, B, H), dt) for k in ("h_prev", "hn", "y"))
    b_ih, b_hh = p["bias_ih"], p["bias_hh"]
    bias = np.concatenate([b_ih[:2 * H] + b_hh[:2 * H], b_ih[2 * H:]])
    p_ih, p_hh = _common.weight_panels(cell, True)
    _parallel.run(_forward, B,
                  (*_common.input_arrays(cell, x, fold, bias, p_ih, T, B),
                   p_hh,
                   np.repeat(b_hh[None, 2 * H:], B, axis=0), h0,
                   _common.kernel_array(resets, bool), gates, h_prev, hn, y),
                  work=T * B * (D + H) * 3 * H)
    final = y[T - 1].copy() if T else h0.copy()
    cache = {**_common.input_cache(x, fold), "h_prev": h_prev, "gates": gates, "hn": hn,
             "resets": resets}
    return y, (final,), cache


def backward(cell, dy, dstate, cache, ctx=None):
    T, B = cache["resets"].shape
    shape = (3, T, B, cell.hidden_size)
    return _common.run_backward(cell, _backward, dy, dstate, cache, ctx, ("gates", "hn"),
                                [("dai", shape), ("dah", shape)], dah="dah")
