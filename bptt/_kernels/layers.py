"""Compiled kernels of the static layers and the fused softmax cross-entropy.

All inputs are C-contiguous arrays of one float dtype (float32 or float64) flattened to rows
(N = T * B): the callers reshape. Matrix products go through numba's ``np.dot`` (scipy's BLAS),
like the cell kernels.
"""

import numpy as np

from .._config import njit
from ._common import column_sums, matmul_acc
from .fastmath import exp


@njit
def dense_forward(x, w, b, has_bias, y):
    """y = x @ w.T (+ b): x (N, in), w (out, in), b (out,), y (N, out)."""
    np.dot(x, w.T, y)
    if has_bias:
        for i in range(y.shape[0]):
            row = y[i]
            for j in range(y.shape[1]):
                row[j] += b[j]


@njit
def dense_backward(dy, x, w, g_w, g_b, has_bias, dx, scratch):
    """Add dW = dy^T x and db = sum(dy) into g_w, g_b; set dx = dy @ w (dx may be empty);
    scratch (1-D, at least w.size)."""
    matmul_acc(dy.T, x, g_w, scratch)
    if has_bias:
        column_sums(dy, g_b, g_b[:0])
    if dx.shape[0] != 0:
        np.dot(dy, w, dx)


@njit
def embedding_backward(tokens, dy, g_w):
    """g_w[tokens[i]] += dy[i] for tokens (N,), dy (N, E), g_w (V, E) (repeats accumulate)."""
    for i in range(tokens.shape[0]):
        row, d = g_w[tokens[i]], dy[i]
        for j in range(d.shape[0]):
            row[j] += d[j]


@njit
def softmax_cross_entropy(logits, targets, weights, scale, losses, grad):
    """Fused, stable softmax + negative log-likelihood, row by row.

    logits (N, V); targets (N,) int; weights (N,); scale: the factor of the mean (1 / sum(w))
    or 1 for a sum. Fills losses (N,) with the unweighted per-row losses and grad (N, V) with
    d(scale * sum(w * loss)) / d logits = scale * w * (softmax - onehot). Returns the
    weighted loss sum(w * loss) accumulated in float64. Rows of weight 0 get a zero gradient
    (their logits are not read beyond the loss), ignoring whatever target they hold.
    """
    N, V = logits.shape
    total = 0.0
    for i in range(N):
        row, g = logits[i], grad[i]
        m = row_max(row)
        for j in range(V):   # no running sum here, so that the loop vectorises
            g[j] = exp(row[j] - m)
        s = row_sum(g)
        t = targets[i]
        w = weights[i]
        loss = np.log(s) - (row[t] - m)
        losses[i] = loss
        if w != 0:
            total += float(w) * float(loss)
        c = row.dtype.type(scale) * w / s
        for j in range(V):
            g[j] *= c
        g[t] -= row.dtype.type(scale) * w
    return total


@njit
def row_max(a):
    """max of a 1-D array over 8 lanes (a single running maximum would not vectorise); NaN
    if any element is NaN."""
    n = a.shape[0]
    m8 = np.empty(8, dtype=a.dtype)
    m8[:] = a[0]
    nan = False
    for i in range(0, n - n % 8, 8):
        for k in range(8):
            v = a[i + k]
            m8[k] = v if v > m8[k] else m8[k]
            nan |= v != v
    m = m8[0]
    for k in range(1, 8):
        m = m8[k] if m8[k] > m else m
    for i in range(n - n % 8, n):
        m = a[i] if a[i] > m else m
        nan |= a[i] != a[i]
    return a.dtype.type(np.nan) if nan else m


@njit
def row_sum(a):
    """sum of a 1-D array over 8 lanes, in a's dtype."""
    n = a.shape[0]
    s8 = np.zeros(8, dtype=a.dtype)
    for i in range(0, n - n % 8, 8):
        for k in range(8):
            s8[k] += a[i + k]
    s = s8.sum()
    for i in range(n - n % 8, n):
        s += a[i]
    return s


@njit
def sum_of_squares(a):
    """sum(a * a) of a 1-D array, accumulated in float64 over 8 lanes (so that it vectorises
    without reassociating a single running sum)."""
    acc = np.zeros(8)
    n = a.shape[0]
    m = n - n % 8
    for i in range(0, m, 8):
        for k in range(8):
            v = np.float64(a[i + k])
            acc[k] += v * v
    total = 0.0
    for i in range(m, n):
        v = np.float64(a[i])
        total += v * v
    for k in range(8):
        total += acc[k]
    return total
