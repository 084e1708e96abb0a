"""Sequence kernel of the Elman cell, ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``,
act tanh (flag 0), relu (flag 1) or linear (flag 2), one compiled kernel for all three.

Cache (time on axis 0, T entries): ``x`` (T, B, D), ``h_prev`` (T, B, H) the state entering
each step after resets, ``h`` (T, B, H) the outputs (the same array as ``y``), ``resets`` (T, B).
"""

import numpy as np

from .. import _parallel
from .._config import njit
from . import _common
from ._common import (add_stream_sums, clip_inplace, gate_input, gate_product, gemm, load_state,
                      norm, pack_steps, reset_rows, rows, step_input)
from .fastmath import tanh, wide_vectors

TANH, RELU, LINEAR = 0, 1, 2
ACTIVATIONS = {"tanh": TANH, "relu": RELU, "linear": LINEAR}


@njit
def _forward(x, tokens, table, p_ih, bias, p_hh, h0, resets, act, h_prev, y, lo, hi):
    """Streams lo..hi. x (T, B, D) or, with an embedding folded in, tokens (T, B) and table
    (see _common.gate_input and step_input); p_ih, p_hh the (one-gate) panels of W_ih^T and
    W_hh^T; bias (H,) = b_ih + b_hh (empty with a table); h0 (B, H); resets (T, B); fills
    h_prev (T, B, H) with the state entering each step and y (T, B, H) with the outputs."""
    wide_vectors()
    T, B, H = y.shape
    zero = y.dtype.type(0)
    y4 = y.reshape(T, 1, B, H)
    gate_input(x, tokens, table, p_ih, bias, y4, y.reshape(T * B, H), lo, hi)
    for t in range(T):
        hp, yt = h_prev[t], y[t]
        load_state(hp, h0 if t == 0 else y[t - 1], resets[t], lo, hi)
        step_input(tokens, table, y4[t], t, lo, hi)
        gemm(hp, False, p_hh[0], H, yt, lo, hi, True)
        yb = rows(yt, lo, hi)   # all of this thread's streams at once
        if act == RELU:
            for j in range(yb.shape[0]):
                a = yb[j]
                yb[j] = zero if a < zero else a  # keeps NaN, like np.maximum
        elif act == TANH:
            for j in range(yb.shape[0]):
                yb[j] = tanh(yb[j])


@njit
def _backward(dy, x, h_prev, p_hh, p_ih, resets, clip, norms, fired, sums, dx, px, ph, act, h,
              dh, da, lo, hi):
    """Streams lo..hi. dy (T, B, H), or (0, B, H) for zeros; x, h_prev, h (the outputs) from
    the cache; p_hh, p_ih the (one-gate) panels of W_hh and W_ih (for d @ W); dh (B, H) the
    final-state gradient on entry, the initial-state gradient on exit; fills da (1, T, B, H)
    with the pre-activation gradients, dx (T, B, D), and px, ph with the panels of x and
    h_prev; norms (1, T, B) receives ||dL/dh_t|| per stream, or is (1, 0, B) for no
    recording; fired[t, lo] is set where the state clip changed a value at step t; sums[:, 0, 0]
    (B, H) float64 receives the sum of da over time."""
    wide_vectors()
    T, B, H = h.shape
    one, zero = h.dtype.type(1), h.dtype.type(0)
    has_dy = dy.shape[0] != 0
    rec = norms.shape[1] != 0
    do_clip = np.isfinite(clip)
    sums[lo:hi] = 0
    dhb = rows(dh, lo, hi)
    for t in range(T - 1, -1, -1):
        d, hb = rows(da[0, t], lo, hi), rows(h[t], lo, hi)
        if has_dy:
            dyb = rows(dy[t], lo, hi)
            for j in range(dhb.shape[0]):
                dhb[j] += dyb[j]
        if rec:
            for b in range(lo, hi):
                norms[0, t, b] = norm(dh[b])
        if act == RELU:
            for j in range(d.shape[0]):
                d[j] = dhb[j] * (one if hb[j] > zero else zero)
        elif act == LINEAR:
            for j in range(d.shape[0]):
                d[j] = dhb[j]
        else:
            for j in range(d.shape[0]):
                d[j] = dhb[j] * (one - hb[j] * hb[j])
        add_stream_sums(sums, 0, 0, da[0, t], lo, hi)
        gemm(da[0, t], False, p_hh[0], H, dh, lo, hi, False)
        reset_rows(dh, resets[t], lo, hi)
        if do_clip and clip_inplace(dh, clip, lo, hi):
            fired[t, lo] = True
    if dx.shape[0] != 0:   # (no rows: an embedding folded in, see _common.run_backward)
        gate_product(da, p_ih, dx, False, lo, hi)
        pack_steps(x.reshape(T * B, x.shape[2]), px, T, B, lo, hi)
    pack_steps(h_prev.reshape(T * B, H), ph, T, B, lo, hi)


def forward(cell, x, state, resets, fold=None):
    p, dt = cell.params, cell.dtype
    T, B = resets.shape
    D, H = cell.input_size, cell.hidden_size
    h_prev, y = (_common.buffer(cell, k, (T, B, H), dt) for k in ("h_prev", "y"))
    act = ACTIVATIONS[cell.nonlinearity]
    h0 = _common.kernel_array(state[0], dt)
    p_ih, p_hh = _common.weight_panels(cell, True)
    bias = p["bias_ih"] + p["bias_hh"]
    _parallel.run(_forward, B,
                  (*_common.input_arrays(cell, x, fold, bias, p_ih, T, B),
                   p_hh, h0,
                   _common.kernel_array(resets, bool), act, h_prev, y),
                  work=T * B * (D + H) * H)
    final = y[T - 1].copy() if T else h0.copy()
    cache = {**_common.input_cache(x, fold), "h_prev": h_prev, "h": y, "resets": resets}
    return y, (final,), cache


def backward(cell, dy, dstate, cache, ctx=None):
    T, B = cache["resets"].shape
    return _common.run_backward(cell, _backward, dy, dstate, cache, ctx, ("h",),
                                [("da", (1, T, B, cell.hidden_size))],
                                (ACTIVATIONS[cell.nonlinearity],))
