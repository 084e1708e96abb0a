"""Recurrent cells: Elman, LSTM, GRU, with PyTorch's parameter names, layout and gate order.

Each cell has ``weight_ih`` (G*H, D), ``weight_hh`` (G*H, H), ``bias_ih`` and ``bias_hh`` (G*H,),
with G = 1 (Elman), 4 (LSTM: gates i, f, g, o) or 3 (GRU: r, z, n). Inputs are time-major
(T, B, D); the output is the hidden state sequence (T, B, H).

The per-step methods (``step_forward``/``step_backward``, plain numpy) define each cell and are
the reference; ``forward``/``backward`` run compiled sequence kernels (``bptt._kernels``) that
give the same numbers, unless ``use_kernels`` is False.
"""

import numpy as np

from . import _kernels, init
from ._validate import choice, positive_float, positive_int
from .layers import check_features
from .module import Cell
from .unroll import Unroller


def sigmoid(x):
    # 0.5 * (1 + tanh(x / 2)) is the logistic function and cannot overflow.
    return (np.tanh(x * 0.5) + 1) * 0.5


class _GatedCell(Cell):
    """Shared construction of the four PyTorch-layout parameters of a cell with G gates.

    recurrent_init: how each (H, H) block of ``weight_hh`` starts: "orthogonal" (default),
        "identity", "glorot", "normal" or "uniform" (see :func:`bptt.init.recurrent_matrix`).
        With "uniform" every weight is drawn as PyTorch does, U(-1/sqrt(H), 1/sqrt(H)).
    spectral_radius: if given, each recurrent block is rescaled to this spectral radius.
    """

    gates = 1
    use_kernels = True
    kernel = None  # the module of bptt._kernels that runs this cell's sequences

    def __init__(self, input_size, hidden_size, dtype=np.float32, seed=None,
                 recurrent_init="orthogonal", spectral_radius=None):
        super().__init__(dtype)
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.recurrent_init = choice("recurrent_init", recurrent_init, set(init.RECURRENT_INITS))
        self.spectral_radius = (None if spectral_radius is None else
                                positive_float("spectral_radius", spectral_radius))
        self.reset_parameters(np.random.default_rng(seed))

    def reset_parameters(self, rng):
        G, H, D = self.gates, self.hidden_size, self.input_size
        if self.recurrent_init == "uniform":
            w_ih = init.uniform((G * H, D), rng, 1.0 / np.sqrt(H))
        else:
            w_ih = init.gate_blocks(init.glorot_uniform, G, H, D, rng)
        w_hh = np.concatenate([init.recurrent_matrix(self.recurrent_init, H, rng,
                                                     spectral_radius=self.spectral_radius)
                               for _ in range(G)], axis=0)
        b_ih, b_hh = np.zeros(G * H), np.zeros(G * H)
        self._init_biases(b_ih, b_hh)
        self._set_params({"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh})

    def _init_biases(self, b_ih, b_hh):
        pass

    @property
    def state_sizes(self):
        return (self.hidden_size,)

    def output_size(self, input_size):
        return self.hidden_size

    def get_config(self):
        cfg = {"input_size": self.input_size, "hidden_size": self.hidden_size}
        if self.recurrent_init != "orthogonal":
            cfg["recurrent_init"] = self.recurrent_init
        if self.spectral_radius is not None:
            cfg["spectral_radius"] = self.spectral_radius
        return cfg

    def forward(self, x, state=None, resets=None):
        x = check_features(self, x, self.input_size)
        x, state, resets = self.check_sequence(x, state, resets)
        return self._forward(x, state, resets)

    def _forward(self, x, state, resets):
        if resets is None:
            resets = np.zeros(x.shape[:2], dtype=bool)
        if self.use_kernels and self.kernel is not None:
            y, final, cache = self.kernel.forward(self, x, state, resets)
            cache["kernel"] = True
            return y, final, cache
        return Unroller.forward(self, x, state, resets)

    def folds(self, embedding, T, B):
        """Whether this cell, fed by ``embedding`` (an Embedding part) over (T, B) tokens, runs
        with the embedding folded into its input projection (:meth:`_forward_tokens`): with
        the compiled kernels, when the table of V rows costs less than T*B products."""
        return (self.use_kernels and self.kernel is not None and embedding.dtype == self.dtype
                and embedding.embedding_dim == self.input_size
                and embedding.num_embeddings <= T * B)

    def _forward_tokens(self, tokens, embedding, state, resets):
        """This cell on ``embedding``'s output for ``tokens`` (T, B), computed with the
        embedding folded into the input projection: the projection of a token is a row of the
        table embedding.weight @ W_ih^T (V, G*H), made once per call. The outputs are the same
        numbers; the cache holds the tokens instead of the embedded input, and backward adds
        the embedding's gradient too (and returns no dx)."""
        if resets is None:
            resets = np.zeros(tokens.shape, dtype=bool)
        y, final, cache = self.kernel.forward(self, None, state, resets, (tokens, embedding))
        cache["kernel"] = True
        return y, final, cache

    def backward(self, dy, dstate, cache, ctx=None):
        if cache.get("kernel"):
            return self.kernel.backward(self, dy, dstate, cache, ctx)
        return super().backward(dy, dstate, cache, ctx)


class Elman(_GatedCell):
    """Elman (vanilla) RNN: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, act tanh,
    relu or linear (the identity, for studying gradient flow: the Jacobian dh_t/dh_{t-1} is
    then W_hh itself) (Elman 1990). With ``nonlinearity="relu", recurrent_init="identity"`` it
    is the IRNN of Le, Jaitly & Hinton (2015). State: (h,)."""

    gates = 1
    kernel = _kernels.elman

    def __init__(self, input_size, hidden_size, nonlinearity="tanh", dtype=np.float32,
                 seed=None, recurrent_init="orthogonal", spectral_radius=None):
        self.nonlinearity = choice("nonlinearity", nonlinearity, {"tanh", "relu", "linear"})
        super().__init__(input_size, hidden_size, dtype, seed, recurrent_init, spectral_radius)

    def get_config(self):
        cfg = super().get_config()
        cfg["nonlinearity"] = self.nonlinearity
        return cfg

    def step_forward(self, x_t, state):
        (h,) = state
        p = self.params
        a = x_t @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
        act = self.nonlinearity
        h_new = np.tanh(a) if act == "tanh" else np.maximum(a, 0) if act == "relu" else a
        return h_new, (h_new,), (x_t, h, h_new)

    def step_backward(self, dy_t, dstate_new, step_cache):
        x_t, h, h_new = step_cache
        dh = dy_t + dstate_new[0]
        act = self.nonlinearity
        da = (dh * (1 - h_new * h_new) if act == "tanh" else dh * (h_new > 0) if act == "relu"
              else dh)
        g, p = self.grads, self.params
        g["weight_ih"] += da.T @ x_t
        g["weight_hh"] += da.T @ h
        g["bias_ih"] += da.sum(0)
        g["bias_hh"] += da.sum(0)
        return da @ p["weight_ih"], (da @ p["weight_hh"],)


class LSTM(_GatedCell):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al.
    2000), PyTorch's formulation and gate order i, f, g, o:

        i, f, o = sigmoid(.), g = tanh(.)   of   W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
        c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

    State: (h, c). The forget-gate bias starts at ``forget_bias`` (1 by default, Jozefowicz et
    al. 2015), placed in ``bias_ih`` (``bias_hh`` starts at zero).
    """

    gates = 4
    kernel = _kernels.lstm

    def __init__(self, input_size, hidden_size, dtype=np.float32, seed=None,
                 recurrent_init="orthogonal", spectral_radius=None, forget_bias=1.0):
        self.forget_bias = float(forget_bias)
        super().__init__(input_size, hidden_size, dtype, seed, recurrent_init, spectral_radius)

    @property
    def state_sizes(self):
        return (self.hidden_size, self.hidden_size)

    def _init_biases(self, b_ih, b_hh):
        H = self.hidden_size
        b_ih[H:2 * H] = self.forget_bias

    def get_config(self):
        cfg = super().get_config()
        if self.forget_bias != 1.0:
            cfg["forget_bias"] = self.forget_bias
        return cfg

    def step_forward(self, x_t, state):
        h, c = state
        p, H = self.params, self.hidden_size
        a = x_t @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
        i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])
        g, o = np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        h_new = o * tc
        return h_new, (h_new, c_new), (x_t, h, c, i, f, g, o, tc)

    def step_backward(self, dy_t, dstate_new, step_cache):
        x_t, h, c, i, f, g, o, tc = step_cache
        dh = dy_t + dstate_new[0]
        dc = dstate_new[1] + dh * o * (1 - tc * tc)
        da = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f),
                             dc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
        gr, p = self.grads, self.params
        gr["weight_ih"] += da.T @ x_t
        gr["weight_hh"] += da.T @ h
        gr["bias_ih"] += da.sum(0)
        gr["bias_hh"] += da.sum(0)
        return da @ p["weight_ih"], (da @ p["weight_hh"], dc * f)


class GRU(_GatedCell):
    """Gated recurrent unit (Cho et al. 2014) in PyTorch's formulation, gate order r, z, n, with
    the reset gate applied to the recurrent term after its bias:

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),   h_t = (1 - z) * n + z * h_{t-1}

    State: (h,).
    """

    gates = 3
    kernel = _kernels.gru

    def step_forward(self, x_t, state):
        (h,) = state
        p, H = self.params, self.hidden_size
        ai = x_t @ p["weight_ih"].T + p["bias_ih"]
        ah = h @ p["weight_hh"].T + p["bias_hh"]
        r = sigmoid(ai[:, :H] + ah[:, :H])
        z = sigmoid(ai[:, H:2 * H] + ah[:, H:2 * H])
        hn = ah[:, 2 * H:]
        n = np.tanh(ai[:, 2 * H:] + r * hn)
        h_new = (1 - z) * n + z * h
        return h_new, (h_new,), (x_t, h, r, z, n, hn)

    def step_backward(self, dy_t, dstate_new, step_cache):
        x_t, h, r, z, n, hn = step_cache
        dh = dy_t + dstate_new[0]
        dn = dh * (1 - z) * (1 - n * n)
        dz = dh * (h - n) * z * (1 - z)
        dr = dn * hn * r * (1 - r)
        dai = np.concatenate([dr, dz, dn], axis=1)
        dah = np.concatenate([dr, dz, dn * r], axis=1)
        gr, p = self.grads, self.params
        gr["weight_ih"] += dai.T @ x_t
        gr["weight_hh"] += dah.T @ h
        gr["bias_ih"] += dai.sum(0)
        gr["bias_hh"] += dah.sum(0)
        return dai @ p["weight_ih"], (dh * z + dah @ p["weight_hh"],)
