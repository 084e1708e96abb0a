"""Page-aligned arrays for the work arrays and state that the kernels' threads write.

Two threads of a parallel kernel write neighbouring row ranges of the same arrays at every time
step (bptt._parallel). With numpy's default 16-byte alignment, the line (and the 4 KB page)
where one thread's rows end and the other's begin is shared: the cores pass that cache line
back and forth, and each core's hardware prefetcher, which works within a page, fetches lines
the other core is writing. Aligning the arrays to a page made the small and mid LSTM training
steps of benchmarks/ 3 to 10% faster on two cores (measured side by side in one process).
"""

import ctypes
import math

import numpy as np

ALIGN = 4096


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array whose data starts at a multiple of ``ALIGN`` bytes
    (a plain numpy array if it is smaller than that: one thread writes it)."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < ALIGN:
        return np.empty(shape, dtype=dtype)
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    # the address through ctypes: raw.__array_interface__ builds a dict in numpy's Python
    # code, which took 9 to 15 us in a training step (an LSTM's forward makes one of these)
    start = -ctypes.addressof(ctypes.c_char.from_buffer(raw)) % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def aligned_copy(a, dtype):
    """A page-aligned C-contiguous copy of ``a`` as ``dtype``."""
    a = np.asarray(a)
    out = aligned_empty(a.shape, dtype)
    out[...] = a
    return out
