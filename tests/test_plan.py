"""The recorded plan of a training step (bptt._plan): the same numbers as the general path bit
for bit, used where it applies and nowhere else, refused when a step holds an array it does
not know, and harmless to everything around it (non-finite steps, the carried state, other
shapes and thread counts, evaluation)."""

import warnings
import weakref

import numpy as np
import pytest

import bptt
import bptt._parallel as par
from bptt._plan import StepPlan

V = 13
CELLS = {"elman": bptt.Elman, "lstm": bptt.LSTM, "gru": bptt.GRU}


def engine(cell="lstm", H=8, E=6, dtype=np.float32, use_plans=True, clip=1.0, opt="sgd",
           k1=6, parts=None, loss=None, **kw):
    model = bptt.Sequential(parts() if parts else [bptt.Embedding(V, E), CELLS[cell](E, H),
                                                   bptt.Dense(H, V)], dtype=dtype, seed=3)
    params = model.named_parameters()
    optimizer = (bptt.optim.SGD(params, lr=0.3) if opt == "sgd"
                 else bptt.optim.Adam(params, lr=0.01))
    if isinstance(clip, float):
        clip = bptt.ClipGlobalNorm(clip)
    tr = bptt.TBPTT(model, loss or bptt.SoftmaxCrossEntropy(), optimizer, k1=k1, clip=clip,
                    **kw)
    tr.use_plans = use_plans
    return tr


def stream(T, B, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))


def same_engines(a, b):
    pa, pb = a.model.named_parameters(), b.model.named_parameters()
    assert all(np.array_equal(pa[k], pb[k], equal_nan=True) for k in pa)
    assert len(a.state) == len(b.state)
    for sa, sb in zip(a.state, b.state):
        assert all(np.array_equal(x, y) for x, y in zip(sa, sb))
    assert a.optimizer.steps == b.optimizer.steps and a.position == b.position


def same_stats(s, t):
    for k in ("loss", "grad_norm", "grad_norm_clipped", "updates", "skipped", "clip_counts",
              "steps"):
        assert getattr(s, k) == getattr(t, k) or (np.isnan(getattr(s, k))
                                                  and np.isnan(getattr(t, k))), k


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("T,B,H", [(3, 1, 8), (6, 3, 8), (12, 16, 64)])  # fold: V <= T*B
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("clip,opt", [(0.05, "sgd"), (100.0, "sgd"), (None, "adam")])
def test_the_plan_gives_the_general_paths_numbers_bit_for_bit(cell, T, B, H, dtype, clip, opt):
    a = engine(cell, H=H, dtype=dtype, clip=clip, opt=opt, k1=T)
    b = engine(cell, H=H, dtype=dtype, clip=clip, opt=opt, k1=T, use_plans=False)
    for s in range(4):
        x, y = stream(2 * T, B, seed=s)    # two chunks a call
        same_stats(a.step(x, y), b.step(x, y))
        same_engines(a, b)
    assert a._plan is not None and b._plan is None
    # the folded embedding where V <= T*B, the embedding's own lookup otherwise
    assert a._plan.folded == (V <= T * B)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_summed_loss_by_the_plan(cell):
    a = engine(cell, loss=bptt.SoftmaxCrossEntropy(reduction="sum"), k1=4)
    b = engine(cell, loss=bptt.SoftmaxCrossEntropy(reduction="sum"), k1=4, use_plans=False)
    for s in range(3):
        x, y = stream(8, 5, seed=s)
        same_stats(a.step(x, y), b.step(x, y))
        same_engines(a, b)
    assert a._plan is not None


def test_the_plan_runs_parallel_calls_on_the_threads():
    if bptt.get_num_threads() < 2:
        pytest.skip("one thread")
    a = engine("lstm", H=64, k1=12)
    x, y = stream(24, 16)
    a.step(x, y)
    launched = [p for p in a._plan.prepared if p[2] is not None]
    assert launched, "the LSTM's time loops at B = 16, H = 64 run on two threads"


@pytest.mark.parametrize("case", ["weights", "resets", "value clip", "state clip", "k2 > k1",
                                  "k2 < k1", "accumulate", "ignore_index", "dropout",
                                  "two cells", "no plans", "full BPTT"])
def test_chunks_the_plan_does_not_cover_run_by_the_general_path(case):
    kw, step_kw = {}, {}
    x, y = stream(12, 2)
    if case == "weights":
        step_kw["weights"] = np.ones((12, 2))
    elif case == "resets":
        step_kw["resets"] = np.zeros((12, 2), bool)
    elif case == "value clip":
        kw["clip"] = [bptt.ClipGlobalNorm(1.0), bptt.ClipValue(0.5)]
    elif case == "state clip":
        kw["clip"] = [bptt.ClipStateGradient(1.0)]
    elif case == "k2 > k1":
        kw["k2"] = 9
    elif case == "k2 < k1":
        kw["k2"] = 3
    elif case == "accumulate":
        kw["accumulate"] = 2
    elif case == "ignore_index":
        kw["loss"] = bptt.SoftmaxCrossEntropy(ignore_index=0)
    elif case == "dropout":
        kw["parts"] = lambda: [bptt.Embedding(V, 6), bptt.LSTM(6, 8), bptt.Dropout(0.1),
                               bptt.Dense(8, V)]
    elif case == "two cells":
        kw["parts"] = lambda: [bptt.Embedding(V, 6), bptt.LSTM(6, 8), bptt.LSTM(8, 8),
                               bptt.Dense(8, V)]
    elif case == "no plans":
        kw["use_plans"] = False
    elif case == "full BPTT":
        kw["k1"], kw["k2"] = None, None
    tr = engine(**kw)
    for _ in range(3):
        tr.step(x, y, **step_kw)
    assert tr._plan is None


def recorded_step(tr, x, y):
    """The calls of one step's forward, loss and backward, as the engine records them."""
    with par.recording() as calls:
        out, _, cache = tr.model.forward(x)
        _, dout, _ = tr.loss.value_grad_and_weight(out, y)
        tr.model.zero_grad()
        tr.model.backward(dout, None, cache)
    return calls


def test_a_step_holding_an_array_the_plan_does_not_know_is_not_planned():
    tr = engine(k1=6)
    x, y = stream(6, 3)
    calls = recorded_step(tr, x, y)
    assert StepPlan.build(tr.model, tr.loss, calls, 6, 3) is not None
    # a call whose output array is one of its own (not a work array of a part)
    k, n, args, work = calls[-1]
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray) and a.size and a.dtype.kind == "f":
            break
    tampered = calls[:-1] + [(k, n, args[:i] + (a.copy(),) + args[i + 1:], work)]
    assert StepPlan.build(tr.model, tr.loss, tampered, 6, 3) is None
    # a call the plan has no name for its arguments (a kernel with other parameters)
    assert StepPlan.build(tr.model, tr.loss, calls[:-1] + [(k, n, args[:-1], work)], 6,
                          3) is None
    # the engine then leaves it to the general path for that shape, and says so once
    tr2 = engine(k1=6)
    real = StepPlan.build
    try:
        StepPlan.build = classmethod(lambda cls, *a: None)
        tr2.step(x, y)
        tr2.step(x, y)   # (the first chunk of a shape is not recorded, the second is)
    finally:
        StepPlan.build = real
    assert tr2._plan is None and (6, 3) in tr2._plan_refused
    tr2.step(x, y)
    assert tr2._plan is None


@pytest.mark.parametrize("on_nonfinite", ["skip", "raise"])
def test_a_non_finite_step_by_the_plan_is_handled_as_by_the_general_path(on_nonfinite):
    a = engine(on_nonfinite=on_nonfinite)
    b = engine(on_nonfinite=on_nonfinite, use_plans=False)
    x, y = stream(12, 2)
    for tr in (a, b):
        tr.step(x, y)
    assert a._plan is not None
    for tr in (a, b):
        tr.model.parts[2].params["weight"][0, 0] = np.nan
    before = {k: v.copy() for k, v in a.model.named_parameters().items()}
    results = []
    for tr in (a, b):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            if on_nonfinite == "raise":
                with pytest.raises(bptt.NonFiniteError) as e:
                    tr.step(x, y)
                results.append(str(e.value))
            else:
                s = tr.step(x, y)
                results.append((s.skipped, s.updates, s.nonfinite, [str(m.message) for m in w]))
    assert results[0] == results[1]
    same_engines(a, b)
    after = a.model.named_parameters()
    assert all(np.array_equal(before[k], after[k], equal_nan=True) for k in before)


def test_a_plan_follows_a_new_loss_or_its_reduction():
    a, b = engine(k1=6), engine(k1=6, use_plans=False)
    x, y = stream(12, 3)
    for change in (None, "reduction", "object"):
        for tr in (a, b):
            if change == "reduction":
                tr.loss.reduction = "sum"
            elif change == "object":
                tr.loss = bptt.SoftmaxCrossEntropy()
            same = tr.step(x, y)
        same_stats(a.step(x, y), b.step(x, y))
        same_engines(a, b)
        assert a._plan is not None and a._plan.loss is a.loss
    assert same.steps == 12


def test_the_carried_state_is_not_written_by_later_steps():
    tr = engine("lstm", k1=6)
    x, y = stream(6, 3)
    for _ in range(3):   # the third by the plan
        tr.step(x, y)
    assert tr._plan is not None
    kept = tr.state
    copies = [tuple(a.copy() for a in s) for s in kept]
    for _ in range(2):
        tr.step(x, y)
    for s, c in zip(kept, copies):
        assert all(np.array_equal(a, b) for a, b in zip(s, c))


def test_a_new_plan_for_another_batch_or_thread_count_and_evaluation_in_between():
    a, b = engine(k1=6), engine(k1=6, use_plans=False)
    threads = bptt.get_num_threads()
    try:
        for B, n in ((3, threads), (5, threads), (5, 1), (3, threads)):
            bptt.set_num_threads(n)
            x, y = stream(12, B, seed=B)
            for tr in (a, b):
                tr.reset_state()
                tr.step(x, y)
                tr.step(x, y)
            assert a._plan.B == B and a._plan.threads == n
            assert a.evaluate(x, y) == b.evaluate(x, y)
            same_stats(a.step(x, y), b.step(x, y))
            same_engines(a, b)
    finally:
        bptt.set_num_threads(threads)


def test_a_plan_is_made_for_a_shape_that_repeats_and_let_go_for_another():
    """A stream's short last chunk, or shapes that alternate, run by the general path with no
    plan held beside it (its work arrays would be a second set)."""
    a, b = engine(k1=6), engine(k1=6, use_plans=False)
    x, y = stream(6 * 4 + 2, 3)          # four chunks of 6 and one of 2
    for tr in (a, b):
        same = tr.fit(x, y)
    assert a._plan is None and a._last_shape == (2, 3)
    same_stats(a.fit(x, y), b.fit(x, y))
    same_engines(a, b)
    for tr in (a, b):
        tr.fit(x[:24], y[:24])
    assert a._plan is not None and a._plan.T == 6
    # the short chunk's general path replaces the work arrays the plan let go of: freed
    # at once (peak memory), not when the call returns
    held, alive = weakref.ref(a._plan.y), []
    a.fit(x, y, callback=lambda report, chunk: alive.append(held() is not None))
    b.fit(x, y)
    assert alive == [True] * 4 + [False] and a._plan is None
    for B in (2, 3, 2, 3):                # alternating batches: never recorded
        x2, y2 = stream(6, B)
        for tr in (a, b):
            tr.reset_state()
            tr.step(x2, y2)
        assert a._plan is None
    same_engines(a, b)
    assert same.updates == 5
