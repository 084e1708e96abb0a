"""Losses over time-major outputs. Each returns the value and the gradient in one call.

Every loss takes per-step weights ``weights`` (T, B) (floats >= 0, or a boolean mask for
padding). With ``reduction="mean"`` (default) the value is the weighted mean over the T*B
positions, ``sum(w * l) / sum(w)`` (the plain mean when no weights are given, and the mean over
unmasked positions for a 0/1 mask, as PyTorch's ``ignore_index`` does); with ``"sum"`` it is
``sum(w * l)``. A batch whose weights are all zero has loss 0 and gradient 0.
"""

import numpy as np

from . import _parallel
from ._kernels import layers as _layer_kernels
from ._kernels._common import buffer
from ._validate import choice, value_range, weight_mask


class Loss:
    """``loss(y, target, weights=None) -> (value, dy)`` with ``dy`` of ``y``'s shape and dtype."""

    def __init__(self, reduction="mean"):
        self.reduction = choice("reduction", reduction, {"mean", "sum"})

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_buffers", None)  # work arrays are not part of a copy
        return state

    def __call__(self, y, target, weights=None):
        value, dl, _ = self.value_grad_and_weight(y, target, weights)
        return value, dl

    def value_grad_and_weight(self, y, target, weights=None):
        """``(value, dy, total_weight)``: the loss, its gradient, and sum(w) over the positions
        that count (what a mean divides by), in one pass."""
        y = self._check_output(y)
        target = self._check_target(y, target)
        return self._checked_value_grad_and_weight(y, target, weights)

    def _checked_value_grad_and_weight(self, y, target, weights):
        """:meth:`value_grad_and_weight` for a model output, checked targets and checked
        weights (the TBPTT engine checks them once per call, before the chunks)."""
        w = self._weights(y, target, weights)
        if weights is None and getattr(self, "ignore_index", None) is None:
            total_w = float(w.size)   # all ones
        else:
            total_w = float(np.sum(w, dtype=np.float64))
        scale = 1.0 if self.reduction == "sum" else (1.0 / total_w if total_w > 0 else 0.0)
        total, dl = self._weighted_value_and_grad(y, target, w, scale)
        return total * scale, dl, total_w

    def _weighted_value_and_grad(self, y, target, w, scale):
        """(sum(w * l) as a float, d(scale * sum(w * l)) / dy)."""
        losses, dl = self._losses_and_grads(y, target)
        dl *= (w * y.dtype.type(scale))[..., None]
        return float(np.sum(w * losses, dtype=np.float64)), dl

    def value(self, y, target, weights=None):
        """The loss alone (no gradient)."""
        y = self._check_output(y)
        target = self._check_target(y, target)
        w = self._weights(y, target, weights)
        return float(np.sum(w * self._losses(y, target), dtype=np.float64) * self._scale(w))

    def per_step(self, y, target):
        """Unweighted loss at every position, shape (T, B)."""
        y = self._check_output(y)
        return self._losses(y, self._check_target(y, target))

    def total_weight(self, y, target, weights=None):
        """sum(w) over the positions that count (what a mean divides by)."""
        y = self._check_output(y)
        return float(np.sum(self._weights(y, self._check_target(y, target), weights),
                            dtype=np.float64))

    # -- helpers ---------------------------------------------------------------------------
    def _scale(self, w):
        if self.reduction == "sum":
            return 1.0
        total = float(np.sum(w, dtype=np.float64))
        return 1.0 / total if total > 0 else 0.0

    def _weights(self, y, target, weights):
        w = weight_mask("weights", weights, y.shape[:2], y.dtype)
        return np.ones(y.shape[:2], y.dtype) if w is None else w

    def _check_output(self, y):
        y = np.asarray(y)
        if y.dtype.kind != "f" or y.dtype.itemsize < 4:
            raise TypeError(f"{self!r}: model output must be float32 or float64, got {y.dtype}")
        if y.ndim != 3:
            raise ValueError(f"{self!r}: model output must be time-major (T, B, D), "
                             f"got shape {y.shape}")
        return y

    def get_config(self):
        return {"reduction": self.reduction} if self.reduction != "mean" else {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SoftmaxCrossEntropy(Loss):
    """Softmax over the last axis fused with the negative log-likelihood of integer targets.

    y: logits (T, B, V); target: integers (T, B) in [0, V). ``ignore_index`` (like PyTorch's)
    gives weight 0 to positions whose target equals it. Stable for any logits: it works with
    ``y - max(y)``.
    """

    def __init__(self, reduction="mean", ignore_index=None):
        super().__init__(reduction)
        self.ignore_index = None if ignore_index is None else int(ignore_index)

    def _check_target(self, y, target):
        t = np.asarray(target)
        if t.dtype.kind not in "iu":
            raise TypeError(f"{self!r}: targets must be integer class indices, got dtype "
                            f"{t.dtype}")
        if t.shape != y.shape[:2]:
            raise ValueError(f"{self!r}: targets must have shape {y.shape[:2]} (T, B) to match "
                             f"logits {y.shape}, got {t.shape}")
        valid = t if self.ignore_index is None else t[t != self.ignore_index]
        lo, hi = value_range(valid) if valid.size else (0, 0)
        if lo < 0 or hi >= y.shape[2]:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{self!r}: target {int(bad)} is outside the {y.shape[2]} classes "
                             f"[0, {y.shape[2]})")
        return t

    def _weights(self, y, target, weights):
        w = super()._weights(y, target, weights)
        if self.ignore_index is not None:
            w = w * (target != self.ignore_index)
        return w

    def _safe_target(self, target):
        if self.ignore_index is None:
            return target
        return np.where(target == self.ignore_index, 0, target)

    def _log_softmax_parts(self, y):
        shifted = y - y.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=-1)
        return shifted, e, s

    def _losses(self, y, target):
        shifted, _, s = self._log_softmax_parts(y)
        picked = np.take_along_axis(shifted, self._safe_target(target)[..., None], -1)[..., 0]
        return np.log(s) - picked

    def _weighted_value_and_grad(self, y, target, w, scale):
        T, B, V = y.shape
        N = T * B
        logits = np.ascontiguousarray(y).reshape(N, V)
        grad = buffer(self, "grad", (T, B, V), y.dtype)
        wloss = buffer(self, "wloss", (N,), np.float64)
        _parallel.run(_layer_kernels.softmax_cross_entropy, N,
                      (logits,
                       np.ascontiguousarray(self._safe_target(target), dtype=np.int64).reshape(-1),
                       np.ascontiguousarray(w, dtype=y.dtype).reshape(-1), scale,
                       buffer(self, "losses", (N,), y.dtype), wloss, grad.reshape(N, V)),
                      work=N * V * 150)   # ~3 ns an element, in multiply-adds
        return float(wloss.sum()), grad

    def _losses_and_grads(self, y, target):
        shifted, e, s = self._log_softmax_parts(y)
        t = self._safe_target(target)[..., None]
        picked = np.take_along_axis(shifted, t, -1)[..., 0]
        e /= s[..., None]
        np.put_along_axis(e, t, np.take_along_axis(e, t, -1) - 1, -1)
        return np.log(s) - picked, e

    def get_config(self):
        cfg = super().get_config()
        if self.ignore_index is not None:
            cfg["ignore_index"] = self.ignore_index
        return cfg


class _ElementwiseLoss(Loss):
    """A loss on (T, B, D) outputs and float targets of the same shape, averaged over D."""

    def _check_target(self, y, target):
        t = np.asarray(target)
        if not (np.issubdtype(t.dtype, np.floating) or np.issubdtype(t.dtype, np.integer)
                or t.dtype == np.bool_):
            raise TypeError(f"{self!r}: targets must be numeric, got dtype {t.dtype}")
        if t.shape != y.shape:
            raise ValueError(f"{self!r}: targets must have the output's shape {y.shape}, "
                             f"got {t.shape}")
        t = np.asarray(t, dtype=y.dtype)
        if not np.isfinite(t).all():
            bad = np.argwhere(~np.isfinite(t))[0]
            raise ValueError(f"{self!r}: target holds a non-finite value at index "
                             f"{tuple(int(i) for i in bad)}")
        return t


class MeanSquaredError(_ElementwiseLoss):
    """``l[t, b] = mean_d (y - target)^2``; with no weights and ``"mean"`` this equals PyTorch's
    ``MSELoss()``."""

    def _losses(self, y, target):
        d = y - target
        return np.mean(d * d, axis=-1)

    def _losses_and_grads(self, y, target):
        d = y - target
        return np.mean(d * d, axis=-1), d * y.dtype.type(2.0 / y.shape[-1])


class BinaryCrossEntropyWithLogits(_ElementwiseLoss):
    """Sigmoid fused with binary cross-entropy, targets in [0, 1]:
    ``l[t, b] = mean_d max(y, 0) - y * target + log(1 + exp(-|y|))`` (stable for any y)."""

    def _check_target(self, y, target):
        t = super()._check_target(y, target)
        if t.size and (t.min() < 0 or t.max() > 1):
            raise ValueError(f"{self!r}: targets must lie in [0, 1], got values in "
                             f"[{t.min()}, {t.max()}]")
        return t

    def _losses(self, y, target):
        return np.mean(np.maximum(y, 0) - y * target + np.log1p(np.exp(-np.abs(y))), axis=-1)

    def _losses_and_grads(self, y, target):
        p = (np.tanh(y * y.dtype.type(0.5)) + 1) * y.dtype.type(0.5)
        return self._losses(y, target), (p - target) * y.dtype.type(1.0 / y.shape[-1])


LOSSES = {c.__name__: c for c in (SoftmaxCrossEntropy, MeanSquaredError,
                                   BinaryCrossEntropyWithLogits)}
