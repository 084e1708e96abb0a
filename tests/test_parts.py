"""Layers, cells, losses and initialisers: shapes, conventions, and their documented behaviour."""

import numpy as np
import pytest

import bptt
from conftest import CELLS, make_cell


def test_parameter_names_and_layout():
    model = bptt.Sequential([bptt.Embedding(65, 64), bptt.LSTM(64, 128), bptt.GRU(128, 32),
                             bptt.Elman(32, 16), bptt.Dense(16, 65)])
    shapes = {k: v.shape for k, v in model.named_parameters().items()}
    assert list(shapes) == ["0.weight",
                            "1.weight_ih", "1.weight_hh", "1.bias_ih", "1.bias_hh",
                            "2.weight_ih", "2.weight_hh", "2.bias_ih", "2.bias_hh",
                            "3.weight_ih", "3.weight_hh", "3.bias_ih", "3.bias_hh",
                            "4.weight", "4.bias"]
    assert shapes["0.weight"] == (65, 64)
    assert shapes["1.weight_ih"] == (512, 64) and shapes["1.weight_hh"] == (512, 128)
    assert shapes["2.weight_ih"] == (96, 128) and shapes["2.bias_hh"] == (96,)
    assert shapes["3.weight_hh"] == (16, 16)
    assert shapes["4.weight"] == (65, 16)
    # the arrays are the live ones
    model.named_parameters()["4.bias"][0] = 7
    assert model[4].params["bias"][0] == 7


def test_defaults_forget_bias_orthogonal_and_seed():
    a = bptt.Sequential([bptt.LSTM(3, 4)], seed=5)
    b = bptt.Sequential([bptt.LSTM(3, 4)], seed=5)
    for k, v in a.named_parameters().items():
        np.testing.assert_array_equal(v, b.named_parameters()[k])
    cell = a[0]
    np.testing.assert_array_equal(cell.params["bias_ih"][4:8], 1.0)
    np.testing.assert_array_equal(np.delete(cell.params["bias_ih"], range(4, 8)), 0.0)
    for g in range(4):
        w = cell.params["weight_hh"][4 * g:4 * (g + 1)].astype(np.float64)
        np.testing.assert_allclose(w @ w.T, np.eye(4), atol=1e-6)


def test_initialisers(rng):
    w = bptt.init.recurrent_matrix("normal", 50, rng, spectral_radius=1.5)
    assert bptt.init.spectral_radius(w) == pytest.approx(1.5)
    np.testing.assert_array_equal(bptt.init.recurrent_matrix("identity", 3, rng), np.eye(3))
    q = bptt.init.orthogonal((6, 4), rng)
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-12)
    g = bptt.init.glorot_uniform((300, 200), rng)
    assert np.abs(g).max() <= np.sqrt(6 / 500)
    irnn = bptt.Elman(3, 5, nonlinearity="relu", recurrent_init="identity", dtype=np.float64)
    np.testing.assert_array_equal(irnn.params["weight_hh"], np.eye(5))
    scaled = bptt.Elman(3, 8, recurrent_init="normal", spectral_radius=0.9, seed=1)
    assert bptt.init.spectral_radius(scaled.params["weight_hh"]) == pytest.approx(0.9, rel=1e-5)
    with pytest.raises(ValueError, match="recurrent_init must be one of"):
        bptt.LSTM(3, 4, recurrent_init="zeros")


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_resets_equal_separate_sequences(kind, rng):
    """A reset before step 3 makes steps 3.. behave as a fresh sequence."""
    cell = make_cell(kind, 3, 4)
    cell.astype(np.float64)
    x = rng.standard_normal((6, 2, 3))
    resets = np.zeros((6, 2), bool)
    resets[3, 0] = True
    y, _, _ = cell.forward(x, resets=resets)
    y_tail, _, _ = cell.forward(x[3:, :1])
    np.testing.assert_allclose(y[3:, :1], y_tail, rtol=1e-12)
    y_plain, _, _ = cell.forward(x)
    np.testing.assert_allclose(y[:, 1], y_plain[:, 1], rtol=1e-12)


def test_bidirectional_with_resets_equals_separate_sequences(rng):
    bi = bptt.Bidirectional(bptt.GRU(3, 4, dtype=np.float64, seed=0), seed=1)
    x = rng.standard_normal((7, 1, 3))
    resets = np.zeros((7, 1), bool)
    resets[4] = True
    y, _, _ = bi.forward(x, resets=resets)
    np.testing.assert_allclose(y[:4], bi.forward(x[:4])[0], rtol=1e-12)
    np.testing.assert_allclose(y[4:], bi.forward(x[4:])[0], rtol=1e-12)


def test_dropout_is_inverted_seeded_and_off_in_eval(rng):
    d = bptt.Dropout(0.25, seed=3, dtype=np.float64)
    x = np.ones((200, 10, 10))
    y1, _, _ = d.forward(x)
    assert set(np.unique(y1)) == {0.0, 1 / 0.75}
    assert abs((y1 == 0).mean() - 0.25) < 0.01
    y2, _, _ = d.forward(x)
    assert not np.array_equal(y1, y2)           # a new mask each call
    d.set_rng_state({"seed": 3, "calls": 0})
    np.testing.assert_array_equal(d.forward(x)[0], y1)   # replayable
    d.eval()
    np.testing.assert_array_equal(d.forward(x)[0], x)
    with pytest.raises(ValueError, match="p must be < 1"):
        bptt.Dropout(1.0)


def test_dense_embedding_activations_shapes(rng):
    e = bptt.Embedding(10, 3, dtype=np.float64)
    tokens = rng.integers(0, 10, (4, 2))
    out, state, _ = e.forward(tokens)
    assert out.shape == (4, 2, 3) and state == ()
    np.testing.assert_array_equal(out[1, 1], e.params["weight"][tokens[1, 1]])
    d = bptt.Dense(3, 5, dtype=np.float64)
    y, _, _ = d.forward(out)
    np.testing.assert_allclose(y, out @ d.params["weight"].T + d.params["bias"])
    assert bptt.Sigmoid().forward(np.array([[[-800.0, 0.0, 800.0]]]))[0].tolist() == \
        [[[0.0, 0.5, 1.0]]]
    nobias = bptt.Dense(3, 2, bias=False)
    assert list(nobias.named_parameters()) == ["weight"]


class TestLosses:
    def test_cross_entropy_values(self):
        V = 5
        y = np.zeros((2, 3, V))
        value, dy = bptt.SoftmaxCrossEntropy()(y, np.zeros((2, 3), int))
        assert value == pytest.approx(np.log(V))
        np.testing.assert_allclose(dy[0, 0], (np.full(V, 1 / V) - np.eye(V)[0]) / 6)

    def test_cross_entropy_is_stable(self):
        y = np.array([[[1000.0, 0.0, -1000.0]]])
        value, dy = bptt.SoftmaxCrossEntropy()(y, np.array([[2]]))
        assert value == pytest.approx(2000.0) and np.isfinite(dy).all()

    def test_weights_and_masks(self, rng):
        y = rng.standard_normal((4, 2, 3))
        t = rng.integers(0, 3, (4, 2))
        loss = bptt.SoftmaxCrossEntropy()
        per = loss.per_step(y, t)
        mask = np.array([[1, 0], [1, 1], [0, 1], [1, 1]], bool)
        assert loss.value(y, t, mask) == pytest.approx(per[mask].mean())
        w = rng.random((4, 2))
        assert loss.value(y, t, w) == pytest.approx((w * per).sum() / w.sum())
        assert bptt.SoftmaxCrossEntropy("sum").value(y, t, w) == pytest.approx((w * per).sum())
        value, dy = loss(y, t, np.zeros((4, 2)))
        assert value == 0 and not dy.any()

    def test_float32_stays_float32(self, rng):
        y = rng.standard_normal((3, 2, 4)).astype(np.float32)
        _, dy = bptt.SoftmaxCrossEntropy()(y, rng.integers(0, 4, (3, 2)))
        assert dy.dtype == np.float32
        _, dy = bptt.MeanSquaredError()(y, np.zeros((3, 2, 4)))
        assert dy.dtype == np.float32
