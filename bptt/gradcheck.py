"""Gradient checking: analytic gradients against central finite differences, in float64."""

import copy

import numpy as np

from .value_and_grad import check_model, value_and_grad


class GradcheckReport:
    """Per parameter: the worst relative error over the checked entries and where it was.

    ``errors[name]`` is ``max_i |a_i - n_i| / max(|a_i|, |n_i|, floor)`` with ``a`` the analytic
    and ``n`` the numerical gradient, and ``floor = 1e-3 * max_i |n_i|`` (plus 1e-12) so that
    entries a thousand times smaller than the parameter's largest are judged on that scale
    rather than on their own (their finite-difference estimate is all round-off).
    """

    def __init__(self, rows):
        self.rows = rows  # name -> dict(error, index, analytic, numeric, checked, size)

    @property
    def errors(self):
        return {k: r["error"] for k, r in self.rows.items()}

    @property
    def worst(self):
        return max(self.errors.values(), default=0.0)

    def ok(self, tol=1e-6):
        return self.worst < tol

    def __str__(self):
        lines = [f"{'parameter':<24} {'checked':>9} {'worst rel err':>14}  at index: "
                 "analytic vs numeric"]
        for k, r in self.rows.items():
            lines.append(f"{k:<24} {r['checked']:>4}/{r['size']:<4} {r['error']:>14.3e}  "
                         f"{r['index']}: {r['analytic']:.10e} vs {r['numeric']:.10e}")
        return "\n".join(lines)

    __repr__ = __str__


def _float64_copy(model):
    m = copy.deepcopy(model)
    if m.dtype != np.float64:
        m.astype(np.float64)
    return m


def gradcheck(model, loss, x, y, state=None, weights=None, resets=None, eps=1e-3,
              max_per_param=64, seed=0, params=None, state_clip=None):
    """Compare the analytic gradient of ``loss(model(x), y)`` with finite differences.

    Works on a float64 copy of the model (the model itself is not changed). Each checked entry
    uses the fourth-order central difference
    ``(f(t-2h) - 8 f(t-h) + 8 f(t+h) - f(t+2h)) / 12h`` with ``h = eps * max(1, |t|)``.
    max_per_param: check at most this many entries of each parameter, chosen at random under
        ``seed`` (None checks them all).
    params: names of the parameters to check (default all).
    Random parts (Dropout) replay the same masks for every evaluation.
    Returns a :class:`GradcheckReport`.
    """
    check_model(model)
    m = _float64_copy(model)
    rng_state = copy.deepcopy(m.get_rng_state())

    def f():
        m.set_rng_state(copy.deepcopy(rng_state))
        out, _, _ = m.forward(x, state, resets)
        return loss.value(out, y, weights)

    m.set_rng_state(copy.deepcopy(rng_state))
    _, grads, _ = value_and_grad(m, loss, x, y, state, weights, resets, state_clip=state_clip)
    named = m.named_parameters()
    names = list(named) if params is None else list(params)
    unknown = [n for n in names if n not in named]
    if unknown:
        raise ValueError(f"unknown parameter names {unknown}; the model has {list(named)}")
    pick = np.random.default_rng(seed)
    rows = {}
    for name in names:
        p, a = named[name], grads[name]
        flat = p.reshape(-1)
        idx = np.arange(flat.size)
        if max_per_param is not None and flat.size > max_per_param:
            idx = np.sort(pick.choice(flat.size, max_per_param, replace=False))
        num = np.empty(idx.size)
        for j, i in enumerate(idx):
            t = flat[i]
            h = eps * max(1.0, abs(t))
            vals = []
            for k in (-2, -1, 1, 2):
                flat[i] = t + k * h
                vals.append(f())
            flat[i] = t
            num[j] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h)
        ana = a.reshape(-1)[idx]
        floor = 1e-3 * np.max(np.abs(num), initial=0.0) + 1e-12
        rel = np.abs(ana - num) / np.maximum(np.maximum(np.abs(ana), np.abs(num)), floor)
        if not rel.size:   # an empty parameter: nothing to check
            rows[name] = {"error": 0.0, "index": (), "analytic": 0.0, "numeric": 0.0,
                          "checked": 0, "size": 0}
            continue
        w = int(np.argmax(rel))
        rows[name] = {"error": float(rel[w]),
                      "index": tuple(int(i) for i in np.unravel_index(idx[w], p.shape)),
                      "analytic": float(ana[w]), "numeric": float(num[w]),
                      "checked": int(idx.size), "size": int(flat.size)}
    return GradcheckReport(rows)
