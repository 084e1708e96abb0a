"""float64 finite-difference checks of every layer, cell, loss and composed model."""

import numpy as np
import pytest

import bptt
from conftest import CELLS, make_cell, token_model

TOL = 1e-6


def check(model, loss, x, y, **kw):
    report = bptt.gradcheck(model, loss, x, y, max_per_param=None, **kw)
    assert report.worst < TOL, str(report)
    return report


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("use_kernels", [True, False], ids=["kernel", "steps"])
def test_cell(kind, use_kernels, rng):
    model = token_model(kind, use_kernels=use_kernels)
    x, y = rng.integers(0, 7, (6, 3)), rng.integers(0, 7, (6, 3))
    check(model, bptt.SoftmaxCrossEntropy(), x, y)


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("use_kernels", [True, False], ids=["kernel", "steps"])
def test_cell_with_state_resets_and_weights(kind, use_kernels, rng):
    model = token_model(kind, use_kernels=use_kernels)
    T, B = 7, 3
    x, y = rng.integers(0, 7, (T, B)), rng.integers(0, 7, (T, B))
    resets = rng.random((T, B)) < 0.3
    weights = rng.random((T, B)) * (rng.random((T, B)) < 0.8)
    state = tuple(tuple(rng.standard_normal(s.shape) * 0.5 for s in part)
                  for part in model.initial_state(B))
    check(model, bptt.SoftmaxCrossEntropy(), x, y, state=state, weights=weights, resets=resets)


def test_initial_state_gradient_matches_finite_differences(rng):
    model = token_model("lstm")
    T, B = 5, 2
    x, y = rng.integers(0, 7, (T, B)), rng.integers(0, 7, (T, B))
    h0, c0 = rng.standard_normal((B, 6)), rng.standard_normal((B, 6))
    loss = bptt.SoftmaxCrossEntropy()

    def f(h, c):
        out, _, _ = model.forward(x, ((), (h, c), ()))
        return loss.value(out, y)

    out, _, cache = model.forward(x, ((), (h0, c0), ()))
    _, dout = loss(out, y)
    model.zero_grad()
    _, (_, (dh0, dc0), _) = model.backward(dout, None, cache)
    eps = 1e-5
    for arr, grad in ((h0, dh0), (c0, dc0)):
        num = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + eps
            fp = f(h0, c0)
            arr[i] = old - eps
            fm = f(h0, c0)
            arr[i] = old
            num[i] = (fp - fm) / (2 * eps)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("act", [bptt.Tanh, bptt.Sigmoid, bptt.ReLU])
def test_static_layers(act, rng):
    model = bptt.Sequential([bptt.Dense(4, 5), act(), bptt.Dense(5, 3)], dtype=np.float64,
                            seed=1)
    x = rng.standard_normal((4, 3, 4))
    y = rng.standard_normal((4, 3, 3))
    check(model, bptt.MeanSquaredError(), x, y)


def test_embedding_and_dropout(rng):
    model = bptt.Sequential([bptt.Embedding(9, 4), bptt.Dropout(0.3), bptt.Dense(4, 9)],
                            dtype=np.float64, seed=2)
    x, y = rng.integers(0, 9, (5, 4)), rng.integers(0, 9, (5, 4))
    check(model, bptt.SoftmaxCrossEntropy(), x, y)


@pytest.mark.parametrize("loss", [bptt.SoftmaxCrossEntropy(), bptt.SoftmaxCrossEntropy("sum"),
                                  bptt.SoftmaxCrossEntropy(ignore_index=2)],
                         ids=["mean", "sum", "ignore"])
def test_cross_entropy(loss, rng):
    model = token_model("gru")
    x, y = rng.integers(0, 7, (5, 3)), rng.integers(0, 7, (5, 3))
    check(model, loss, x, y, weights=rng.random((5, 3)))


@pytest.mark.parametrize("loss", [bptt.MeanSquaredError(), bptt.MeanSquaredError("sum"),
                                  bptt.BinaryCrossEntropyWithLogits()],
                         ids=["mse", "mse-sum", "bce"])
def test_elementwise_losses(loss, rng):
    model = bptt.Sequential([bptt.Elman(3, 4), bptt.Dense(4, 2)], dtype=np.float64, seed=3)
    x = rng.standard_normal((5, 3, 3))
    y = rng.random((5, 3, 2))
    check(model, loss, x, y, weights=rng.random((5, 3)))


def test_stacked_cells(rng):
    model = bptt.Sequential([bptt.Embedding(7, 4), bptt.LSTM(4, 5), bptt.Dropout(0.2),
                             bptt.GRU(5, 4), bptt.Elman(4, 3),
                             bptt.Dense(3, 7)], dtype=np.float64, seed=4)
    x, y = rng.integers(0, 7, (6, 2)), rng.integers(0, 7, (6, 2))
    check(model, bptt.SoftmaxCrossEntropy(), x, y, resets=rng.random((6, 2)) < 0.3)


@pytest.mark.parametrize("merge", ["concat", "sum"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "elman-tanh"])
def test_bidirectional(kind, merge, rng):
    inner = make_cell(kind, 4, 3)
    out = 6 if merge == "concat" else 3
    model = bptt.Sequential([bptt.Embedding(7, 4), bptt.Bidirectional(inner, merge=merge),
                             bptt.Dense(out, 7)], dtype=np.float64, seed=5)
    x, y = rng.integers(0, 7, (6, 3)), rng.integers(0, 7, (6, 3))
    check(model, bptt.SoftmaxCrossEntropy(), x, y, resets=rng.random((6, 3)) < 0.3)


def test_gradcheck_catches_a_wrong_gradient(rng):
    """The checker is not vacuous: a corrupted backward is reported."""
    model = token_model("elman-tanh")
    x, y = rng.integers(0, 7, (4, 2)), rng.integers(0, 7, (4, 2))
    cell = model[1]
    original = cell.step_backward
    cell.use_kernels = False

    def wrong(dy_t, dstate_new, step_cache):
        dx, ds = original(dy_t, dstate_new, step_cache)
        cell.grads["bias_hh"] *= 1.001
        return dx, ds

    cell.step_backward = wrong
    report = bptt.gradcheck(model, bptt.SoftmaxCrossEntropy(), x, y, max_per_param=None)
    assert report.errors["1.bias_hh"] > 1e-4
    assert report.errors["2.weight"] < TOL
    assert "1.bias_hh" in str(report)
