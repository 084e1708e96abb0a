"""Boundary helpers (plain numpy) and compiled helpers shared by the cell kernels.

Everything handed to a compiled kernel is normalised here to the cell's dtype, C order and
writeable, so each kernel compiles once per dtype. Inside kernels, float constants are made
with ``arr.dtype.type(0)``/``(1)``, never as literals: numba types ``1 - y`` and ``0.5 * y`` as
float64 even when ``y`` is float32.

Threads. Every cell kernel works on a range ``lo:hi`` of the batch streams (the last two
arguments) and runs in parallel over the streams (:mod:`bptt._parallel`): a forward or
backward pass is one parallel call of the time loop, plus one for the weight gradients.

Stream-major layout. What a kernel keeps per step for the backward (the cache: activated
gates (B, T, G, H), the states h_prev, c_prev... (B, T, H)) and the pre-activation gradients
``da`` (B, T, G, H) are laid out stream by stream, so that a thread's streams lo..hi are one
block of memory of their own through all T steps. Time-major, (T, G, B, H), each step's
(B, H) slabs held both threads' rows side by side in the same pages, and the two threads
writing them at every step made the small LSTM's time loops 1.2-1.35 times as slow as one
half of the streams alone (stream-major: 1.1-1.2, against 1.05-1.1 for two problems of half
the streams side by side). The caches hold time-major *views* of
these arrays (time on axis 0, see bptt.module), which :func:`stream_major` turns back; the
layer outputs y and the inputs x stay time-major. Within a step the G gate blocks of a
stream are adjacent (LSTM i, f, g, o; GRU r, z, n); weights are packed gate block by gate
block. Sums over the T*B positions (the weight gradients) run in the order of the positions
b*T + t.

Matrix products. All of them go through :mod:`bptt._kernels.gemm` on weights packed once per
call (no BLAS: a multi-threaded BLAS spins its own threads between calls, which starves the
kernels' threads, and packs its operands again at every step).
"""

import functools
import sys

import numpy as np

from .. import _parallel
from .._config import njit
from .._memory import aligned_empty
from .gemm import flat, gemm, gemm_at, gemm_k, pack, pack_range, pack_rows, packed_shape


PACK_WORK = 25   # multiply-add equivalents of packing one element (for bptt._parallel.run)


def buffer(owner, name, shape, dtype):
    """A work array of ``owner`` (a part) for ``name``, page-aligned (bptt._memory), reused
    from the previous call when nothing else holds that array any more (not the caller, not a
    cache, not a view), else a fresh one. Large fresh arrays cost page faults on first touch
    (about 2 ms per forward of a mid-sized LSTM); a cache that a TBPTT window or the user still
    keeps is never overwritten, because it is still referenced."""
    try:
        pool = owner.__dict__["_buffers"]
    except KeyError:
        pool = owner.__dict__["_buffers"] = {}
    a = pool.get(name)
    # references to a: the pool's, the local name's, getrefcount's argument; views of a refer
    # to the memory's owner instead, a.base when a is aligned (see bptt._memory): then held
    # by a and by getrefcount's argument alone
    if (a is not None and a.shape == shape and a.dtype == dtype and sys.getrefcount(a) <= 3
            and (a.base is None or sys.getrefcount(a.base) <= 2)):
        return a
    a = pool[name] = aligned_empty(shape, dtype)
    return a


@functools.lru_cache(maxsize=256)
def nothing(shape, dtype):
    """A zero-size array of ``shape`` (some dimension 0) and ``dtype``, made once: what the
    kernels take for "none" (no tokens, no recording, zeros). With no elements it is never
    written, so every call may share it (making one costs as much as a small kernel's
    argument checks)."""
    return np.zeros(shape, dtype)


def kernel_array(a, dtype):
    """``a`` as a C-contiguous, writeable array of ``dtype`` (copied only if needed)."""
    if (type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous
            and a.flags.writeable):
        return a
    return np.require(a, dtype=dtype, requirements=["C", "W"])


def time_major(a):
    """The time-major view (T, B, H) or (T, G, B, H) of a stream-major array (B, T, H) or
    (B, T, G, H): what a cache holds (no copy)."""
    return a.transpose(1, 0, 2) if a.ndim == 3 else a.transpose(1, 2, 0, 3)


def stream_major(a, dtype):
    """The stream-major kernel array of a cache's time-major array (the inverse of
    :func:`time_major`): no copy for a whole cache of the kernels, a copy for a slice of one
    in time or any other layout."""
    return kernel_array(_streams_first(a), dtype)


def _streams_first(a):
    return a.transpose(1, 0, 2) if a.ndim == 3 else a.transpose(2, 0, 1, 3)


def stream_major_cache(**arrays):
    """The cache entries of a kernel's stream-major arrays: each name's time-major view (cut
    in time like any cache entry) and, under "stream_major", a tuple of (name, array, view)
    (metadata to bptt.module.slice_cache: never cut), from which :func:`stream_major_window`
    finds the arrays again."""
    views = {k: time_major(a) for k, a in arrays.items()}
    return {**views, "stream_major": tuple((k, a, views[k]) for k, a in arrays.items())}


def stream_major_window(cache, names, dtype):
    """``(arrays, t0)``: stream-major kernel arrays for the cache's time-major arrays
    ``names``, and the step of those arrays at which the cache starts. A whole cache still
    holds the views :func:`stream_major_cache` made (t0 = 0, told by identity: this runs at
    every backward). A cache cut in time (a TBPTT window, one step:
    :func:`bptt.module.slice_cache`) holds views of the same arrays; the backward takes those
    whole and reads their steps t0 .. t0 + T (no copy: a window's copy cost 7-9% of a step at
    k2 < k1). Anything else (arrays replaced or copied) is copied to stream-major (t0 = 0)."""
    whole = {k: (a, v) for k, a, v in cache.get("stream_major", ())}
    if not all(k in whole for k in names):
        return [stream_major(cache[k], dtype) for k in names], 0
    pairs = [whole[k] for k in names]
    if all(cache[k] is v and a.dtype == dtype for k, (a, v) in zip(names, pairs)):
        return [a for a, _ in pairs], 0
    T = cache["resets"].shape[0]
    out, t0 = [], None
    for k, (s, _) in zip(names, pairs):
        v = cache[k]
        if not (type(v) is np.ndarray and s.dtype == dtype and s.flags.c_contiguous
                and s.flags.writeable and s.ndim == v.ndim):
            break
        back = _streams_first(v)
        if not (back.strides == s.strides and back.shape[0] == s.shape[0]
                and back.shape[2:] == s.shape[2:]):
            break
        off = back.__array_interface__["data"][0] - s.__array_interface__["data"][0]
        t, rem = divmod(off, s.strides[1])
        if rem or t < 0 or t + T > s.shape[1] or (t0 is not None and t != t0):
            break
        out.append(s)
        t0 = t
    else:
        return out, (t0 or 0)
    return [stream_major(cache[k], dtype) for k in names], 0


def packed(owner, name, m, trans):
    """The panels (:func:`bptt._kernels.gemm.pack`) of ``m`` (K, N), or of ``m.T`` if
    ``trans``, in a work array of ``owner``."""
    K, N = (m.shape[1], m.shape[0]) if trans else m.shape
    p = buffer(owner, name, packed_shape(K, N, m.dtype), m.dtype)
    _parallel.run(pack, p.shape[0], (m, trans, p), work=m.size * PACK_WORK)
    return p


def weight_panels(cell, trans):
    """(p_ih, p_hh): the panels of each gate block w[k*H:(k+1)*H] of W_ih and W_hh (G*H, K),
    packed in one parallel call: of the block transposed (K, H) if ``trans`` (for x @ W^T),
    else of the block (H, K) (for d @ W). Each of shape (G, ceil(N / L), K', L)."""
    p, G, dt = cell.params, cell.gates, cell.dtype
    out = []
    for name in ("weight_ih", "weight_hh"):
        w = p[name]
        H, K = w.shape[0] // G, w.shape[1]
        shape = (G,) + (packed_shape(K, H, dt) if trans else packed_shape(H, K, dt))
        out.append(buffer(cell, ("p_" if trans else "pb_") + name, shape, dt))
    w_ih, w_hh = p["weight_ih"], p["weight_hh"]
    cost = G * (out[0].shape[1] * out[0].shape[2] + out[1].shape[1] * out[1].shape[2])
    _parallel.run(pack_gates_two, cost, (w_ih, w_hh, trans, *out),
                  work=(w_ih.size + w_hh.size) * PACK_WORK)
    return tuple(out)


@njit
def pack_gates_two(w1, w2, trans, p1, p2, lo, hi):
    """The share lo..hi of packing the gate panels p1 of w1 and then p2 of w2, counted in rows
    of sub-panels (a sub-panel of p1 counts K1 = p1.shape[2], one of p2 K2), so that threads
    get equal work whatever K1 and K2: a sub-panel goes to the share its first row falls in."""
    n1, k1 = p1.shape[0] * p1.shape[1], p1.shape[2]
    n2, k2 = p2.shape[0] * p2.shape[1], p2.shape[2]
    a, b = min(-(-lo // k1), n1), min(-(-hi // k1), n1)
    if a < b:
        pack_gates(w1, trans, p1, a, b)
    lo2, hi2 = max(lo - n1 * k1, 0), max(hi - n1 * k1, 0)
    a, b = min(-(-lo2 // k2), n2), min(-(-hi2 // k2), n2)
    if a < b:
        pack_gates(w2, trans, p2, a, b)


@njit
def pack_gates(w, trans, p, lo, hi):
    """Sub-panels lo..hi (counted over all gates, gate-major) of the gate panels p of w."""
    G, nsub = p.shape[0], p.shape[1]
    H = w.shape[0] // G
    for i in range(lo, hi):
        k, s = divmod(i, nsub)
        pack(w[k * H:(k + 1) * H], trans, p[k], s, s + 1)


def clip_value(ctx, dtype):
    """The state-gradient clip value as a ``dtype`` scalar (inf when clipping is off)."""
    v = np.inf if ctx is None or ctx.state_clip is None else ctx.state_clip
    return dtype.type(v)


def norm_record(ctx, n_states, T, B, dtype):
    """(n_states, T, B) zeros to record state-gradient norms into when ``ctx`` asks for them,
    else an empty (n_states, 0, B) array (the kernels then skip recording)."""
    if ctx is not None and ctx.record_state_grads:
        return np.zeros((n_states, T, B), dtype=dtype)
    return nothing((n_states, 0, B), dtype)


def input_bias(cell, out=None):
    """The bias of the cell's input projection, b_ih + b_hh (G*H,), into ``out`` if given
    (the Elman's and the LSTM's; the GRU's is bptt._kernels.gru.input_bias)."""
    return np.add(cell.params["bias_ih"], cell.params["bias_hh"], out=out)


def input_arrays(cell, x, fold, bias, p_ih, T, B):
    """``(x, tokens, table, p_ih, bias)`` for a forward kernel (see :func:`gate_input`): the
    input and the gate panels p_ih of W_ih^T; or, with ``fold = (tokens, embedding)``, an empty
    x, the tokens and the table (G, V, H) = embedding.weight @ W_ih^T + bias, whose rows
    replace the input projection of each token (then bias is returned empty: it is in the
    table). ``bias`` (G*H,) is what the input projection adds."""
    dt, G = cell.dtype, cell.gates
    if fold is None:
        return x, nothing((0, 0), np.int64), nothing((0, 0, 0), dt), p_ih, bias
    tokens, emb = fold
    w = kernel_array(emb.params["weight"], dt)
    V, H = w.shape[0], cell.hidden_size
    table = buffer(cell, "table", (G, V, H), dt)
    _parallel.run(gate_table, V, (w, p_ih, bias, table), work=w.size * G * H)
    return (nothing((0, B, cell.input_size), dt), kernel_array(tokens, np.int64), table, p_ih,
            bias[:0])


@njit
def gate_table(w, p_ih, bias, table, lo, hi):
    """Rows lo..hi of table[k] = w @ W_ih[k block]^T + bias[k block], for every gate k."""
    G, V, H = table.shape
    for k in range(G):
        gemm(w, False, p_ih[k], H, table[k], lo, hi, False)
        bk = bias[k * H:(k + 1) * H]
        for v in range(lo, hi):
            row = table[k, v]
            for j in range(H):
                row[j] += bk[j]


def input_cache(x, fold):
    """The cache entries of the input: x, or the tokens and the embedding folded in."""
    return {"x": x} if fold is None else {"tokens": fold[0], "embedding": fold[1]}


@njit
def gate_input(x, tokens, table, p_ih, bias, out, sb, st, scratch, lo, hi):
    """The input projection of gate k for stream b at step t, x[t, b] @ W_ih[k block]^T +
    bias[k block], into ``out`` (flat) at b*sb + t*st + k*H (the G gate blocks of a stream's
    step adjacent: stream-major gates (B, T, G, H) have sb = T*G*H, st = G*H), for every t
    and gate (p_ih the gate panels of W_ih^T, (G, ., ., .)). With all the streams on this
    thread, one product over the T*B rows per gate, into ``scratch`` (T*B, H) (the kernel's
    output array: not yet filled), then into place: a product per step would read the
    weights again at every step (at B = 1 that was most of a forward). With an embedding
    folded in (tokens (T, B) not empty) it does nothing: :func:`step_input` fills each
    step's rows instead."""
    T, B, D = x.shape
    G, H = p_ih.shape[0], scratch.shape[1]
    if tokens.shape[0] != 0:
        return
    if lo == 0 and hi == B:
        xs = x.reshape(T * B, D)
        for k in range(G):
            gemm(xs, False, p_ih[k], H, scratch, 0, T * B, False)
            bk = bias[k * H:(k + 1) * H]
            for t in range(T):
                for b in range(B):
                    src, o = scratch[t * B + b], b * sb + t * st + k * H
                    dst = out[o:o + H]
                    for j in range(H):
                        dst[j] = src[j] + bk[j]
        return
    xf = x.reshape(x.size)
    for t in range(T):
        for k in range(G):
            gemm_at(xf, False, (t * B + lo) * D, D, 1, p_ih[k], H, out, lo * sb + t * st + k * H,
                    sb, hi - lo, False)
            bk = bias[k * H:(k + 1) * H]
            for b in range(lo, hi):
                o = b * sb + t * st + k * H
                row = out[o:o + H]
                for j in range(H):
                    row[j] += bk[j]


@njit
def step_input(tokens, table, out, sb, st, t, lo, hi):
    """With an embedding folded in (tokens (T, B) not empty): the rows of step t of the
    streams lo..hi in ``out`` (laid out as for :func:`gate_input`) = table[k, tokens[t, b]]
    for every gate k (table (G, V, H), bias included): the same numbers as gate_input's, as
    the product of an embedded token is its table row. Done step by step, just before the
    step's recurrent product adds to them, so that they are still in cache then (filled for
    all T steps first, they were not). Does nothing without tokens."""
    if tokens.shape[0] == 0:
        return
    G, H = table.shape[0], table.shape[2]
    for b in range(lo, hi):
        v = tokens[t, b]
        for k in range(G):
            o = b * sb + t * st + k * H
            src, dst = table[k, v], out[o:o + H]
            for j in range(H):
                dst[j] = src[j]


@njit(inline="always")   # a view returned from a call needs numba's runtime (see _config)
def rows(a2, lo, hi):
    """The rows lo..hi of a 2-D C array as one flat 1-D view."""
    n = a2.shape[1]
    return a2.reshape(a2.shape[0] * n)[lo * n:hi * n]


@njit
def gate_product(da, p, out, acc, lo, hi):
    """out[t, b] (+)= sum over gates k of da[b, t, k] @ M_k for the streams b in lo..hi and
    every t: da (B, T, G, H) stream-major, p the gate panels of the M_k (H, N), out (T, B, N)
    time-major (dx): per stream, one product of its T rows per gate."""
    B, T, G, H = da.shape
    N = out.shape[2]
    d, o = flat(da), flat(out)
    for b in range(lo, hi):
        for k in range(G):
            gemm_at(d, False, (b * T * G + k) * H, G * H, 1, p[k], N, o, b * N, B * N, T,
                    acc or k > 0)


def run_backward(cell, kernel, dy, dstate, cache, ctx, cached, work, extra=(), dah=None):
    """Prepare the arguments every cell's compiled backward shares, run ``kernel`` over the
    streams in parallel, then the weight gradients. Returns ``(dx, dstate0)``; with an
    embedding folded in (the cache holds "tokens"), dx is None and the embedding's weight
    gradient is added instead.

    The kernels take, in this order: dy, x (time-major), h_prev (stream-major, from the
    cache), p_hh and p_ih (the gate panels of W_hh and W_ih), resets, clip, norms, fired
    (T, B) flags of the state clip, sums (B, S, G, H) float64 (each stream's sum over time of
    the pre-activation gradients, for the biases; see :func:`add_stream_sums`), dx, px and ph
    (filled with the panels of x and h_prev in the order of the positions b*T + t, for the
    weight gradients; with an embedding folded in, x, dx and px have no rows and px is left
    alone), t0 (the stream-major arrays' step at which the T steps of the cache start: see
    :func:`stream_major_window`), then ``extra`` (scalars, or arrays passed as they are), the
    stream-major cache arrays named in ``cached``, the state-gradient arrays (updated in place
    to the initial state's gradient), the work arrays ``work`` (a list of (name, shape),
    indexed by the cache's steps 0..T) and lo, hi. The first work array is the gradient of
    the pre-activations (B, T, G, H) that the weight gradients of W_ih and b_ih are made of;
    ``dah`` names another work array for those of W_hh and b_hh (the GRU's; then S = 2),
    else the same one serves (S = 1).
    """
    resets = cache["resets"]
    T, B = resets.shape
    dt, g, G = cell.dtype, cell.grads, cell.gates
    H, D = cell.hidden_size, cell.input_size
    GH = G * H
    dstate = state_gradient(cell, dstate, B)
    (h_prev, *stored), t0 = stream_major_window(cache, ("h_prev",) + tuple(cached), dt)
    norms = norm_record(ctx, len(dstate), T, B, dt)
    fired = np.zeros((T, B), dtype=bool)
    sums = buffer(cell, "sums", (B, 1 if dah is None else 2, G, H), np.float64)
    ph = buffer(cell, "ph", packed_shape(T * B, H, dt), dt)
    p_ih, p_hh = weight_panels(cell, False)
    folded = "tokens" in cache
    if folded:
        emb = cache["embedding"]
        x = dx = nothing((0, B, D), dt)
        px = packed(cell, "px", kernel_array(emb.params["weight"], dt), False)
        tokens = np.ascontiguousarray(cache["tokens"].T, np.int64).reshape(-1)  # b*T + t
        d_table = buffer(cell, "d_table", (G, px.shape[1], H), dt)
    else:
        x = kernel_array(cache["x"], dt)
        dx = buffer(cell, "dx", x.shape, dt)
        px = buffer(cell, "px", packed_shape(T * B, D, dt), dt)
        tokens, d_table = nothing((0,), np.int64), nothing((0, 0, 0), dt)
    arrays = {name: buffer(cell, name, shape, dt) for name, shape in work}
    _parallel.run(kernel, B,
                  (output_gradient(cell, dy, T, B), x, h_prev,
                   p_hh, p_ih,
                   kernel_array(resets, bool), clip_value(ctx, dt), norms, fired, sums, dx, px,
                   ph, t0, *extra, *stored, *dstate,
                   *arrays.values()),
                  work=T * B * GH * (D + H))
    da = arrays[work[0][0]].reshape(B * T, GH)
    da_h = da if dah is None else arrays[dah].reshape(B * T, GH)
    weights = GH * (H + (0 if folded else D))
    wg_work = T * B * weights
    # the entries each share sums: the weights' and, with an embedding folded in, the table's
    shares = weight_grad_shares(T * B, weights + d_table.size)
    if shares > 1:
        part_hh = buffer(cell, "part_hh", (shares, GH, H), dt)
        part_ih = buffer(cell, "part_ih", (shares, GH, 0 if folded else D), dt)
        part_table = buffer(cell, "part_table", (shares,) + d_table.shape, dt)
        _parallel.run(weight_gradient_shares, shares,
                      (da, da_h, px, ph, tokens, part_hh, part_ih, part_table), work=wg_work)
        _parallel.run(weight_gradient_add, GH,
                      (part_hh, part_ih, part_table, d_table, g["weight_ih"], g["weight_hh"],
                       sums, g["bias_ih"], g["bias_hh"]),
                      work=shares * (weights + d_table.size))
    else:
        _parallel.run(weight_gradients, GH,
                      (da, da_h, px, ph, D, tokens, d_table, g["weight_ih"], g["weight_hh"],
                       sums, g["bias_ih"], g["bias_hh"]), work=wg_work)
    if folded:
        V = d_table.shape[1]
        _parallel.run(embedding_gradients, V,
                      (d_table, p_ih, px, D, g["weight_ih"], emb.grads["weight"]),
                      work=2 * V * GH * D)
    if ctx is not None and ctx.state_clip is not None:
        ctx.state_clip_fired += int(fired.any(axis=1).sum())
    if norms.shape[1]:
        ctx.record(cell, tuple(norms))
    return (None if folded else dx), dstate


@njit
def weight_gradients(da, da_h, px, ph, D, tokens, d_table, g_w_ih, g_w_hh, sums, g_b_ih,
                     g_b_hh, lo, hi):
    """Rows lo..hi (of G*H) of the weight gradients, from all N = T*B positions at once:
    dW_hh += da_h^T h_prev and dW_ih += da^T x. da, da_h (N, G*H), the positions in the
    order b*T + t; px, ph the panels of x (N, D) and h_prev (N, H) in the same order. The
    biases: g_b_ih, g_b_hh (G*H,) += the sums over the streams of sums[:, 0] and sums[:, -1]
    (B, S, G, H) float64, in stream order, rounded to the biases' dtype. With an embedding
    folded in (tokens (N,) not empty, in the same order) dW_ih is left to
    :func:`embedding_gradients`; instead the rows of d_table (G, V, H) for the matching share
    of the tokens are set to the sums of da by token."""
    N, GH = da.shape
    bias_gradients(sums, g_b_ih, g_b_hh, lo, hi)
    gemm(da_h, True, ph, g_w_hh.shape[1], g_w_hh, lo, hi, True)
    if tokens.shape[0] == 0:
        gemm(da, True, px, D, g_w_ih, lo, hi, True)
        return
    V = d_table.shape[1]
    token_sums(da, tokens, 0, N, d_table, lo * V // GH, hi * V // GH)


@njit
def token_sums(da, tokens, n0, n1, table, v0, v1):
    """Rows v0..v1 of table (G, V, H) = the sums of the gate gradients da[n] (G*H,) over the
    positions n in n0..n1, in order, whose token (tokens (N,)) is v; the other rows are left
    alone."""
    G, H = table.shape[0], table.shape[2]
    for k in range(G):
        for v in range(v0, v1):
            table[k, v] = 0
    for n in range(n0, n1):
        v = tokens[n]
        if v0 <= v < v1:
            for k in range(G):
                src, dst = da[n, k * H:(k + 1) * H], table[k, v]
                for j in range(H):
                    dst[j] += src[j]


SHARE_ROWS = 128          # fewest positions of a share of the weight gradients' sums
MAX_SHARES = 4
MAX_SHARED_WEIGHTS = 1 << 16


def weight_grad_shares(n, entries):
    """Into how many runs of its n rows (positions) the sum of a weight gradient is cut (1:
    not cut, the threads split the gradient's rows instead), for sums of ``entries`` entries
    in all (the weights', and a folded embedding's table). Cut when they are small (up to
    2^16 entries, each share's partial sums one more copy of them): there, split by the
    gradient's rows, every thread read all of the n rows of an operand (a Dense layer's dy
    and x; a cell's h_prev panels and, for a folded embedding's table, all of the gate
    gradients), half of them in the other core's cache. Depends on the shapes alone, so the
    sums are grouped the same way whatever the number of threads."""
    if entries > MAX_SHARED_WEIGHTS:
        return 1
    return max(1, min(MAX_SHARES, n // SHARE_ROWS))


@njit
def weight_gradient_shares(da, da_h, px, ph, tokens, part_hh, part_ih, part_table, lo, hi):
    """Shares lo..hi of :func:`weight_gradients`' sums over the N = T*B positions (in its
    order), cut into part_hh.shape[0] equal runs: for run c, part_hh[c] (G*H, H) = da_h^T
    h_prev and part_ih[c] (G*H, D) the same of da and x (no columns with an embedding folded
    in), or, with one folded in (tokens (N,) not empty), part_table[c] (G, V, H) = the sums
    of da by token, all over run c only."""
    N, GH = da.shape
    shares = part_hh.shape[0]
    H, D = part_hh.shape[2], part_ih.shape[2]
    folded = tokens.shape[0] != 0
    for c in range(lo, hi):
        n0, n1 = c * N // shares, (c + 1) * N // shares
        gemm_k(da_h, True, ph, H, part_hh[c], 0, GH, False, n0, n1)
        if not folded:
            gemm_k(da, True, px, D, part_ih[c], 0, GH, False, n0, n1)
        else:
            token_sums(da, tokens, n0, n1, part_table[c], 0, part_table.shape[2])


@njit
def add_shares(row, parts, r):
    """row += parts[c, r] for each share c in order (row and parts[c, r] of one length)."""
    for c in range(parts.shape[0]):
        p = parts[c, r]
        for j in range(row.shape[0]):
            row[j] += p[j]


@njit
def weight_gradient_add(part_hh, part_ih, part_table, d_table, g_w_ih, g_w_hh, sums, g_b_ih,
                        g_b_hh, lo, hi):
    """Rows lo..hi (of G*H) of the weight gradients += the shares of
    :func:`weight_gradient_shares`, added in order, and the biases (see
    :func:`bias_gradients`); with an embedding folded in, the matching share of d_table's
    rows set to the sum of the shares' tables."""
    shares, GH, H = part_hh.shape
    D = part_ih.shape[2]
    bias_gradients(sums, g_b_ih, g_b_hh, lo, hi)
    for r in range(lo, hi):
        add_shares(g_w_hh[r], part_hh, r)
        if D != 0:
            add_shares(g_w_ih[r], part_ih, r)
    G, V = d_table.shape[0], d_table.shape[1]
    if V == 0:
        return
    v0, v1 = lo * V // GH, hi * V // GH
    for k in range(G):
        for v in range(v0, v1):
            dst = d_table[k, v]
            for c in range(shares):
                src = part_table[c, k, v]
                for j in range(H):
                    dst[j] = src[j] if c == 0 else dst[j] + src[j]


@njit
def bias_gradients(sums, g_b_ih, g_b_hh, lo, hi):
    """g_b_ih[r], g_b_hh[r] += the sums over the streams of sums[:, 0] and sums[:, -1]
    (B, S, G, H) float64 at r = k*H + j, for r in lo..hi: in stream order (numpy's order for
    that axis), rounded to the biases' dtype."""
    B, S, H = sums.shape[0], sums.shape[1], sums.shape[3]
    for r in range(lo, hi):
        k, j = divmod(r, H)
        s_ih = s_hh = 0.0
        for b in range(B):
            s_ih += sums[b, 0, k, j]
            s_hh += sums[b, S - 1, k, j]
        g_b_ih[r] += g_b_ih.dtype.type(s_ih)
        g_b_hh[r] += g_b_hh.dtype.type(s_hh)


@njit
def embedding_gradients(d_table, p_ih, p_emb, D, g_w_ih, g_emb, lo, hi):
    """With an embedding folded in: rows lo..hi of d embedding.weight += sum over gates k of
    d_table[k] @ W_ih[k block], and the matching share of the rows of
    dW_ih[k block] += d_table[k]^T embedding.weight. d_table (G, V, H); p_ih the gate panels
    of W_ih (for d @ W); p_emb the panels of embedding.weight (V, D)."""
    G, V, H = d_table.shape
    for k in range(G):
        gemm(d_table[k], False, p_ih[k], D, g_emb, lo, hi, True)
    r0, r1 = lo * G * H // V, hi * G * H // V
    for k in range(G):
        a, b = max(r0, k * H), min(r1, (k + 1) * H)
        if a < b:
            gemm(d_table[k], True, p_emb, D, g_w_ih[k * H:(k + 1) * H], a - k * H, b - k * H,
                 True)


@njit
def add_stream_sums(sums, s, da, t, lo, hi):
    """sums[b, s] += da[b, t] (G, H) for the streams b in lo..hi: sums (B, S, G, H) float64,
    da (B, T, G, H). Stream-major like the caches (see the module docstring): laid out
    (S, G, B, H), each thread's rows of every (B, H) slab had the other thread's rows in the
    next page, and that alone slowed the small LSTM's backward by 10-15%."""
    for b in range(lo, hi):
        acc, src = flat(sums[b, s]), flat(da[b, t])
        for j in range(acc.shape[0]):
            acc[j] += src[j]


@njit
def column_sums(a, lo, hi, out, acc):
    """out[lo:hi] += the sums of columns lo..hi of a (N, G), accumulated in float64 in
    acc[lo:hi] (scratch)."""
    acc = acc[lo:hi]
    acc[:] = 0
    for r in range(a.shape[0]):
        row = a[r, lo:hi]
        for j in range(hi - lo):
            acc[j] += row[j]
    for j in range(hi - lo):
        out[lo + j] += acc[j]


@njit
def pack_streams(m, t0, T, p, lo, hi):
    """The positions b*T + t of the streams lo..hi (steps t0 + t, t < T, of m (B, Tm, N),
    stream-major) into the panels p of the (B*T, N) matrix they make: one run of rows per
    stream, one run per thread for a whole m."""
    B, Tm, N = m.shape
    if t0 == 0 and T == Tm:
        pack_range(m.reshape(B * T, N), p, lo * T, hi * T)
        return
    mf = flat(m)
    for b in range(lo, hi):
        pack_rows(mf, (b * Tm + t0) * N, N, T, N, p, b * T)


@njit
def pack_time_major(x, p, lo, hi):
    """The same for x (T, B, N) time-major: row b*T + t of the panels p is x[t, b]."""
    T, B, N = x.shape
    xf = flat(x)
    for b in range(lo, hi):
        pack_rows(xf, b * N, B * N, T, N, p, b * T)


def output_gradient(cell, dy, T, B):
    """dy as a (T, B, H) kernel array, or an empty (0, B, H) array standing for zeros."""
    H = cell.hidden_size
    if dy is None:
        return nothing((0, B, H), cell.dtype)
    dy = np.asarray(dy)
    if dy.shape != (T, B, H):
        raise ValueError(f"{cell!r}: expected an output gradient of shape {(T, B, H)}, "
                         f"got {dy.shape}")
    return kernel_array(dy, cell.dtype)


def state_gradient(cell, dstate, B):
    """(B, n) work arrays of ``cell``, one per state array, holding dstate (zeros if None);
    the kernels update them in place into the gradient of the entering state."""
    sizes = cell.state_sizes
    if dstate is not None and len(dstate) != len(sizes):
        raise ValueError(f"{cell!r}: expected a state gradient of {len(sizes)} arrays, "
                         f"got {len(dstate)}")
    out = []
    for i, n in enumerate(sizes):
        a = buffer(cell, ("dstate", i), (B, n), cell.dtype)
        if dstate is None:
            a.fill(0)
        else:
            d = np.asarray(dstate[i])
            if d.shape != a.shape:
                raise ValueError(f"{cell!r}: expected dstate[{i}] of shape {a.shape}, "
                                 f"got {d.shape}")
            a[...] = d
        out.append(a)
    return tuple(out)


@njit
def load_state(dst, t, src, reset, lo, hi):
    """dst[b, t] = src[b], or zeros where reset[b] (the state entering step t), b in lo..hi:
    dst (B, T, H) stream-major, src (B, H)."""
    zero = dst.dtype.type(0)
    H = dst.shape[2]
    for b in range(lo, hi):
        d = dst[b, t]
        if reset[b]:
            for j in range(H):
                d[j] = zero
        else:
            s = src[b]
            for j in range(H):
                d[j] = s[j]


@njit
def add_output_gradient(dhb, dy, t, b):
    """dhb += dy[t, b]: the output gradient of stream b at step t into its state gradient
    (dy (T, B, H), or (0, B, H) for zeros: nothing to add)."""
    if dy.shape[0] != 0:
        src = dy[t, b]
        for j in range(dhb.shape[0]):
            dhb[j] += src[j]


@njit
def reset_rows(d, reset, lo, hi):
    """Zero the rows lo..hi of d where reset is true (no gradient crosses a reset)."""
    zero = d.dtype.type(0)
    H = d.shape[1]
    for b in range(lo, hi):
        if reset[b]:
            for j in range(H):
                d[b, j] = zero


@njit
def norm(v):
    """sqrt(sum(v * v)) of a 1-D array, accumulated in float64, returned in v's dtype."""
    total = 0.0
    for j in range(v.shape[0]):
        total += np.float64(v[j]) * np.float64(v[j])
    return v.dtype.type(np.sqrt(total))


@njit
def clip_inplace(d, v, lo, hi):
    """Clip rows lo..hi of d elementwise to [-v, v] in place; True if any element changed
    (NaN is kept)."""
    changed = False
    H = d.shape[1]
    for b in range(lo, hi):
        for j in range(H):
            e = d[b, j]
            if e > v:
                d[b, j] = v
                changed = True
            elif e < -v:
                d[b, j] = -v
                changed = True
    return changed
