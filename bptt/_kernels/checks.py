"""Compiled input checks: one pass where numpy would make several (each numpy reduction costs
a few microseconds of call overhead, which at the per-step overhead of a tiny model is a few
per cent of a training step)."""

from .._config import njit


@njit
def int_range(a):
    """(min, max) of a non-empty 1-D int64 array."""
    lo = hi = a[0]
    for i in range(a.shape[0]):
        v = a[i]
        lo = v if v < lo else lo
        hi = v if v > hi else hi
    return lo, hi
