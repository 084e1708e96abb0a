"""Boundary helpers (plain numpy) and small compiled helpers shared by the cell kernels.

Everything handed to a compiled kernel is normalised here to the cell's dtype, C order and
writeable, so each kernel compiles once per dtype. Inside kernels, float constants are made
with ``arr.dtype.type(0)``/``(1)``, never as literals: numba types ``1 - y`` and ``0.5 * y`` as
float64 even when ``y`` is float32.

Every matrix product of the built-in parts goes through numba's ``np.dot`` (scipy's BLAS),
never numpy's ``@``: numpy and scipy each bundle their own OpenBLAS, and when both are used in
turn, the idle threads of one spin while the other works, which made training steps several
times slower on a 2-core machine.
"""

import sys

import numpy as np

from .._config import njit


def buffer(owner, name, shape, dtype):
    """A work array of ``owner`` (a part) for ``name``, reused from the previous call when
    nothing else holds that array any more (not the caller, not a cache, not a view), else a
    fresh one. Large fresh arrays cost page faults on first touch (about 2 ms per forward of a
    mid-sized LSTM); a cache that a TBPTT window or the user still keeps is never overwritten,
    because it is still referenced."""
    pool = owner.__dict__.setdefault("_buffers", {})
    a = pool.get(name)
    # references: the pool's, the local name's, getrefcount's argument
    if a is None or a.shape != shape or a.dtype != dtype or sys.getrefcount(a) > 3:
        a = pool[name] = np.empty(shape, dtype=dtype)
    return a


def kernel_array(a, dtype):
    """``a`` as a C-contiguous, writeable array of ``dtype`` (copied only if needed)."""
    return np.require(a, dtype=dtype, requirements=["C", "W"])


def clip_value(ctx, dtype):
    """The state-gradient clip value as a ``dtype`` scalar (inf when clipping is off)."""
    v = np.inf if ctx is None or ctx.state_clip is None else ctx.state_clip
    return dtype.type(v)


def norm_record(ctx, n_states, T, B, dtype):
    """(n_states, T, B) zeros to record state-gradient norms into when ``ctx`` asks for them,
    else an empty (n_states, 0, B) array (the kernels then skip recording)."""
    rec = ctx is not None and ctx.record_state_grads
    return np.zeros((n_states, T if rec else 0, B), dtype=dtype)


def keep_record(cell, ctx, norms):
    if norms.shape[1]:
        ctx.record(cell, tuple(norms))


def run_backward(cell, kernel, dy, dstate, cache, ctx, cached, work, *extra):
    """Prepare the arguments every cell's compiled backward shares, call ``kernel`` and finish
    (clip count, recorded norms). Returns ``(dx, dstate0)``.

    The kernels take, in this order: dy, x, w_ih, w_hh, resets, clip, norms, scratch, the four
    parameter-gradient arrays (weight_ih, weight_hh, bias_ih, bias_hh), dx, then ``*extra``
    (scalars), the cache arrays named in ``cached``, the state-gradient arrays (updated in place
    to the initial state's gradient) and the work arrays ``work`` (a list of (name, shape)).
    """
    resets = cache["resets"]
    T, B = resets.shape
    dt, p, g = cell.dtype, cell.params, cell.grads
    dstate = state_gradient(cell, dstate, B)
    x = kernel_array(cache["x"], dt)
    dx = buffer(cell, "dx", x.shape, dt)
    norms = norm_record(ctx, len(dstate), T, B, dt)
    fired = kernel(output_gradient(cell, dy, T, B), x, p["weight_ih"], p["weight_hh"],
                   kernel_array(resets, bool), clip_value(ctx, dt), norms, weight_scratch(cell),
                   g["weight_ih"], g["weight_hh"], g["bias_ih"], g["bias_hh"], dx, *extra,
                   *(kernel_array(cache[k], dt) for k in cached), *dstate,
                   *(buffer(cell, name, shape, dt) for name, shape in work))
    count_fired(ctx, fired)
    keep_record(cell, ctx, norms)
    return dx, dstate


def count_fired(ctx, fired):
    if ctx is not None and ctx.state_clip is not None:
        ctx.state_clip_fired += int(fired)


def output_gradient(cell, dy, T, B):
    """dy as a (T, B, H) kernel array, or an empty (0, B, H) array standing for zeros."""
    H = cell.hidden_size
    if dy is None:
        return np.zeros((0, B, H), dtype=cell.dtype)
    dy = np.asarray(dy)
    if dy.shape != (T, B, H):
        raise ValueError(f"{cell!r}: expected an output gradient of shape {(T, B, H)}, "
                         f"got {dy.shape}")
    return kernel_array(dy, cell.dtype)


def state_gradient(cell, dstate, B):
    """Fresh (B, n) arrays, one per state array, holding dstate (zeros if None)."""
    want = cell.initial_state(B)
    if dstate is None:
        return want
    if len(dstate) != len(want):
        raise ValueError(f"{cell!r}: expected a state gradient of {len(want)} arrays, "
                         f"got {len(dstate)}")
    out = []
    for i, (d, w) in enumerate(zip(dstate, want)):
        d = np.asarray(d)
        if d.shape != w.shape:
            raise ValueError(f"{cell!r}: expected dstate[{i}] of shape {w.shape}, got {d.shape}")
        out.append(np.array(d, dtype=cell.dtype, order="C"))
    return tuple(out)


@njit
def load_state(dst, src, reset):
    """dst[b] = src[b], or zeros where reset[b] (the state entering a step)."""
    zero = dst.dtype.type(0)
    B, H = dst.shape
    for b in range(B):
        if reset[b]:
            for j in range(H):
                dst[b, j] = zero
        else:
            for j in range(H):
                dst[b, j] = src[b, j]


@njit
def reset_rows(d, reset):
    """Zero the rows of d where reset is true (no gradient crosses a reset)."""
    zero = d.dtype.type(0)
    B, H = d.shape
    for b in range(B):
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
def clip_inplace(d, v):
    """Clip d elementwise to [-v, v] in place; True if any element changed (NaN is kept)."""
    changed = False
    B, H = d.shape
    for b in range(B):
        for j in range(H):
            e = d[b, j]
            if e > v:
                d[b, j] = v
                changed = True
            elif e < -v:
                d[b, j] = -v
                changed = True
    return changed


@njit
def matmul_acc(a, b, out, scratch):
    """out += a @ b (2-D, any of C/F layouts); one GEMM into ``scratch`` (1-D, at least
    out.size long)."""
    tmp = scratch[:out.size].reshape(out.shape)
    np.dot(a, b, tmp)
    out += tmp


@njit
def column_sums(a, out1, out2):
    """Add the column sums of a (N, G) to out1 and, if out2 has entries, to out2; the sums are
    accumulated in float64."""
    acc = np.zeros(a.shape[1])
    for r in range(a.shape[0]):
        row = a[r]
        for j in range(a.shape[1]):
            acc[j] += row[j]
    for j in range(a.shape[1]):
        out1[j] += acc[j]
    for j in range(out2.shape[0]):
        out2[j] += acc[j]


@njit
def recurrent_product(h, w_hh, out):
    """out = h @ W_hh^T for h (B, H), W_hh (G*H, H); a matrix-vector product when B = 1."""
    if h.shape[0] == 1:
        np.dot(w_hh, h[0], out[0])
    else:
        np.dot(h, w_hh.T, out)


@njit
def recurrent_gradient(da, w_hh, out):
    """out = da @ W_hh for da (B, G*H), W_hh (G*H, H); a matrix-vector product when B = 1."""
    if da.shape[0] == 1:
        np.dot(da[0], w_hh, out[0])
    else:
        np.dot(da, w_hh, out)


def weight_scratch(cell):
    """Scratch for :func:`weight_gradients`: as large as the larger weight matrix."""
    size = max(cell.params["weight_ih"].size, cell.params["weight_hh"].size)
    return buffer(cell, "weight_scratch", (size,), cell.dtype)


@njit
def weight_gradients(da_i, da_h, x, h_prev, w_ih, g_w_ih, g_w_hh, g_b_ih, g_b_hh, dx, scratch):
    """After the time loop, for all T steps at once: add dW_ih = da_i^T x, dW_hh = da_h^T h_prev
    (one GEMM each) and the bias gradients, and set dx = da_i W_ih. da_i, da_h (T, B, G*H) are
    the gradients of the input-side and recurrent-side pre-activations (the same array except
    in the GRU), x (T, B, D), h_prev (T, B, H); scratch from :func:`weight_scratch`."""
    T, B, G = da_i.shape
    ai, ah = da_i.reshape(T * B, G), da_h.reshape(T * B, G)
    matmul_acc(ai.T, x.reshape(T * B, x.shape[2]), g_w_ih, scratch)
    matmul_acc(ah.T, h_prev.reshape(T * B, h_prev.shape[2]), g_w_hh, scratch)
    if da_i is da_h:
        column_sums(ai, g_b_ih, g_b_hh)
    else:
        column_sums(ai, g_b_ih, g_b_ih[:0])
        column_sums(ah, g_b_hh, g_b_hh[:0])
    np.dot(ai, w_ih, dx.reshape(T * B, dx.shape[2]))
