"""Sequence kernel of the GRU cell (PyTorch's formulation, gate order r, z, n):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),   h_t = (1 - z) * n + z * h_{t-1}

Cache (time on axis 0, T entries; views of stream-major arrays, see _common): ``x`` (T, B, D)
(or the tokens of an embedding folded in), ``h_prev`` (T, B, H) the state entering each step
after resets, ``gates`` (T, 3, B, H) the activated r, z, n, ``hn`` (T, B, H) W_hn h_{t-1} +
b_hn, ``resets`` (T, B).
"""

import numpy as np

from .. import _parallel
from .._config import njit
from . import _common
from ._common import (add_output_gradient, add_stream_sums, clip_inplace, flat, gate_input,
                      gate_product, gemm_at, load_state, norm, pack_streams, pack_time_major,
                      reset_rows, step_input)
from .fastmath import sigmoid, tanh, wide_vectors

G = 3


@njit
def _forward(x, tokens, table, p_ih, bias, p_hh, b_hn, h0, resets, gates, h_prev, hn, y, lo,
             hi):
    """Streams lo..hi. x (T, B, D) or, with an embedding folded in, tokens (T, B) and table
    (see _common.gate_input and step_input); p_ih, p_hh the gate panels of W_ih^T and
    W_hh^T; bias (3H,) the input projection's bias, b_ir + b_hr, b_iz + b_hz, b_in (empty
    with a table); b_hn (H,) the bias added to W_hn h; h0 (B, H); resets (T, B).
    Fills gates (B, T, 3, H) with the activated r, z, n, h_prev, hn (B, T, H) and y
    (T, B, H)."""
    wide_vectors()
    T, B, H = y.shape
    one = y.dtype.type(1)
    sb, st = T * G * H, G * H   # the gates' stream and step strides
    gf, hf, nf = flat(gates), flat(h_prev), flat(hn)
    gate_input(x, tokens, table, p_ih, bias, gf, sb, st, y.reshape(T * B, H), lo, hi)
    for t in range(T):
        load_state(h_prev, t, h0 if t == 0 else y[t - 1], resets[t], lo, hi)
        step_input(tokens, table, gf, sb, st, t, lo, hi)
        a0 = (lo * T + t) * H
        for k in range(2):
            gemm_at(hf, False, a0, T * H, 1, p_hh[k], H, gf, lo * sb + t * st + k * H, sb,
                    hi - lo, True)
        gemm_at(hf, False, a0, T * H, 1, p_hh[2], H, nf, a0, T * H, hi - lo, False)
        for b in range(lo, hi):
            gt = gates[b, t]
            rz, gr, gz, gn = flat(gt)[:2 * H], gt[0], gt[1], gt[2]
            hnb, yb, hpb = hn[b, t], y[t, b], h_prev[b, t]
            for j in range(rz.shape[0]):   # r and z, adjacent: one loop
                rz[j] = sigmoid(rz[j])
            for j in range(H):
                hnb[j] += b_hn[j]
            for j in range(H):
                gn[j] = tanh(gn[j] + gr[j] * hnb[j])
            for j in range(H):
                yb[j] = (one - gz[j]) * gn[j] + gz[j] * hpb[j]


@njit
def _backward(dy, x, h_prev, p_hh, p_ih, resets, clip, norms, fired, sums, dx, px, ph, t0,
              gates, hn, dh, dai, dah, lo, hi):
    """Streams lo..hi, over the T = len(resets) steps of a cache. dy (T, B, H), or (0, B, H)
    for zeros; x (T, B, D); h_prev, gates, hn stream-major, the cache's steps at t0 .. t0 + T
    (see _common.run_backward); p_hh, p_ih the gate panels of W_hh and W_ih (for
    d @ W); dh (B, H) the final-state gradient on entry, the initial-state gradient on exit;
    fills dai (B, T, 3, H) with the gradients of the input-side pre-activations (dr, dz, dn),
    dah (B, T, 3, H) with those of the recurrent side (dr, dz, dn * r), dx (T, B, D), and
    px, ph with the panels of x and h_prev; norms (1, T, B) receives ||dL/dh_t|| per stream,
    or is (1, 0, B) for no recording; fired[t, lo] is set where the state clip changed a
    value at step t; sums[:, 0] and sums[:, 1] (B, 3, H) float64 receive the sums of dai and
    dah over time."""
    wide_vectors()
    T, H = resets.shape[0], h_prev.shape[2]
    one = h_prev.dtype.type(1)
    rec = norms.shape[1] != 0
    do_clip = np.isfinite(clip)
    sums[lo:hi] = 0
    ahf, dhf = flat(dah), flat(dh)
    for t in range(T - 1, -1, -1):
        for b in range(lo, hi):
            gt, di, dj = gates[b, t0 + t], dai[b, t], dah[b, t]
            gr, gz, gn = gt[0], gt[1], gt[2]
            dr, dz, dn = di[0], di[1], di[2]
            er, ez, en = dj[0], dj[1], dj[2]
            hnb, hpb, dhb = hn[b, t0 + t], h_prev[b, t0 + t], dh[b]
            add_output_gradient(dhb, dy, t, b)
            if rec:
                norms[0, t, b] = norm(dhb)
            # one output array per loop, so that LLVM vectorises each
            for j in range(H):
                dn[j] = dhb[j] * (one - gz[j]) * (one - gn[j] * gn[j])
            for j in range(H):
                dz[j] = dhb[j] * (hpb[j] - gn[j]) * gz[j] * (one - gz[j])
            for j in range(H):
                dr[j] = dn[j] * hnb[j] * gr[j] * (one - gr[j])
            for j in range(H):
                er[j] = dr[j]
            for j in range(H):
                ez[j] = dz[j]
            for j in range(H):
                en[j] = dn[j] * gr[j]
            for j in range(H):
                dhb[j] *= gz[j]
        add_stream_sums(sums, 0, dai, t, lo, hi)
        add_stream_sums(sums, 1, dah, t, lo, hi)
        for k in range(G):   # dh = dh * z + dah @ W_hh
            gemm_at(ahf, False, (lo * T + t) * G * H + k * H, T * G * H, 1, p_hh[k], H, dhf,
                    lo * H, H, hi - lo, True)
        reset_rows(dh, resets[t], lo, hi)
        if do_clip and clip_inplace(dh, clip, lo, hi):
            fired[t, lo] = True
    if dx.shape[0] != 0:   # (no rows: an embedding folded in, see _common.run_backward)
        gate_product(dai, p_ih, dx, False, lo, hi)
        pack_time_major(x, px, lo, hi)
    pack_streams(h_prev, t0, T, ph, lo, hi)


def input_bias(cell, out=None):
    """The bias of the input projection (3H,), into ``out`` if given: b_ir + b_hr,
    b_iz + b_hz, b_in (b_hn is added to W_hn h, inside the reset gate's product)."""
    b_ih, b_hh = cell.params["bias_ih"], cell.params["bias_hh"]
    n = 2 * cell.hidden_size
    out = np.empty_like(b_ih) if out is None else out
    np.add(b_ih[:n], b_hh[:n], out=out[:n])
    out[n:] = b_ih[n:]
    return out


def forward(cell, x, state, resets, fold=None):
    p, dt = cell.params, cell.dtype
    T, B = resets.shape
    D, H = cell.input_size, cell.hidden_size
    h0 = _common.kernel_array(state[0], dt)
    buf = _common.buffer
    gates = buf(cell, "gates", (B, T, G, H), dt)
    h_prev, hn = (buf(cell, k, (B, T, H), dt) for k in ("h_prev", "hn"))
    y = buf(cell, "y", (T, B, H), dt)
    b_hh = p["bias_hh"]
    bias = input_bias(cell)
    p_ih, p_hh = _common.weight_panels(cell, True)
    _parallel.run(_forward, B,
                  (*_common.input_arrays(cell, x, fold, bias, p_ih, T, B),
                   p_hh,
                   b_hh[2 * H:], h0,
                   _common.kernel_array(resets, bool), gates, h_prev, hn, y),
                  work=T * B * (D + H) * G * H)
    final = y[T - 1].copy() if T else h0.copy()
    cache = {**_common.input_cache(x, fold), "resets": resets,
             **_common.stream_major_cache(h_prev=h_prev, gates=gates, hn=hn)}
    return y, (final,), cache


def backward(cell, dy, dstate, cache, ctx=None):
    T, B = cache["resets"].shape
    shape = (B, T, G, cell.hidden_size)
    return _common.run_backward(cell, _backward, dy, dstate, cache, ctx, ("gates", "hn"),
                                [("dai", shape), ("dah", shape)], dah="dah")
