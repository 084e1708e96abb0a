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
from ._common import clip_inplace, load_state, reset_rows


@njit
def _forward(gates, h0, w_hh_t, b_hn, resets, h_prev, hn, y, buf):
    """gates (T, B, 3H) holds ``W_ih x + b_ih`` (plus ``b_hh`` in the r and z blocks) on entry
    and the activated r, z, n on exit. h0 (B, H) the initial state; w_hh_t (H, 3H) = W_hh^T
    (C order); b_hn (H,); resets (T, B); fills h_prev, hn and y (T, B, H); buf (B, 3H)."""
    T, B, H = y.shape
    one = y.dtype.type(1)
    half = one / (one + one)  # not dtype.type(0.5): no float64 constant at all
    for t in range(T):
        hp = h_prev[t]
        load_state(hp, h0 if t == 0 else y[t - 1], resets[t])
        np.dot(hp, w_hh_t, buf)
        gt, hnt, yt = gates[t], hn[t], y[t]
        for b in range(B):
            for j in range(H):
                r = (np.tanh((gt[b, j] + buf[b, j]) * half) + one) * half
                z = (np.tanh((gt[b, H + j] + buf[b, H + j]) * half) + one) * half
                hnv = buf[b, 2 * H + j] + b_hn[j]
                n = np.tanh(gt[b, 2 * H + j] + r * hnv)
                gt[b, j], gt[b, H + j], gt[b, 2 * H + j] = r, z, n
                hnt[b, j] = hnv
                yt[b, j] = (one - z) * n + z * hp[b, j]


@njit
def _backward(dy, gates, hn, h_prev, w_hh, resets, clip, dh, dai, dah, tmp):
    """dy (T, B, H), or (0, B, H) for zeros; gates (T, B, 3H), hn and h_prev (T, B, H) from the
    cache; w_hh (3H, H); dh (B, H) the final-state gradient on entry, the initial-state gradient
    on exit; dai (T, B, 3H) filled with the gradients of the input pre-activations
    (dr, dz, dn); dah (B, 3H), tmp (B, H) scratch. Returns the clip count."""
    T, B, H = hn.shape
    one = hn.dtype.type(1)
    has_dy = dy.shape[0] != 0
    do_clip = np.isfinite(clip)
    fired = 0
    for t in range(T - 1, -1, -1):
        gt, dat, hnt, hpt = gates[t], dai[t], hn[t], h_prev[t]
        for b in range(B):
            for j in range(H):
                g = dh[b, j]
                if has_dy:
                    g += dy[t, b, j]
                r, z, n = gt[b, j], gt[b, H + j], gt[b, 2 * H + j]
                dn = g * (one - z) * (one - n * n)
                dz = g * (hpt[b, j] - n) * z * (one - z)
                dr = dn * hnt[b, j] * r * (one - r)
                dat[b, j], dat[b, H + j], dat[b, 2 * H + j] = dr, dz, dn
                dah[b, j], dah[b, H + j], dah[b, 2 * H + j] = dr, dz, dn * r
                dh[b, j] = g * z
        np.dot(dah, w_hh, tmp)
        for b in range(B):
            for j in range(H):
                dh[b, j] += tmp[b, j]
        reset_rows(dh, resets[t])
        if do_clip and clip_inplace(dh, clip):
            fired += 1
    return fired


def forward(cell, x, state, resets):
    p, dt = cell.params, cell.dtype
    T, B, _ = x.shape
    H = cell.hidden_size
    bias = p["bias_ih"].copy()
    bias[:2 * H] += p["bias_hh"][:2 * H]
    gates = _common.input_projection(x, p["weight_ih"], bias)
    h0 = _common.kernel_array(state[0], dt)
    h_prev, hn, y = (np.empty((T, B, H), dtype=dt) for _ in range(3))
    _forward(gates, h0, np.ascontiguousarray(p["weight_hh"].T),
             np.ascontiguousarray(p["bias_hh"][2 * H:]), _common.kernel_array(resets, bool),
             h_prev, hn, y, np.empty((B, 3 * H), dtype=dt))
    final = y[T - 1].copy() if T else h0.copy()
    cache = {"x": x, "h_prev": h_prev, "gates": gates, "hn": hn, "resets": resets}
    return y, (final,), cache


def backward(cell, dy, dstate, cache, ctx=None):
    resets, gates = cache["resets"], cache["gates"]
    T, B = resets.shape
    dt = cell.dtype
    H = cell.hidden_size
    (dh,) = _common.state_gradient(cell, dstate, B)
    dai = np.empty((T, B, 3 * H), dtype=dt)
    k = _common.kernel_array
    fired = _backward(_common.output_gradient(cell, dy, T, B), k(gates, dt), k(cache["hn"], dt),
                      k(cache["h_prev"], dt), k(cell.params["weight_hh"], dt), k(resets, bool),
                      _common.clip_value(ctx, dt), dh, dai,
                      np.empty((B, 3 * H), dtype=dt), np.empty((B, H), dtype=dt))
    _common.count_fired(ctx, fired)
    dx, _ = _common.input_gradients(cell, dai, cache["x"])
    # The recurrent pre-activation gradient differs from dai only in its n block (dn * r):
    # turn dai into it in place, dai is not needed any more.
    dai[:, :, 2 * H:] *= gates[:, :, :H]
    _common.recurrent_gradients(cell, dai, cache["h_prev"])
    return dx, (dh,)
