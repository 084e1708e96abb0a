"""Row-parallel kernel calls (bptt._parallel): splitting, errors, and results that do not
depend on the number of threads."""

import threading

import numpy as np
import pytest

import bptt
from bptt import _parallel


@pytest.fixture
def threads():
    """Run with 2 threads even for tiny calls, and restore the settings afterwards."""
    prev, prev_min = _parallel.get_num_threads(), _parallel.MIN_WORK
    _parallel.set_num_threads(2)
    _parallel.MIN_WORK = 1
    yield _parallel
    _parallel.set_num_threads(prev)
    _parallel.MIN_WORK = prev_min


@pytest.mark.parametrize("n,parts", [(10, 3), (3, 3), (7, 1), (0, 2), (5, 4)])
def test_split_covers_the_rows_in_order(n, parts):
    ranges = _parallel.split(n, parts)
    assert len(ranges) == parts and ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    sizes = [hi - lo for lo, hi in ranges]
    assert max(sizes) - min(sizes) <= 1


def test_small_calls_run_on_the_calling_thread():
    assert _parallel.threads_for(1000, _parallel.MIN_WORK - 1) == 1
    assert _parallel.threads_for(1, 10 ** 12) == 1
    assert _parallel.threads_for(1000, 10 ** 12) == _parallel.get_num_threads()


def test_every_range_runs_once(threads):
    seen, lock = [], threading.Lock()

    def kernel(tag, lo, hi):
        with lock:
            seen.append((tag, lo, hi, threading.get_ident()))
        return hi - lo

    # the first call runs on the caller alone (it compiles, or loads from the cache)
    assert threads.run(kernel, 9, ("x",), work=10 ** 9) == [9]
    assert [s[1:3] for s in seen] == [(0, 9)] and seen[0][3] == threading.get_ident()
    seen.clear()
    assert threads.run(kernel, 9, ("x",), work=10 ** 9) == [5, 4]
    assert sorted(s[1:3] for s in seen) == [(0, 5), (5, 9)]
    assert len({s[3] for s in seen}) == 2   # the caller and one worker


def test_an_error_in_a_worker_reaches_the_caller_and_the_pool_recovers(threads):
    def kernel(lo, hi):
        if lo > 0:
            raise ValueError(f"rows {lo}..{hi}")
        return lo

    assert threads.run(kernel, 10, (), work=10 ** 9) == [0]   # the first call: serial
    with pytest.raises(ValueError, match="rows 5..10"):
        threads.run(kernel, 10, (), work=10 ** 9)
    ranges = lambda lo, hi: (lo, hi)  # noqa: E731
    threads.run(ranges, 4, (), work=10 ** 9)
    assert threads.run(ranges, 4, (), work=10 ** 9) == [(0, 2), (2, 4)]


def test_a_busy_pool_runs_calls_serially(threads):
    inner = []

    def pair(a, b):
        return (a, b)

    def kernel(lo, hi):
        # a parallel call from inside a parallel call: the pool is taken, so it runs here
        inner.append(threads.run(pair, 6, (), work=10 ** 9))
        return lo

    threads.run(pair, 6, (), work=10 ** 9)
    threads.run(kernel, 4, (), work=10 ** 9)
    inner.clear()
    threads.run(kernel, 4, (), work=10 ** 9)
    assert inner == [[(0, 6)], [(0, 6)]]


def test_set_num_threads_validates():
    prev = _parallel.get_num_threads()
    with pytest.raises(ValueError, match="positive integer, got 0"):
        _parallel.set_num_threads(0)
    with pytest.raises(ValueError, match="positive integer"):
        _parallel.set_num_threads(1.5)
    assert _parallel.set_num_threads(prev) == prev
    assert bptt.get_num_threads() == prev


def _train(kind, threads_n, dtype):
    bptt.set_num_threads(threads_n)
    cell = {"lstm": bptt.LSTM, "gru": bptt.GRU, "elman": bptt.Elman}[kind]
    model = bptt.Sequential([bptt.Embedding(11, 6), cell(6, 13), bptt.Dense(13, 11)],
                            dtype=dtype, seed=4)
    opt = bptt.optim.Adam(model.named_parameters(), lr=1e-2)
    trainer = bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(), opt, k1=5, k2=8,
                         clip=[bptt.ClipStateGradient(0.5), bptt.ClipGlobalNorm(1.0)])
    x = np.random.default_rng(0).integers(0, 11, (31, 7))
    report = trainer.fit(x[:-1], x[1:])
    return model.flat_params.copy(), report.losses


@pytest.mark.parametrize("kind", ["lstm", "gru", "elman"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_training_does_not_depend_on_the_number_of_threads(threads, kind, dtype):
    """Every row is computed by the same code in the same order on whichever thread: the
    same training run gives the same bits with 1, 2 or 3 threads."""
    runs = [_train(kind, n, dtype) for n in (1, 2, 3)]
    for params, losses in runs[1:]:
        np.testing.assert_array_equal(params, runs[0][0])
        assert losses == runs[0][1]
