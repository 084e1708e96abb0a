"""benchmarks/numpy_rnn.py, the plain-numpy W1 step the benchmark times beside bptt's, computes
the same training step: the same loss and the same updated weights from the same weights."""

import os
import sys

import numpy as np
import pytest

import bptt

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
from numpy_rnn import NumpyCharRNN  # noqa: E402

V, E, H, T, B = 11, 5, 6, 7, 3
CELLS = {"elman": bptt.Elman, "lstm": bptt.LSTM, "gru": bptt.GRU}
NAMES = {"0.weight": "emb", "1.weight_ih": "w_ih", "1.weight_hh": "w_hh", "1.bias_ih": "b_ih",
         "1.bias_hh": "b_hh", "2.weight": "w_out", "2.bias": "b_out"}


def twins(cell, max_norm):
    net = NumpyCharRNN(cell, V, E, H, B, dtype=np.float64, seed=1)
    model = bptt.Sequential([bptt.Embedding(V, E), CELLS[cell](E, H), bptt.Dense(H, V)],
                            dtype=np.float64, seed=0)
    params = model.named_parameters()
    for name, key in NAMES.items():
        params[name][...] = net.p[key]
    trainer = bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(),
                         bptt.optim.SGD(model.named_parameters(), lr=0.1), k1=T,
                         clip=bptt.ClipGlobalNorm(max_norm))
    return net, model, trainer


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_same_losses_and_weights_over_steps(cell):
    """Three steps, the state carried from one to the next; no clipping fires."""
    net, model, trainer = twins(cell, max_norm=1e3)
    rng = np.random.default_rng(2)
    for _ in range(3):
        x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
        loss = net.step(x, y, lr=0.1, max_norm=1e3)
        stats = trainer.step(x, y)
        assert stats.grad_norm < 1e3
        np.testing.assert_allclose(loss, stats.loss, rtol=1e-12)
    params = model.named_parameters()
    for name, key in NAMES.items():
        np.testing.assert_allclose(params[name], net.p[key], rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_same_update_when_the_clip_fires(cell):
    """The baseline divides by norm + 1e-6 (PyTorch's clip_grad_norm_), bptt by the norm: the
    updates agree to that relative difference."""
    net, model, trainer = twins(cell, max_norm=0.05)
    before = {k: v.copy() for k, v in model.named_parameters().items()}
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    net.step(x, y, lr=0.1, max_norm=0.05)
    stats = trainer.step(x, y)
    assert stats.grad_norm > 0.05
    params = model.named_parameters()
    for name, key in NAMES.items():
        np.testing.assert_allclose(params[name] - before[name], net.p[key] - before[name],
                                   rtol=1e-5, atol=1e-12, err_msg=name)
