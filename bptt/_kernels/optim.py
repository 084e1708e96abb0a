"""Compiled elementwise updates of SGD and Adam, over a range lo..hi of 1-D arrays, and the
zeroing of a gradient buffer.

The same arithmetic as the numpy formulas in :mod:`bptt.optim.optimizers`, element by element
and in the array's dtype (no fastmath: nothing is contracted into fused multiply-adds), so the
results are those of numpy bit for bit, one pass over memory instead of numpy's several (with
temporaries) and on every thread (:mod:`bptt._parallel`). Scalars arrive as Python floats and
are rounded to the array's dtype first, as numpy does with a Python float and a float32 array.
"""

import numpy as np

from .._config import njit

WORK = 10   # multiply-add equivalents of updating one element (for bptt._parallel.run)


@njit
def zero(a):
    """a[:] = 0 for a 1-D array (numpy's fill took 1.5 times as long on a model's flat
    gradient: 4.4 against 2.6 us for 27,000 float32, 40 against 29 us for 300,000)."""
    z = a.dtype.type(0)
    for i in range(a.shape[0]):
        a[i] = z


@njit(fastmath=False)
def sgd(p, g, lr, weight_decay, lo, hi):
    """p -= lr * (g + weight_decay * p) (the decay term only if weight_decay != 0)."""
    t = p.dtype.type
    lr, wd = t(lr), t(weight_decay)
    p, g = p[lo:hi], g[lo:hi]   # loops from 0: numba's range(lo, hi) loops do not vectorise
    for i in range(p.shape[0]):
        d = g[i] + wd * p[i] if weight_decay != 0 else g[i]
        p[i] -= lr * d


@njit(fastmath=False)
def adam(p, g, m, v, vmax, amsgrad, beta1, beta2, step_size, bias_correction2_sqrt, eps,
         weight_decay, decoupled_factor, lo, hi):
    """One Adam (or AdamW) step of elements lo..hi, as ``Adam._update`` writes it: optional
    decoupled decay ``p *= decoupled_factor``; ``d = g (+ weight_decay * p)``;
    ``m <- lerp(m, d, 1 - beta1)``; ``v <- v * beta2 + (1 - beta2) * (d * d)``; with AMSGrad
    ``vmax <- max(vmax, v)`` and vmax in v's place; ``p -= step_size * (m / (sqrt(v) /
    bias_correction2_sqrt + eps))``."""
    t = p.dtype.type
    w = 1.0 - beta1
    w32, one_minus_w = t(w), t(1.0 - w)
    b2, one_minus_b2 = t(beta2), t(1.0 - beta2)
    ss, bc2, e, wd, dec = (t(step_size), t(bias_correction2_sqrt), t(eps), t(weight_decay),
                           t(decoupled_factor))
    small_w = abs(w) < 0.5
    # loops from 0 (see sgd); vmax is only read with amsgrad (else it may have no elements)
    p, g, m, v, vmax = p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], vmax[lo:hi]
    for i in range(p.shape[0]):
        if decoupled_factor != 1.0:
            p[i] *= dec
        d = g[i] + wd * p[i] if weight_decay != 0 else g[i]
        if small_w:
            m[i] += w32 * (d - m[i])
        else:
            m[i] = d - (d - m[i]) * one_minus_w
        v[i] = v[i] * b2 + one_minus_b2 * (d * d)
        vi = v[i]
        if amsgrad:   # np.maximum: NaN wins
            vmax[i] = vi if (vi > vmax[i] or vi != vi) else vmax[i]
            vi = vmax[i]
        denom = np.sqrt(vi) / bc2 + e
        p[i] -= ss * (m[i] / denom)
