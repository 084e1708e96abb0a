"""Slow, obviously-correct references that the fast paths are tested against."""

import copy

import numpy as np


class RecordingSGD:
    """Plain SGD that records (copies of) the gradients it is given."""

    def __init__(self, params, lr):
        self.params, self.lr, self.seen = params, lr, []

    def step(self, grads):
        self.seen.append({k: g.copy() for k, g in grads.items()})
        for k, p in self.params.items():
            p -= self.lr * grads[k]


def _load(model, values):
    for k, p in model.named_parameters().items():
        p[...] = values[k]


def _params(model):
    return {k: p.copy() for k, p in model.named_parameters().items()}


def _window_start(a, b, k1, k2):
    """First step of the window of the chunk [a, b) (see bptt.tbptt's definition)."""
    n = b - a
    if k2 is None:
        return 0
    if k2 < n:
        return b - k2
    return max(0, a - max(k2 - k1, 0))


def tbptt_reference(model, loss, x, y, k1, k2, lr, weights=None, resets=None):
    """TBPTT(k1, k2) with plain SGD, done the slow way.

    The stream is run one step at a time (each step a separate 1-step forward), recording the
    state that enters every step and the parameters every step ran with. For each update, the
    window's graph is rebuilt from scratch: a fresh forward from the recorded state at the
    window's start, each step with its own parameters, then a backward one step at a time with
    the chunk's loss gradient injected at the chunk's steps inside the window only.
    Returns (the list of gradients per update, the final parameters).
    """
    m = copy.deepcopy(model)
    L, B = x.shape[0], x.shape[1]
    w = np.ones((L, B)) if weights is None else np.asarray(weights, dtype=float)
    r = np.zeros((L, B), bool) if resets is None else np.asarray(resets, bool)
    states, step_params, outs = [None] * L, [None] * L, [None] * L
    state, grads_per_update = None, []
    for a in range(0, L, k1):
        b = min(a + k1, L)
        theta = _params(m)
        for t in range(a, b):
            states[t], step_params[t] = state, theta
            outs[t], state, _ = m.forward(x[t:t + 1], state, r[t:t + 1])
        w0 = _window_start(a, b, k1, k2)
        caches, s = {}, states[w0]
        for t in range(w0, b):
            _load(m, step_params[t])
            _, s, caches[t] = m.forward(x[t:t + 1], s, r[t:t + 1])
        _, dout = loss(np.concatenate(outs[a:b]), y[a:b], w[a:b])
        m.zero_grad()
        ds = None
        for t in range(b - 1, w0 - 1, -1):
            _load(m, step_params[t])
            dy = dout[t - a:t - a + 1] if t >= a else np.zeros_like(outs[t])
            _, ds = m.backward(dy, ds, caches[t])
        g = {k: v.copy() for k, v in m.named_grads().items()}
        grads_per_update.append(g)
        _load(m, theta)
        for k, p in m.named_parameters().items():
            p -= lr * g[k]
    return grads_per_update, _params(m)


def window_loss_function(model, loss, x, y, k1, k2, update, lr, weights=None, resets=None):
    """For update number ``update`` of TBPTT(k1, k2) with plain SGD at learning rate ``lr``,
    return ``(f, theta)``: ``f(delta)`` is that update's objective recomputed from scratch
    on the truncated graph, with every step of the window run with the parameters it used plus
    ``delta`` (a dict of arrays), and the state entering the window held constant; ``theta``
    the parameters of the update's own chunk. Its derivative in ``delta`` at 0 is the gradient
    TBPTT must produce (the sum over all uses of each parameter)."""
    grads, _ = tbptt_reference(model, loss, x, y, k1, k2, lr, weights, resets)
    m = copy.deepcopy(model)
    L, B = x.shape[0], x.shape[1]
    w = np.ones((L, B)) if weights is None else np.asarray(weights, dtype=float)
    r = np.zeros((L, B), bool) if resets is None else np.asarray(resets, bool)
    # replay the parameter trajectory and the forward pass to get states and step parameters
    states, step_params, state = [None] * L, [None] * L, None
    chunks = [(a, min(a + k1, L)) for a in range(0, L, k1)]
    for j, (a, b) in enumerate(chunks):
        theta = _params(m)
        for t in range(a, b):
            states[t], step_params[t] = state, theta
            _, state, _ = m.forward(x[t:t + 1], state, r[t:t + 1])
        if j == update:
            break
        for k, p in m.named_parameters().items():
            p -= lr * grads[j][k]
    a, b = chunks[update]
    w0 = _window_start(a, b, k1, k2)

    def f(delta):
        s, outs = states[w0], {}
        for t in range(w0, b):
            _load(m, {k: v + delta[k] for k, v in step_params[t].items()})
            outs[t], s, _ = m.forward(x[t:t + 1], s, r[t:t + 1])
        # steps of the chunk before the window still count in the loss, but as constants
        s = states[a]
        for t in range(a, w0):
            _load(m, step_params[t])
            outs[t], s, _ = m.forward(x[t:t + 1], s, r[t:t + 1])
        return loss.value(np.concatenate([outs[t] for t in range(a, b)]), y[a:b], w[a:b])

    return f, step_params[a]


def finite_difference_gradient(f, shapes, eps=1e-3):
    """Fourth-order central differences of ``f(delta)`` at delta = 0, for every entry."""
    zero = {k: np.zeros(s) for k, s in shapes.items()}
    out = {}
    for k, s in shapes.items():
        g = np.zeros(s)
        for i in np.ndindex(s):
            vals = []
            for step in (-2, -1, 1, 2):
                d = dict(zero)
                d[k] = np.zeros(s)
                d[k][i] = step * eps
                vals.append(f(d))
            g[i] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * eps)
        out[k] = g
    return out
