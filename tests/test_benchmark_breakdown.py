"""benchmarks/breakdown.py: it counts every parallel call of a W1 step under the kernel's name,
its parts add up, and it leaves the package as it found it (its run function, its threads)."""

import collections
import os
import types

import pytest

import bptt
import bptt._parallel as par
from conftest import ROOT, load_script

bd = load_script("bench_breakdown", os.path.join(ROOT, "benchmarks", "breakdown.py"))


def calls_of_one_step(cell, workload):
    """Kernel name -> parallel calls in one step, counted here independently."""
    step = bd.bptt_step_fn(cell, *bd.WORKLOADS[workload])
    step.trainer.use_plans = False   # the general path, whose calls breakdown counts
    step()
    counts, real = collections.Counter(), par.run

    def counting(kernel, n, args, work):
        counts[kernel.__name__] += 1
        real(kernel, n, args, work)

    par.run = counting
    try:
        step()
    finally:
        par.run = real
    return dict(counts)


@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_every_parallel_call_is_counted_and_the_parts_add_up(cell):
    run, threads = par.run, bptt.get_num_threads()
    res = bd.breakdown(cell, "tiny", steps=3, rounds=2)
    assert par.run is run and bptt.get_num_threads() == threads
    assert {k: c for k, (c, _) in res["kernels"].items()} == calls_of_one_step(cell, "tiny")
    assert all(t > 0 for _, t in res["kernels"].values())
    kernels = sum(c * t for c, t in res["kernels"].values())
    assert res["outside"] == pytest.approx(res["timed"] - kernels)
    for mode in ("step", "general", "timed", "stubbed", "one_thread", "replayed"):
        assert res[mode] > 0
    text = bd.report(cell, "tiny", res)
    assert all(name in text for name in res["kernels"])


@pytest.mark.parametrize("fail_at", [8, 11, 17])   # in the timed, stubbed, one-thread modes
def test_the_package_is_restored_when_a_step_fails(monkeypatch, fail_at):
    run, threads = par.run, bptt.get_num_threads()

    def failing_step_fn(cell, T, B, H):
        n = [0]

        # 3 warm-up calls, 1 recorded, then per mode (step, timed, stubbed, general, one
        # thread) 1 untimed and `steps` timed
        def step():
            n[0] += 1
            if n[0] == fail_at:
                assert par.run is not run or bptt.get_num_threads() == 1
                raise RuntimeError("step failed")
        step.trainer = types.SimpleNamespace(model=types.SimpleNamespace(named_parameters=dict))
        return step

    monkeypatch.setattr(bd, "bptt_step_fn", failing_step_fn)
    with pytest.raises(RuntimeError, match="step failed"):
        bd.breakdown("elman", "tiny", steps=2, rounds=1)
    assert par.run is run and bptt.get_num_threads() == threads
