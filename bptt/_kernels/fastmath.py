"""Elementwise functions for the compiled kernels: exp, tanh and sigmoid.

float64 uses the exact functions (``np.exp``, ``np.tanh``), so float64 results match numpy to
round-off and the finite-difference checks stay exact. float32 uses branch-free approximations
written so that LLVM vectorises the loops that call them (numba calls libm one scalar at a
time otherwise):

- ``exp``: Cody-Waite reduction ``x = n ln2 + r``, a degree-7 Taylor polynomial on
  |r| <= ln2/2, and 2^n built in the exponent bits as two factors, so that subnormal results
  come out right. Relative error below 2 ulp on the normal range, subnormal results within
  their spacing; exp(x) = 0 below -104 and inf above 88.8; NaN stays NaN.
- ``tanh``: ``x P(x^2) / Q(x^2)`` with P and Q of degree 4, a rational fit of relative error
  0.4 ulp (as real numbers) on |x| <= 9.1 (the input is clamped there), exactly +-1 beyond
  |x| = 9.011 (where tanh rounds to 1). Relative error below 6 ulp in float32 arithmetic.
  Four times as fast as an exp-based tanh (no exp, no branch to blend).
- ``sigmoid``: ``1 / (1 + exp(-x))`` with a cheaper exp of the normal range (a degree-6
  minimax polynomial, 2^n as one factor, the argument clamped to [-87.3, 88.7]); 0 below
  x = -104, where the exact value underflows. Relative error below 3 ulp wherever the result
  is a normal float32.

An ulp here is 2^-24 relative. The bounds are checked in tests/test_fastmath.py over the
whole float32 range.
"""

import math

import numpy as np
from numba import types
from numba.extending import intrinsic, overload, register_jitable


@intrinsic
def _always_inline(typingctx):
    """Mark the calling function for inlining by LLVM wherever it is called: inlined, the
    loops that call these functions vectorise; inlined by numba instead (inline="always"),
    every call site would be typed again, which doubled the kernels' compile time."""
    def codegen(context, builder, signature, args):
        builder.function.attributes.add("alwaysinline")
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def wide_vectors(typingctx):
    """Let LLVM vectorise the calling function's loops with the widest vectors the CPU has.
    On AVX-512 CPUs LLVM prefers 256-bit vectors by default (wider ones lowered the clock of
    older CPUs); the kernels run 512-bit matrix products anyway, and their elementwise loops
    (the gate functions, each with a division) take about a quarter less time with 512-bit
    vectors. Each element is computed by the same operations whatever the width."""
    def codegen(context, builder, signature, args):
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def bits_as_float(typingctx, bits):
    """Reinterpret an int32 as a float32, an int64 as a float64."""
    if not (isinstance(bits, types.Integer) and bits.bitwidth in (32, 64)):
        return None
    fty = types.float32 if bits.bitwidth == 32 else types.float64

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(fty))

    return fty(bits), codegen


_F = np.float32
_LOG2E = _F(1.4426950408889634)
_LN2_HI = _F(0.693359375)          # ln 2 split so that n * _LN2_HI is exact
_LN2_LO = _F(-2.12194440e-4)
_EXP_LO, _EXP_HI = _F(-104.0), _F(88.8)   # exp(-104) rounds to 0, exp(88.8) to inf
_E0, _E1, _E2, _E3, _E4, _E5, _E6, _E7 = (_F(1 / math.factorial(k)) for k in range(8))
_ZERO, _HALF, _ONE = _F(0), _F(0.5), _F(1)
# tanh(x) ~ x P(z) / Q(z), z = x^2, on |x| <= 9.1: minimax for the relative error, fitted in
# float64 (Lawson's iteration on the linearised problem); all coefficients positive, so the
# evaluation does not cancel
_TP = tuple(_F(c) for c in (0.9999999772644587, 0.13374498800151308, 0.003487838761866187,
                            2.048162989988849e-05, 1.3178112568138338e-08))
_TQ = tuple(_F(c) for c in (1.0, 0.46707812602571525, 0.02584749485574211,
                            0.00032729649522599127, 7.704292731864606e-07))
_TANH_CLAMP = _F(9.1)
_TANH_ONE = _F(9.0109)   # tanh(x) rounds to 1 in float32 beyond this
# exp(r) ~ 1 + r + c2 r^2 + ... + c6 r^6 on |r| <= ln2/2, minimax for the relative error
_X2, _X3, _X4, _X5, _X6 = (_F(c) for c in (0.49999993452788194, 0.16666520727499057,
                                           0.041668387489746266, 0.008368705361578911,
                                           0.0013814579764901429))
_NEXP_LO, _NEXP_HI = _F(-87.33654), _F(88.72283)   # exp is a normal float32 in between
_SIGMOID_ZERO = _F(-104.0)   # sigmoid(x) rounds to 0 below this


@register_jitable
def _exp32(x):
    _always_inline()
    # written as selects, not min/max, so that NaN passes through
    x = _EXP_LO if x < _EXP_LO else x
    x = _EXP_HI if x > _EXP_HI else x
    n = np.floor(x * _LOG2E + _HALF)
    r = x - n * _LN2_HI
    r = r - n * _LN2_LO
    p = ((((((_E7 * r + _E6) * r + _E5) * r + _E4) * r + _E3) * r + _E2) * r + _E1) * r + _E0
    # 2^n as two factors 2^n1 * 2^n2, each a normal float32, so that results near the top
    # (n = 128) and in the subnormal range come out right
    k = np.int64(n)
    k1 = k >> 1
    return (p * bits_as_float(np.int32((k1 + 127) << 23))) * bits_as_float(
        np.int32((k - k1 + 127) << 23))


@register_jitable
def _exp32_normal(x):
    """exp(x) for x in the normal range (clamped to it), as a single factor 2^n."""
    _always_inline()
    x = _NEXP_LO if x < _NEXP_LO else x
    x = _NEXP_HI if x > _NEXP_HI else x
    n = np.floor(x * _LOG2E + _HALF)
    r = x - n * _LN2_HI
    r = r - n * _LN2_LO
    p = (((((_X6 * r + _X5) * r + _X4) * r + _X3) * r + _X2) * r + _ONE) * r + _ONE
    return p * bits_as_float(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))


@register_jitable
def _tanh32(x):
    _always_inline()
    # written as selects, not min/max, so that NaN passes through
    a = -_TANH_CLAMP if x < -_TANH_CLAMP else x
    a = _TANH_CLAMP if a > _TANH_CLAMP else a
    z = a * a
    p = (((_TP[4] * z + _TP[3]) * z + _TP[2]) * z + _TP[1]) * z + _TP[0]
    q = (((_TQ[4] * z + _TQ[3]) * z + _TQ[2]) * z + _TQ[1]) * z + _TQ[0]
    r = a * p / q
    r = _ONE if x > _TANH_ONE else r
    return -_ONE if x < -_TANH_ONE else r


@register_jitable
def _sigmoid32(x):
    _always_inline()
    s = _ONE / (_ONE + _exp32_normal(-x))
    return _ZERO if x < _SIGMOID_ZERO else s


def exp(x):
    """exp for kernels (see the module docstring)."""


def tanh(x):
    """tanh for kernels (see the module docstring)."""


def sigmoid(x):
    """1 / (1 + exp(-x)) for kernels (see the module docstring)."""


@overload(exp, inline="always")
def _ol_exp(x):
    if x == types.float32:
        return lambda x: _exp32(x)
    return lambda x: np.exp(x)


@overload(tanh, inline="always")
def _ol_tanh(x):
    if x == types.float32:
        return lambda x: _tanh32(x)
    return lambda x: np.tanh(x)


@overload(sigmoid, inline="always")
def _ol_sigmoid(x):
    if x == types.float32:
        return lambda x: _sigmoid32(x)
    # the step path's formula, so float64 agrees with it to round-off
    return lambda x: (np.tanh(x * 0.5) + 1.0) * 0.5
