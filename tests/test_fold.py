"""An Embedding folded into the input projection of the cell after it (Sequential does this
when the table of V rows is cheaper than T*B products): the same numbers as running the two
parts one after the other."""

import numpy as np
import pytest

import bptt
from bptt.module import BackwardContext, slice_cache

CELLS = {"elman": lambda e, h: bptt.Elman(e, h), "lstm": lambda e, h: bptt.LSTM(e, h),
         "gru": lambda e, h: bptt.GRU(e, h)}
V, E, H = 9, 4, 5


def pair(kind, dtype):
    """Two identical models; the second never folds."""
    make = lambda: bptt.Sequential([bptt.Embedding(V, E), CELLS[kind](E, H), bptt.Dense(H, 3)],
                                   dtype=dtype, seed=2)
    folded, plain = make(), make()
    plain[1].folds = lambda *args: False
    return folded, plain


def run(model, x, state, resets, dy, clip):
    y, final, cache = model.forward(x, state, resets)
    ctx = BackwardContext(clip)
    model.zero_grad()
    dx, d0 = model.backward(dy, None, cache, ctx)
    return y, final, cache, d0, {k: g.copy() for k, g in model.grads.items()}, ctx


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_folded_equals_unfolded(kind, dtype):
    rng = np.random.default_rng(sorted(CELLS).index(kind))
    T, B = 6, 3
    folded, plain = pair(kind, dtype)
    x = rng.integers(0, V, (T, B))
    resets = rng.random((T, B)) < 0.2
    state = tuple(tuple(rng.standard_normal(s.shape) for s in part)
                  for part in folded.initial_state(B))
    dy = rng.standard_normal((T, B, 3))
    a = run(folded, x, state, resets, dy, 0.3)
    b = run(plain, x, state, resets, dy, 0.3)
    assert "tokens" in a[2]["1"] and "x" not in a[2]["1"]
    assert "x" in b[2]["1"]
    # forward: a token's projection is its table row, computed the same way: the same bits
    np.testing.assert_array_equal(a[0], b[0])
    for s, t in zip(a[1], b[1]):
        for u, v in zip(s, t):
            np.testing.assert_array_equal(u, v)
    # backward: the gradients of W_ih and of the embedding are summed in another order
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for k in a[4]:
        np.testing.assert_allclose(a[4][k], b[4][k], rtol=rtol, atol=rtol, err_msg=k)
    for s, t in zip(a[3], b[3]):
        for u, v in zip(s, t):
            np.testing.assert_allclose(u, v, rtol=rtol, atol=rtol)
    assert a[5].state_clip_fired == b[5].state_clip_fired > 0


def test_folded_cache_slices_like_any_other():
    """TBPTT cuts caches in time; a backward over a slice of the folded cache equals the one
    over the same slice unfolded."""
    rng = np.random.default_rng(3)
    folded, plain = pair("lstm", np.float64)
    x = rng.integers(0, V, (7, 2))
    grads = []
    for m in (folded, plain):
        _, final, cache = m.forward(x)
        m.zero_grad()
        m.backward(rng.standard_normal((4, 2, 3)) * 0 + 1, None, slice_cache(cache, 3, 7))
        grads.append(m.flat_grads.copy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-12)


def test_no_fold_when_the_table_would_cost_more():
    model = bptt.Sequential([bptt.Embedding(50, E), bptt.LSTM(E, H), bptt.Dense(H, 3)],
                            dtype=np.float64, seed=0)
    _, _, cache = model.forward(np.zeros((4, 3), dtype=int))    # 12 positions < 50 tokens
    assert "x" in cache["1"]
    _, _, cache = model.forward(np.zeros((10, 5), dtype=int))   # 50 positions
    assert "tokens" in cache["1"]


def test_no_fold_on_the_step_path_or_after_another_part():
    model = bptt.Sequential([bptt.Embedding(V, E), bptt.LSTM(E, H)], dtype=np.float64, seed=0)
    model[1].use_kernels = False
    _, _, cache = model.forward(np.zeros((5, 4), dtype=int))
    assert "steps" in cache["1"]
    model = bptt.Sequential([bptt.Embedding(V, E), bptt.Dropout(0.0), bptt.LSTM(E, H)],
                            dtype=np.float64, seed=0)
    _, _, cache = model.forward(np.zeros((5, 4), dtype=int))
    assert "x" in cache["2"]


def test_folded_gradient_matches_finite_differences():
    model = bptt.Sequential([bptt.Embedding(V, E), bptt.GRU(E, H), bptt.Dense(H, V)],
                            dtype=np.float64, seed=5)
    x = np.random.default_rng(6).integers(0, V, (5, 3))
    _, _, cache = model.forward(x[:-1])
    assert "tokens" in cache["1"]
    report = bptt.gradcheck(model, bptt.SoftmaxCrossEntropy(), x[:-1], x[1:])
    assert report.ok(), report
