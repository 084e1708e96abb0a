"""Work arrays are reused across calls only when nothing holds the previous one."""

import numpy as np

import bptt


def test_outputs_held_by_the_caller_are_never_overwritten(rng):
    cell = bptt.LSTM(3, 4, dtype=np.float64, seed=0)
    x1, x2 = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 3))
    y1, _, cache1 = cell.forward(x1)
    keep = y1.copy(), cache1["gates"].copy()
    y2, _, cache2 = cell.forward(x2)
    assert y2 is not y1 and cache2["gates"] is not cache1["gates"]
    np.testing.assert_array_equal(y1, keep[0])
    np.testing.assert_array_equal(cache1["gates"], keep[1])


def test_a_view_keeps_the_array_alive(rng):
    dense = bptt.Dense(3, 4, dtype=np.float64, seed=0)
    x = rng.standard_normal((5, 2, 3))
    y, _, _ = dense.forward(x)
    first_row = y[0]            # a view only
    expected = first_row.copy()
    del y
    dense.forward(x * 2)
    np.testing.assert_array_equal(first_row, expected)


def test_arrays_are_reused_once_released(rng):
    cell = bptt.GRU(3, 4, dtype=np.float32, seed=0)
    x = rng.standard_normal((6, 2, 3)).astype(np.float32)
    y, _, cache = cell.forward(x)
    # the cache holds views (time-major, of stream-major arrays): compare the memory
    ids = id(y), cache["gates"].__array_interface__["data"][0]
    del y, cache
    y, _, cache = cell.forward(x)
    assert (id(y), cache["gates"].__array_interface__["data"][0]) == ids


def test_training_is_unchanged_by_reuse(rng):
    """TBPTT with k2 > k1 keeps earlier caches: those must not be reused under it."""
    def run():
        model = bptt.Sequential([bptt.Embedding(7, 3), bptt.LSTM(3, 5), bptt.Dense(5, 7)],
                                dtype=np.float64, seed=1)
        opt = bptt.optim.SGD(model.named_parameters(), lr=0.1)
        bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(), opt, k1=3, k2=7).fit(x, y)
        return model

    x, y = rng.integers(0, 7, (15, 2)), rng.integers(0, 7, (15, 2))
    a, b = run(), run()
    b_params = b.named_parameters()
    for k, v in a.named_parameters().items():
        np.testing.assert_array_equal(v, b_params[k])
    # and equal to the step path, which allocates afresh every time
    ref = bptt.Sequential([bptt.Embedding(7, 3), bptt.LSTM(3, 5), bptt.Dense(5, 7)],
                          dtype=np.float64, seed=1)
    ref[1].use_kernels = False
    opt = bptt.optim.SGD(ref.named_parameters(), lr=0.1)
    bptt.TBPTT(ref, bptt.SoftmaxCrossEntropy(), opt, k1=3, k2=7).fit(x, y)
    for k, v in a.named_parameters().items():
        np.testing.assert_allclose(v, ref.named_parameters()[k], rtol=1e-10, atol=1e-12)


def test_large_work_arrays_are_page_aligned_and_guarded_the_same(rng):
    """Arrays of a page or more are views of a page-aligned allocation (bptt._memory): a view
    of one then refers to the allocation, not to the array, and must still keep it from being
    reused."""
    dense = bptt.Dense(16, 64, dtype=np.float32, seed=0)
    x = rng.standard_normal((20, 8, 16)).astype(np.float32)
    y, _, _ = dense.forward(x)
    assert y.nbytes >= 4096 and y.ctypes.data % 4096 == 0
    last_row = y[-1]            # a view only
    expected = last_row.copy()
    address = y.ctypes.data
    del y
    y2, _, _ = dense.forward(x * 2)
    assert y2.ctypes.data != address
    np.testing.assert_array_equal(last_row, expected)
    del last_row, y2
    y3, _, _ = dense.forward(x)
    address = y3.ctypes.data
    del y3
    y4, _, _ = dense.forward(x)
    assert y4.ctypes.data == address   # reused once nothing holds it


def test_a_held_state_gradient_is_never_overwritten(rng):
    """backward returns the entering state's gradient in work arrays of the cell: one still
    held (here, passed on as the next call's dstate, as a TBPTT window does) is not reused."""
    cell = bptt.LSTM(3, 4, dtype=np.float64, seed=0)
    x = rng.standard_normal((5, 2, 3))
    _, _, cache = cell.forward(x)
    dy = rng.standard_normal((5, 2, 4))
    _, d1 = cell.backward(dy, None, cache)
    keep = tuple(a.copy() for a in d1)
    _, d2 = cell.backward(dy, d1, cache)
    assert all(a is not b for a, b in zip(d1, d2))
    for a, b in zip(d1, keep):
        np.testing.assert_array_equal(a, b)
    # the second call started from d1: it differs from a call from zeros
    _, d3 = cell.backward(dy, None, cache)
    assert not np.array_equal(d2[0], d3[0])
    np.testing.assert_array_equal(d3[0], keep[0])
