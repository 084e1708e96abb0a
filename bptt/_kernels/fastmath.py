"""Elementwise functions for the compiled kernels: exp, tanh and sigmoid.

float64 uses the exact functions (``np.exp``, ``np.tanh``), so float64 results match numpy to
round-off and the finite-difference checks stay exact. float32 uses branch-free approximations
written so that LLVM vectorises the loops that call them (numba calls libm one scalar at a
time otherwise):

- ``exp``: Cody-Waite reduction ``x = n ln2 + r``, a degree-7 Taylor polynomial on
  |r| <= ln2/2, and 2^n built in the exponent bits. Relative error below 2 ulp on the normal
  range; inputs are clamped to [-87.3, 88.7] (so exp underflows to 1.2e-38, not 0); NaN stays
  NaN, +inf gives inf.
- ``tanh``: ``x * (1 + z P(z))``, z = x^2, a least-squares fit of degree 5 in z for
  |x| < 0.625, else ``1 - 2 / (exp(2|x|) + 1)`` with the sign of x. Relative error below 3 ulp;
  exactly +-1 beyond |x| = 10.
- ``sigmoid``: ``1 / (1 + exp(-x))``. Relative error below 6 ulp.

The bounds are checked in tests/test_fastmath.py over the whole float32 range.
"""

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload, register_jitable


@intrinsic
def _bits_to_float32(typingctx, bits):
    """Reinterpret the low 32 bits of an integer as a float32."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = args[0]
        if bits.bitwidth > 32:
            v = builder.trunc(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(bits), codegen


_F = np.float32
_LOG2E = _F(1.4426950408889634)
_LN2_HI = _F(0.693359375)          # ln 2 split so that n * _LN2_HI is exact
_LN2_LO = _F(-2.12194440e-4)
_EXP_LO, _EXP_HI = _F(-104.0), _F(88.8)   # exp(-104) rounds to 0, exp(88.8) to inf
_E0, _E1, _E2, _E3, _E4, _E5, _E6, _E7 = (_F(1 / math.factorial(k)) for k in range(8))
_HALF, _ONE, _TWO = _F(0.5), _F(1), _F(2)
# tanh(x) / x - 1 ~ z * P(z) on |x| < 0.625, fitted by least squares in float64
_T1, _T2, _T3, _T4, _T5 = (_F(c) for c in (-0.33333293, 0.13331762, -0.05376734, 0.02073161,
                                           -0.00581057))
_TANH_SMALL = _F(0.625)
_TANH_BIG = _F(10.0)   # 1 - 2 / (exp(20) + 1) rounds to 1 in float32


@register_jitable(inline="always")
def _exp32(x):
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
    return (p * _bits_to_float32((k1 + 127) << 23)) * _bits_to_float32((k - k1 + 127) << 23)


@register_jitable(inline="always")
def _tanh32(x):
    a = -x if x < 0 else x
    z = a * a
    small = a + a * (z * ((((_T5 * z + _T4) * z + _T3) * z + _T2) * z + _T1))
    e = _exp32(_TWO * (_TANH_BIG if a > _TANH_BIG else a))
    big = _ONE - _TWO / (e + _ONE)
    r = small if a < _TANH_SMALL else big
    return -r if x < 0 else r


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
        return lambda x: _ONE / (_ONE + _exp32(-x))
    # the step path's formula, so float64 agrees with it to round-off
    return lambda x: (np.tanh(x * 0.5) + 1.0) * 0.5
