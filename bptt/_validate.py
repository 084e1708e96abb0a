"""Checks at the public boundary: each error says what was expected and what came."""

import numbers

import numpy as np

from ._kernels.checks import int_range

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_dtype(dtype):
    """Return the numpy dtype for a model dtype argument (float32 or float64 only)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def positive_float(name, value, allow_zero=False, allow_inf=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if np.isnan(value) or (not allow_inf and np.isinf(value)):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>=' if allow_zero else '>'} 0, got {value}")
    return value


def choice(name, value, options):
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value


def float_sequence(name, x, dtype, ndim=3, last=None):
    """A time-major float array (T, B, ...) converted to ``dtype``, C-contiguous, finite."""
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point array, got dtype {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions (time-major (T, B, ...)), "
                         f"got shape {a.shape}")
    if last is not None and a.shape[-1] != last:
        raise ValueError(f"{name} must have {last} features in its last axis, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must have at least one time step and one stream, "
                         f"got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=dtype)
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name} holds a non-finite value at index {tuple(int(i) for i in bad)}")
    return a


def value_range(a):
    """(min, max) of a non-empty integer array, in one compiled pass for int64 (the tokens'
    and targets' usual dtype), else numpy's."""
    if a.dtype == np.int64 and a.flags.c_contiguous:
        return int_range(a.reshape(-1))
    return a.min(), a.max()


def token_sequence(name, x, vocab_size):
    """Integer tokens (T, B) in [0, vocab_size), as a C-contiguous int64 array."""
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer tokens, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be time-major (T, B), got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must have at least one time step and one stream, "
                         f"got shape {a.shape}")
    if a.size:
        lo, hi = value_range(a)
        if lo < 0 or hi >= vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} holds token {int(bad)}, outside the vocabulary "
                             f"[0, {vocab_size})")
    return np.ascontiguousarray(a, dtype=np.int64)


def bool_mask(name, m, shape):
    """A boolean (T, B) mask, or None."""
    if m is None:
        return None
    a = np.asarray(m)
    if a.dtype != np.bool_:
        if np.issubdtype(a.dtype, np.integer) and a.size and not np.isin(a, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1), got values other than 0 and 1")
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
            raise TypeError(f"{name} must be a boolean array, got dtype {a.dtype}")
        a = a.astype(bool)
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")
    return np.ascontiguousarray(a)


def weight_mask(name, w, shape, dtype):
    """Per-step loss weights (T, B): finite and >= 0."""
    if w is None:
        return None
    a = np.asarray(w)
    if a.dtype == np.bool_:
        a = a.astype(dtype)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name} must be numeric, got dtype {a.dtype}")
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")
    a = np.ascontiguousarray(a, dtype=dtype)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite")
    if (a < 0).any():
        raise ValueError(f"{name} must be >= 0, got a minimum of {a.min()}")
    return a


def same_names(what, expected, got, missing="missing", unexpected="unexpected"):
    """Raise ValueError unless ``got`` (an iterable of names) holds exactly the names of
    ``expected``; the message lists what is missing and what is unexpected."""
    got = list(got)
    lost = [n for n in expected if n not in got]
    extra = [n for n in got if n not in expected]
    if lost or extra:
        raise ValueError(f"{what}: " + "; ".join(f"{label} {names}" for label, names in
                                                  ((missing, lost), (unexpected, extra))
                                                  if names))
