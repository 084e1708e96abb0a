"""The TBPTT engine against brute-force references, plus clipping, accumulation and the guard."""

import copy
import math

import numpy as np
import pytest

import bptt
from conftest import CELLS, token_model
from reference import (RecordingSGD, finite_difference_gradient, tbptt_reference,
                       window_loss_function)

MODES = [(3, 3), (3, 5), (3, 8), (4, 2), (5, 1), (3, None), (2, 7), (4, 6)]


def assert_grads_equal(a, b, rtol=1e-10, atol=1e-13):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=k)


def stream(rng, L=11, B=2, V=7):
    return rng.integers(0, V, (L, B)), rng.integers(0, V, (L, B))


@pytest.mark.parametrize("k1,k2", MODES, ids=[f"k1={a}-k2={b}" for a, b in MODES])
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_every_mode_matches_the_brute_force_reference(kind, k1, k2, rng):
    model = token_model(kind, seed=3)
    x, y = stream(rng)
    weights = rng.random(x.shape)
    resets = rng.random(x.shape) < 0.15
    loss = bptt.SoftmaxCrossEntropy()
    ref_grads, ref_params = tbptt_reference(model, loss, x, y, k1, k2, 0.3, weights, resets)
    m = copy.deepcopy(model)
    opt = RecordingSGD(m.named_parameters(), 0.3)
    report = bptt.TBPTT(m, loss, opt, k1=k1, k2=k2).fit(x, y, weights, resets)
    assert report.updates == len(ref_grads) == math.ceil(x.shape[0] / k1)
    for ref, got in zip(ref_grads, opt.seen):
        assert_grads_equal(ref, got)
    assert_grads_equal(ref_params, m.named_parameters())


@pytest.mark.parametrize("k1,k2,update", [(3, 7, 2), (3, 3, 1), (4, 2, 1), (2, None, 3),
                                          (3, 5, 3)])
def test_engine_gradient_matches_finite_differences(k1, k2, update, rng):
    """Independent of every backward pass: differentiate the truncated objective numerically,
    with the overlap run by the parameters it used (earlier updates)."""
    model = bptt.Sequential([bptt.Embedding(5, 3), bptt.LSTM(3, 3), bptt.Dense(3, 5)],
                            dtype=np.float64, seed=7)
    x, y = stream(rng, L=12, B=2, V=5)
    loss = bptt.SoftmaxCrossEntropy()
    m = copy.deepcopy(model)
    opt = RecordingSGD(m.named_parameters(), 0.5)
    bptt.TBPTT(m, loss, opt, k1=k1, k2=k2).fit(x, y)
    f, theta = window_loss_function(model, loss, x, y, k1, k2, update, 0.5)
    numeric = finite_difference_gradient(f, {k: v.shape for k, v in theta.items()})
    assert_grads_equal(numeric, opt.seen[update], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("k2", [12, 20, None])
def test_k2_at_least_T_is_full_bptt(k2, rng):
    model = token_model("lstm")
    x, y = stream(rng, L=12)
    loss = bptt.SoftmaxCrossEntropy()
    _, full, _ = bptt.value_and_grad(copy.deepcopy(model), loss, x, y)
    m = copy.deepcopy(model)
    opt = RecordingSGD(m.named_parameters(), 0.1)
    bptt.TBPTT(m, loss, opt, k1=12, k2=k2).step(x, y)
    assert_grads_equal(full, opt.seen[0])


def test_full_bptt_over_chunks_sums_to_the_stream_gradient(rng):
    """k2=None with no parameter change: the updates' gradients add up to the gradient of the
    whole stream's summed loss."""
    model = token_model("gru")
    x, y = stream(rng, L=12)
    loss = bptt.SoftmaxCrossEntropy(reduction="sum")
    _, full, _ = bptt.value_and_grad(copy.deepcopy(model), loss, x, y)
    m = copy.deepcopy(model)
    opt = RecordingSGD(m.named_parameters(), 0.0)
    bptt.TBPTT(m, loss, opt, k1=4, k2=None).fit(x, y)
    total = {k: sum(g[k] for g in opt.seen) for k in full}
    assert_grads_equal(full, total)


def test_accumulate_equals_one_step_on_the_summed_loss(rng):
    model = token_model("lstm")
    x, y = stream(rng, L=12)
    loss = bptt.SoftmaxCrossEntropy()
    m = copy.deepcopy(model)
    state, expected = None, None
    for a in range(0, 12, 4):
        _, g, state = bptt.value_and_grad(m, loss, x[a:a + 4], y[a:a + 4], state=state)
        expected = g if expected is None else {k: expected[k] + g[k] for k in g}
    m = copy.deepcopy(model)
    opt = RecordingSGD(m.named_parameters(), 0.1)
    stats = bptt.TBPTT(m, loss, opt, k1=4, accumulate=3).step(x, y)
    assert stats.updates == 1 and len(opt.seen) == 1
    assert_grads_equal(expected, opt.seen[0])


def test_state_is_carried_and_reset(rng):
    model = token_model("lstm")
    x, y = stream(rng, L=10)
    expected_state = model.forward(x)[1]
    trainer = bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(),
                         RecordingSGD(model.named_parameters(), 0.0), k1=3)
    trainer.step(x[:6], y[:6])
    trainer.step(x[6:], y[6:])
    assert trainer.position == 10
    for a, b in zip(trainer.state[1], expected_state[1]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    trainer.reset_state()
    assert trainer.state is None and trainer.position == 0


def test_stats_and_evaluate(rng):
    model = token_model("elman-tanh")
    x, y = stream(rng, L=10, B=3)
    loss = bptt.SoftmaxCrossEntropy()
    expected = loss.value(model.forward(x)[0], y)
    trainer = bptt.TBPTT(model, loss, RecordingSGD(model.named_parameters(), 0.0), k1=4,
                         clip=bptt.ClipGlobalNorm(1e-3))
    assert trainer.evaluate(x, y) == pytest.approx(expected, rel=1e-12)
    stats = trainer.step(x, y)
    assert stats.loss == pytest.approx(expected, rel=1e-12)
    assert stats.updates == 3 and stats.steps == 10 and stats.skipped == 0
    assert stats.grad_norm > 1e-3 and stats.grad_norm_clipped == pytest.approx(1e-3)
    assert stats.clip_counts == {"ClipGlobalNorm(max_norm=0.001)": 3}
    assert stats.steps_per_s > 0 and stats.tokens_per_s == pytest.approx(3 * stats.steps_per_s)


class TestClipping:
    def grads(self, rng):
        return {"a": rng.standard_normal((3, 4)) * 10, "b": rng.standard_normal(5)}

    def test_global_norm(self, rng):
        g = self.grads(rng)
        before = bptt.global_norm(g)
        clip = bptt.ClipGlobalNorm(1.0)
        assert clip(g) == pytest.approx(before)
        assert bptt.global_norm(g) == pytest.approx(1.0)
        assert clip.fired == 1
        clip(g)
        assert clip.fired == 1 and clip.calls == 2

    @pytest.mark.parametrize("clips", [
        lambda: [bptt.ClipGlobalNorm(0.05)],
        lambda: [bptt.ClipGlobalNorm(1e6)],
        lambda: [bptt.ClipValue(0.01), bptt.ClipGlobalNorm(0.05)],
        lambda: [bptt.ClipGlobalNorm(0.05), bptt.ClipValue(0.001)],
    ], ids=["norm", "norm-idle", "value-then-norm", "norm-then-value"])
    def test_engine_norms(self, clips, rng):
        """The engine reuses the norm of its non-finite guard for a global-norm clip; the
        gradient the optimizer sees and the reported norms equal a recomputation from scratch."""
        model = token_model("lstm")
        x, y = stream(rng, L=6)
        loss = bptt.SoftmaxCrossEntropy()
        _, raw, _ = bptt.value_and_grad(copy.deepcopy(model), loss, x, y)
        expected = {k: g.copy() for k, g in raw.items()}
        for c in clips():   # on the dict: the same global norm as on the flat buffer
            c(expected)
        opt = RecordingSGD(model.named_parameters(), 0.0)
        stats = bptt.TBPTT(model, loss, opt, k1=6, clip=clips()).step(x, y)
        assert_grads_equal(expected, opt.seen[0])
        assert stats.grad_norm == pytest.approx(bptt.global_norm(raw), rel=1e-12)
        assert stats.grad_norm_clipped == pytest.approx(bptt.global_norm(expected), rel=1e-12)

    def test_value(self, rng):
        g = self.grads(rng)
        clip = bptt.ClipValue(0.5)
        clip(g)
        assert max(np.abs(v).max() for v in g.values()) == 0.5 and clip.fired == 1

    def test_norm_per_parameter(self, rng):
        g = self.grads(rng)
        g["c"] = np.full(2, 1e-3)
        clip = bptt.ClipNormPerParameter(2.0)
        clip(g)
        assert bptt.global_norm([g["a"]]) == pytest.approx(2.0)
        assert bptt.global_norm([g["b"]]) == pytest.approx(2.0)
        np.testing.assert_array_equal(g["c"], 1e-3)
        assert clip.fired == 2

    @pytest.mark.parametrize("kind", sorted(CELLS))
    @pytest.mark.parametrize("use_kernels", [True, False], ids=["kernel", "steps"])
    def test_state_gradient(self, kind, use_kernels, rng):
        model = token_model(kind, use_kernels=use_kernels)
        x, y = stream(rng, L=8)
        loss = bptt.SoftmaxCrossEntropy("sum")
        _, free, _ = bptt.value_and_grad(copy.deepcopy(model), loss, x, y)
        _, clipped, _ = bptt.value_and_grad(copy.deepcopy(model), loss, x, y, state_clip=0.05)
        m = copy.deepcopy(model)
        opt = RecordingSGD(m.named_parameters(), 0.1)
        clip = bptt.ClipStateGradient(0.05)
        stats = bptt.TBPTT(m, loss, opt, k1=8, clip=clip).step(x, y)
        assert_grads_equal(clipped, opt.seen[0])
        assert not np.allclose(free["1.weight_hh"], clipped["1.weight_hh"])
        assert clip.fired > 0 and stats.clip_counts["ClipStateGradient(value=0.05)"] == clip.fired

    def test_state_gradient_by_hand(self, rng):
        """The step path's clipping, written out: clip dh after every step of the walk back."""
        cell = bptt.Elman(2, 3, dtype=np.float64, seed=0)
        cell.use_kernels = False
        x = rng.standard_normal((4, 1, 2))
        dy = rng.standard_normal((4, 1, 3)) * 5
        y, _, cache = cell.forward(x)
        ctx = bptt.BackwardContext(state_clip=0.1)
        _, (dh0,) = cell.backward(dy, None, cache, ctx)
        dh = np.zeros((1, 3))
        for t in range(3, -1, -1):
            da = (dy[t] + dh) * (1 - y[t] ** 2)
            dh = np.clip(da @ cell.params["weight_hh"], -0.1, 0.1)
        np.testing.assert_allclose(dh0, dh, rtol=1e-12)
        assert ctx.state_clip_fired >= 1


class NaNAtStep(bptt.Cell):
    """A Python-step cell whose backward turns non-finite at one chosen step."""

    def __init__(self, size, bad_step, dtype=np.float64):
        super().__init__(dtype)
        self.size, self.bad_step, self.t = size, bad_step, 0
        self._set_params({"w": np.eye(size) * 0.5})

    @property
    def state_sizes(self):
        return (self.size,)

    def output_size(self, input_size):
        return self.size

    def step_forward(self, x_t, state):
        h = np.tanh(x_t + state[0] @ self.params["w"].T)
        t, self.t = self.t, self.t + 1
        return h, (h,), (state[0], h, t)

    def step_backward(self, dy_t, dstate_new, cache):
        h_prev, h, t = cache
        da = (dy_t + dstate_new[0]) * (1 - h * h)
        if t == self.bad_step:
            da = da * np.inf
        with np.errstate(invalid="ignore"):   # inf * 0 in the products: NaN on purpose
            self.grads["w"] += da.T @ h_prev
            return da, (da @ self.params["w"],)


class TestNonFiniteGuard:
    def model(self, bad_step):
        return bptt.Sequential([bptt.Embedding(5, 3), NaNAtStep(3, bad_step), bptt.Dense(3, 5)],
                               dtype=np.float64, seed=0)

    def test_gradient_is_located_and_update_skipped(self, rng):
        model = self.model(bad_step=5)
        x, y = stream(rng, L=8, V=5)
        opt = RecordingSGD(model.named_parameters(), 0.1)
        before = {k: v.copy() for k, v in model.named_parameters().items()}
        trainer = bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(), opt, k1=4)
        with pytest.warns(RuntimeWarning, match=r"'1.w' first appeared at time step 5"):
            stats = trainer.step(x, y)
        assert stats.skipped == 1 and stats.updates == 1 and len(opt.seen) == 1
        # the skipped update (second chunk) changed nothing; the first one went through
        assert not np.array_equal(before["2.weight"], model.named_parameters()["2.weight"])
        assert trainer.position == 8

    def test_raise_leaves_everything_as_it_was(self, rng):
        model = self.model(bad_step=1)
        x, y = stream(rng, L=4, V=5)
        opt = RecordingSGD(model.named_parameters(), 0.1)
        before = {k: v.copy() for k, v in model.named_parameters().items()}
        trainer = bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(), opt, k1=4,
                             on_nonfinite="raise")
        with pytest.raises(bptt.NonFiniteError) as info:
            trainer.step(x, y)
        assert info.value.param == "1.w" and info.value.step == 1
        assert info.value.what == "gradient"
        assert opt.seen == [] and trainer.position == 0 and trainer.state is None
        for k, v in model.named_parameters().items():
            np.testing.assert_array_equal(v, before[k])
            assert np.all(model.named_grads()[k] == 0)

    def test_non_finite_output_names_the_step(self, rng):
        model = token_model("elman-tanh")
        x, y = stream(rng, L=6)
        x[4, 1] = 3
        model[0].params["weight"][3, 0] = np.nan
        opt = RecordingSGD(model.named_parameters(), 0.1)
        trainer = bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(), opt, k1=6,
                             on_nonfinite="raise")
        with pytest.raises(bptt.NonFiniteError, match="output at time step 4") as info:
            trainer.step(x, y)
        assert info.value.what == "output"
        assert trainer.position == 0

    def test_skip_zeroes_non_finite_streams_and_carries_on(self, rng):
        model = token_model("elman-tanh")
        x, y = stream(rng, L=6)
        x[:] = np.where(x == 3, 2, x)
        x[1, 0] = 3
        model[0].params["weight"][3, 0] = np.inf
        trainer = bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(),
                             RecordingSGD(model.named_parameters(), 0.1), k1=3)
        with pytest.warns(RuntimeWarning):
            stats = trainer.step(x, y)
        assert stats.skipped == 1 and stats.updates == 1
        h = trainer.state[1][0]
        assert np.isfinite(h).all()


def test_bidirectional_needs_whole_sequences(rng):
    model = bptt.Sequential([bptt.Embedding(7, 4), bptt.Bidirectional(bptt.GRU(4, 3)),
                             bptt.Dense(6, 7)], dtype=np.float64, seed=0)
    opt = RecordingSGD(model.named_parameters(), 0.1)
    with pytest.raises(ValueError, match="Bidirectional"):
        bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(), opt, k1=4)
    x, y = stream(rng, L=6)
    _, g, _ = bptt.value_and_grad(copy.deepcopy(model), bptt.SoftmaxCrossEntropy(), x, y)
    trainer = bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(), opt, k1=None, k2=None)
    trainer.step(x, y)
    trainer.step(x, y)
    assert_grads_equal(g, opt.seen[0])
    assert len(opt.seen) == 2


def test_bad_arguments():
    model = token_model("lstm")
    opt = RecordingSGD(model.named_parameters(), 0.1)
    loss = bptt.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match="k1 must be >= 1, got 0"):
        bptt.TBPTT(model, loss, opt, k1=0)
    with pytest.raises(TypeError, match="k2 must be an integer"):
        bptt.TBPTT(model, loss, opt, k1=3, k2=2.5)
    with pytest.raises(ValueError, match="on_nonfinite must be one of"):
        bptt.TBPTT(model, loss, opt, k1=3, on_nonfinite="ignore")
    with pytest.raises(TypeError, match="clip must be a Clip"):
        bptt.TBPTT(model, loss, opt, k1=3, clip=5.0)
    trainer = bptt.TBPTT(model, loss, opt, k1=3)
    with pytest.raises(ValueError, match=r"targets must start with the input's \(T, B\)"):
        trainer.step(np.zeros((4, 2), int), np.zeros((5, 2), int))
    with pytest.raises(ValueError, match="target 7 is outside the 7 classes"):
        trainer.step(np.zeros((4, 2), int), np.full((4, 2), 7))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        trainer.step(np.full((4, 2), 9), np.zeros((4, 2), int))
    with pytest.raises(TypeError, match="integer tokens"):
        trainer.step(np.zeros((4, 2)), np.zeros((4, 2), int))
    assert opt.seen == [] and trainer.position == 0


class OneRankReducer:
    """The reducer protocol with a single participant: sums over one rank."""

    def __init__(self, fail_at=None):
        self.calls, self.aborted, self.fail_at = 0, 0, fail_at

    def reduce(self, grads, value, weight):
        self.calls += 1
        return value, weight, self.calls == self.fail_at

    def abort(self):
        self.aborted += 1


@pytest.mark.parametrize("accumulate", [1, 3])
def test_reducer_hook_is_neutral_with_one_rank(accumulate, rng):
    model = token_model("gru")
    x, y = stream(rng, L=12)
    loss = bptt.SoftmaxCrossEntropy()
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    opt_a = RecordingSGD(a.named_parameters(), 0.1)
    opt_b = RecordingSGD(b.named_parameters(), 0.1)
    bptt.TBPTT(a, loss, opt_a, k1=2, accumulate=accumulate).fit(x, y)
    reducer = OneRankReducer()
    bptt.TBPTT(b, loss, opt_b, k1=2, accumulate=accumulate, reducer=reducer).fit(x, y)
    assert reducer.calls == 6
    for ga, gb in zip(opt_a.seen, opt_b.seen):
        assert_grads_equal(ga, gb)


def test_reducer_failure_elsewhere_and_here(rng):
    model = token_model("gru")
    x, y = stream(rng, L=8)
    opt = RecordingSGD(model.named_parameters(), 0.1)
    reducer = OneRankReducer(fail_at=2)
    trainer = bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(), opt, k1=4, reducer=reducer)
    with pytest.raises(RuntimeError, match="another rank failed"):
        trainer.step(x, y)
    assert len(opt.seen) == 1 and trainer.position == 4

    class Boom(bptt.SoftmaxCrossEntropy):
        def __call__(self, *a, **k):
            raise MemoryError("out of memory")

    trainer = bptt.TBPTT(model, Boom(), opt, k1=4, reducer=reducer)
    with pytest.raises(MemoryError):
        trainer.step(x, y)
    assert reducer.aborted == 1 and trainer.position == 0


def test_evaluate_after_training_on_another_batch_size(rng):
    model = token_model("lstm")
    trainer = bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(),
                         RecordingSGD(model.named_parameters(), 0.1), k1=3)
    x, y = stream(rng, L=6, B=4)
    trainer.step(x, y)
    vx, vy = stream(rng, L=6, B=2)
    assert np.isfinite(trainer.evaluate(vx, vy))
    with pytest.raises(ValueError, match=r"expected state\[0\] of shape \(2, 6\)"):
        trainer.step(vx, vy)


def test_recorded_state_gradients_reach_the_callback(rng):
    model = token_model("lstm")
    x, y = stream(rng, L=8)
    seen = []
    trainer = bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(),
                         RecordingSGD(model.named_parameters(), 0.0), k1=4,
                         record_state_grads=True)
    trainer.fit(x, y, callback=lambda report, chunk: seen.append(chunk["state_grads"]))
    assert len(seen) == 2
    (h, c), = seen[0][model[1]]
    assert h.shape == c.shape == (4, 2) and np.all(h > 0)
    # the same figures as a plain backward with recording on
    ref = bptt.diagnostics.state_gradient_norms(model, bptt.SoftmaxCrossEntropy(), x[:4], y[:4])
    np.testing.assert_allclose(np.sqrt((h ** 2).sum(axis=1)), ref["1"].h, rtol=1e-10)
