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
