"""One place for numba flags and the BLAS the kernels use.

Kernels are compiled with ``cache=True`` so the JIT cost is paid once per machine. Where the
package directory is read-only, numba falls back to ``NUMBA_CACHE_DIR``; if that is unset we
point it at a per-user cache directory before numba is imported.

fastmath is limited to flags that keep NaN and Inf semantics (no ``nnan``/``ninf``), so the
non-finite guard can still see them, and leaves out ``reassoc``, which would let LLVM regroup
the float32 approximations of ``bptt._kernels.fastmath`` (the Cody-Waite split of exp, the
two-factor 2^n) and lose their accuracy.

BLAS: the kernels' matrix products go to scipy's OpenBLAS (through numba); :func:`blas_core`
tells which kernel family it runs ("Haswell" for AVX2, "SkylakeX" for AVX-512, ...), which
``OPENBLAS_CORETYPE`` can force.
"""

import ctypes
import os
import re
import tempfile

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))

if "NUMBA_CACHE_DIR" not in os.environ and not os.access(_PKG_DIR, os.W_OK):
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(tempfile.gettempdir(), "bptt-cache")),
        "numba")


def _loaded_libraries(pattern):
    try:
        with open("/proc/self/maps") as f:
            return sorted({m.group(1) for m in re.finditer(r"(/\S*%s\S*)" % pattern, f.read())})
    except OSError:
        return []


def blas_core():
    """The kernel family scipy's OpenBLAS runs ("Haswell", "SkylakeX", ...), or None if it
    cannot be told."""
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS)
    for path in _loaded_libraries(r"scipy\.libs/[^/\s]*openblas"):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_corename", "openblas_get_corename"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return None


import numba  # noqa: E402  (must come after NUMBA_CACHE_DIR is settled)

FASTMATH = {"nsz", "arcp", "contract", "afn"}
CACHE = True


def njit(*args, **kwargs):
    """``numba.njit`` with the project's flags: cached, NaN/Inf-preserving fastmath."""
    kwargs.setdefault("cache", CACHE)
    kwargs.setdefault("fastmath", FASTMATH)
    kwargs.setdefault("nogil", True)
    # numpy's error model: x / 0 gives inf or NaN instead of raising, which the non-finite
    # guard reports, and which lets loops with a division be vectorised
    kwargs.setdefault("error_model", "numpy")
    return numba.njit(*args, **kwargs)
