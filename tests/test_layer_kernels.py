"""Helpers of the compiled layer kernels (bptt._kernels.layers) against numpy."""

import numba
import numpy as np
import pytest

from bptt._config import njit
from bptt._kernels.layers import row_max


@njit
def _row_max(a):
    return row_max(a)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 7, 16, 65, 300])
def test_row_max_is_numpys_max(dtype, n):
    rng = np.random.default_rng(n)
    for trial in range(100):
        a = (rng.standard_normal(n) * 10.0 ** rng.integers(-40, 30)).astype(dtype)
        if trial % 3 == 0:
            a = -np.abs(a)
        if trial % 5 == 0:
            a[rng.integers(n)] = -0.0
        if trial % 7 == 0:
            a[rng.integers(n)] = np.inf
        if trial % 11 == 0:
            a[rng.integers(n)] = -np.inf
        got = _row_max(a)
        assert got == a.max(), (a, got)
        assert np.signbit(got) == np.signbit(a.max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_max_special_values(dtype):
    for sign in (1, -1):   # NaN of either sign bit, anywhere
        for n, i in ((1, 0), (65, 0), (65, 64), (65, 30)):
            a = np.linspace(-3, 3, n).astype(dtype)
            a[i] = sign * np.nan
            assert np.isnan(_row_max(a))
    assert _row_max(np.full(5, -np.inf, dtype)) == -np.inf
    got = _row_max(np.array([-0.0, -0.0], dtype))
    assert got == 0 and np.signbit(got)
    got = _row_max(np.array([-0.0, 0.0], dtype))
    assert got == 0 and not np.signbit(got)
    tiny = np.finfo(dtype).tiny
    a = np.array([-tiny / 4, tiny / 8, -tiny], dtype)   # subnormals
    assert _row_max(a) == a.max()


def test_row_max_keeps_the_dtype():
    """A float32 row's maximum is a float32 (a float64 one would make the softmax kernel call
    float64 exp on every element)."""
    _row_max(np.zeros(3, np.float32))
    sigs = {s.args[0].dtype: s.return_type for s in _row_max.nopython_signatures}
    assert sigs[numba.float32] == numba.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,n_in,n_out", [(6, 20, 3), (200, 20, 3), (40, 3, 20), (25, 100, 65),
                                          (1600, 256, 65), (1600, 64, 65), (521, 30, 40),
                                          (300, 20, 3), (300, 300, 260)])
def test_dense_gradients_either_operand_packed(dtype, n, n_in, n_out):
    """Dense's backward packs x or dy for dW = dy^T x, whichever moves less (for a narrow
    output and many rows, dy, then dW comes out transposed), and for a small weight sums dW
    in shares of the rows (weight_grad_shares): every way gives numpy's gradients,
    accumulated into what the gradients held."""
    import bptt
    rng = np.random.default_rng([n, n_in, n_out])
    layer = bptt.Dense(n_in, n_out, dtype=dtype, seed=0)
    x = rng.standard_normal((n, 1, n_in)).astype(dtype)
    dy = rng.standard_normal((n, 1, n_out)).astype(dtype)
    g0 = {k: rng.standard_normal(g.shape).astype(dtype) for k, g in layer.grads.items()}
    for k, g in layer.grads.items():
        g[...] = g0[k]
    _, _, cache = layer.forward(x)
    dx, _ = layer.backward(dy, (), cache)
    x2, dy2 = x.reshape(n, n_in).astype(np.float64), dy.reshape(n, n_out).astype(np.float64)
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(layer.grads["weight"], g0["weight"] + dy2.T @ x2, **tol)
    np.testing.assert_allclose(layer.grads["bias"], g0["bias"] + dy2.sum(axis=0), **tol)
    np.testing.assert_allclose(dx.reshape(n, n_in), dy2 @ layer.params["weight"], **tol)


def test_weight_gradient_shares():
    """The shares of a weight gradient's sum depend on the shapes alone (not on the threads)
    and are only used for small weights."""
    from bptt._kernels._common import MAX_SHARED_WEIGHTS, weight_grad_shares
    assert weight_grad_shares(1600, 64 * 65) == 4
    assert weight_grad_shares(300, 20 * 3) == 2
    assert weight_grad_shares(127, 20 * 3) == 1
    assert weight_grad_shares(10 ** 6, MAX_SHARED_WEIGHTS) == 4
    assert weight_grad_shares(10 ** 6, MAX_SHARED_WEIGHTS + 1) == 1


@pytest.mark.parametrize("n,n_in,n_out", [(1600, 64, 65), (1600, 256, 65)])
def test_dense_gradients_same_bits_on_any_number_of_threads(n, n_in, n_out):
    """With the weight gradient summed in shares (direct and transposed), one thread and two
    give the same bits."""
    import bptt
    rng = np.random.default_rng([n, n_in])
    x = rng.standard_normal((n, 1, n_in)).astype(np.float32)
    dy = rng.standard_normal((n, 1, n_out)).astype(np.float32)
    grads = []
    before = bptt.get_num_threads()
    try:
        for threads in (1, 2, 1, 2):
            bptt.set_num_threads(threads)
            layer = bptt.Dense(n_in, n_out, dtype=np.float32, seed=0)
            _, _, cache = layer.forward(x)
            layer.backward(dy, (), cache)
            grads.append({k: g.copy() for k, g in layer.grads.items()})
    finally:
        bptt.set_num_threads(before)
    for g in grads[1:]:
        for k in g:
            np.testing.assert_array_equal(g[k], grads[0][k])
