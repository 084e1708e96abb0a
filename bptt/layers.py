"""Static layers: parts with no state, applied to all T*B positions at once.

Inputs are time-major: ``(T, B, D)`` floats, or ``(T, B)`` integer tokens for Embedding.
"""

import numpy as np

from . import init
from . import _parallel
from ._kernels import layers as _kernels
from ._kernels._common import buffer, packed, weight_grad_shares
from ._kernels.gemm import lanes, packed_shape
from ._validate import positive_int, positive_float, token_sequence
from .module import Module


def check_float(part, x):
    """A part's float input, as an array of the part's dtype."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{part!r}: expected floating-point input, got dtype {x.dtype}")
    return np.ascontiguousarray(x, dtype=part.dtype)


def check_features(part, x, size):
    """Light shape/dtype check of a part's float input (T, B, size)."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{part!r}: expected floating-point input, got dtype {x.dtype}")
    if x.ndim != 3 or x.shape[-1] != size:
        raise ValueError(f"{part!r}: expected input of shape (T, B, {size}), got {x.shape}")
    return np.ascontiguousarray(x, dtype=part.dtype)


class Dense(Module):
    """``y = x @ weight.T + bias``; weight (out_features, in_features), bias (out_features,)."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, seed=None):
        super().__init__(dtype)
        self.in_features = positive_int("in_features", in_features)
        self.out_features = positive_int("out_features", out_features)
        self.bias = bool(bias)
        self.reset_parameters(np.random.default_rng(seed))

    def reset_parameters(self, rng):
        p = {"weight": init.glorot_uniform((self.out_features, self.in_features), rng,
                                           self.dtype)}
        if self.bias:
            p["bias"] = np.zeros(self.out_features, dtype=self.dtype)
        self._set_params(p)

    def output_size(self, input_size):
        return self.out_features

    def forward(self, x, state=None, resets=None):
        return self._forward(check_features(self, x, self.in_features), (), resets)

    def _forward(self, x, state, resets):
        p = self.params
        y = buffer(self, "y", x.shape[:-1] + (self.out_features,), self.dtype)
        y2 = y.reshape(-1, self.out_features)
        n = y2.shape[0]
        _parallel.run(_kernels.dense_forward, n,
                      (x.reshape(-1, self.in_features), packed(self, "p_wt", p["weight"], True),
                       p.get("bias", p["weight"][0]), self.bias, y2),
                      work=n * self.in_features * self.out_features)
        return y, (), {"x": x}

    def backward(self, dy, dstate, cache, ctx=None):
        if dy is None:
            return None, ()
        x, p, g = cache["x"], self.params, self.grads
        dt, n_in, n_out = self.dtype, self.in_features, self.out_features
        dy2 = np.ascontiguousarray(dy, dtype=dt).reshape(-1, n_out)
        x2 = x.reshape(-1, n_in)
        n = x2.shape[0]
        dx = buffer(self, "dx", x.shape, dt)
        # dW = dy^T x sums over the n rows; of the two operands, the narrower one is packed
        # (dW^T = x^T dy, then added into dW transposed: a strided pass over dW, and n_out
        # columns of vectors, the last one partly wasted, 65 taking 80 lanes), which pays only
        # when packing x instead of dy would move several times as many numbers. Timed side by
        # side (direct / transposed): 0.80-0.92 at 1600 rows, 128 inputs, 65 outputs; 0.95-0.97
        # at 256 inputs; 1.0-1.07 at 3200 rows, 256 inputs, 114 outputs (the char-LM's) and
        # 1.01-1.04 at 3200 rows of 512 (there the packed x outgrows L2); the weight of the
        # waste (1/40) keeps the last two transposed, and the 256 x 65 case with them
        waste = -n_out % lanes(dt)
        transposed = n_out < n_in and (n * (n_in - n_out) >
                                       4 * n_in * n_out + waste * n * n_in / 40)
        m = dy2 if transposed else x2
        p_m = buffer(self, "p_m", packed_shape(n, m.shape[1], dt), dt)
        work = n * n_in * n_out
        _parallel.run(_kernels.dense_backward_rows, n,
                      (dy2, packed(self, "p_w", p["weight"], False), dx.reshape(-1, n_in), m,
                       p_m), work=work)
        g_b = g.get("bias", g["weight"][0])
        shares = weight_grad_shares(n, n_in * n_out)
        if shares > 1:
            partial = buffer(self, "partial", (shares, n_in, n_out) if transposed
                             else (shares, n_out, n_in), dt)
            sums = buffer(self, "share_sums", (shares, n_out), np.dtype(np.float64))
            _parallel.run(_kernels.dense_weight_grad_shares, shares,
                          (dy2, x2, p_m, transposed, partial, sums, self.bias), work=work)
            _parallel.run(_kernels.dense_weight_grad_add, n_out,
                          (partial, sums, transposed, g["weight"], g_b, self.bias),
                          work=shares * n_in * n_out)
        else:
            scratch = buffer(self, "scratch", (n_in, n_out) if transposed else (0, 0), dt)
            _parallel.run(_kernels.dense_weight_grad, n_in if transposed else n_out,
                          (dy2, x2, p_m, transposed, g["weight"], g_b, self.bias, scratch,
                           buffer(self, "sums", (n_out,), np.dtype(np.float64))), work=work)
        return dx, ()

    def get_config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias}


class Embedding(Module):
    """Token lookup: integer tokens (T, B) -> vectors (T, B, embedding_dim); weight (V, E)."""

    def __init__(self, num_embeddings, embedding_dim, dtype=np.float32, seed=None):
        super().__init__(dtype)
        self.num_embeddings = positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = positive_int("embedding_dim", embedding_dim)
        self.reset_parameters(np.random.default_rng(seed))

    def reset_parameters(self, rng):
        w = rng.standard_normal((self.num_embeddings, self.embedding_dim))
        self._set_params({"weight": w})

    def output_size(self, input_size):
        return self.embedding_dim

    def forward(self, x, state=None, resets=None):
        return self._forward(token_sequence("tokens", x, self.num_embeddings), (), resets)

    def _forward(self, x, state, resets):
        return self.params["weight"][x], (), {"x": x}

    def backward(self, dy, dstate, cache, ctx=None):
        if dy is None:
            return None, ()
        dy = np.ascontiguousarray(dy, dtype=self.dtype)
        _kernels.embedding_backward(cache["x"].reshape(-1), dy.reshape(-1, self.embedding_dim),
                                    self.grads["weight"])
        return None, ()

    def get_config(self):
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim}


class _Activation(Module):
    """Elementwise activation; backward uses the stored output (derivative from outputs)."""

    def forward(self, x, state=None, resets=None):
        return self._forward(check_float(self, x), (), resets)

    def _forward(self, x, state, resets):
        y = self._f(x)
        return y, (), {"y": y}

    def backward(self, dy, dstate, cache, ctx=None):
        return (None if dy is None else self._df(dy, cache["y"])), ()


class Tanh(_Activation):
    @staticmethod
    def _f(x):
        return np.tanh(x)

    @staticmethod
    def _df(dy, y):
        return dy * (1 - y * y)


class Sigmoid(_Activation):
    @staticmethod
    def _f(x):
        # 0.5 * (1 + tanh(x / 2)) is exact and cannot overflow.
        return (np.tanh(x * 0.5) + 1) * 0.5

    @staticmethod
    def _df(dy, y):
        return dy * y * (1 - y)


class ReLU(_Activation):
    @staticmethod
    def _f(x):
        return np.maximum(x, 0)

    @staticmethod
    def _df(dy, y):
        return dy * (y > 0)


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the rest
    by 1/(1-p); identity in eval mode. Masks are drawn from ``default_rng((seed, calls))``, so a
    run is reproducible and the mask sequence can be saved and restored (``get_rng_state``)."""

    def __init__(self, p=0.5, seed=0, dtype=np.float32):
        super().__init__(dtype)
        p = positive_float("p", p, allow_zero=True)
        if p >= 1:
            raise ValueError(f"p must be < 1, got {p}")
        self.p = p
        self.seed = int(seed)
        self.calls = 0

    def reset_parameters(self, rng):
        self.seed = int(rng.integers(2**62))
        self.calls = 0

    def get_rng_state(self):
        return {"seed": self.seed, "calls": self.calls}

    def set_rng_state(self, state):
        self.seed, self.calls = int(state["seed"]), int(state["calls"])

    def forward(self, x, state=None, resets=None):
        return self._forward(check_float(self, x), (), resets)

    def _forward(self, x, state, resets):
        if not self.training or self.p == 0:
            return x, (), {"mask": np.ones((x.shape[0],) + (1,) * (x.ndim - 1), self.dtype)}
        rng = np.random.default_rng((self.seed, self.calls))
        self.calls += 1
        keep = rng.random(x.shape) >= self.p
        mask = keep.astype(self.dtype) * self.dtype.type(1.0 / (1.0 - self.p))
        return x * mask, (), {"mask": mask}

    def backward(self, dy, dstate, cache, ctx=None):
        return (None if dy is None else dy * cache["mask"]), ()

    def get_config(self):
        return {"p": self.p, "seed": self.seed}
