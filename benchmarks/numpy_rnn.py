"""The W1 training step in plain numpy, written as most numpy RNN code is: a Python loop over
time steps for the forward pass and another for backward (as in Karpathy's min-char-rnn).

It is the baseline the benchmark prints beside the compiled kernels; it uses the same
parameter layout and arithmetic as bptt (PyTorch's gate order), float32 throughout.
"""

import numpy as np


def sigmoid(x):
    return 0.5 * np.tanh(0.5 * x) + 0.5


class NumpyCharRNN:
    """Embedding(V, E) -> cell (E -> H) -> Dense(H -> V), softmax cross-entropy, global-norm
    clipping, SGD; the state carried from step to step with its gradient cut."""

    def __init__(self, cell, V, E, H, B, dtype=np.float32, seed=0):
        rng = np.random.default_rng(seed)
        G = {"elman": 1, "lstm": 4, "gru": 3}[cell]
        self.cell, self.H, self.G = cell, H, G
        u = lambda *shape: rng.uniform(-0.1, 0.1, shape).astype(dtype)  # noqa: E731
        self.p = {"emb": u(V, E), "w_ih": u(G * H, E), "w_hh": u(G * H, H),
                  "b_ih": u(G * H), "b_hh": u(G * H), "w_out": u(V, H), "b_out": u(V)}
        self.h = np.zeros((B, H), dtype)
        self.c = np.zeros((B, H), dtype)

    def step(self, x, y, lr=0.1, max_norm=5.0):
        p, H = self.p, self.H
        T, B = x.shape
        h, c = self.h, self.c
        caches, logits = [], []
        for t in range(T):                      # forward, one Python iteration per step
            e = p["emb"][x[t]]
            a_i = e @ p["w_ih"].T + p["b_ih"]
            a_h = h @ p["w_hh"].T + p["b_hh"]
            if self.cell == "elman":
                h_new = np.tanh(a_i + a_h)
                caches.append((e, h, h_new))
            elif self.cell == "lstm":
                a = a_i + a_h
                i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])
                g, o = np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
                c_new = f * c + i * g
                tc = np.tanh(c_new)
                h_new = o * tc
                caches.append((e, h, c, i, f, g, o, tc))
                c = c_new
            else:
                r = sigmoid(a_i[:, :H] + a_h[:, :H])
                z = sigmoid(a_i[:, H:2 * H] + a_h[:, H:2 * H])
                n = np.tanh(a_i[:, 2 * H:] + r * a_h[:, 2 * H:])
                h_new = (1 - z) * n + z * h
                caches.append((e, h, r, z, n, a_h[:, 2 * H:]))
            h = h_new
            logits.append(h @ p["w_out"].T + p["b_out"])
        self.h, self.c = h, c

        grads = {k: np.zeros_like(v) for k, v in p.items()}
        dh_next = np.zeros((B, H), h.dtype)
        dc_next = np.zeros((B, H), h.dtype)
        loss = 0.0
        for t in range(T - 1, -1, -1):          # backward, one Python iteration per step
            z_ = logits[t] - logits[t].max(axis=1, keepdims=True)
            prob = np.exp(z_)
            prob /= prob.sum(axis=1, keepdims=True)
            loss -= np.log(prob[np.arange(B), y[t]]).sum()
            dlogit = prob
            dlogit[np.arange(B), y[t]] -= 1
            dlogit /= T * B
            cache = caches[t]
            h_t = cache[2] if self.cell == "elman" else None
            if self.cell == "lstm":
                e, h_prev, c_prev, i, f, g, o, tc = cache
                h_t = o * tc
            elif self.cell == "gru":
                e, h_prev, r, z, n, hn = cache
                h_t = (1 - z) * n + z * h_prev
            grads["w_out"] += dlogit.T @ h_t
            grads["b_out"] += dlogit.sum(0)
            dh = dlogit @ p["w_out"] + dh_next
            if self.cell == "elman":
                e, h_prev, h_new = cache
                da_i = da_h = dh * (1 - h_new * h_new)
                dh_next = da_h @ p["w_hh"]
            elif self.cell == "lstm":
                dc = dc_next + dh * o * (1 - tc * tc)
                da_i = da_h = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                                              dc * i * (1 - g * g), dh * tc * o * (1 - o)], 1)
                dh_next, dc_next = da_h @ p["w_hh"], dc * f
            else:
                dn = dh * (1 - z) * (1 - n * n)
                dz = dh * (h_prev - n) * z * (1 - z)
                dr = dn * hn * r * (1 - r)
                da_i = np.concatenate([dr, dz, dn], 1)
                da_h = np.concatenate([dr, dz, dn * r], 1)
                dh_next = dh * z + da_h @ p["w_hh"]
            grads["w_ih"] += da_i.T @ e
            grads["w_hh"] += da_h.T @ h_prev
            grads["b_ih"] += da_i.sum(0)
            grads["b_hh"] += da_h.sum(0)
            np.add.at(grads["emb"], x[t], da_i @ p["w_ih"])
        norm = np.sqrt(sum(float((g * g).sum()) for g in grads.values()))
        scale = min(1.0, max_norm / (norm + 1e-6))
        for k in p:
            p[k] -= (lr * scale) * grads[k]
        return loss / (T * B)
