"""Same weights, same numbers as PyTorch (skipped when torch is not installed).

The parameter layout and names are PyTorch's, so weights move across without reshaping.
"""

import numpy as np
import pytest

import bptt
from conftest import make_cell

torch = pytest.importorskip("torch")

TORCH_CELLS = {
    "elman-tanh": lambda d, h, **kw: torch.nn.RNN(d, h, nonlinearity="tanh", **kw),
    "elman-relu": lambda d, h, **kw: torch.nn.RNN(d, h, nonlinearity="relu", **kw),
    "lstm": lambda d, h, **kw: torch.nn.LSTM(d, h, **kw),
    "gru": lambda d, h, **kw: torch.nn.GRU(d, h, **kw),
}


def to_torch(module, named, suffix=""):
    with torch.no_grad():
        for name, value in named.items():
            base = name[:-len("_reverse")] if name.endswith("_reverse") else name
            rev = "_reverse" if name.endswith("_reverse") else ""
            getattr(module, f"{base}{suffix}{rev}").copy_(torch.from_numpy(value))


@pytest.mark.parametrize("kind", sorted(TORCH_CELLS))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_cells_match_pytorch(kind, bidirectional, rng):
    T, B, D, H = 6, 3, 4, 5
    cell = make_cell(kind, D, H)
    part = bptt.Bidirectional(cell) if bidirectional else cell
    part.astype(np.float64)
    ref = TORCH_CELLS[kind](D, H, bidirectional=bidirectional).double()
    to_torch(ref, part.named_parameters(), suffix="_l0")
    x = rng.standard_normal((T, B, D))
    dy = rng.standard_normal((T, B, 2 * H if bidirectional else H))

    y, final, cache = part.forward(x)
    part.zero_grad()
    dx, _ = part.backward(dy, None, cache)

    xt = torch.from_numpy(x).requires_grad_()
    yt, _ = ref(xt)
    (yt * torch.from_numpy(dy)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, g in part.named_grads().items():
        base = name.replace("_reverse", "")
        tname = f"{base}_l0" + ("_reverse" if name.endswith("_reverse") else "")
        np.testing.assert_allclose(g, getattr(ref, tname).grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_initial_state_matches_pytorch(kind, rng):
    T, B, D, H = 4, 2, 3, 4
    cell = make_cell(kind, D, H)
    cell.astype(np.float64)
    ref = TORCH_CELLS[kind](D, H).double()
    to_torch(ref, cell.named_parameters(), suffix="_l0")
    x = rng.standard_normal((T, B, D))
    state = tuple(rng.standard_normal((B, H)) for _ in cell.state_sizes)
    y, final, _ = cell.forward(x, state)
    ts = tuple(torch.from_numpy(s)[None] for s in state)
    yt, ft = ref(torch.from_numpy(x), ts if kind == "lstm" else ts[0])
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    ft = ft if kind == "lstm" else (ft,)
    for a, b in zip(final, ft):
        np.testing.assert_allclose(a, b[0].detach().numpy(), rtol=1e-10, atol=1e-12)


def test_char_model_and_losses_match_pytorch(rng):
    V, E, H, T, B = 11, 4, 5, 7, 3
    model = bptt.Sequential([bptt.Embedding(V, E), bptt.LSTM(E, H), bptt.Dense(H, V)],
                            dtype=np.float64, seed=0)
    emb, lstm, lin = torch.nn.Embedding(V, E).double(), torch.nn.LSTM(E, H).double(), \
        torch.nn.Linear(H, V).double()
    p = model.named_parameters()
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(p["0.weight"]))
        lin.weight.copy_(torch.from_numpy(p["2.weight"]))
        lin.bias.copy_(torch.from_numpy(p["2.bias"]))
    to_torch(lstm, {k[2:]: v for k, v in p.items() if k.startswith("1.")}, suffix="_l0")
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    value, grads, _ = bptt.value_and_grad(model, bptt.SoftmaxCrossEntropy(), x, y)
    logits = lin(lstm(emb(torch.from_numpy(x)))[0])
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y).reshape(-1))
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grads["0.weight"], emb.weight.grad.numpy(), rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(grads["1.weight_hh"], lstm.weight_hh_l0.grad.numpy(), rtol=1e-9,
                               atol=1e-13)
    np.testing.assert_allclose(grads["2.weight"], lin.weight.grad.numpy(), rtol=1e-9, atol=1e-13)


def test_elementwise_losses_match_pytorch(rng):
    y = rng.standard_normal((4, 3, 2)) * 3
    t = rng.random((4, 3, 2))
    F = torch.nn.functional
    for loss, ref in ((bptt.MeanSquaredError(), F.mse_loss),
                      (bptt.BinaryCrossEntropyWithLogits(), F.binary_cross_entropy_with_logits)):
        yt = torch.from_numpy(y).requires_grad_()
        r = ref(yt, torch.from_numpy(t))
        r.backward()
        value, dy = loss(y, t)
        assert value == pytest.approx(r.item(), rel=1e-12)
        np.testing.assert_allclose(dy, yt.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_ignore_index_matches_pytorch(rng):
    y = rng.standard_normal((5, 2, 6))
    t = rng.integers(0, 6, (5, 2))
    t[1, 0] = t[3, 1] = -100
    yt = torch.from_numpy(y).requires_grad_()
    r = torch.nn.functional.cross_entropy(yt.reshape(-1, 6), torch.from_numpy(t).reshape(-1),
                                          ignore_index=-100)
    r.backward()
    value, dy = bptt.SoftmaxCrossEntropy(ignore_index=-100)(y, t)
    assert value == pytest.approx(r.item(), rel=1e-12)
    np.testing.assert_allclose(dy, yt.grad.numpy(), rtol=1e-10, atol=1e-14)
