"""Learning-rate schedules: plain functions of the number of updates done.

A schedule is an object ``sched(step) -> lr`` where ``step`` is the number of optimizer
updates done so far (0 for the first update). An optimizer given a schedule as ``lr`` uses
``sched(optimizer.steps)`` for each update, so a schedule has no state of its own and an
optimizer restored from a checkpoint resumes it exactly.

These are not PyTorch's ``torch.optim.lr_scheduler`` classes (which wrap an optimizer and are
stepped by the caller, usually once per epoch): the same curves, written as functions of the
update count.

Each schedule has ``get_config()`` (its constructor arguments, JSON-able) and a ``__repr__``
showing them; :func:`schedule_config` gives ``{"class": name, "config": {...}}`` and
:func:`schedule_from_config` rebuilds the schedule from it.
"""

import inspect
import math
import numbers

from .._validate import positive_float, positive_int

SCHEDULES = {}


def _check_step(step):
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step must be an integer (updates done so far), got "
                        f"{type(step).__name__} {step!r}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return int(step)


class Schedule:
    """Base of the schedules: ``sched(step) -> lr`` (a Python float >= 0)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        SCHEDULES[cls.__name__] = cls

    def __call__(self, step):
        return float(self._value(_check_step(step)))

    def _value(self, step):
        raise NotImplementedError

    def get_config(self):
        """Constructor arguments (JSON-able) that rebuild this schedule."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg):
        return cls(**cfg)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._repr_args().items())
        return f"{type(self).__name__}({args})"

    def _repr_args(self):
        return self.get_config()

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = None


class ConstantLR(Schedule):
    """``ConstantLR(lr)``: ``lr`` at every step."""

    def __init__(self, lr):
        self.lr = positive_float("lr", lr)

    def _value(self, step):
        return self.lr

    def get_config(self):
        return {"lr": self.lr}


class StepLR(Schedule):
    """``StepLR(lr, step_size, gamma=0.1)``: ``lr * gamma ** (step // step_size)``."""

    def __init__(self, lr, step_size, gamma=0.1):
        self.lr = positive_float("lr", lr)
        self.step_size = positive_int("step_size", step_size)
        self.gamma = positive_float("gamma", gamma)

    def _value(self, step):
        return self.lr * self.gamma ** (step // self.step_size)

    def get_config(self):
        return {"lr": self.lr, "step_size": self.step_size, "gamma": self.gamma}


class ExponentialLR(Schedule):
    """``ExponentialLR(lr, gamma)``: ``lr * gamma ** step``."""

    def __init__(self, lr, gamma):
        self.lr = positive_float("lr", lr)
        self.gamma = positive_float("gamma", gamma)

    def _value(self, step):
        return self.lr * self.gamma ** step

    def get_config(self):
        return {"lr": self.lr, "gamma": self.gamma}


class CosineLR(Schedule):
    """``CosineLR(lr, total_steps, min_lr=0.0)``: half a cosine from ``lr`` down to ``min_lr``.

    ``min_lr + (lr - min_lr) * (1 + cos(pi * step / total_steps)) / 2`` for
    ``step < total_steps``, then ``min_lr`` (Loshchilov & Hutter 2017, SGDR, without restarts;
    PyTorch's ``CosineAnnealingLR`` curve with ``T_max = total_steps``).
    """

    def __init__(self, lr, total_steps, min_lr=0.0):
        self.lr = positive_float("lr", lr)
        self.total_steps = positive_int("total_steps", total_steps)
        self.min_lr = positive_float("min_lr", min_lr, allow_zero=True)
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr must be <= lr ({self.lr}), got {self.min_lr}")

    def _value(self, step):
        if step >= self.total_steps:
            return self.min_lr
        cos = math.cos(math.pi * step / self.total_steps)
        return self.min_lr + (self.lr - self.min_lr) * (1.0 + cos) / 2.0

    def get_config(self):
        return {"lr": self.lr, "total_steps": self.total_steps, "min_lr": self.min_lr}


class WarmupLR(Schedule):
    """``WarmupLR(after, warmup_steps)``: a linear warm-up, then the schedule ``after``.

    after: a schedule, or a float for a constant learning rate after the warm-up.
    With ``peak = after(0)``, the learning rate is ``peak * (step + 1) / warmup_steps`` for
    ``step < warmup_steps`` (so the first update uses ``peak / warmup_steps`` and the last
    warm-up update uses ``peak``; no update is done with a learning rate of 0), then
    ``after(step - warmup_steps)``: ``after`` starts its own count when the warm-up ends.
    """

    def __init__(self, after, warmup_steps):
        if isinstance(after, Schedule):
            self.after = after
        elif isinstance(after, numbers.Real) and not isinstance(after, bool):
            self.after = positive_float("after", after)
        else:
            raise TypeError(f"after must be a schedule or a positive float, got "
                            f"{type(after).__name__} {after!r}")
        self.warmup_steps = positive_int("warmup_steps", warmup_steps)

    def _after(self, step):
        return self.after(step) if isinstance(self.after, Schedule) else self.after

    def _value(self, step):
        if step < self.warmup_steps:
            return self._after(0) * (step + 1) / self.warmup_steps
        return self._after(step - self.warmup_steps)

    def get_config(self):
        after = schedule_config(self.after) if isinstance(self.after, Schedule) else self.after
        return {"after": after, "warmup_steps": self.warmup_steps}

    def _repr_args(self):
        return {"after": self.after, "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, cfg):
        cfg = dict(cfg)
        after = cfg.pop("after", None)
        if isinstance(after, dict):
            after = schedule_from_config(after)
        return cls(after, **cfg)


def schedule_config(schedule):
    """``{"class": name, "config": {...}}`` for a schedule (rebuilt by
    :func:`schedule_from_config`)."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"expected a schedule, got {type(schedule).__name__} {schedule!r}")
    return {"class": type(schedule).__name__, "config": schedule.get_config()}


def schedule_from_config(cfg):
    """Rebuild a schedule from ``{"class": name, "config": {...}}``."""
    if not isinstance(cfg, dict):
        raise TypeError(f"a schedule config must be a dict {{'class': ..., 'config': ...}}, "
                        f"got {type(cfg).__name__}")
    name = cfg.get("class")
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule class {name!r}; known: {sorted(SCHEDULES)}")
    kwargs = cfg.get("config", {})
    if not isinstance(kwargs, dict):
        raise TypeError(f"the config of schedule {name} must be a dict, got "
                        f"{type(kwargs).__name__}")
    cls = SCHEDULES[name]
    check_kwargs(f"schedule {name}", cls.__init__, kwargs)
    return cls.from_config(dict(kwargs))


def check_kwargs(what, func, kwargs):
    """Raise ValueError if ``kwargs`` (from a stored config) do not fit ``func``'s signature."""
    sig = inspect.signature(func).parameters
    known = [k for k in sig if k not in ("self", "params")]
    unexpected = sorted(set(kwargs) - set(known))
    missing = [k for k in known if sig[k].default is inspect.Parameter.empty and k not in kwargs]
    if unexpected or missing:
        raise ValueError(f"bad config for {what}: expected keys {known}, got {sorted(kwargs)}"
                         + (f"; unexpected {unexpected}" if unexpected else "")
                         + (f"; missing {missing}" if missing else ""))
