"""One place for numba flags and the BLAS the kernels use.

Kernels are compiled with ``cache=True`` so the JIT cost is paid once per machine. Where the
package directory is read-only, numba falls back to ``NUMBA_CACHE_DIR``; if that is unset we
point it at a per-user cache directory before numba is imported.

fastmath is limited to flags that keep NaN and Inf semantics (no ``nnan``/``ninf``), so the
non-finite guard can still see them, and leaves out ``reassoc``, which would let LLVM regroup
the float32 approximations of ``bptt._kernels.fastmath`` (the Cody-Waite split of exp, the
two-factor 2^n) and lose their accuracy.

numba checks a cached kernel against the source file it is defined in, not the files of what it
calls and inlines (every cell kernel uses bptt._kernels.gemm and .fastmath): so whenever any
kernel source of the package differs from when the caches were written, all of the package's
kernel caches are dropped at import (:func:`drop_stale_caches`), wherever numba keeps them
(:func:`numba_cache_dir`).

BLAS: the kernels do not use one (see bptt._kernels.gemm); :func:`blas_core` tells which
kernel family scipy's OpenBLAS runs ("Haswell" for AVX2, "SkylakeX" for AVX-512, ...), for
the benchmark, which measures this machine's GEMM rate with it.
"""

import ctypes
import glob
import hashlib
import os
import re
import tempfile

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))

if "NUMBA_CACHE_DIR" not in os.environ and not os.access(_PKG_DIR, os.W_OK):
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(tempfile.gettempdir(), "bptt-cache")),
        "numba")


def drop_stale_caches(cache_dir, sources):
    """Delete numba's cache files (*.nbi, *.nbc) in ``cache_dir`` unless they were written for
    exactly these ``sources`` (paths whose contents are hashed; the hash is kept in
    ``cache_dir``/sources.sha256)."""
    digest = hashlib.sha256()
    for path in sorted(sources):
        with open(path, "rb") as f:
            digest.update(f.read())
    stamp = os.path.join(cache_dir, "sources.sha256")
    try:
        with open(stamp) as f:
            if f.read() == digest.hexdigest():
                return
    except OSError:
        pass
    try:
        for path in glob.glob(os.path.join(cache_dir, "*.nb[ic]")):
            os.remove(path)
        os.makedirs(cache_dir, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(digest.hexdigest())
    except OSError:
        pass   # a directory this process cannot write: numba cannot cache there either


def package_sources():
    """The package's kernel sources and the flags they are compiled with."""
    return glob.glob(os.path.join(_PKG_DIR, "_kernels", "*.py")) + [os.path.abspath(__file__)]


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


def numba_cache_dir(source_dir):
    """The directory numba caches the functions of the files in ``source_dir`` in: under its
    ``NUMBA_CACHE_DIR`` when one is set (by the user, or above for a read-only install), in a
    subdirectory named as numba names it for that source directory; else the in-tree
    ``__pycache__``."""
    source_dir = os.path.abspath(source_dir)
    if not numba.config.CACHE_DIR:
        return os.path.join(source_dir, "__pycache__")
    try:
        from numba.core.caching import _CacheLocator
        sub = _CacheLocator.get_suitable_cache_subpath(os.path.join(source_dir, "any.py"))
    except (ImportError, AttributeError):   # numba's scheme (0.59 to 0.68), should it move
        sub = (os.path.basename(source_dir) + "_"
               + hashlib.sha1(source_dir.encode()).hexdigest())
    return os.path.join(numba.config.CACHE_DIR, sub)


# wherever the caches are: under NUMBA_CACHE_DIR, an upgrade that changed gemm.py but not
# lstm.py would otherwise load lstm's old code, which calls the new gemm with the old arguments
drop_stale_caches(numba_cache_dir(os.path.join(_PKG_DIR, "_kernels")), package_sources())

FASTMATH = {"nsz", "arcp", "contract", "afn"}
CACHE = True


# the flags a kernel's code needs whatever else it sets (also those of overloads' compiled
# implementations): no numba runtime, and numpy's error model (see njit)
CODE_FLAGS = {"_nrt": False, "error_model": "numpy"}


def njit(*args, **kwargs):
    """``numba.njit`` with the project's flags: cached, NaN/Inf-preserving fastmath, no
    numba runtime (NRT).

    Without NRT a kernel cannot allocate, and the views it makes carry no reference count:
    with it, every view of an argument made in a thread's time loop increments and decrements
    a counter shared with the other threads, and that one cache line bouncing between cores
    made two threads slower than one on small batches."""
    # numpy's error model (CODE_FLAGS): x / 0 gives inf or NaN instead of raising, which the
    # non-finite guard reports, and which lets loops with a division be vectorised
    for k, v in CODE_FLAGS.items():
        kwargs.setdefault(k, v)
    kwargs.setdefault("cache", CACHE)
    kwargs.setdefault("fastmath", FASTMATH)
    kwargs.setdefault("nogil", True)
    return numba.njit(*args, **kwargs)


def njit_reduction(*args, **kwargs):
    """:func:`njit` for sums and maxima: with ``reassoc`` too, so that LLVM vectorises them
    (kept out of the other kernels, where it would regroup fastmath's approximations)."""
    kwargs.setdefault("fastmath", FASTMATH | {"reassoc"})
    return njit(*args, **kwargs)
