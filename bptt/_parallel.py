"""Row-parallel calls of compiled kernels on a small pool of threads.

The compiled kernels release the GIL, so plain Python threads run them on separate cores. A
parallel call splits the rows ``[0, n)`` into contiguous ranges, one per thread, and calls
``kernel(*args, lo, hi)`` for each; the calling thread takes the first range itself. Kernels
write disjoint rows, so the result does not depend on the number of threads (every row is
computed by the same code in the same order, whichever thread runs it).

The batch streams of a recurrent layer are independent, so a whole time loop splits this way
with no synchronisation per step: each thread runs all T steps for its own streams.

``set_num_threads(n)`` (also ``BPTT_NUM_THREADS``) sets how many threads run; by default, as
many as this process may use cores. Calls too small to gain from more threads run on the
calling thread alone: handing a range to a worker and getting it back costs about 25 us (a
thread wake-up through the GIL), what some 1.2 million multiply-adds take, so a call is split
only into parts of at least ``MIN_WORK`` multiply-adds (callers state the work of other
kernels in multiply-add equivalents). If the pool is busy (another thread of the program is
using it, or a kernel called from a worker), a call runs serially instead of waiting.
"""

import os
import queue
import threading

MIN_WORK = 1_200_000   # multiply-adds per part below which a thread costs more than it saves


def _available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _from_env():
    v = os.environ.get("BPTT_NUM_THREADS")
    if v is None:
        return _available_cores()
    try:
        n = int(v)
    except ValueError:
        raise ValueError(f"BPTT_NUM_THREADS must be a positive integer, got {v!r}") from None
    if n < 1:
        raise ValueError(f"BPTT_NUM_THREADS must be a positive integer, got {v!r}")
    return n


_num_threads = _from_env()


def get_num_threads():
    """Threads the compiled kernels split their rows over."""
    return _num_threads


def set_num_threads(n):
    """Use ``n`` threads (>= 1) for the compiled kernels; returns the previous number."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"num_threads must be a positive integer, got {n!r}")
    prev, _num_threads = _num_threads, n
    return prev


class _Worker:
    def __init__(self):
        self.tasks = queue.SimpleQueue()
        self.results = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="bptt-worker", daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            kernel, args = self.tasks.get()
            try:
                self.results.put((True, kernel(*args)))
            except BaseException as e:  # noqa: BLE001  (handed to the caller)
                self.results.put((False, e))


_workers = []
_lock = threading.Lock()


def _reset_after_fork():
    global _lock
    _workers.clear()
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def split(n, parts):
    """``parts`` contiguous (lo, hi) ranges covering [0, n), sizes differing by at most 1."""
    q, r = divmod(n, parts)
    out, lo = [], 0
    for i in range(parts):
        hi = lo + q + (i < r)
        out.append((lo, hi))
        lo = hi
    return out


def threads_for(n, work):
    """How many threads a call over ``n`` rows with ``work`` multiply-adds in all should use."""
    t = min(_num_threads, n, max(1, int(work // MIN_WORK)))
    return max(1, t)


_called = set()   # kernels called once already (their first call compiles or loads them)


def run(kernel, n, args, work):
    """``kernel(*args, lo, hi)`` over contiguous ranges of [0, n), in parallel when ``work``
    (multiply-adds in all) makes it worth it. Returns the results in range order.

    A kernel's first call runs on the calling thread alone: it compiles the kernel or loads it
    from numba's cache, and threads calling it at once would wait for each other to do so."""
    if work < 2 * MIN_WORK or _num_threads == 1 or n < 2 or kernel not in _called:
        _called.add(kernel)
        return [kernel(*args, 0, n)]
    parts = threads_for(n, work)
    if parts == 1 or not _lock.acquire(blocking=False):
        return [kernel(*args, 0, n)]
    try:
        while len(_workers) < parts - 1:
            _workers.append(_Worker())
        ranges = split(n, parts)
        for w, (lo, hi) in zip(_workers, ranges[1:]):
            w.tasks.put((kernel, (*args, lo, hi)))
        results, error = [], None
        try:
            results.append(kernel(*args, *ranges[0]))
        except BaseException as e:  # noqa: BLE001  (raised once the workers are done)
            error = e
        for w in _workers[:parts - 1]:
            ok, value = w.results.get()
            if ok:
                results.append(value)
            elif error is None:
                error = value
        if error is not None:
            raise error
        return results
    finally:
        _lock.release()
