"""Bad input gets a clear error that names what is wrong."""

import numpy as np
import pytest

import bptt


@pytest.fixture
def model():
    return bptt.Sequential([bptt.Embedding(10, 4), bptt.LSTM(4, 5), bptt.Dense(5, 10)], seed=0)


@pytest.fixture
def float_model():
    return bptt.Sequential([bptt.GRU(3, 4), bptt.Dense(4, 2)], seed=0)


def test_constructor_arguments():
    with pytest.raises(ValueError, match="hidden_size must be >= 1, got 0"):
        bptt.LSTM(3, 0)
    with pytest.raises(TypeError, match="input_size must be an integer, got float 2.5"):
        bptt.GRU(2.5, 3)
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        bptt.Elman(3, 4, nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got float16"):
        bptt.Dense(3, 4, dtype=np.float16)
    with pytest.raises(ValueError, match="part 2 .* expects 6 input features, but part 1 gives 5"):
        bptt.Sequential([bptt.Embedding(10, 4), bptt.LSTM(4, 5), bptt.Dense(6, 10)])
    with pytest.raises(ValueError, match="Embedding takes tokens and must come first"):
        bptt.Sequential([bptt.Dense(3, 3), bptt.Embedding(3, 3)])
    with pytest.raises(ValueError, match="at least one part"):
        bptt.Sequential([])
    with pytest.raises(TypeError, match="part 0 must be a bptt Module, got int"):
        bptt.Sequential([3])
    with pytest.raises(ValueError, match="reduction must be one of"):
        bptt.MeanSquaredError("avg")
    with pytest.raises(ValueError, match="max_norm must be > 0, got -1.0"):
        bptt.ClipGlobalNorm(-1)


def test_token_inputs(model):
    with pytest.raises(TypeError, match="integer tokens .* got dtype float64"):
        model.forward(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="token 10, outside the vocabulary \\[0, 10\\)"):
        model.forward(np.full((3, 2), 10))
    with pytest.raises(ValueError, match="token -1"):
        model.forward(np.full((3, 2), -1))
    with pytest.raises(ValueError, match="time-major \\(T, B\\), got shape \\(3,\\)"):
        model.forward(np.zeros(3, int))
    with pytest.raises(ValueError, match="at least one time step"):
        model.forward(np.zeros((0, 2), int))


def test_float_inputs(float_model):
    with pytest.raises(ValueError, match="must have 3 features in its last axis, got shape"):
        float_model.forward(np.zeros((3, 2, 4)))
    with pytest.raises(ValueError, match="3 dimensions"):
        float_model.forward(np.zeros((3, 2)))
    x = np.zeros((3, 2, 3))
    x[1, 0, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite value at index \\(1, 0, 2\\)"):
        float_model.forward(x)
    with pytest.raises(TypeError, match="floating-point array, got dtype <U1"):
        float_model.forward(np.full((3, 2, 3), "a"))


def test_state_and_masks(model):
    x = np.zeros((3, 2), int)
    with pytest.raises(ValueError, match="one entry per part \\(3\\)"):
        model.forward(x, state=((),))
    bad = ((), (np.zeros((2, 5)), np.zeros((2, 4))), ())
    with pytest.raises(ValueError, match="expected state\\[1\\] of shape \\(2, 5\\), got \\(2, 4\\)"):
        model.forward(x, state=bad)
    with pytest.raises(ValueError, match="resets must have shape \\(3, 2\\), got \\(2, 3\\)"):
        model.forward(x, resets=np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="resets must be boolean \\(or 0/1\\)"):
        model.forward(x, resets=np.full((3, 2), 2))


def test_loss_targets():
    y = np.zeros((3, 2, 4))
    ce = bptt.SoftmaxCrossEntropy()
    with pytest.raises(TypeError, match="integer class indices, got dtype float64"):
        ce(y, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="targets must have shape \\(3, 2\\)"):
        ce(y, np.zeros((3, 3), int))
    with pytest.raises(ValueError, match="target 4 is outside the 4 classes"):
        ce(y, np.full((3, 2), 4))
    with pytest.raises(ValueError, match="weights must have shape \\(3, 2\\)"):
        ce(y, np.zeros((3, 2), int), weights=np.ones(3))
    with pytest.raises(ValueError, match="weights must be >= 0"):
        ce(y, np.zeros((3, 2), int), weights=-np.ones((3, 2)))
    with pytest.raises(ValueError, match="targets must have the output's shape"):
        bptt.MeanSquaredError()(y, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="targets must lie in \\[0, 1\\]"):
        bptt.BinaryCrossEntropyWithLogits()(y, np.full((3, 2, 4), 2.0))
    t = np.zeros((3, 2, 4))
    t[0, 1, 3] = np.inf
    with pytest.raises(ValueError, match="non-finite value at index \\(0, 1, 3\\)"):
        bptt.MeanSquaredError()(y, t)


def test_load_parameters_checks_everything_first(model):
    values = {k: np.ones_like(v) for k, v in model.named_parameters().items()}
    values["1.weight_hh"] = np.ones((3, 3))
    before = model.named_parameters()["0.weight"].copy()
    with pytest.raises(ValueError, match="'1.weight_hh': expected shape \\(20, 5\\), got \\(3, 3\\)"):
        model.load_parameters(values)
    np.testing.assert_array_equal(model.named_parameters()["0.weight"], before)
    with pytest.raises(ValueError, match="missing \\['2.bias'\\]"):
        model.load_parameters({k: v for k, v in values.items() if k != "2.bias"})


def test_gradcheck_names(model):
    with pytest.raises(ValueError, match="unknown parameter names \\['9.w'\\]"):
        bptt.gradcheck(model, bptt.SoftmaxCrossEntropy(), np.zeros((2, 1), int),
                       np.zeros((2, 1), int), params=["9.w"])
