"""Boundary helpers (plain numpy) and small compiled helpers shared by the cell kernels.

Everything handed to a compiled kernel is normalised here to the cell's dtype, C order and
writeable, so each kernel compiles once per dtype. Inside kernels, float constants are made
with ``arr.dtype.type(0)``/``(1)`` (and ``one / (one + one)`` for 1/2), never as literals: numba
types ``1 - y`` and ``0.5 * y`` as float64 even when ``y`` is float32.
"""

import numpy as np

from .._config import njit


def kernel_array(a, dtype):
    """``a`` as a C-contiguous, writeable array of ``dtype`` (copied only if needed)."""
    return np.require(a, dtype=dtype, requirements=["C", "W"])


def input_projection(x, weight_ih, bias):
    """``x @ W_ih^T + bias`` for all steps at once: x (T, B, D) -> (T, B, G*H), one GEMM.

    Returns a fresh C-contiguous array (the kernels overwrite it in place)."""
    T, B, D = x.shape
    out = x.reshape(T * B, D) @ weight_ih.T
    out += bias
    return out.reshape(T, B, weight_ih.shape[0])


def clip_value(ctx, dtype):
    """The state-gradient clip value as a ``dtype`` scalar (inf when clipping is off)."""
    v = np.inf if ctx is None or ctx.state_clip is None else ctx.state_clip
    return dtype.type(v)


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


def input_gradients(cell, da, x):
    """Add the gradients of ``weight_ih`` and ``bias_ih`` of all steps (one GEMM) and return
    ``(dx, bias_sum)``: da (T, B, G*H) the gradient of the input pre-activations, x (T, B, D);
    dx (T, B, D) is one GEMM too."""
    T, B, GH = da.shape
    g = cell.grads
    da2 = da.reshape(T * B, GH)
    dx = (da2 @ cell.params["weight_ih"]).reshape(T, B, -1)
    g["weight_ih"] += da2.T @ x.reshape(T * B, -1)
    bias_sum = da2.sum(axis=0)
    g["bias_ih"] += bias_sum
    return dx, bias_sum


def recurrent_gradients(cell, da, h_prev, bias_sum=None):
    """Add the gradients of ``weight_hh`` and ``bias_hh`` of all steps (one GEMM): da (T, B, G*H)
    the gradient of the recurrent pre-activations, h_prev (T, B, H); bias_sum: da summed over
    steps and batch if already known."""
    T, B, GH = da.shape
    g = cell.grads
    da2 = da.reshape(T * B, GH)
    g["weight_hh"] += da2.T @ h_prev.reshape(T * B, -1)
    g["bias_hh"] += da2.sum(axis=0) if bias_sum is None else bias_sum


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
