"""benchmarks/run.py's timing: blocks interleaved round by round, each at least ``steps //
rounds`` calls and long enough to fill ``min_block`` seconds (on a fake clock, so that the
counts are exact)."""

import os
import types

import pytest

from conftest import ROOT, load_script

bench = load_script("bench_run", os.path.join(ROOT, "benchmarks", "run.py"))


def test_blocks_fill_the_minimum_time_and_interleave(monkeypatch):
    now = [0.0]
    clock = types.SimpleNamespace(perf_counter=lambda: now[0],
                                  sleep=lambda s: now.__setitem__(0, now[0] + s))
    monkeypatch.setattr(bench, "time", clock)
    calls, order = {"fast": 0, "slow": 0}, []

    def make(name, seconds):
        def f():
            calls[name] += 1
            order.append(name)
            now[0] += seconds
        return f

    fns = {"fast": make("fast", 3e-4), "slow": make("slow", 4.5e-3)}
    med = bench.time_interleaved(fns, steps=8, warmup=2, rounds=3, settle=0.3, min_block=0.02)
    # each block: one untimed call, then max(8 // 3, 20 ms / the call's time) timed calls
    assert calls == {"fast": 2 + 3 * (1 + 67), "slow": 2 + 3 * (1 + 5)}
    assert med == pytest.approx({"fast": 3e-4, "slow": 4.5e-3})
    # round by round: fast's block, slow's, fast's, ...
    runs = [order[4]]
    for name in order[5:]:
        if name != runs[-1]:
            runs.append(name)
    assert runs == ["fast", "slow"] * 3
    # a block never shorter than steps // rounds calls, however long a call takes
    calls.update(fast=0, slow=0)
    fns = {"slow": make("slow", 1.0)}
    bench.time_interleaved(fns, steps=8, warmup=1, rounds=2, settle=0.0, min_block=0.02)
    assert calls["slow"] == 1 + 2 * (1 + 4)


def test_rounds_keep_each_block_and_the_ratio_is_paired_round_by_round(monkeypatch):
    now, sleeps = [0.0], [0]

    def sleep(s):
        sleeps[0] += 1   # one before every block: bptt's of round 0, torch's, bptt's of 1...
        now[0] += s
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=lambda: now[0],
                                                             sleep=sleep))
    speed = [1.0, 1.5, 1.0]   # the machine is 1.5x slower for both in the second round

    def step(seconds):
        def f():
            now[0] += seconds * speed[max(sleeps[0] - 1, 0) // 2]
        return f

    rounds = bench.time_rounds({"bptt": step(2e-4), "torch": step(2e-3)}, steps=300,
                               warmup=2, rounds=3, settle=0.3, min_block=0.01)
    assert [len(b) for b in rounds["bptt"]] == [100] * 3
    assert [len(b) for b in rounds["torch"]] == [100] * 3
    assert [b[0] for b in rounds["bptt"]] == pytest.approx([2e-4, 3e-4, 2e-4])
    assert [b[0] for b in rounds["torch"]] == pytest.approx([2e-3, 3e-3, 2e-3])
    # each round's ratio is 10, however fast the machine ran that round
    assert bench.paired_ratio(rounds["torch"], rounds["bptt"]) == pytest.approx((10, 10, 10))
    assert bench.medians(rounds) == pytest.approx({"bptt": 2e-4, "torch": 2e-3})


def test_paired_ratio_reports_the_median_and_the_range_of_the_rounds():
    bptt = [[1.0, 1.0, 9.0], [1.0] * 3, [1.5] * 3, [1.0] * 3]
    torch = [[15.0] * 3, [10.0] * 3, [10.0] * 3, [12.0, 12.0, 0.1]]
    assert bench.paired_ratio(torch, bptt) == pytest.approx((11, 10 / 1.5, 15))
