"""A cell's weight gradients summed in shares of the T*B positions (for small weights, see
bptt._kernels._common.weight_grad_shares): the same gradients as the sums split by rows, with
an Embedding folded in or not, for every cell, and the same bits on any number of threads."""

import numpy as np
import pytest

import bptt
from bptt._kernels import _common
from bptt.module import BackwardContext

CELLS = {"elman": bptt.Elman, "lstm": bptt.LSTM, "gru": bptt.GRU}


def model_grads(kind, dtype, fold, T, B, V=11, E=6, H=8, seed=0):
    model = bptt.Sequential([bptt.Embedding(V, E), CELLS[kind](E, H), bptt.Dense(H, 3)],
                            dtype=dtype, seed=seed)
    if not fold:
        model[1].folds = lambda *args: False
    rng = np.random.default_rng(seed)
    x = rng.integers(0, V, (T, B))
    resets = rng.random((T, B)) < 0.05
    dy = rng.standard_normal((T, B, 3)).astype(dtype)
    _, _, cache = model.forward(x, None, resets)
    model.zero_grad()
    model.backward(dy, None, cache, BackwardContext(np.inf))
    return {k: g.copy() for k, g in model.grads.items()}


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("fold", [True, False], ids=["folded", "unfolded"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("T,B", [(40, 8), (65, 8)])   # 2 and 4 shares
def test_shares_give_the_unshared_gradients(kind, fold, dtype, T, B, monkeypatch):
    assert _common.weight_grad_shares(T * B, 1) == T * B // _common.SHARE_ROWS
    shared = model_grads(kind, dtype, fold, T, B)
    monkeypatch.setattr(_common, "weight_grad_shares", lambda n, entries: 1)
    unshared = model_grads(kind, dtype, fold, T, B)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    assert shared.keys() == unshared.keys()
    for k in shared:
        np.testing.assert_allclose(shared[k], unshared[k], err_msg=k, **tol)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("fold", [True, False], ids=["folded", "unfolded"])
def test_shares_same_bits_on_any_number_of_threads(kind, fold):
    """At W1's small size (T 100, B 16, H 64: 4 shares, run on both threads)."""
    before = bptt.get_num_threads()
    runs = []
    try:
        for threads in (1, 2, 1, 2):
            bptt.set_num_threads(threads)
            runs.append(model_grads(kind, np.float32, fold, 100, 16, V=65, E=64, H=64))
    finally:
        bptt.set_num_threads(before)
    for g in runs[1:]:
        for k in g:
            np.testing.assert_array_equal(g[k], runs[0][k], err_msg=k)


def test_a_large_folded_table_keeps_the_row_split():
    """The partial sums of the shares include a folded embedding's table: with a table of
    4 x 2000 x 32 entries the sums stay split by rows (no copies of the table per share)."""
    for V, shared in ((20, True), (2000, False)):
        model = bptt.Sequential([bptt.Embedding(V, 8), bptt.LSTM(8, 32), bptt.Dense(32, 3)],
                                dtype=np.float32, seed=0)
        x = np.random.default_rng(0).integers(0, V, (100, 32))
        _, _, cache = model.forward(x)
        model.backward(np.ones((100, 32, 3), np.float32), None, cache, BackwardContext(np.inf))
        pool = model[1].__dict__["_buffers"]
        assert "d_table" in pool, V   # the embedding was folded in
        assert ("part_table" in pool) == shared, V
