"""How a recurrent cell's time loops share two threads: the measurement behind the small LSTM
paragraph of the README's "Speed".

    python benchmarks/time_loops.py                          # small LSTM
    python benchmarks/time_loops.py --cell gru --workload mid

The streams of a batch are independent, so bptt splits a cell's forward and backward time
loops by streams, half to each thread, with no synchronisation per step. For one W1 workload
and cell, this captures the arguments of the two loops (the calls ``bptt._parallel.run``
makes for them in one training step) and times each loop, in rounds interleaved so that
every mode sees the same state of a shared machine:

- half 1, half 2: the kernel over each half of the streams alone, on the calling thread;
- one thread: all the streams on the calling thread;
- parallel: through ``bptt._parallel.run``, as a training step runs it;
- two threads, one array: the two halves on two Python threads at once, on the step's arrays;
- two threads, own arrays: the same, each thread on B/2 streams with arrays of its own
  (captured from a second model of B/2 streams): the speed of the halves if each thread's
  streams had memory of their own.

Each figure is the median over all rounds of a block's median; for two threads, the slower
thread's. With nothing shared, "parallel" would take the time of the slower half.
"""

import argparse
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bptt._parallel as _par   # noqa: E402
from breakdown import WORKLOADS, _timed_steps   # noqa: E402
from run import bptt_step_fn   # noqa: E402

LOOPS = ("_forward", "_backward")


def capture(cell, T, B, H):
    """name -> (kernel, n, args, work) of the cell's time loops in one training step."""
    step = bptt_step_fn(cell, T, B, H)
    step.trainer.use_plans = False   # the general path: its calls go through _par.run
    for _ in range(3):
        step()
    calls, real = {}, _par.run

    def spy(kernel, n, args, work):
        if getattr(kernel, "__name__", "") in LOOPS:
            calls.setdefault(kernel.__name__, (kernel, n, args, work))
        real(kernel, n, args, work)

    _par.run = spy
    try:
        step()
    finally:
        _par.run = real
    return calls


def _block(f, reps):
    return statistics.median(_timed_steps(f, reps))


def _pair(f0, f1, reps):
    """Median over reps of the slower of f0 and f1 started together on two threads."""
    times = [[], []]
    barrier = threading.Barrier(2)

    def worker(i, f):
        for _ in range(reps):
            barrier.wait()
            t0 = time.perf_counter()
            f()
            times[i].append(time.perf_counter() - t0)

    other = threading.Thread(target=worker, args=(1, f1))
    other.start()
    worker(0, f0)
    other.join()
    return statistics.median(max(a, b) for a, b in zip(*times))


def measure(cell, T, B, H, rounds=20, reps=10):
    """{loop name: {mode: median seconds}} for the modes of the module docstring. B even."""
    if B < 2 or B % 2:
        raise ValueError(f"the streams split in two halves: B must be even, got {B}")
    whole, halves = capture(cell, T, B, H), capture(cell, T, B // 2, H)
    halves2 = capture(cell, T, B // 2, H)
    out = {}
    for name in LOOPS:
        kernel, n, args, work = whole[name]
        a1, a2 = halves[name][2], halves2[name][2]
        h = n // 2
        modes = {
            "half 1": lambda: _block(lambda: kernel(*args, 0, h), reps),
            "half 2": lambda: _block(lambda: kernel(*args, h, n), reps),
            "one thread": lambda: _block(lambda: kernel(*args, 0, n), reps),
            "parallel": lambda: _block(lambda: _par.run(kernel, n, args, work=work), reps),
            "two threads, one array": lambda: _pair(lambda: kernel(*args, 0, h),
                                                    lambda: kernel(*args, h, n), reps),
            "two threads, own arrays": lambda: _pair(lambda: kernel(*a1, 0, h),
                                                     lambda: kernel(*a2, 0, h), reps),
        }
        for f in modes.values():   # the first calls of each mode (the threading layer's start)
            f()
        res = {k: [] for k in modes}
        for _ in range(rounds):
            for k, f in modes.items():
                res[k].append(f())
        out[name] = {k: statistics.median(v) for k, v in res.items()}
    return out


def report(cell, workload, T, B, H, res):
    lines = [f"{workload} {cell} (T {T}, B {B}, H {H}): each time loop, us (ratio to the "
             "slower half alone)"]
    for name, modes in res.items():
        lone = max(modes["half 1"], modes["half 2"])
        lines.append(f"  {name.strip('_')}")
        lines += [f"    {k:<26}{1e6 * v:9.1f}  ({v / lone:.2f})" for k, v in modes.items()]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", default="lstm", choices=("elman", "lstm", "gru"))
    ap.add_argument("--workload", default="small", choices=[w for w in WORKLOADS if w != "tiny"])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--reps", type=int, default=10)
    a = ap.parse_args(argv)
    T, B, H = WORKLOADS[a.workload]
    print(report(a.cell, a.workload, T, B, H, measure(a.cell, T, B, H, a.rounds, a.reps)))


if __name__ == "__main__":
    main()
