"""Training on datasets of sequences: padding is exact, the many-to-one readout, early stopping,
penalties, the static path, and clear errors on bad input."""

import copy
import io
import warnings

import numpy as np
import pytest

import bptt
from bptt.data import SequenceDataset
from bptt.sequences import (Penalty, as_dataset, evaluate, fit, penalized_value_and_grad,
                            predict)

D, H, C = 3, 4, 5
LENGTHS = [1, 4, 7, 3, 7, 2]


def model_of(kind, seed=1, use_kernels=True):
    if kind == "tokens":
        parts = [bptt.Embedding(6, D), bptt.LSTM(D, H)]
    elif kind.startswith("bi-"):
        inner = {"bi-lstm": bptt.LSTM, "bi-gru": bptt.GRU}[kind](D, H)
        inner.use_kernels = use_kernels
        parts = [bptt.Bidirectional(inner)]
    else:
        cell = {"elman": bptt.Elman, "lstm": bptt.LSTM, "gru": bptt.GRU}[kind](D, H)
        cell.use_kernels = use_kernels
        parts = [cell, bptt.Tanh(), bptt.GRU(H, H)]  # two stacked cells
    out = parts[-1].output_size(D)
    m = bptt.Sequential(parts + [bptt.Dense(out, C)], dtype=np.float64, seed=seed)
    if kind.startswith("bi-"):
        m.parts[0].cells[1].use_kernels = use_kernels
    # non-zero biases: with zero biases and zero padding a state that starts at zero would stay
    # at zero over the padding, and a missing reset would go unseen
    r = np.random.default_rng(seed)
    for k, p in m.named_parameters().items():
        if "bias" in k:
            p[...] = r.uniform(-0.5, 0.5, p.shape)
    return m


def sequences(kind, rng):
    if kind == "tokens":
        return [rng.integers(0, 6, n) for n in LENGTHS]
    return [rng.standard_normal((n, D)) for n in LENGTHS]


def one_by_one(model, loss, seqs, targets, task):
    """Each sequence alone, unpadded: (value, grads, final states, outputs), with the batch's
    normalisation: many-to-one, the mean over sequences; many-to-many, the mean over steps."""
    total, grads, finals, outs, weight = 0.0, None, [], [], 0
    for s, t in zip(seqs, targets):
        n = len(s)
        x = s[:, None] if s.ndim == 1 else s[:, None, :]
        if task == "many-to-one":
            y, w, wi = np.full((n, 1), t), np.zeros((n, 1)), 1
            w[-1] = 1
        else:
            y, w, wi = t[:, None], None, n
        v, g, final = bptt.value_and_grad(model, loss, x, y, weights=w)
        out, _, _ = model.forward(x)
        total += wi * v
        weight += wi
        grads = {k: wi * a for k, a in g.items()} if grads is None else {
            k: grads[k] + wi * a for k, a in g.items()}
        finals.append(final)
        outs.append(out[:, 0])
    return total / weight, {k: a / weight for k, a in grads.items()}, finals, outs


KINDS = ["elman", "lstm", "gru", "bi-lstm", "bi-gru", "tokens"]


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("task", ["many-to-one", "many-to-many"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_padded_batch_equals_the_sequences_run_one_by_one(kind, task, padding, rng):
    model, loss = model_of(kind), bptt.SoftmaxCrossEntropy()
    seqs = sequences(kind, rng)
    targets = (rng.integers(0, C, len(seqs)) if task == "many-to-one"
               else [rng.integers(0, C, n) for n in LENGTHS])
    ds = SequenceDataset(seqs, targets, task=task, padding=padding)
    batch = ds.batch(np.arange(len(seqs)))
    assert batch.steps == max(LENGTHS)
    value, grads, final = bptt.value_and_grad(model, loss, batch.x, batch.y,
                                              weights=batch.weights, resets=batch.resets)
    out, _, _ = model.forward(batch.x, resets=batch.resets)
    ref_value, ref_grads, ref_finals, ref_outs = one_by_one(model, loss, seqs, targets, task)

    assert value == pytest.approx(ref_value, rel=1e-13, abs=1e-15)
    for k in grads:
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=1e-11, atol=1e-14, err_msg=k)
    # the outputs at the valid steps (both directions of a Bidirectional part included)
    for b, ref in enumerate(ref_outs):
        np.testing.assert_allclose(out[batch.mask[:, b], b], ref, rtol=1e-13, atol=1e-15)
    # pre-padding: the final state is each sequence's true final state
    if padding == "pre" and not kind.startswith("bi-"):
        for b, ref in enumerate(ref_finals):
            for part, ref_part in zip(final, ref):
                for a, r in zip(part, ref_part):
                    np.testing.assert_allclose(a[b], r[0], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("kind", ["lstm", "bi-gru"])
def test_padding_is_exact_on_the_step_path_too(kind, rng):
    model, loss = model_of(kind, use_kernels=False), bptt.SoftmaxCrossEntropy()
    seqs = sequences(kind, rng)
    targets = rng.integers(0, C, len(seqs))
    batch = SequenceDataset(seqs, targets).batch(np.arange(len(seqs)))
    value, grads, _ = bptt.value_and_grad(model, loss, batch.x, batch.y, weights=batch.weights,
                                          resets=batch.resets)
    ref_value, ref_grads, _, _ = one_by_one(model, loss, seqs, targets, "many-to-one")
    assert value == pytest.approx(ref_value, rel=1e-13)
    for k in grads:
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=1e-11, atol=1e-14, err_msg=k)


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_predict_reads_each_sequence_at_its_last_valid_step(padding, rng):
    model = model_of("gru")
    seqs = sequences("gru", rng)
    ds = SequenceDataset(seqs, padding=padding)
    last = predict(model, ds, batch_size=4)  # batches bucketed by length, order restored
    every = predict(model, ds, readout="all", batch_size=4)
    assert last.shape == (len(seqs), C)
    for i, s in enumerate(seqs):
        ref, _, _ = model.forward(s[:, None, :])
        np.testing.assert_allclose(last[i], ref[-1, 0], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(every[i], ref[:, 0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(predict(model, seqs), last, rtol=1e-13)


def test_evaluate_is_the_dataset_mean_whatever_the_batch_size(rng):
    model, loss = model_of("lstm"), bptt.SoftmaxCrossEntropy()
    seqs = sequences("lstm", rng)
    y1 = rng.integers(0, C, len(seqs))
    whole = SequenceDataset(seqs, y1).batch(np.arange(len(seqs)))
    out, _, _ = model.forward(whole.x, resets=whole.resets)
    r = evaluate(model, loss, seqs, y1, batch_size=2)
    assert r["loss"] == pytest.approx(loss.value(out, whole.y, whole.weights), rel=1e-12)
    assert r["accuracy"] == pytest.approx(np.mean(out[-1].argmax(-1) == y1))
    ym = [rng.integers(0, C, n) for n in LENGTHS]
    whole = SequenceDataset(seqs, ym).batch(np.arange(len(seqs)))
    out, _, _ = model.forward(whole.x, resets=whole.resets)
    r = evaluate(model, loss, seqs, ym, batch_size=4)
    assert r["loss"] == pytest.approx(loss.value(out, whole.y, whole.weights), rel=1e-12)
    hits = np.concatenate([out[whole.mask[:, b], b].argmax(-1) == t for b, t in enumerate(ym)])
    assert r["accuracy"] == pytest.approx(hits.mean())


@pytest.mark.parametrize("engine", [dict(), dict(k1=3, k2=5)], ids=["full", "tbptt"])
@pytest.mark.parametrize("task", ["many-to-one", "many-to-many"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_training_figures_are_the_dataset_figures(reduction, task, engine, rng):
    # with a learning rate of 1e-300 the parameters stay put, so an epoch's training loss and
    # accuracy must be the dataset's at those parameters, however the batches were cut
    model, loss = model_of("gru"), bptt.SoftmaxCrossEntropy(reduction=reduction)
    seqs = sequences("gru", rng) * 3
    targets = (rng.integers(0, C, len(seqs)) if task == "many-to-one"
               else [rng.integers(0, C, len(s)) for s in seqs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # many-to-one with k1 chunks warns
        hist = fit(model, loss, seqs, targets, epochs=1, batch_size=4, optimizer="sgd",
                   lr=1e-300, progress=False, **engine)
    ref = evaluate(model, loss, seqs, targets, batch_size=len(seqs))
    assert hist[0]["loss"] == pytest.approx(ref["loss"], rel=1e-12)
    assert hist[0]["accuracy"] == pytest.approx(ref["accuracy"], rel=1e-12)
    if reduction == "sum":  # the sum per sequence
        whole = SequenceDataset(seqs, targets).batch(np.arange(len(seqs)))
        out, _, _ = model.forward(whole.x, resets=whole.resets)
        assert ref["loss"] == pytest.approx(loss.value(out, whole.y, whole.weights) / len(seqs))


def test_tbptt_with_a_whole_window_equals_full_bptt(rng):
    seqs, labels = sequences("lstm", rng) * 2, rng.integers(0, C, 2 * len(LENGTHS))
    runs = []
    for engine in (dict(), dict(k1=None, k2=100)):
        model = model_of("lstm")
        hist = fit(model, bptt.SoftmaxCrossEntropy(), seqs, labels, epochs=2, batch_size=5,
                   lr=0.01, l2=1e-3, clip=bptt.ClipGlobalNorm(0.5), progress=False, **engine)
        runs.append((hist, model.named_parameters()))
    (h0, p0), (h1, p1) = runs
    for key in ("loss", "accuracy", "penalty", "grad_norm", "updates"):
        assert h0.column(key) == pytest.approx(h1.column(key), rel=1e-12), key
    for k in p0:
        np.testing.assert_allclose(p0[k], p1[k], rtol=1e-12, atol=1e-15, err_msg=k)


# -- penalties -----------------------------------------------------------------------------------
def randomize(model, rng):
    for p in model.named_parameters().values():
        p[...] = rng.uniform(0.1, 0.6, p.shape) * rng.choice([-1, 1], p.shape)


def finite_difference(f, params, eps=1e-6):
    num = {}
    for k, p in params.items():
        g = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + eps
            up = f()
            p[i] = old - eps
            down = f()
            p[i] = old
            g[i] = (up - down) / (2 * eps)
        num[k] = g
    return num


@pytest.mark.parametrize("penalize", ["weights", "all", ["0.weight_hh", "1.bias"]])
def test_l1_l2_gradients_match_finite_differences(penalize, rng):
    model = bptt.Sequential([bptt.Elman(2, 3), bptt.Dense(3, 2)], dtype=np.float64, seed=0)
    randomize(model, rng)  # away from the L1 kink at 0
    batch = SequenceDataset([rng.standard_normal((n, 2)) for n in (3, 1, 4)],
                            np.array([0, 1, 1])).batch([0, 1, 2])
    loss, l1, l2 = bptt.SoftmaxCrossEntropy(), 0.03, 0.05
    args = (model, loss, batch.x, batch.y, batch.weights, batch.resets)
    value, grads, _ = penalized_value_and_grad(*args, l1=l1, l2=l2, penalize=penalize)
    params = model.named_parameters()

    def objective():
        return penalized_value_and_grad(*args, l1=l1, l2=l2, penalize=penalize)[0]

    num = finite_difference(objective, params)
    for k in grads:
        np.testing.assert_allclose(grads[k], num[k], rtol=1e-6, atol=1e-8, err_msg=k)
    # the penalty's own part, exactly
    plain_value, plain, _ = bptt.value_and_grad(model, loss, batch.x, batch.y, None,
                                                batch.weights, batch.resets)
    names = Penalty(penalize=penalize).names(params)
    want = sum(l1 * np.abs(params[k]).sum() + l2 * (params[k] ** 2).sum() for k in names)
    assert value == pytest.approx(plain_value + want, rel=1e-14)
    for k in grads:
        extra = (l1 * np.sign(params[k]) + 2 * l2 * params[k]) if k in names else 0
        np.testing.assert_allclose(grads[k], plain[k] + extra, rtol=1e-14, atol=1e-16)
    if penalize == "weights":
        assert names == ["0.weight_ih", "0.weight_hh", "1.weight"]  # biases are not penalised


@pytest.mark.parametrize("engine", [dict(), dict(k1=None, k2=50)], ids=["full", "tbptt"])
def test_fit_updates_with_the_penalised_gradient(engine, rng):
    model = bptt.Sequential([bptt.LSTM(2, 3), bptt.Dense(3, 2)], dtype=np.float64, seed=0)
    randomize(model, rng)
    seqs = [rng.standard_normal((n, 2)) for n in (3, 1, 4, 2)]
    labels = np.array([0, 1, 1, 0])
    ds = SequenceDataset(seqs, labels)
    batch = ds.batch(ds.batch_indices(4, bucket=True)[0])
    loss = bptt.SoftmaxCrossEntropy()
    before = {k: p.copy() for k, p in model.named_parameters().items()}
    value, grads, _ = penalized_value_and_grad(model, loss, batch.x, batch.y, batch.weights,
                                               batch.resets, l1=0.01, l2=0.02)
    hist = fit(model, loss, ds, epochs=1, batch_size=4, optimizer="sgd", lr=0.1, l1=0.01,
               l2=0.02, shuffle=False, progress=False, **engine)
    for k, p in model.named_parameters().items():
        np.testing.assert_allclose(p, before[k] - 0.1 * grads[k], rtol=1e-13, atol=1e-15,
                                   err_msg=k)
    assert hist[0]["loss"] == pytest.approx(value, rel=1e-12)
    assert hist[0]["penalty"] > 0 and hist[0]["updates"] == 1
    assert hist[0]["grad_norm"] == pytest.approx(bptt.global_norm(grads), rel=1e-12)


def test_penalty_arguments_are_checked():
    model = bptt.Sequential([bptt.Dense(2, 2)], seed=0)
    with pytest.raises(ValueError, match="l2 must be >= 0, got -1.0"):
        Penalty(l2=-1)
    with pytest.raises(ValueError, match="penalize names \\['0.kernel'\\] are not parameters"):
        fit(model, bptt.MeanSquaredError(), np.zeros((4, 2)), np.zeros((4, 2)), l2=0.1,
            penalize=["0.kernel"], progress=False)
    with pytest.raises(TypeError, match="penalize must be"):
        Penalty(penalize=3)


# -- early stopping ------------------------------------------------------------------------------
def test_early_stopping_restores_the_best_parameters(rng):
    # trained towards y = 2 x but validated against y = 0.8 x: the validation loss falls while
    # the model passes 0.8 and rises after, so the best epoch lies in the middle
    model = bptt.Sequential([bptt.Dense(3, 1, bias=False)], dtype=np.float64, seed=0)
    model.named_parameters()["0.weight"][...] = 0.0
    x = rng.standard_normal((64, 3))
    xv = rng.standard_normal((32, 3))
    w = np.array([[1.0, -1.0, 0.5]])
    seen = {}

    def remember(entry, m):
        seen[entry["epoch"]] = {k: p.copy() for k, p in m.named_parameters().items()}

    hist = fit(model, bptt.MeanSquaredError(), x, 2 * x @ w.T, validation_data=(xv, 0.8 * xv @ w.T),
               epochs=60, batch_size=16, optimizer="sgd", lr=0.02, patience=3, seed=0,
               progress=False, callback=remember)
    val = hist.column("val_loss")
    best = int(np.argmin(val)) + 1
    assert 1 < best == hist.best_epoch < len(hist)
    assert hist.stopped_epoch == len(hist) == best + 3 < 60
    assert hist.restored and hist.best_value == val[best - 1]
    assert [e["improved"] for e in hist] == [v == min(val[:i + 1]) for i, v in enumerate(val)]
    for k, p in model.named_parameters().items():
        np.testing.assert_array_equal(p, seen[best][k])
    assert evaluate(model, bptt.MeanSquaredError(), xv, 0.8 * xv @ w.T)["loss"] == \
        pytest.approx(val[best - 1], rel=1e-12)


def test_early_stopping_on_accuracy_and_callback_stop(rng):
    x, y = blobs(rng, 120)
    model = static_mlp()
    hist = fit(model, bptt.SoftmaxCrossEntropy(), x, y, validation_split=0.25, epochs=40,
               patience=2, monitor="val_accuracy", lr=0.05, progress=False)
    assert hist.mode == "max" and hist.best_value == max(hist.column("val_accuracy"))
    calls = []
    hist = fit(model, bptt.SoftmaxCrossEntropy(), x, y, epochs=10, progress=False,
               callback=lambda e, m: calls.append(e["epoch"]) or e["epoch"] < 2)
    assert calls == [1, 2] and len(hist) == 2


# -- static networks -----------------------------------------------------------------------------
def blobs(rng, n):
    centres = np.array([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.0]])
    y = rng.integers(0, 3, n)
    return centres[y] + 0.5 * rng.standard_normal((n, 2)), y


def static_mlp(dtype=np.float64):
    return bptt.Sequential([bptt.Dense(2, 16), bptt.Tanh(), bptt.Dense(16, 3)], dtype=dtype,
                           seed=0)


def test_the_same_fit_trains_a_static_network(rng):
    x, y = blobs(rng, 300)
    loss = bptt.SoftmaxCrossEntropy()
    a = static_mlp()
    out = io.StringIO()
    hist = fit(a, loss, x, y, epochs=8, lr=0.03, batch_size=16, validation_split=0.2,
               progress=out)
    assert hist[-1]["val_accuracy"] > 0.95 and hist[-1]["accuracy"] > 0.9
    lines = out.getvalue().splitlines()
    assert len(lines) == 8 and lines[0].startswith("epoch 1/8  loss ")
    assert "val_accuracy" in lines[-1]
    # (N, D) and time-major (1, N, D) are the same data
    b = static_mlp()
    hist_b = fit(b, loss, x[None], y, epochs=8, lr=0.03, batch_size=16, validation_split=0.2,
                 progress=False)
    assert hist.column("loss") == hist_b.column("loss")
    for k, p in a.named_parameters().items():
        np.testing.assert_array_equal(p, b.named_parameters()[k])
    pred = predict(a, x)
    assert pred.shape == (300, 3) and np.mean(pred.argmax(1) == y) > 0.9
    assert evaluate(a, loss, x, y)["accuracy"] == pytest.approx(np.mean(pred.argmax(1) == y))


def test_many_to_many_regression_and_time_major_arrays(rng):
    # predict the running sum of the input: needs memory; time-major (T, N, D) data
    x = rng.standard_normal((6, 64, 1))
    y = np.cumsum(x, axis=0) * 0.3
    model = bptt.Sequential([bptt.GRU(1, 8), bptt.Dense(8, 1)], dtype=np.float64, seed=0)
    loss = bptt.MeanSquaredError()
    first = evaluate(model, loss, x, y)["loss"]
    hist = fit(model, loss, x, y, epochs=15, lr=0.02, batch_size=16, progress=False)
    assert "accuracy" not in hist[-1]
    assert hist[-1]["loss"] < 0.2 * first
    assert as_dataset(x, y).task == "many-to-many"
    assert as_dataset(x, y[-1]).task == "many-to-one"


def test_tbptt_path_for_long_sequences(rng):
    seqs = [rng.standard_normal((n, 2)) for n in rng.integers(20, 40, 24)]
    targets = [np.cumsum(s[:, :1], axis=0) * 0.3 for s in seqs]
    model = bptt.Sequential([bptt.LSTM(2, 8), bptt.Dense(8, 1)], dtype=np.float64, seed=0)
    hist = fit(model, bptt.MeanSquaredError(), seqs, targets, epochs=3, batch_size=8,
               lr=0.01, k1=10, k2=15, clip=bptt.ClipGlobalNorm(1.0), progress=False)
    assert hist[0]["updates"] >= 3 * 3  # several chunks per batch
    assert hist[-1]["loss"] < hist[0]["loss"]
    with pytest.warns(RuntimeWarning, match="only each batch's last chunk holds the readout"):
        fit(model, bptt.MeanSquaredError(), seqs, np.zeros((24, 1)), epochs=1, k1=10,
            progress=False)


def test_non_finite_updates_are_skipped_or_raised(rng):
    model = bptt.Sequential([bptt.GRU(2, 3), bptt.Dense(3, 2)], dtype=np.float64, seed=0)
    model.named_parameters()["1.bias"][0] = np.nan
    seqs, y = [rng.standard_normal((3, 2)) for _ in range(8)], np.zeros(8, int)
    before = copy.deepcopy(model.named_parameters())
    with pytest.warns(RuntimeWarning, match="non-finite loss in batch [01] of epoch 1"):
        hist = fit(model, bptt.SoftmaxCrossEntropy(), seqs, y, epochs=1, batch_size=4,
                   progress=False)
    assert hist[0]["skipped"] == 2 and hist[0]["updates"] == 0
    for k, p in model.named_parameters().items():
        np.testing.assert_array_equal(p, before[k])
    with pytest.raises(bptt.NonFiniteError, match="non-finite loss"):
        fit(model, bptt.SoftmaxCrossEntropy(), seqs, y, epochs=1, on_nonfinite="raise",
            progress=False)


# -- bad input -----------------------------------------------------------------------------------
def test_fit_refuses_bad_data_with_clear_errors(rng):
    model = bptt.Sequential([bptt.LSTM(3, 4), bptt.Dense(4, 3)], seed=0)
    loss = bptt.SoftmaxCrossEntropy()
    seqs = [rng.standard_normal((n, 3)) for n in (2, 5, 1, 3)]
    with pytest.raises(ValueError, match="the training data: label 3 of sequence 2 is outside "
                                         "the 3 classes \\[0, 3\\)"):
        fit(model, loss, seqs, np.array([0, 1, 3, 2]), progress=False)
    with pytest.raises(ValueError, match="label 7 at step 0 of sequence 1"):
        fit(model, loss, seqs, [np.zeros(n, int) + (7 if i == 1 else 0)
                                for i, n in enumerate((2, 5, 1, 3))], progress=False)
    with pytest.raises(ValueError, match="has 2 features per step, but the model .* takes 3"):
        fit(model, loss, [s[:, :2] for s in seqs], np.zeros(4, int), progress=False)
    with pytest.raises(ValueError, match="sequences\\[3\\] has 4 features per step"):
        fit(model, loss, seqs[:3] + [np.zeros((2, 4))], np.zeros(4, int), progress=False)
    with pytest.raises(ValueError, match="the dataset is empty"):
        fit(model, loss, [], np.zeros(0, int), progress=False)
    with pytest.raises(ValueError, match="sequences\\[1\\] has length 0"):
        fit(model, loss, [seqs[0], np.zeros((0, 3))], np.zeros(2, int), progress=False)
    with pytest.raises(TypeError, match="needs integer class labels, got float target values"):
        fit(model, loss, seqs, np.zeros(4), progress=False)
    with pytest.raises(TypeError, match="holds integer token sequences, but the model starts "
                                        "with LSTM"):
        fit(model, loss, [np.array([1, 2])], np.zeros(1, int), progress=False)
    with pytest.raises(ValueError, match="fit needs targets"):
        fit(model, loss, seqs, progress=False)
    with pytest.raises(ValueError, match="needs validation data"):
        fit(model, loss, seqs, np.zeros(4, int), patience=2, progress=False)
    with pytest.raises(ValueError, match="targets have 2 values per sequence, but the model "
                                         "outputs 3"):
        fit(model, bptt.MeanSquaredError(), seqs, np.zeros((4, 2)), progress=False)
    with pytest.raises(TypeError, match="needs float target values, got integer class labels"):
        fit(model, bptt.MeanSquaredError(), seqs, np.zeros(4, int), progress=False)
    other = bptt.optim.Adam(bptt.Sequential([bptt.Dense(2, 2)]).named_parameters())
    with pytest.raises(ValueError, match="does not hold the model's live parameter arrays"):
        fit(model, loss, seqs, np.zeros(4, int), optimizer=other, progress=False)
    tokens = bptt.Sequential([bptt.Embedding(5, 3), bptt.GRU(3, 3), bptt.Dense(3, 2)], seed=0)
    with pytest.raises(ValueError, match="sequence 1 holds token 5 at step 2, outside the "
                                         "model's vocabulary \\[0, 5\\)"):
        fit(tokens, loss, [np.array([1, 2]), np.array([0, 1, 5])], np.zeros(2, int),
            progress=False)
    with pytest.raises(ValueError, match="Bidirectional part, which needs whole sequences"):
        bi = bptt.Sequential([bptt.Bidirectional(bptt.GRU(3, 2)), bptt.Dense(4, 3)], seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit(bi, loss, seqs, np.zeros(4, int), k1=2, progress=False)
