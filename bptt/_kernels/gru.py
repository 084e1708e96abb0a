"""Sequence kernel of the GRU cell (PyTorch's formulation, gate order r, z, n):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),   h_t = (1 - z) * n + z * h_{t-1}

Cache (time on axis 0, T entries): ``x`` (T, B, D), ``h_prev`` (T, B, H) the state entering
each step after resets, ``gates`` (T, B, 3H) the activated r, z, n, ``hn`` (T, B, H)
W_hn h_{t-1} + b_hn, ``resets`` (T, B).
"""

import numpy as np

from .._config import njit
from . import _common
from ._common import (clip_inplace, column_sums, load_state, matmul_acc, norm,
                      recurrent_gradient, recurrent_product, reset_rows)
from .fastmath import sigmoid, tanh


@njit
def _forward(x, w_ih, w_hh, b_ih, b_hh, h0, resets, gates, h_prev, hn, y, buf):
    """x (T, B, D); w_ih (3H, D), w_hh (3H, H), b_ih, b_hh (3H,); h0 (B, H); resets (T, B).
    Fills gates (T, B, 3H) with the activated r, z, n, h_prev, hn and y (T, B, H); buf (B, 3H)
    scratch."""
    T, B, H = y.shape
    one = y.dtype.type(1)
    np.dot(x.reshape(T * B, x.shape[2]), w_ih.T, gates.reshape(T * B, 3 * H))
    b_rz = b_ih[:2 * H] + b_hh[:2 * H]
    b_in, b_hn = b_ih[2 * H:], b_hh[2 * H:]
    for t in range(T):
        hp = h_prev[t]
        load_state(hp, h0 if t == 0 else y[t - 1], resets[t])
        recurrent_product(hp, w_hh, buf)
        for b in range(B):
            g, r, hnb, yb, hpb = gates[t, b], buf[b], hn[t, b], y[t, b], hp[b]
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
def _backward(dy, x, w_ih, w_hh, resets, clip, norms, scratch, g_w_ih, g_w_hh, g_b_ih, g_b_hh,
              dx, gates, hn, h_prev, dh, dai, dah, tmp):
    """dy (T, B, H), or (0, B, H) for zeros; x, gates, hn, h_prev from the cache; dh (B, H) the
    final-state gradient on entry, the initial-state gradient on exit; fills dai (T, B, 3H)
    with the gradients of the input-side pre-activations (dr, dz, dn) and dx (T, B, D); dah
    (B, 3H) and tmp (B, H) scratch; adds the parameter gradients into g_*; norms (1, T, B)
    receives ||dL/dh_t|| per stream, or is (1, 0, B) for no recording. Returns the clip
    count."""
    T, B, H = hn.shape
    one = hn.dtype.type(1)
    has_dy = dy.shape[0] != 0
    rec = norms.shape[1] != 0
    do_clip = np.isfinite(clip)
    fired = 0
    for t in range(T - 1, -1, -1):
        for b in range(B):
            g, d, e, hnb, hpb, dhb = gates[t, b], dai[t, b], dah[b], hn[t, b], h_prev[t, b], dh[b]
            gr, gz, gn = g[:H], g[H:2 * H], g[2 * H:]
            dr, dz, dn = d[:H], d[H:2 * H], d[2 * H:]
            er, ez, en = e[:H], e[H:2 * H], e[2 * H:]
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
        # dh = dh * z (set above) + dah @ W_hh
        recurrent_gradient(dah, w_hh, tmp)
        for b in range(B):
            for j in range(H):
                dh[b, j] += tmp[b, j]
        reset_rows(dh, resets[t])
        if do_clip and clip_inplace(dh, clip):
            fired += 1
    # input side: dW_ih, b_ih, dx from dai; then dai's n block becomes the recurrent side's
    # (dn * r) in place, for dW_hh and b_hh: no second (T, B, 3H) array
    TB = T * B
    ai = dai.reshape(TB, 3 * H)
    matmul_acc(ai.T, x.reshape(TB, x.shape[2]), g_w_ih, scratch)
    column_sums(ai, g_b_ih, g_b_ih[:0])
    np.dot(ai, w_ih, dx.reshape(TB, dx.shape[2]))
    gr = gates.reshape(TB, 3 * H)
    for i in range(TB):
        an, r = ai[i, 2 * H:], gr[i, :H]
        for j in range(H):
            an[j] *= r[j]
    matmul_acc(ai.T, h_prev.reshape(TB, H), g_w_hh, scratch)
    column_sums(ai, g_b_hh, g_b_hh[:0])
    return fired


def forward(cell, x, state, resets):
    p, dt = cell.params, cell.dtype
    T, B, _ = x.shape
    H = cell.hidden_size
    h0 = _common.kernel_array(state[0], dt)
    buf = _common.buffer
    gates = buf(cell, "gates", (T, B, 3 * H), dt)
    h_prev, hn, y = (buf(cell, k, (T, B, H), dt) for k in ("h_prev", "hn", "y"))
    _forward(x, p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"], h0,
             _common.kernel_array(resets, bool), gates, h_prev, hn, y,
             buf(cell, "step", (B, 3 * H), dt))
    final = y[T - 1].copy() if T else h0.copy()
    cache = {"x": x, "h_prev": h_prev, "gates": gates, "hn": hn, "resets": resets}
    return y, (final,), cache


def backward(cell, dy, dstate, cache, ctx=None):
    T, B = cache["resets"].shape
    H = cell.hidden_size
    return _common.run_backward(cell, _backward, dy, dstate, cache, ctx,
                                ("gates", "hn", "h_prev"),
                                [("dai", (T, B, 3 * H)), ("dah", (B, 3 * H)), ("tmp", (B, H))])
