"""Sequence kernel of the GRU cell (PyTorch's formulation, gate order r, z, n):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),   h_t = (1 - z) * n + z * h_{t-1}

Cache (time on axis 0, T entries): ``x`` (T, B, D), ``h_prev`` (T, B, H) the state entering
each step after resets, ``gates`` (T, B, 3H) the activated r, z, n, ``hn`` (T, B, H)
W_hn h_{t-1} + b_hn, ``resets`` (T, B).
"""

import numpy as np

from .. import _parallel
from .._config import njit
from . import _common
from ._common import (add_row, clip_inplace, gemm, input_projection, load_state, norm,
                      pack_steps, reset_rows, steps_product)
from .fastmath import sigmoid, tanh


@njit
def _forward(x, tokens, table, p_ih, p_hh, b_ih, b_hh, h0, resets, gates, h_prev, hn, y, buf,
             lo, hi):
    """Streams lo..hi. x (T, B, D) or, with an embedding folded in, tokens (T, B) and table
    (see _common.input_projection); p_ih, p_hh the panels of W_ih^T (D, 3H) and W_hh^T
    (H, 3H); b_ih, b_hh (3H,); h0 (B, H); resets (T, B). Fills gates (T, B, 3H) with the
    activated r, z, n, h_prev, hn and y (T, B, H); buf (B, 3H) scratch."""
    T, B, H = y.shape
    one = y.dtype.type(1)
    b_rz = b_ih[:2 * H] + b_hh[:2 * H]
    b_in, b_hn = b_ih[2 * H:], b_hh[2 * H:]
    input_projection(x, tokens, table, p_ih, gates, lo, hi)
    for t in range(T):
        hp, gt = h_prev[t], gates[t]
        load_state(hp, h0 if t == 0 else y[t - 1], resets[t], lo, hi)
        gemm(hp, False, p_hh, 3 * H, buf, lo, hi, False)
        for b in range(lo, hi):
            g, r, hnb, yb, hpb = gt[b], buf[b], hn[t, b], y[t, b], hp[b]
            # loops start at 0 over slices, so that they are vectorised (see lstm.py)
            grz, rrz = g[:2 * H], r[:2 * H]
            for j in range(2 * H):
                grz[j] = sigmoid(grz[j] + b_rz[j] + rrz[j])
            gr, gz, gn, rn = g[:H], g[H:2 * H], g[2 * H:], r[2 * H:]
            for j in range(H):
                hnb[j] = rn[j] + b_hn[j]
            for j in range(H):
                gn[j] = tanh(gn[j] + b_in[j] + gr[j] * hnb[j])
            for j in range(H):
                yb[j] = (one - gz[j]) * gn[j] + gz[j] * hpb[j]


@njit
def _backward(dy, x, h_prev, p_hh, p_ih, resets, clip, norms, fired, sums, dx, px, ph,
              gates, hn, dh, dai, dah, lo, hi):
    """Streams lo..hi. dy (T, B, H), or (0, B, H) for zeros; x, h_prev, gates, hn from the
    cache; p_hh, p_ih the panels of W_hh (3H, H) and W_ih (3H, D); dh (B, H) the final-state
    gradient on entry, the initial-state gradient on exit; fills dai (T, B, 3H) with the
    gradients of the input-side pre-activations (dr, dz, dn), dah (T, B, 3H) with those of
    the recurrent side (dr, dz, dn * r), dx (T, B, D), and px, ph with the panels of x and
    h_prev; norms (1, T, B) receives ||dL/dh_t|| per stream, or is (1, 0, B) for no
    recording; fired[t, lo] is set where the state clip changed a value at step t; sums[b, 0]
    and sums[b, 1] (float64) receive the sums of dai[:, b] and dah[:, b] over time. dai and dah
    may have padded rows (more than 3H columns)."""
    T, B, H = hn.shape
    one = hn.dtype.type(1)
    has_dy = dy.shape[0] != 0
    rec = norms.shape[1] != 0
    do_clip = np.isfinite(clip)
    sums[lo:hi] = 0
    for t in range(T - 1, -1, -1):
        for b in range(lo, hi):
            g, d, e, hnb = gates[t, b], dai[t, b], dah[t, b], hn[t, b]
            hpb, dhb = h_prev[t, b], dh[b]
            gr, gz, gn = g[:H], g[H:2 * H], g[2 * H:]
            dr, dz, dn = d[:H], d[H:2 * H], d[2 * H:3 * H]
            er, ez, en = e[:H], e[H:2 * H], e[2 * H:3 * H]
            if has_dy:
                dyb = dy[t, b]
                for j in range(H):
                    dhb[j] += dyb[j]
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
            add_row(sums[b, 0], d)
            add_row(sums[b, 1], e)
        gemm(dah[t], False, p_hh, H, dh, lo, hi, True)   # dh = dh * z + dah @ W_hh
        reset_rows(dh, resets[t], lo, hi)
        if do_clip and clip_inplace(dh, clip, lo, hi):
            fired[t, lo] = True
    if dx.shape[0] != 0:   # (no rows: an embedding folded in, see _common.run_backward)
        steps_product(dai, p_ih, dx, lo, hi)
        pack_steps(x.reshape(T * B, x.shape[2]), px, T, B, lo, hi)
    pack_steps(h_prev.reshape(T * B, H), ph, T, B, lo, hi)


def forward(cell, x, state, resets, fold=None):
    p, dt = cell.params, cell.dtype
    T, B = resets.shape
    D = cell.input_size
    H = cell.hidden_size
    h0 = _common.kernel_array(state[0], dt)
    buf = _common.buffer
    gates = buf(cell, "gates", (T, B, 3 * H), dt)
    h_prev, hn, y = (buf(cell, k, (T, B, H), dt) for k in ("h_prev", "hn", "y"))
    _parallel.run(_forward, B,
                  (*_common.input_arrays(cell, x, fold, T, B),
                   _common.packed(cell, "p_hh", p["weight_hh"], True),
                   p["bias_ih"], p["bias_hh"], h0, _common.kernel_array(resets, bool), gates,
                   h_prev, hn, y, buf(cell, "step", (B, 3 * H), dt)),
                  work=T * B * (D + H) * 3 * H)
    final = y[T - 1].copy() if T else h0.copy()
    cache = {**_common.input_cache(x, fold), "h_prev": h_prev, "gates": gates, "hn": hn,
             "resets": resets}
    return y, (final,), cache


def backward(cell, dy, dstate, cache, ctx=None):
    T, B = cache["resets"].shape
    G = 3 * cell.hidden_size
    return _common.run_backward(cell, _backward, dy, dstate, cache, ctx, ("gates", "hn"),
                                [("dai", (T, B, G)), ("dah", (T, B, G))], dah="dah")
