"""Gradient clipping, as small composable objects.

Parameter-gradient clips (applied after backward, before the update), each called as
``clip(grads)`` on a dict ``name -> array`` that it changes in place:

- :class:`ClipGlobalNorm` rescales all gradients together so that their joint L2 norm is at
  most ``max_norm`` (Pascanu, Mikolov & Bengio 2013; PyTorch's ``clip_grad_norm_``) and returns
  the norm before clipping;
- :class:`ClipValue` clips every element to [-v, v];
- :class:`ClipNormPerParameter` rescales each parameter's gradient to norm at most ``max_norm``.

:class:`ClipStateGradient` instead acts *during* backward: the gradient of the recurrent state
flowing from step t to step t - 1 is clipped elementwise to [-v, v] at every step (in the
spirit of Graves 2013, who clipped the LSTM's pre-activation gradients the same way).

Each object counts how often it fired (``fired``) and how often it was consulted (``calls``).
"""

import math

import numpy as np

from ._kernels.layers import sum_of_squares as _sum_of_squares
from ._validate import positive_float


def global_norm(grads):
    """sqrt(sum of squares) over every array of ``grads`` (a dict or a list), accumulated in
    float64 (no overflow for float32 gradients)."""
    arrays = grads.values() if isinstance(grads, dict) else grads
    total = 0.0
    for g in arrays:
        total += _sum_of_squares(np.ascontiguousarray(g).reshape(-1))
    return math.sqrt(total)   # (the same correctly rounded square root as numpy's)


class Clip:
    """Base of the clipping objects. ``per_parameter`` is False for clips that treat all
    gradients as one vector: the engine then hands them the model's flat gradient buffer as a
    single entry ``{"all": buffer}``; other clips (and any subclass that does not say
    otherwise) get the dict ``name -> array``."""

    per_parameter = True

    def __init__(self):
        self.fired = 0
        self.calls = 0

    def __call__(self, grads):
        raise NotImplementedError

    def reset_counts(self):
        self.fired = self.calls = 0

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ClipGlobalNorm(Clip):
    """Scale all gradients by ``min(1, max_norm / total_norm)``; returns ``total_norm``."""

    per_parameter = False

    def __init__(self, max_norm):
        super().__init__()
        self.max_norm = positive_float("max_norm", max_norm)

    def __call__(self, grads):
        return self.clip_with_norm(grads, global_norm(grads))[0]

    def clip_with_norm(self, grads, norm):
        """Clip ``grads`` whose global norm the caller already knows to be ``norm`` (the
        engine computes it anyway for its non-finite guard: one pass over the gradients
        instead of three). Returns ``(norm, norm after clipping)``."""
        self.calls += 1
        if norm > self.max_norm:
            self.fired += 1
            scale = self.max_norm / (norm + 1e-12)
            for g in grads.values():
                g *= g.dtype.type(scale)
            return norm, norm * scale
        return norm, norm

    def get_config(self):
        return {"max_norm": self.max_norm}


class ClipValue(Clip):
    """Clip every gradient element to [-value, value]."""

    per_parameter = False

    def __init__(self, value):
        super().__init__()
        self.value = positive_float("value", value)

    def __call__(self, grads):
        self.calls += 1
        hit = False
        for g in grads.values():
            if np.abs(g).max(initial=0) > self.value:
                hit = True
                np.clip(g, -self.value, self.value, out=g)
        self.fired += hit
        return None

    def get_config(self):
        return {"value": self.value}


class ClipNormPerParameter(Clip):
    """Rescale each parameter's gradient separately to L2 norm at most ``max_norm``. ``fired``
    counts the parameters rescaled; ``last_norms`` holds each one's norm before clipping."""

    def __init__(self, max_norm):
        super().__init__()
        self.max_norm = positive_float("max_norm", max_norm)
        self.last_norms = {}

    def __call__(self, grads):
        self.calls += 1
        self.last_norms = {}
        for name, g in grads.items():
            n = global_norm([g])
            self.last_norms[name] = n
            if n > self.max_norm:
                self.fired += 1
                g *= g.dtype.type(self.max_norm / (n + 1e-12))
        return None

    def get_config(self):
        return {"max_norm": self.max_norm}


class ClipStateGradient(Clip):
    """Clip the backpropagated state gradient elementwise to [-value, value] at every step.

    Used by the TBPTT engine through the backward context; ``fired`` counts the (cell, step)
    pairs at which clipping changed at least one element.
    """

    def __init__(self, value):
        super().__init__()
        self.value = positive_float("value", value)

    def __call__(self, grads):  # acts during backward, not on the parameter gradients
        return None

    def get_config(self):
        return {"value": self.value}


def as_clip_list(clip):
    """None, one clip, or a list of clips -> (state clip or None, [parameter clips])."""
    if clip is None:
        clips = []
    elif isinstance(clip, Clip):
        clips = [clip]
    elif isinstance(clip, (list, tuple)):
        clips = list(clip)
    else:
        raise TypeError(f"clip must be a Clip object or a list of them, got "
                        f"{type(clip).__name__}")
    for c in clips:
        if not isinstance(c, Clip):
            raise TypeError(f"clip must be a Clip object or a list of them, got an element of "
                            f"type {type(c).__name__}")
    state = [c for c in clips if isinstance(c, ClipStateGradient)]
    if len(state) > 1:
        raise ValueError("give at most one ClipStateGradient")
    return (state[0] if state else None), [c for c in clips if not isinstance(c, ClipStateGradient)]
