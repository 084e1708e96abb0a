"""Where the time of one W1 training step goes: the compiled kernels, one by one, and the rest.

    python benchmarks/breakdown.py                       # tiny Elman and LSTM, small LSTM
    python benchmarks/breakdown.py --cell lstm --workload wide --steps 40

For one workload and cell of ../shared/WORKLOADS.md (the step of benchmarks/run.py), in rounds
interleaved so that the five modes see the same state of a shared machine:

- step: the step as it runs (once its shape has come twice, by the recorded plan of
  bptt._plan: the same compiled calls replayed, with none of the parts' Python around them);
- general: the step by the general path (``trainer.use_plans = False``), which the next two
  modes take apart;
- timed: the general step, with every call that goes through ``bptt._parallel.run`` (the
  cells' time loops, weight gradients and weight packing, the dense layer, the loss, the
  optimizer update) timed on its own, by kernel name; what is left of this step ("outside
  the parallel calls") is the Python around the kernels plus the few small kernels it calls
  directly (zeroing, the gradient norm, input checks), and the cost of the timing itself
  (timed - general);
- stubbed: the general step with every parallel call returning at once (nothing is computed,
  the parameters do not change): the Python alone, on caches the kernels have not disturbed;
- one thread: the step with ``bptt.set_num_threads(1)``: what the second core adds;
- replayed: the parallel calls of one step, recorded, run back to back with nothing between
  them (on that step's arrays; the parameters are put back after each block): the step's
  floor if no Python at all ran around the kernels (the plan still checks the inputs, fills
  its few per-step arrays, takes the gradient norm and runs the optimizer in Python).

Every figure is a median over the steps of all rounds.
"""

import argparse
import collections
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bptt                     # noqa: E402
import bptt._parallel as _par   # noqa: E402
from run import W1, bptt_step_fn   # noqa: E402

WORKLOADS = {name: (T, B, H) for name, T, B, H in W1}


def _timed_steps(step, n):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    return ts


def breakdown(cell, workload, steps=30, rounds=4):
    """Measure one W1 step (see the module docstring). Returns a dict: ``step``,
    ``general``, ``timed``, ``stubbed``, ``one_thread``, ``replayed`` (median seconds per
    step), ``kernels`` (name -> (calls per step, median seconds per call)) and ``outside``
    (timed minus the kernels' share, calls x median, summed)."""
    T, B, H = WORKLOADS[workload]
    step = bptt_step_fn(cell, T, B, H)
    for _ in range(3):
        step()
    real_run = _par.run
    per_call = collections.defaultdict(list)
    counting = [False]

    def timed_run(kernel, n, args, work):
        t0 = time.perf_counter()
        real_run(kernel, n, args, work)
        if counting[0]:
            per_call[getattr(kernel, "__name__", repr(kernel))].append(time.perf_counter() - t0)

    def stub_run(kernel, n, args, work):
        pass

    recorded = []

    def recording_run(kernel, n, args, work):
        recorded.append((kernel, n, args, work))
        real_run(kernel, n, args, work)

    def replay():
        for call in recorded:
            real_run(*call)

    trainer = step.trainer

    def general(on):
        trainer.use_plans = not on

    general(True)
    _par.run = recording_run
    try:
        step()
    finally:
        _par.run = real_run
        general(False)
    params = trainer.model.named_parameters()
    times = {"step": [], "general": [], "timed": [], "stubbed": [], "one_thread": [],
             "replayed": []}
    threads = bptt.get_num_threads()
    try:
        for _ in range(rounds):
            step()                       # untimed: another mode ran last
            times["step"] += _timed_steps(step, steps)
            general(True)
            _par.run = timed_run
            step()
            counting[0] = True
            times["timed"] += _timed_steps(step, steps)
            counting[0] = False
            _par.run = stub_run
            step()
            times["stubbed"] += _timed_steps(step, steps)
            _par.run = real_run
            step()
            times["general"] += _timed_steps(step, steps)
            general(False)
            bptt.set_num_threads(1)
            step()
            times["one_thread"] += _timed_steps(step, steps)
            bptt.set_num_threads(threads)
            saved = {k: p.copy() for k, p in params.items()}
            try:
                replay()
                times["replayed"] += _timed_steps(replay, steps)
            finally:
                for k, p in params.items():   # the replayed updates undone
                    p[...] = saved[k]
    finally:
        _par.run = real_run
        bptt.set_num_threads(threads)
        general(False)
    n_steps = rounds * steps
    res = {k: statistics.median(v) for k, v in times.items()}
    res["kernels"] = {name: (len(v) / n_steps, statistics.median(v))
                      for name, v in per_call.items()}
    res["outside"] = res["timed"] - sum(c * t for c, t in res["kernels"].values())
    return res


def report(cell, workload, res):
    us = 1e6
    T, B, H = WORKLOADS[workload]
    lines = [f"{workload} {cell} (T {T}, B {B}, H {H}), {bptt.get_num_threads()} threads: "
             f"step {res['step'] * us:.0f} us (one thread {res['one_thread'] * us:.0f} us); "
             f"by the general path {res['general'] * us:.0f} us (with each parallel call timed "
             f"{res['timed'] * us:.0f} us)",
             f"  {'parallel call':<24} {'per step':>8} {'us each':>9} {'us a step':>10}"]
    for name, (calls, t) in sorted(res["kernels"].items(), key=lambda kv: -kv[1][0] * kv[1][1]):
        lines.append(f"  {name:<24} {calls:>8.0f} {t * us:>9.1f} {calls * t * us:>10.1f}")
    lines.append(f"  {'outside the parallel calls (general path)':<43} "
                 f"{res['outside'] * us:>10.1f}")
    lines.append(f"  {'the same, kernels stubbed out':<43} {res['stubbed'] * us:>10.1f}")
    lines.append(f"  {'the parallel calls alone, back to back':<43} {res['replayed'] * us:>10.1f}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cell", nargs="*", choices=["elman", "lstm", "gru"])
    ap.add_argument("--workload", nargs="*", choices=list(WORKLOADS))
    ap.add_argument("--steps", type=int, default=30, help="timed steps per round and mode")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args(argv)
    if args.cell or args.workload:
        cases = [(c, w) for w in (args.workload or ["tiny"]) for c in (args.cell or ["lstm"])]
    else:
        cases = [("elman", "tiny"), ("lstm", "tiny"), ("lstm", "small")]
    for cell, workload in cases:
        res = breakdown(cell, workload, args.steps, args.rounds)
        print(report(cell, workload, res), flush=True)


if __name__ == "__main__":
    main()
