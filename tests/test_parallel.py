"""Row-parallel kernel calls (bptt._parallel): splitting, errors, and results that do not
depend on the number of threads."""

import threading

import numba
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

    # the first call runs on the caller alone (it compiles, or loads from the cache)
    assert threads.run(kernel, 9, ("x",), work=10 ** 9) is None
    assert [s[1:3] for s in seen] == [(0, 9)] and seen[0][3] == threading.get_ident()
    seen.clear()
    threads.run(kernel, 9, ("x",), work=10 ** 9)
    assert sorted(s[1:3] for s in seen) == [(0, 5), (5, 9)]
    assert len({s[3] for s in seen}) == 2   # the caller and one worker


def test_an_error_in_a_worker_reaches_the_caller_and_the_pool_recovers(threads):
    def kernel(lo, hi):
        if lo > 0:
            raise ValueError(f"rows {lo}..{hi}")

    threads.run(kernel, 10, (), work=10 ** 9)   # the first call: serial, rows 0..10
    with pytest.raises(ValueError, match="rows 5..10"):
        threads.run(kernel, 10, (), work=10 ** 9)
    seen = []
    threads.run(lambda lo, hi: seen.append((lo, hi)), 4, (), work=10 ** 9)
    assert seen == [(0, 4)]


def test_a_busy_pool_runs_calls_serially(threads):
    inner = []

    def record(lo, hi):
        inner.append((lo, hi))

    def kernel(lo, hi):
        # a parallel call from inside a parallel call: the pool is taken, so it runs here
        threads.run(record, 6, (), work=10 ** 9)

    threads.run(record, 6, (), work=10 ** 9)
    threads.run(kernel, 4, (), work=10 ** 9)
    inner.clear()
    threads.run(kernel, 4, (), work=10 ** 9)
    assert inner == [(0, 6), (0, 6)]


@numba.njit(nogil=True)
def _thread_of_rows(out, scale, lo, hi):
    for i in range(lo, hi):
        out[i] = numba.get_thread_id() * 1000 + i * scale


needs_native = pytest.mark.skipif(not _parallel._native_layer(),
                                  reason="numba has no OpenMP threading layer here")


@needs_native
def test_numba_kernels_run_on_numba_threads(threads):
    out = np.full(10, -1.0)
    threads.run(_thread_of_rows, 10, (out, 2.0), work=10 ** 9)   # first call: serial
    assert np.array_equal(out, np.arange(10) * 2.0 + 1000 * numba.get_thread_id())
    out[:] = -1
    threads.run(_thread_of_rows, 10, (out, 3.0), work=10 ** 9)
    thread = out // 1000
    np.testing.assert_array_equal(out - 1000 * thread, np.arange(10) * 3.0)
    assert len(set(thread[:5])) == len(set(thread[5:])) == 1 and thread[0] != thread[5]
    # other argument types: their own compiled code, found by numba's fingerprint
    out32 = np.full(10, -1.0, np.float32)
    threads.run(_thread_of_rows, 10, (out32, 1.5), work=10 ** 9)
    np.testing.assert_array_equal(out32 % 1000, np.arange(10) * 1.5)


@numba.njit(nogil=True)
def _rows_and_count(out, lo, hi):
    for i in range(lo, hi):
        out[i] = i
    return hi - lo


def test_a_numba_kernel_that_returns_a_value_runs_on_the_python_workers(threads):
    out = np.full(9, -1)
    threads.run(_rows_and_count, 9, (out,), work=10 ** 9)
    out[:] = -1
    threads.run(_rows_and_count, 9, (out,), work=10 ** 9)
    np.testing.assert_array_equal(out, np.arange(9))
    if threads._native_layer():
        assert threads._address(threads._native_layer(), _rows_and_count, (out,)) is None


def test_training_on_another_python_thread_gives_the_same_bits(threads):
    """numba's thread count is per calling thread; a thread that never set it gets the
    default, and the parts run on the same OpenMP team."""
    here = _train("gru", 2, np.float32)
    there = []
    t = threading.Thread(target=lambda: there.append(_train("gru", 2, np.float32)))
    t.start()
    t.join(300)
    np.testing.assert_array_equal(there[0][0], here[0])
    assert there[0][1] == here[1]


def test_the_python_workers_give_the_same_training_as_numba_threads(threads, monkeypatch):
    native = _train("lstm", 2, np.float32)
    monkeypatch.setattr(_parallel, "_native", {})
    workers = _train("lstm", 2, np.float32)
    np.testing.assert_array_equal(workers[0], native[0])
    assert workers[1] == native[1]


_FORKED_TRAINING = """
import multiprocessing as mp, sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_parallel import _train
from bptt import _parallel
_parallel.MIN_WORK = 1

def child(q):
    q.put(_train("elman", 2, np.float64)[0].tobytes())

first = _train("elman", 2, np.float64)[0]   # the parent uses the threads first
ctx = mp.get_context("fork")
q = ctx.Queue()
p = ctx.Process(target=child, args=(q,))
p.start()
got = np.frombuffer(q.get(timeout=120), np.float64)
p.join(60)
assert p.exitcode == 0, p.exitcode
np.testing.assert_array_equal(got, first)
print("ok")
"""


def test_a_forked_child_trains_after_its_parent_used_the_threads():
    """GNU OpenMP aborts a forked child that enters a parallel region after its parent
    did: the child uses the Python workers instead, with the same results."""
    import os
    import subprocess
    import sys
    code = _FORKED_TRAINING.format(tests=os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


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


def test_the_thread_count_comes_from_bptt_num_threads_or_the_cores():
    assert _parallel._from_env({"BPTT_NUM_THREADS": "3", "OMP_NUM_THREADS": "1"}) == 3
    assert _parallel._from_env({"OMP_NUM_THREADS": "1"}) == _parallel._available_cores()


@pytest.mark.parametrize("value", ["0", "-2", "x"])
def test_a_bad_bptt_num_threads_is_named(value):
    with pytest.raises(ValueError, match=f"BPTT_NUM_THREADS must be a positive integer, got '{value}'"):
        _parallel._from_env({"BPTT_NUM_THREADS": value})


def test_a_recording_holds_the_calls_of_its_own_thread_only(threads):
    def kernel(out, lo, hi):
        out[lo:hi] += 1

    a, b = np.zeros(4), np.zeros(4)
    threads.run(kernel, 4, (a,), work=1)
    with threads.recording() as calls:
        threads.run(kernel, 4, (a,), work=10)
        t = threading.Thread(target=threads.run, args=(kernel, 4, (b,), 1))
        t.start()
        t.join()
    threads.run(kernel, 4, (a,), work=1)
    assert calls == [(kernel, 4, (a,), 10)]
    np.testing.assert_array_equal(a, 3) and np.testing.assert_array_equal(b, 1)


@pytest.mark.parametrize("work", [1, 10 ** 9])   # on the calling thread; on the threads
def test_a_prepared_call_repeats_run_on_the_arrays_it_was_given(threads, work):
    out = np.full(10, -1.0)
    threads.run(_thread_of_rows, 10, (out, 2.0), work=work)   # the first call compiles
    prepared = [threads.prepare(_thread_of_rows, 10, (out, 3.0), work)]
    parallel = work > 2 * threads.MIN_WORK and bool(threads._native_layer())
    assert (prepared[0][2] is not None) == parallel
    out[:] = -1
    threads.replay(prepared)
    np.testing.assert_array_equal(out % 1000, np.arange(10) * 3.0)
    assert len(set(out // 1000)) == (2 if parallel else 1)
    # with the pool busy, on the calling thread, as run does
    out[:] = -1
    with threads._lock:
        threads.replay(prepared)
    np.testing.assert_array_equal(out, np.arange(10) * 3.0 + 1000 * numba.get_thread_id())
    # a Python kernel: run's own path (its first call on the calling thread)
    seen = []
    py = [threads.prepare(lambda lo, hi: seen.append((lo, hi)), 6, (), work)]
    threads.replay(py)
    seen.clear()
    threads.replay(py)
    assert sorted(seen) == ([(0, 6)] if work == 1 else [(0, 3), (3, 6)])
