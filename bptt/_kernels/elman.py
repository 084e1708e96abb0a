"""Sequence kernel of the Elman cell, ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``,
act tanh (flag 0), relu (flag 1) or linear (flag 2), one compiled kernel for all three.

Cache (time on axis 0, T entries): ``x`` (T, B, D), ``h_prev`` (T, B, H) the state entering
each step after resets (a view of a stream-major array, see _common), ``h`` (T, B, H) the
outputs (the same array as ``y``), ``resets`` (T, B).
"""

import numpy as np

from .. import _parallel
from .._config import njit
from . import _common
from ._common import (add_output_gradient, add_stream_sums, clip_inplace, flat, gate_input,
                      gate_product, gemm_at, input_bias, load_state, norm, pack_streams,
                      pack_time_major, reset_rows, rows, step_input)
from .fastmath import tanh, wide_vectors

TANH, RELU, LINEAR = 0, 1, 2
ACTIVATIONS = {"tanh": TANH, "relu": RELU, "linear": LINEAR}


@njit
def _forward(x, tokens, table, p_ih, bias, p_hh, h0, resets, act, h_prev, y, lo, hi):
    """Streams lo..hi. x (T, B, D) or, with an embedding folded in, tokens (T, B) and table
    (see _common.gate_input and step_input); p_ih, p_hh the (one-gate) panels of W_ih^T and
    W_hh^T; bias (H,) = b_ih + b_hh (empty with a table); h0 (B, H); resets (T, B); fills
    h_prev (B, T, H) with the state entering each step and y (T, B, H) with the outputs
    (the pre-activations first: y's rows of a step are a time-major "gate" row, strides H and
    B*H)."""
    wide_vectors()
    T, B, H = y.shape
    zero = y.dtype.type(0)
    yf, hf = flat(y), flat(h_prev)
    gate_input(x, tokens, table, p_ih, bias, yf, H, B * H, y.reshape(T * B, H), lo, hi)
    for t in range(T):
        load_state(h_prev, t, h0 if t == 0 else y[t - 1], resets[t], lo, hi)
        step_input(tokens, table, yf, H, B * H, t, lo, hi)
        gemm_at(hf, False, (lo * T + t) * H, T * H, 1, p_hh[0], H, yf, (t * B + lo) * H, H,
                hi - lo, True)
        yb = rows(y[t], lo, hi)   # all of this thread's streams at once (y is time-major)
        if act == RELU:
            for j in range(yb.shape[0]):
                a = yb[j]
                yb[j] = zero if a < zero else a  # keeps NaN, like np.maximum
        elif act == TANH:
            for j in range(yb.shape[0]):
                yb[j] = tanh(yb[j])


@njit
def _backward(dy, x, h_prev, p_hh, p_ih, resets, clip, norms, fired, sums, dx, px, ph, t0, act,
              h, dh, da, lo, hi):
    """Streams lo..hi, over the T steps of a cache. dy (T, B, H), or (0, B, H) for zeros; x
    (T, B, D) and h (T, B, H, the outputs) time-major; h_prev stream-major, the cache's steps
    at t0 .. t0 + T (see _common.run_backward); p_hh, p_ih the (one-gate) panels
    of W_hh and W_ih (for d @ W); dh (B, H) the final-state gradient on entry, the
    initial-state gradient on exit; fills da (B, T, 1, H) with the pre-activation gradients,
    dx (T, B, D), and px, ph with the panels of x and h_prev; norms (1, T, B) receives
    ||dL/dh_t|| per stream, or is (1, 0, B) for no recording; fired[t, lo] is set where the
    state clip changed a value at step t; sums[:, 0, 0] (B, H) float64 receives the sum of
    da over time."""
    wide_vectors()
    T, B, H = h.shape
    one, zero = h.dtype.type(1), h.dtype.type(0)
    rec = norms.shape[1] != 0
    do_clip = np.isfinite(clip)
    sums[lo:hi] = 0
    daf, dhf = flat(da), flat(dh)
    for t in range(T - 1, -1, -1):
        for b in range(lo, hi):
            d, hb, dhb = da[b, t, 0], h[t, b], dh[b]
            add_output_gradient(dhb, dy, t, b)
            if rec:
                norms[0, t, b] = norm(dhb)
            if act == RELU:
                for j in range(H):
                    d[j] = dhb[j] * (one if hb[j] > zero else zero)
            elif act == LINEAR:
                for j in range(H):
                    d[j] = dhb[j]
            else:
                for j in range(H):
                    d[j] = dhb[j] * (one - hb[j] * hb[j])
        add_stream_sums(sums, 0, da, t, lo, hi)
        gemm_at(daf, False, (lo * T + t) * H, T * H, 1, p_hh[0], H, dhf, lo * H, H, hi - lo,
                False)
        reset_rows(dh, resets[t], lo, hi)
        if do_clip and clip_inplace(dh, clip, lo, hi):
            fired[t, lo] = True
    if dx.shape[0] != 0:   # (no rows: an embedding folded in, see _common.run_backward)
        gate_product(da, p_ih, dx, False, lo, hi)
        pack_time_major(x, px, lo, hi)
    pack_streams(h_prev, t0, T, ph, lo, hi)


def forward(cell, x, state, resets, fold=None):
    p, dt = cell.params, cell.dtype
    T, B = resets.shape
    D, H = cell.input_size, cell.hidden_size
    h_prev = _common.buffer(cell, "h_prev", (B, T, H), dt)
    y = _common.buffer(cell, "y", (T, B, H), dt)
    act = ACTIVATIONS[cell.nonlinearity]
    h0 = _common.kernel_array(state[0], dt)
    p_ih, p_hh = _common.weight_panels(cell, True)
    bias = input_bias(cell)
    _parallel.run(_forward, B,
                  (*_common.input_arrays(cell, x, fold, bias, p_ih, T, B),
                   p_hh, h0,
                   _common.kernel_array(resets, bool), act, h_prev, y),
                  work=T * B * (D + H) * H)
    final = y[T - 1].copy() if T else h0.copy()
    cache = {**_common.input_cache(x, fold), "h": y, "resets": resets,
             **_common.stream_major_cache(h_prev=h_prev)}
    return y, (final,), cache


def backward(cell, dy, dstate, cache, ctx=None):
    T, B = cache["resets"].shape
    h = _common.kernel_array(cache["h"], cell.dtype)   # time-major, passed as it is
    return _common.run_backward(cell, _backward, dy, dstate, cache, ctx, (),
                                [("da", (B, T, 1, cell.hidden_size))],
                                (ACTIVATIONS[cell.nonlinearity], h))
