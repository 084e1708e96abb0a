"""Compiled kernels of the static layers and the fused softmax cross-entropy.

All inputs are C-contiguous arrays of one float dtype (float32 or float64) flattened to rows
(N = T * B): the callers reshape. Row kernels take a range ``lo, hi`` of rows (the last two
arguments) and are run over all rows in parallel (:mod:`bptt._parallel`); matrix products go
through :mod:`bptt._kernels.gemm`, like the cell kernels.
"""

import numpy as np
from numba.extending import overload

from .._config import CODE_FLAGS, njit, njit_reduction
from ._common import add_shares, column_sums, gemm, pack_range
from .gemm import gemm_k
from .fastmath import bits_as_float, exp, wide_vectors


@njit
def dense_forward(x, p_wt, b, has_bias, y, lo, hi):
    """Rows lo..hi of y = x @ w.T (+ b): x (N, in), p_wt the panels of w.T (in, out), b (out,),
    y (N, out)."""
    gemm(x, False, p_wt, y.shape[1], y, lo, hi, False)
    if has_bias:
        for i in range(lo, hi):
            row = y[i]
            for j in range(y.shape[1]):
                row[j] += b[j]


@njit
def dense_backward_rows(dy, p_w, dx, m, p_m, lo, hi):
    """Rows lo..hi: dx = dy @ w (p_w the panels of w (out, in); dx may have no rows), and the
    panels p_m of m (N, n) (x or dy, for the weight gradient)."""
    if dx.shape[0] != 0:
        gemm(dy, False, p_w, dx.shape[1], dx, lo, hi, False)
    pack_range(m, p_m, lo, hi)


@njit
def dense_weight_grad(dy, x, p_m, transposed, g_w, g_b, has_bias, scratch, sums, lo, hi):
    """Rows lo..hi of the weight gradient dW = dy^T x (N rows summed), added into g_w (out, in):
    directly (p_m the panels of x; rows = out) or, if ``transposed``, as rows lo..hi of
    dW^T = x^T dy (p_m the panels of dy; rows = in) through scratch (in, out). With the bias,
    db = sum(dy) for the matching share of the out columns, summed in float64 in sums
    (out,)."""
    out_f, in_f = g_w.shape
    if transposed:
        gemm(x, True, p_m, out_f, scratch, lo, hi, False)
        for i in range(lo, hi):
            for o in range(out_f):
                g_w[o, i] += scratch[i, o]
        rows = in_f
    else:
        gemm(dy, True, p_m, in_f, g_w, lo, hi, True)
        rows = out_f
    if has_bias:
        column_sums(dy, lo * out_f // rows, hi * out_f // rows, g_b, sums)


@njit
def dense_weight_grad_shares(dy, x, p_m, transposed, partial, sums, has_bias, lo, hi):
    """Shares lo..hi of dW = dy^T x, the sum over the N rows cut into partial.shape[0] equal
    runs of rows: partial[c] = the sum over run c (out, in), or if ``transposed`` its
    transpose (in, out) from x^T dy (p_m the panels of x, or of dy); with the bias, sums[c]
    (out,) float64 = the sums of dy's columns over run c. A share reads only its own rows,
    with as many threads as shares or half as many the rows the same thread has just
    computed and packed (dense_backward_rows splits the rows alike): split by output rows
    instead, every thread read all of dy and x."""
    n, out_f = dy.shape
    shares = partial.shape[0]
    a = x if transposed else dy
    for c in range(lo, hi):
        k0, k1 = c * n // shares, (c + 1) * n // shares
        gemm_k(a, True, p_m, partial.shape[2], partial[c], 0, partial.shape[1], False, k0, k1)
        if has_bias:
            s = sums[c]
            s[:] = 0
            for r in range(k0, k1):
                row = dy[r]
                for j in range(out_f):
                    s[j] += row[j]


@njit
def dense_weight_grad_add(partial, sums, transposed, g_w, g_b, has_bias, lo, hi):
    """Rows lo..hi of g_w (out, in) += the shares of :func:`dense_weight_grad_shares`, added
    in order; g_b[lo:hi] += their bias sums."""
    shares = partial.shape[0]
    in_f = g_w.shape[1]
    for o in range(lo, hi):
        row = g_w[o]
        if transposed:
            for c in range(shares):
                p = partial[c]
                for i in range(in_f):
                    row[i] += p[i, o]
        else:
            add_shares(row, partial, o)
        if has_bias:
            total = 0.0
            for c in range(shares):
                total += sums[c, o]
            g_b[o] += total


@njit
def embedding_backward(tokens, dy, g_w):
    """g_w[tokens[i]] += dy[i] for tokens (N,), dy (N, E), g_w (V, E) (repeats accumulate)."""
    for i in range(tokens.shape[0]):
        row, d = g_w[tokens[i]], dy[i]
        for j in range(d.shape[0]):
            row[j] += d[j]


SOFTMAX_BLOCK = 32   # rows whose exponentials are taken in one flat loop


@njit
def softmax_cross_entropy(logits, targets, weights, scale, losses, wloss, grad, lo, hi):
    """Fused, stable softmax + negative log-likelihood, rows lo..hi.

    logits (N, V); targets (N,) int; weights (N,); scale: the factor of the mean (1 / sum(w))
    or 1 for a sum. Fills losses (N,) with the unweighted per-row losses, wloss (N,) float64
    with w * loss (0 where w = 0) and grad (N, V) with
    d(scale * sum(w * loss)) / d logits = scale * w * (softmax - onehot). Rows of weight 0 get
    a zero gradient (their logits are not read beyond the loss), ignoring whatever target
    they hold.

    A block of rows at a time: the shifted logits of the block are written to grad and
    exponentiated in one flat loop (row by row, V = 65 left a scalar exp at every row's end),
    and the logarithms are taken after all the rows (a libm call in the row loop held up the
    vector work around it); each number is computed by the same operations as row by row.
    """
    wide_vectors()
    V = logits.shape[1]
    one = logits.dtype.type(scale)
    for b0 in range(lo, hi, SOFTMAX_BLOCK):
        b1 = min(b0 + SOFTMAX_BLOCK, hi)
        for i in range(b0, b1):
            row, g = logits[i], grad[i]
            m = row_max(row)
            for j in range(V):
                g[j] = row[j] - m
            wloss[i] = g[targets[i]]   # the target's shifted logit, until the loss is known
        block = grad[b0:b1].reshape((b1 - b0) * V)
        for j in range(block.shape[0]):
            block[j] = exp(block[j])
        for i in range(b0, b1):
            g = grad[i]
            s = row_sum(g)
            losses[i] = s   # the sum, until the loss is known
            w = weights[i]
            c = one * w / s
            for j in range(V):
                g[j] *= c
            g[targets[i]] -= one * w
    for i in range(lo, hi):
        loss = np.log(losses[i]) - logits.dtype.type(wloss[i])
        losses[i] = loss
        w = weights[i]
        wloss[i] = float(w) * float(loss) if w != 0 else 0.0


def row_max(a):
    """max of a 1-D float array (in compiled code); NaN if any element is NaN.

    Done on the bits as integers, so that it vectorises (a float maximum that keeps NaN does
    not, and took half the softmax's time): with the magnitude bits of negative numbers
    flipped, the integers order as the floats do; NaN is told by its magnitude bits. Called
    from Python, numpy's max (the same result)."""
    return np.asarray(a).max()


@overload(row_max, jit_options=CODE_FLAGS)
def _row_max_impl(a):
    if a.dtype.bitwidth == 32:
        it, inf = np.int32, np.int32(0x7F800000)
    else:
        it, inf = np.int64, np.int64(0x7FF0000000000000)
    nbits = it(8 * np.dtype(it).itemsize - 1)
    mag = it(~(it(1) << nbits))       # all bits but the sign
    least = it(it(1) << nbits)        # the least integer: below every key

    def impl(a):
        b = a.view(it)
        key_max, mag_max = least, it(0)
        for i in range(b.shape[0]):   # (numba widens int32 arithmetic: results cast back)
            v = b[i]
            key = it(v ^ (it(v >> nbits) & mag))
            key_max = key if key > key_max else key_max
            m = it(v & mag)
            mag_max = m if m > mag_max else mag_max
        if mag_max > inf:
            return a.dtype.type(np.nan)
        return bits_as_float(it(key_max ^ (it(key_max >> nbits) & mag)))
    return impl


@njit_reduction
def row_sum(a):
    """sum of a 1-D array, in a's dtype."""
    s = a.dtype.type(0)
    for i in range(a.shape[0]):
        s += a[i]
    return s


@njit_reduction
def sum_of_squares(a):
    """sum(a * a) of a 1-D array, accumulated in float64."""
    total = 0.0
    for i in range(a.shape[0]):
        v = np.float64(a[i])
        total += v * v
    return total
