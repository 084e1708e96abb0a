"""The usage promised in the core issue, run as written."""

import numpy as np

import bptt


def test_contract():
    rng = np.random.default_rng(0)
    V = 65
    model = bptt.Sequential([bptt.Embedding(V, 64), bptt.LSTM(64, 128), bptt.Dense(128, V)],
                            dtype=np.float64, seed=0)
    loss = bptt.SoftmaxCrossEntropy()
    x = rng.integers(0, V, (50, 8)); y = rng.integers(0, V, (50, 8))      # noqa: E702

    value, grads, state = bptt.value_and_grad(model, loss, x, y, state=None)
    assert set(grads) == set(model.named_parameters())
    assert abs(value - np.log(V)) < 0.2
    assert state[1][0].shape == (8, 128)

    opt = bptt.optim.Adam(model.named_parameters(), lr=2e-3)
    trainer = bptt.TBPTT(model, loss, opt, k1=25, k2=50, clip=bptt.ClipGlobalNorm(5.0))
    stats = trainer.step(x, y)
    assert stats.updates == 2 and np.isfinite(stats.loss) and stats.grad_norm > 0

    # a learnable stream: each token is the previous one plus one
    long_x = (np.arange(400)[:, None] + rng.integers(0, V, (1, 8))) % V
    long_y = (long_x + 1) % V
    report = trainer.fit(long_x, long_y)
    assert report.updates == 16 and len(report.losses) == 16
    assert report.losses[-1] < 0.7 * report.losses[0]   # learning, from log(V) = 4.17
