"""benchmarks/time_loops.py: it times both time loops of a cell in every mode, and leaves
bptt's run function as it found it."""

import os

import pytest

import bptt._parallel as par
from conftest import ROOT, load_script

tl = load_script("bench_time_loops", os.path.join(ROOT, "benchmarks", "time_loops.py"))


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_both_loops_are_timed_in_every_mode(cell):
    run = par.run
    res = tl.measure(cell, 6, 4, 16, rounds=1, reps=2)
    assert par.run is run
    assert set(res) == {"_forward", "_backward"}
    for modes in res.values():
        assert set(modes) == {"half 1", "half 2", "one thread", "parallel",
                              "two threads, one array", "two threads, own arrays"}
        assert all(t > 0 for t in modes.values())
    text = tl.report(cell, "test", 6, 4, 16, res)
    assert "forward" in text and "backward" in text and "(1.00)" in text


def test_an_odd_batch_is_refused():
    with pytest.raises(ValueError, match="B must be even"):
        tl.measure("elman", 6, 3, 16)
