"""A cell written by a user as one Python time step is driven by the unroller like a built-in."""

import numpy as np

import bptt
from reference import RecordingSGD, tbptt_reference


class MinimalGatedUnit(bptt.Cell):
    """Zhou et al. (2016): f = sigmoid(W_f [x, h]); h' = (1 - f) * h + f * tanh(W_h [x, f*h])."""

    def __init__(self, input_size, hidden_size, dtype=np.float32, seed=None):
        super().__init__(dtype)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.reset_parameters(np.random.default_rng(seed))

    def reset_parameters(self, rng):
        D, H = self.input_size, self.hidden_size
        self._set_params({"w_f": bptt.init.glorot_uniform((H, D + H), rng),
                          "w_h": bptt.init.glorot_uniform((H, D + H), rng),
                          "b_f": np.ones(H), "b_h": np.zeros(H)})

    @property
    def state_sizes(self):
        return (self.hidden_size,)

    def output_size(self, input_size):
        return self.hidden_size

    def get_config(self):
        return {"input_size": self.input_size, "hidden_size": self.hidden_size}

    def step_forward(self, x_t, state):
        (h,) = state
        p = self.params
        f = 1 / (1 + np.exp(-(np.concatenate([x_t, h], 1) @ p["w_f"].T + p["b_f"])))
        u = np.concatenate([x_t, f * h], 1)
        n = np.tanh(u @ p["w_h"].T + p["b_h"])
        h_new = (1 - f) * h + f * n
        return h_new, (h_new,), (x_t, h, f, u, n)

    def step_backward(self, dy_t, dstate_new, cache):
        x_t, h, f, u, n = cache
        D, p, g = self.input_size, self.params, self.grads
        dh_new = dy_t + dstate_new[0]
        dn_pre = dh_new * f * (1 - n * n)
        g["w_h"] += dn_pre.T @ u
        g["b_h"] += dn_pre.sum(0)
        du = dn_pre @ p["w_h"]
        df = dh_new * (n - h) + du[:, D:] * h
        df_pre = df * f * (1 - f)
        g["w_f"] += df_pre.T @ np.concatenate([x_t, h], 1)
        g["b_f"] += df_pre.sum(0)
        dv = df_pre @ p["w_f"]
        dx = du[:, :D] + dv[:, :D]
        dh = dh_new * (1 - f) + du[:, D:] * f + dv[:, D:]
        return dx, (dh,)


def model(seed=0):
    return bptt.Sequential([bptt.Embedding(6, 3), MinimalGatedUnit(3, 4), bptt.Dense(4, 6)],
                           dtype=np.float64, seed=seed)


def test_user_cell_gradients(rng):
    x, y = rng.integers(0, 6, (6, 2)), rng.integers(0, 6, (6, 2))
    report = bptt.gradcheck(model(), bptt.SoftmaxCrossEntropy(), x, y, max_per_param=None,
                            resets=rng.random((6, 2)) < 0.3)
    assert report.worst < 1e-6, str(report)


def test_user_cell_under_tbptt(rng):
    x, y = rng.integers(0, 6, (10, 2)), rng.integers(0, 6, (10, 2))
    loss = bptt.SoftmaxCrossEntropy()
    ref_grads, ref_params = tbptt_reference(model(), loss, x, y, 3, 5, 0.2)
    m = model()
    opt = RecordingSGD(m.named_parameters(), 0.2)
    bptt.TBPTT(m, loss, opt, k1=3, k2=5, clip=bptt.ClipStateGradient(10.0)).fit(x, y)
    for a, b in zip(ref_grads, opt.seen):
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-10, atol=1e-13)
    for k, v in m.named_parameters().items():
        np.testing.assert_allclose(v, ref_params[k], rtol=1e-10, atol=1e-13)


def test_user_cell_in_a_checkpoint(tmp_path):
    m = model(seed=3)
    bptt.save(tmp_path / "mgu.npz", m)
    back = bptt.load(tmp_path / "mgu.npz").model
    for k, v in m.named_parameters().items():
        np.testing.assert_array_equal(back.named_parameters()[k], v)
    assert isinstance(back[1], MinimalGatedUnit)
