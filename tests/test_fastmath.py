"""Error bounds of the float32 approximations used by the kernels (bptt._kernels.fastmath)."""

import numpy as np
import pytest

from bptt._config import njit
from bptt._kernels import fastmath as fm


@njit
def _apply(a, out, which):
    for i in range(a.shape[0]):
        if which == 0:
            out[i] = fm.exp(a[i])
        elif which == 1:
            out[i] = fm.tanh(a[i])
        else:
            out[i] = fm.sigmoid(a[i])


def apply(fn, x):
    out = np.empty_like(x)
    _apply(x, out, {"exp": 0, "tanh": 1, "sigmoid": 2}[fn])
    return out


def float32_grid():
    """Every float32 in [-120, 120] at a fine spacing, plus tiny magnitudes of both signs."""
    return np.concatenate([np.linspace(-120, 120, 4_000_001, dtype=np.float32),
                           np.geomspace(1e-38, 1, 4001).astype(np.float32),
                           -np.geomspace(1e-38, 1, 4001).astype(np.float32)])


REFERENCE = {"exp": np.exp, "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x))}
ULPS = {"exp": 2, "tanh": 6, "sigmoid": 3}   # the bounds the module docstring states


@pytest.mark.parametrize("fn", sorted(REFERENCE))
def test_float32_relative_error(fn):
    x = float32_grid()
    with np.errstate(over="ignore"):
        ref = REFERENCE[fn](x.astype(np.float64))
    got = apply(fn, x).astype(np.float64)
    normal = (np.abs(ref) >= np.finfo(np.float32).tiny) & (np.abs(ref) <= np.finfo(np.float32).max)
    rel = np.abs(got[normal] - ref[normal]) / np.abs(ref[normal])
    assert rel.max() <= ULPS[fn] * 2.0 ** -24, rel.max() / 2.0 ** -24


def test_float32_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 200.0, -200.0], dtype=np.float32)
    e, t, s = apply("exp", x), apply("tanh", x), apply("sigmoid", x)
    assert np.isnan(e[0]) and np.isnan(t[0]) and np.isnan(s[0])
    assert e[1] == np.inf and e[2] == 0 and e[3] == 1 and e[5] == np.inf and e[6] == 0
    assert list(t[1:]) == [1, -1, 0, 0, 1, -1]
    assert list(s[1:]) == [1, 0, 0.5, 0.5, 1, 0]
    # subnormal results of exp: right to within the subnormal spacing 2^-149
    x = np.array([-88.0, -95.0, -100.0, -103.0], dtype=np.float32)
    got = apply("exp", x).astype(np.float64)
    assert np.all(np.abs(got - np.exp(x.astype(np.float64))) <= 2.0 ** -149)


@pytest.mark.parametrize("fn", ["exp", "tanh"])
def test_float64_is_exact(fn):
    x = np.linspace(-30, 30, 10001)
    np.testing.assert_allclose(apply(fn, x), REFERENCE[fn](x), rtol=1e-15, atol=0)


def test_float64_sigmoid_is_the_step_paths_formula():
    """float64 sigmoid is (tanh(x/2) + 1) / 2, as in the numpy step path: exact to 1e-16
    absolute (its relative accuracy fades in the far negative tail, where it is ~0)."""
    x = np.linspace(-40, 40, 10001)
    np.testing.assert_allclose(apply("sigmoid", x), (np.tanh(x * 0.5) + 1) * 0.5, rtol=1e-15,
                               atol=2e-16)
    np.testing.assert_allclose(apply("sigmoid", x), 1 / (1 + np.exp(-x)), rtol=1e-15,
                               atol=2e-16)
