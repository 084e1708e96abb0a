"""Row-parallel calls of compiled kernels.

A parallel call splits the rows ``[0, n)`` into contiguous ranges, one per thread, and calls
``kernel(*args, lo, hi)`` for each; the calling thread takes the first range itself. Kernels
write disjoint rows, so the result does not depend on the number of threads (every row is
computed by the same code in the same order, whichever thread runs it).

The batch streams of a recurrent layer are independent, so a whole time loop splits this way
with no synchronisation per step: each thread runs all T steps for its own streams.

Which threads: a numba kernel runs on numba's OpenMP threading layer through
:func:`bptt._kernels.launch.launch`, which hands a range to a waiting thread in a few
microseconds; a Python function, or every kernel where numba runs another layer (TBB, which
is untested here, or its workqueue) or in a forked child (which GNU OpenMP would abort), on a
pool of Python threads (the kernels release the GIL), which takes 20-60 us a hand-off: a
thread woken through a queue and the GIL. On the W1 steps of ../shared/WORKLOADS.md numba's
threads made the small and mid steps 3-13% faster than the Python pool (tiny steps run on
one thread).

``set_num_threads(n)`` (also ``BPTT_NUM_THREADS``) sets how many threads run; by default, as
many as this process may use cores. Calls too small to gain from more threads run on the
calling thread alone: a call is split only into parts of at least ``MIN_WORK`` multiply-adds
(callers state the work of other kernels in multiply-add equivalents). Even on numba's
threads a lower threshold made W1 steps slower (tiny 0.78-0.93x, small 0.93-1.0x at a third
or an eighth of it): a part's data is cold on the other core. If the pool is busy (another
thread of the program is using it, or a kernel called from a worker), a call runs serially
instead of waiting.
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


def _from_env(environ=os.environ):
    v = environ.get("BPTT_NUM_THREADS")
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
    global _lock, _native
    _workers.clear()
    _lock = threading.Lock()
    _native = {}   # GNU OpenMP aborts a forked child that uses it after its parent did


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
_native = None    # the numba pieces of the compiled launch, {} for none (decided at first use)
_addresses = {}   # (kernel, numba's fingerprint of the arguments) -> the compiled code's address
_bounds = {}      # (n, parts) -> split(n, parts) as the int64 boundaries for the launcher
_recording = None   # (thread id, list receiving (kernel, n, args, work)) while recording


def _native_layer():
    """What the compiled launch needs, if numba's threading layer is OpenMP (the one tested
    here: numba picks it when libgomp loads and TBB is not installed); else {}, and the
    Python workers run every kernel. Numba's last resort, its workqueue layer, is not
    thread-safe and took longer to hand over a part (33 us) than a Python worker (24 us)."""
    global _native
    if _native is None:
        _native = {}
        try:
            import numba
            from numba._dispatcher import compute_fingerprint   # numba's own dispatch key
            from numba.np.ufunc import parallel as numba_parallel

            from ._kernels.launch import launch   # (the kernel modules import this one)
            numba_parallel._launch_threads()
            if numba.threading_layer() == "omp":
                _native = {"launch": launch, "fingerprint": compute_fingerprint,
                           "dispatcher": numba.core.dispatcher.Dispatcher,
                           "typeof": numba.typeof, "int64": numba.int64,
                           "none": numba.types.none}
        except Exception:  # noqa: BLE001  (no usable layer: the Python workers do it)
            pass
    return _native


def _address(native, kernel, args):
    """The address of ``kernel``'s code compiled for (*args, lo, hi), or None if it is not a
    numba kernel returning nothing (then the Python workers call it)."""
    if not isinstance(kernel, native["dispatcher"]):
        return None
    key = (kernel, native["fingerprint"](args))
    address = _addresses.get(key)
    if address is None:
        sig = tuple(native["typeof"](a) for a in args) + (native["int64"],) * 2
        if sig not in kernel.overloads:
            kernel.compile(sig)
        cres = kernel.overloads[sig]
        # the launcher calls a function with no return value (one would be written through
        # a pointer to a slot sized for none)
        address = _addresses[key] = (
            cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
            if cres.signature.return_type == native["none"] else 0)
    return address or None


class recording:
    """``with recording() as calls:`` appends every :func:`run` call this thread makes inside
    the block to the list ``calls``, as (kernel, n, args, work) (for bptt._plan)."""

    def __enter__(self):
        global _recording
        self.previous, _recording = _recording, (threading.get_ident(), [])
        return _recording[1]

    def __exit__(self, *exc):
        global _recording
        _recording = self.previous
        return False


def prepare(kernel, n, args, work):
    """What :func:`replay` needs to repeat ``run(kernel, n, args, work)`` with these very
    arguments (the arrays' contents may change, not the arrays) at less cost: the decisions
    :func:`run` takes at every call (how many threads, the compiled code's address, the
    range boundaries) taken once, and for a call on the calling thread the compiled code
    itself (numba's entry point for these argument types: the dispatcher's typing of a dozen
    arrays skipped). Valid while the number of threads stays the same."""
    full = (*args, 0, n)
    serial = (work < 2 * MIN_WORK or _num_threads == 1 or n < 2
              or threads_for(n, work) == 1)
    call = kernel
    if hasattr(kernel, "overloads"):
        native = _native_layer()
        sig = tuple(native["typeof"](a) for a in full) if native else None
        cres = kernel.overloads.get(sig) if sig is not None else None
        if cres is not None:
            call = cres.entry_point
        if not serial and native:
            address = _address(native, kernel, args)
            if address is not None:
                return (call, full, native["launch"], address, args,
                        _boundaries(n, threads_for(n, work)))
    if serial:
        return (call, full, None, None, None, None)
    return (run, (kernel, n, args, work), None, None, None, None)


def replay(calls):
    """Run the calls :func:`prepare` made, in order."""
    for call, full, launch, address, args, bounds in calls:
        if launch is not None and _lock.acquire(blocking=False):
            try:
                launch(address, args, bounds)
            finally:
                _lock.release()
        else:
            call(*full)


def _boundaries(n, parts):
    b = _bounds.get((n, parts))
    if b is None:
        import numpy as np
        if len(_bounds) > 1000:   # (row counts vary with the batch: keep it small)
            _bounds.clear()
        b = _bounds[(n, parts)] = np.array([0] + [hi for _, hi in split(n, parts)], np.int64)
    return b


def run(kernel, n, args, work):
    """``kernel(*args, lo, hi)`` over contiguous ranges of [0, n), in parallel when ``work``
    (multiply-adds in all) makes it worth it. Returns nothing: kernels write their results.

    A numba kernel runs on numba's OpenMP threads (bptt._kernels.launch); a Python
    function, or every kernel where numba has no OpenMP layer, on Python workers. A
    kernel's first call runs on the calling thread alone: it compiles the kernel or loads it
    from numba's cache, and threads calling it at once would wait for each other to do so."""
    if _recording is not None and _recording[0] == threading.get_ident():
        _recording[1].append((kernel, n, args, work))
    if work < 2 * MIN_WORK or _num_threads == 1 or n < 2 or kernel not in _called:
        _called.add(kernel)
        kernel(*args, 0, n)
        return
    parts = threads_for(n, work)
    if parts == 1 or not _lock.acquire(blocking=False):
        kernel(*args, 0, n)
        return
    try:
        native = _native_layer()
        address = _address(native, kernel, args) if native else None
        if address is not None:
            native["launch"](address, args, _boundaries(n, parts))
            return
        while len(_workers) < parts - 1:
            _workers.append(_Worker())
        ranges = split(n, parts)
        for w, (lo, hi) in zip(_workers, ranges[1:]):
            w.tasks.put((kernel, (*args, lo, hi)))
        error = None
        try:
            kernel(*args, *ranges[0])
        except BaseException as e:  # noqa: BLE001  (raised once the workers are done)
            error = e
        for w in _workers[:parts - 1]:
            ok, value = w.results.get()
            if not ok and error is None:
                error = value
        if error is not None:
            raise error
    finally:
        _lock.release()
