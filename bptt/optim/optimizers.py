"""First-order optimizers with PyTorch's update rules (``torch.optim``), on numpy arrays.

An optimizer holds references to the model's live parameter arrays (the dict returned by
``model.named_parameters()``) and updates them in place, in each parameter's own dtype, when
:meth:`Optimizer.step` is given a gradient dict with the same names. Per-parameter state
("slots": momentum buffers, moment estimates) has the parameter's shape and dtype and the
names PyTorch uses (``momentum_buffer``, ``sum``, ``square_avg``, ``grad_avg``, ``exp_avg``,
``exp_avg_sq``, ``max_exp_avg_sq``).

The update formulas are those of PyTorch's single-tensor code paths (``torch/optim/sgd.py``,
``adagrad.py``, ``rmsprop.py``, ``adam.py``, ``adamw.py``), with the same defaults and the same
order of operations; references:

- SGD with momentum / Nesterov: Sutskever, Martens, Dahl & Hinton (2013);
- Adagrad: Duchi, Hazan & Singer (2011);
- RMSprop: Hinton's lecture 6e (2012), centered variant from Graves (2013);
- Adam: Kingma & Ba (2015); AMSGrad: Reddi, Kale & Kumar (2018);
- AdamW (decoupled weight decay): Loshchilov & Hutter (2019).

The learning rate is a positive float or a schedule (:mod:`bptt.optim.schedules`) called with
the number of updates done so far. :meth:`Optimizer.state_dict` /
:meth:`Optimizer.load_state_dict` save and restore everything needed to continue a run exactly.
"""

import numbers
from collections.abc import Mapping

import numpy as np

from .. import _parallel
from .._kernels import optim as _kupdate
from .._validate import FLOAT_DTYPES, positive_float, same_names
from .schedules import Schedule, check_kwargs, schedule_config, schedule_from_config


# -- validation helpers -------------------------------------------------------------------------
def _flat_base(arrays):
    """The 1-D buffer that ``arrays`` tile exactly, in order, as C-contiguous views (as a
    Sequential's parameters and gradients do), or None."""
    arrays = list(arrays)
    base = arrays[0].base if arrays else None
    if base is None or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    address, total = base.__array_interface__["data"][0], 0
    for a in arrays:
        if (a.base is not base or a.dtype != base.dtype or not a.flags.c_contiguous
                or a.__array_interface__["data"][0] != address + total * a.itemsize):
            return None
        total += a.size
    return base if total == base.size else None


def _check_params(params):
    """``name -> array`` dict (a new dict holding the caller's arrays, not copies)."""
    if isinstance(params, Mapping):
        items = list(params.items())
    elif isinstance(params, (str, bytes, np.ndarray)) or not hasattr(params, "__iter__"):
        raise TypeError(f"params must be a dict name -> array (model.named_parameters()) or an "
                        f"iterable of (name, array) pairs, got {type(params).__name__}")
    else:
        items = []
        for i, item in enumerate(params):
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise TypeError(f"params must hold (name, array) pairs, got item {i}: "
                                f"{type(item).__name__} {item!r:.60}")
            items.append(tuple(item))
    if not items:
        raise ValueError("params is empty: the optimizer has nothing to update")
    out, seen = {}, {}
    for name, p in items:
        if not isinstance(name, str):
            raise TypeError(f"parameter names must be strings, got {type(name).__name__} "
                            f"{name!r}")
        if name in out:
            raise ValueError(f"parameter name {name!r} appears twice in params")
        if not isinstance(p, np.ndarray):
            raise TypeError(f"parameter {name!r} must be a numpy array (updated in place), got "
                            f"{type(p).__name__}")
        if p.dtype not in FLOAT_DTYPES:
            raise TypeError(f"parameter {name!r} must be float32 or float64, got {p.dtype}")
        if not p.flags.writeable:
            raise ValueError(f"parameter {name!r} is a read-only array; the optimizer updates "
                             "parameters in place")
        if id(p) in seen:
            raise ValueError(f"parameters {seen[id(p)]!r} and {name!r} are the same array")
        seen[id(p)] = name
        out[name] = p
    return out


def _check_lr(lr):
    if isinstance(lr, Schedule):
        return lr
    if isinstance(lr, numbers.Real) and not isinstance(lr, bool):
        return positive_float("lr", lr)
    raise TypeError(f"lr must be a positive float or a schedule (bptt.optim.StepLR, ...), got "
                    f"{type(lr).__name__} {lr!r}")


def _unit(name, value, closed=False):
    """A float in [0, 1) (or [0, 1] if ``closed``)."""
    value = positive_float(name, value, allow_zero=True)
    if value > 1 or (value == 1 and not closed):
        raise ValueError(f"{name} must be in [0, {'1]' if closed else '1)'}, got {value}")
    return value


def _flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def _count(name, value):
    """A non-negative integer from a state dict (a Python int, a numpy integer or a 0-d array)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def _decayed(g, p, weight_decay):
    """``g + weight_decay * p`` as a new array (L2 penalty); ``g`` itself (never written) if 0."""
    if weight_decay == 0:
        return g
    return g + weight_decay * p


def _compiled(*arrays):
    """1-D views of ``arrays`` for the compiled updates (bptt._kernels.optim) when they are all
    C-contiguous, writeable-where-needed arrays of one float dtype; else None (numpy then)."""
    dt = arrays[0].dtype
    if dt.kind != "f" or any(a.dtype != dt or not a.flags.c_contiguous for a in arrays):
        return None
    return [a.reshape(-1) for a in arrays]


def _run_update(kernel, views, *scalars):
    n = views[0].shape[0]
    _parallel.run(kernel, n, (*views, *scalars), work=n * _kupdate.WORK)


def _lerp_(a, b, w):
    """``a <- a + w * (b - a)`` in place, computed as ``torch.lerp_`` does (which switches to
    ``b - (b - a) * (1 - w)`` when ``|w| >= 0.5``)."""
    if abs(w) < 0.5:
        a += w * (b - a)
    else:
        a[...] = b - (b - a) * (1.0 - w)


def _readonly(name):
    return property(lambda self: self._hp[name],
                    doc=f"{name} (read-only: build a new optimizer to change it; only lr may be "
                        "set)")


# -- the base class -----------------------------------------------------------------------------
class Optimizer:
    """Base of the optimizers. Subclasses set ``self._hp`` (hyper-parameters other than lr, in
    constructor order), allocate slots in ``_new_slots`` and update one array in ``_update``.

    Attributes: ``params`` (dict name -> live array), ``slots`` (dict name -> {slot: array}),
    ``steps`` (updates done so far).
    """

    def __init__(self, params, lr):
        self.params = _check_params(params)
        self._lr = _check_lr(lr)
        self.steps = 0
        # Where the parameters are consecutive views of one flat buffer (as in a Sequential),
        # every update is elementwise, so it runs once over the buffer instead of once per
        # parameter; the slots are then views of flat slot buffers in the same way.
        self._flat = _flat_base(self.params.values())
        self._grads_seen = (None, None)  # (the last gradient arrays, their flat buffer)
        if self._flat is None:
            self._flat_slots = None
            self.slots = {name: self._new_slots(p) for name, p in self.params.items()}
        else:
            self._flat_slots = self._new_slots(self._flat)
            self.slots, offset = {}, 0
            for name, p in self.params.items():
                self.slots[name] = {k: v[offset:offset + p.size].reshape(p.shape)
                                    for k, v in self._flat_slots.items()}
                offset += p.size

    # -- learning rate --------------------------------------------------------------------
    @property
    def lr(self):
        """The learning rate the next :meth:`step` will use (a float); assign a float or a
        schedule to replace it."""
        return self._lr(self.steps) if isinstance(self._lr, Schedule) else self._lr

    @lr.setter
    def lr(self, value):
        self._lr = _check_lr(value)

    @property
    def lr_schedule(self):
        """The schedule given as ``lr`` (None if ``lr`` is a constant float)."""
        return self._lr if isinstance(self._lr, Schedule) else None

    # -- updates --------------------------------------------------------------------------
    def _new_slots(self, p):
        return {}

    def _update(self, p, g, slots, lr, step):
        raise NotImplementedError

    def check_grads(self, grads):
        """Validate a gradient dict against the parameters; return ``name -> array`` in each
        parameter's dtype (the caller's arrays themselves when the dtype already matches)."""
        if not isinstance(grads, Mapping):
            raise TypeError(f"grads must be a dict name -> array with the optimizer's parameter "
                            f"names, got {type(grads).__name__}")
        same_names("grads must have exactly the optimizer's parameter names", self.params,
                   grads)
        out = {}
        for name, p in self.params.items():
            g = np.asarray(grads[name])
            if not np.issubdtype(g.dtype, np.floating):
                raise TypeError(f"grads[{name!r}] must be a floating-point array, got dtype "
                                f"{g.dtype}")
            if g.shape != p.shape:
                raise ValueError(f"grads[{name!r}] must have the parameter's shape {p.shape}, "
                                 f"got {g.shape}")
            out[name] = g.astype(p.dtype, copy=False)
        return out

    def step(self, grads):
        """One update of every parameter, in place, from ``grads`` (a dict with the same names
        and shapes as ``params``; never modified). Increments ``steps``."""
        flat_grad = self._flat_gradient(grads)
        lr = self.lr
        step = self.steps + 1  # PyTorch's per-parameter "step" after its increment
        if flat_grad is not None:
            self._update(self._flat, flat_grad, self._flat_slots, lr, step)
        else:
            grads = self.check_grads(grads)
            for name, p in self.params.items():
                self._update(p, grads[name], self.slots[name], lr, step)
        self.steps = step

    def _flat_gradient(self, grads):
        """The flat buffer behind ``grads`` when the parameters have one and the gradients are
        laid out the same way (checked once per set of gradient arrays), else None."""
        if self._flat is None or not isinstance(grads, Mapping):
            return None
        seen, flat = self._grads_seen
        if seen is not None and len(grads) == len(seen) and all(
                grads.get(name) is g for name, g in seen.items()):
            return flat
        checked = self.check_grads(grads)
        flat = _flat_base(checked[name] for name in self.params)
        if flat is not None and (flat.dtype != self._flat.dtype or flat.size != self._flat.size):
            flat = None
        self._grads_seen = ({name: grads[name] for name in self.params}, flat)
        return flat

    # -- configuration and state ----------------------------------------------------------
    def get_config(self):
        """Constructor arguments (JSON-able): lr as a float or a schedule config dict."""
        lr = schedule_config(self._lr) if isinstance(self._lr, Schedule) else self._lr
        cfg = {"lr": lr}
        for k, v in self._hp.items():
            cfg[k] = list(v) if isinstance(v, tuple) else v
        return cfg

    def __repr__(self):
        args = {"lr": self._lr, **self._hp}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in args.items())})"

    def state_dict(self):
        """``{"class", "config", "steps", "slots": {param: {slot: array}}}``: JSON-able values
        and copies of the slot arrays (nothing aliases the optimizer)."""
        return {"class": type(self).__name__, "config": self.get_config(), "steps": self.steps,
                "slots": {n: {k: v.copy() for k, v in s.items()}
                          for n, s in self.slots.items()}}

    def load_state_dict(self, state_dict):
        """Restore a :meth:`state_dict`: hyper-parameters (lr or its schedule included, as
        PyTorch's ``load_state_dict`` restores its param groups), ``steps`` and slot values
        (copied, cast to the parameter dtype). Everything is checked before anything changes:
        the class, the parameter names and the slot names and shapes."""
        sd = _check_state_dict(state_dict)
        if sd["class"] != type(self).__name__:
            raise ValueError(f"the state dict is for a {sd['class']} optimizer, this is a "
                             f"{type(self).__name__}")
        fresh = type(self)(self.params, **_config_kwargs(type(self), sd["config"]))
        steps = _count("steps", sd["steps"])
        slots = sd["slots"]
        if not isinstance(slots, Mapping):
            raise TypeError(f"state dict 'slots' must be a dict param -> {{slot: array}}, got "
                            f"{type(slots).__name__}")
        same_names("the state dict's slots do not match the optimizer's parameters",
                   self.params, slots, missing="parameters without slots",
                   unexpected="slots for unknown parameters")
        for name, want in fresh.slots.items():
            got = slots[name]
            if not isinstance(got, Mapping) or set(got) != set(want):
                have = sorted(got) if isinstance(got, Mapping) else type(got).__name__
                raise ValueError(f"state dict slots for {name!r}: expected {sorted(want)} for "
                                 f"{fresh!r}, got {have}")
            for k, dst in want.items():
                a = np.asarray(got[k])
                if not np.issubdtype(a.dtype, np.floating):
                    raise TypeError(f"state dict slot {name!r}/{k!r} must be a floating-point "
                                    f"array, got dtype {a.dtype}")
                if a.shape != dst.shape:
                    raise ValueError(f"state dict slot {name!r}/{k!r}: expected shape "
                                     f"{dst.shape}, got {a.shape}")
        for name, want in fresh.slots.items():
            for k, dst in want.items():
                np.copyto(dst, np.asarray(slots[name][k]), casting="same_kind")
        self._lr, self._hp, self.slots, self.steps = fresh._lr, fresh._hp, fresh.slots, steps
        self._flat_slots = fresh._flat_slots


def _check_state_dict(sd):
    if not isinstance(sd, Mapping):
        raise TypeError(f"a state dict must be a dict, got {type(sd).__name__}")
    missing = [k for k in ("class", "config", "steps", "slots") if k not in sd]
    if missing:
        raise ValueError(f"the state dict lacks the keys {missing} (expected 'class', "
                         f"'config', 'steps', 'slots'), got {sorted(sd)}")
    if not isinstance(sd["config"], Mapping):
        raise TypeError(f"state dict 'config' must be a dict, got {type(sd['config']).__name__}")
    return sd


def _config_kwargs(cls, config):
    """Constructor keyword arguments from a stored config (the schedule rebuilt)."""
    kwargs = dict(config)
    check_kwargs(f"optimizer {cls.__name__}", cls.__init__, kwargs)
    if isinstance(kwargs.get("lr"), Mapping):
        kwargs["lr"] = schedule_from_config(dict(kwargs["lr"]))
    return kwargs


# -- the optimizers -----------------------------------------------------------------------------
class SGD(Optimizer):
    """``SGD(params, lr, momentum=0, dampening=0, nesterov=False, weight_decay=0)``

    As ``torch.optim.SGD``: ``d = g + weight_decay * p``; with momentum, ``buf = d`` at the
    first update and ``buf = momentum * buf + (1 - dampening) * d`` after; ``d = d + momentum *
    buf`` (Nesterov) or ``d = buf``; then ``p -= lr * d``.
    """

    momentum = _readonly("momentum")
    dampening = _readonly("dampening")
    nesterov = _readonly("nesterov")
    weight_decay = _readonly("weight_decay")

    def __init__(self, params, lr, momentum=0, dampening=0, nesterov=False, weight_decay=0):
        self._hp = {"momentum": positive_float("momentum", momentum, allow_zero=True),
                    "dampening": _unit("dampening", dampening, closed=True),
                    "nesterov": _flag("nesterov", nesterov),
                    "weight_decay": positive_float("weight_decay", weight_decay,
                                                   allow_zero=True)}
        if self._hp["nesterov"] and (self._hp["momentum"] <= 0 or self._hp["dampening"] != 0):
            raise ValueError(f"nesterov=True requires momentum > 0 and dampening = 0, got "
                             f"momentum={self._hp['momentum']}, "
                             f"dampening={self._hp['dampening']}")
        super().__init__(params, lr)

    def _new_slots(self, p):
        return {"momentum_buffer": np.zeros_like(p)} if self.momentum != 0 else {}

    def _update(self, p, g, slots, lr, step):
        momentum = self.momentum
        if momentum == 0:
            views = _compiled(p, g)
            if views is not None:
                _run_update(_kupdate.sgd, views, float(lr), float(self.weight_decay))
                return
        d = _decayed(g, p, self.weight_decay)
        if momentum != 0:
            buf = slots["momentum_buffer"]
            if step == 1:
                buf[...] = d
            else:
                buf *= momentum
                buf += (1.0 - self.dampening) * d
            d = d + momentum * buf if self.nesterov else buf
        p -= lr * d


class Adagrad(Optimizer):
    """``Adagrad(params, lr=0.01, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
    eps=1e-10)``

    As ``torch.optim.Adagrad``: ``d = g + weight_decay * p``; ``sum += d * d``;
    ``p -= clr * d / (sqrt(sum) + eps)`` with ``clr = lr / (1 + (t - 1) * lr_decay)`` at update
    ``t`` (1-based). With a schedule, ``lr`` is the schedule's value and ``lr_decay`` applies on
    top of it.
    """

    lr_decay = _readonly("lr_decay")
    weight_decay = _readonly("weight_decay")
    initial_accumulator_value = _readonly("initial_accumulator_value")
    eps = _readonly("eps")

    def __init__(self, params, lr=0.01, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10):
        self._hp = {"lr_decay": positive_float("lr_decay", lr_decay, allow_zero=True),
                    "weight_decay": positive_float("weight_decay", weight_decay,
                                                   allow_zero=True),
                    "initial_accumulator_value": positive_float(
                        "initial_accumulator_value", initial_accumulator_value, allow_zero=True),
                    "eps": positive_float("eps", eps, allow_zero=True)}
        super().__init__(params, lr)

    def _new_slots(self, p):
        return {"sum": np.full_like(p, self.initial_accumulator_value)}

    def _update(self, p, g, slots, lr, step):
        d = _decayed(g, p, self.weight_decay)
        clr = lr / (1.0 + (step - 1) * self.lr_decay)
        s = slots["sum"]
        s += d * d
        std = np.sqrt(s)
        std += self.eps
        p -= clr * (d / std)


class RMSprop(Optimizer):
    """``RMSprop(params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
    centered=False)``

    As ``torch.optim.RMSprop``: ``d = g + weight_decay * p``;
    ``square_avg = alpha * square_avg + (1 - alpha) * d * d``; centered: ``grad_avg`` tracks
    ``d`` the same way and ``avg = sqrt(square_avg - grad_avg ** 2) + eps`` (the difference is
    clipped at 0, where rounding could make PyTorch take the root of a tiny negative number and
    give nan), else ``avg = sqrt(square_avg) + eps``; with momentum ``buf = momentum * buf +
    d / avg; p -= lr * buf``, else ``p -= lr * d / avg``.
    """

    alpha = _readonly("alpha")
    eps = _readonly("eps")
    weight_decay = _readonly("weight_decay")
    momentum = _readonly("momentum")
    centered = _readonly("centered")

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False):
        self._hp = {"alpha": _unit("alpha", alpha, closed=True),
                    "eps": positive_float("eps", eps, allow_zero=True),
                    "weight_decay": positive_float("weight_decay", weight_decay,
                                                   allow_zero=True),
                    "momentum": positive_float("momentum", momentum, allow_zero=True),
                    "centered": _flag("centered", centered)}
        super().__init__(params, lr)

    def _new_slots(self, p):
        slots = {"square_avg": np.zeros_like(p)}
        if self.momentum > 0:
            slots["momentum_buffer"] = np.zeros_like(p)
        if self.centered:
            slots["grad_avg"] = np.zeros_like(p)
        return slots

    def _update(self, p, g, slots, lr, step):
        alpha = self.alpha
        d = _decayed(g, p, self.weight_decay)
        sq = slots["square_avg"]
        sq *= alpha
        sq += (1.0 - alpha) * (d * d)
        if self.centered:
            ga = slots["grad_avg"]
            _lerp_(ga, d, 1.0 - alpha)
            avg = sq - ga * ga
            np.maximum(avg, 0, out=avg)
            np.sqrt(avg, out=avg)
        else:
            avg = np.sqrt(sq)
        avg += self.eps
        if self.momentum > 0:
            buf = slots["momentum_buffer"]
            buf *= self.momentum
            buf += d / avg
            p -= lr * buf
        else:
            p -= lr * (d / avg)


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False)``

    As ``torch.optim.Adam``: ``d = g + weight_decay * p`` (L2 penalty, coupled);
    ``exp_avg = lerp(exp_avg, d, 1 - beta1)``; ``exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2)
    * d * d``; at update ``t`` (1-based) ``p -= lr / (1 - beta1**t) * exp_avg /
    (sqrt(v) / sqrt(1 - beta2**t) + eps)`` where ``v`` is ``exp_avg_sq``, or with AMSGrad its
    running maximum ``max_exp_avg_sq``.
    """

    betas = _readonly("betas")
    eps = _readonly("eps")
    weight_decay = _readonly("weight_decay")
    amsgrad = _readonly("amsgrad")
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False):
        if isinstance(betas, np.ndarray):
            betas = betas.tolist()
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {type(betas).__name__} "
                            f"{betas!r}")
        self._hp = {"betas": (_unit("betas[0]", betas[0]), _unit("betas[1]", betas[1])),
                    "eps": positive_float("eps", eps, allow_zero=True),
                    "weight_decay": positive_float("weight_decay", weight_decay,
                                                   allow_zero=True),
                    "amsgrad": _flag("amsgrad", amsgrad)}
        super().__init__(params, lr)

    def _new_slots(self, p):
        slots = {"exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)}
        if self.amsgrad:
            slots["max_exp_avg_sq"] = np.zeros_like(p)
        return slots

    def _update(self, p, g, slots, lr, step):
        beta1, beta2 = self.betas
        wd = self.weight_decay
        m, v = slots["exp_avg"], slots["exp_avg_sq"]
        vmax = slots.get("max_exp_avg_sq", v)
        views = _compiled(p, g, m, v, vmax)
        if views is not None:
            decoupled = self._decoupled and wd != 0
            _run_update(_kupdate.adam, views, bool(self.amsgrad), float(beta1), float(beta2),
                        float(lr / (1.0 - beta1 ** step)), float((1.0 - beta2 ** step) ** 0.5),
                        float(self.eps), 0.0 if self._decoupled else float(wd),
                        float(1.0 - lr * wd) if decoupled else 1.0)
            return
        if self._decoupled:
            if wd != 0:
                p *= 1.0 - lr * wd
            d = g
        else:
            d = _decayed(g, p, wd)
        m, v = slots["exp_avg"], slots["exp_avg_sq"]
        _lerp_(m, d, 1.0 - beta1)
        v *= beta2
        v += (1.0 - beta2) * (d * d)
        step_size = lr / (1.0 - beta1 ** step)
        bias_correction2_sqrt = (1.0 - beta2 ** step) ** 0.5
        if self.amsgrad:
            vmax = slots["max_exp_avg_sq"]
            np.maximum(vmax, v, out=vmax)
            v = vmax
        denom = np.sqrt(v)
        denom /= bias_correction2_sqrt
        denom += self.eps
        p -= step_size * (m / denom)


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
    amsgrad=False)``

    As ``torch.optim.AdamW``: Adam with decoupled weight decay, ``p *= 1 - lr * weight_decay``
    before the Adam update, which then uses the raw gradient (Loshchilov & Hutter 2019).
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                 amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def _lookup(name):
    if not isinstance(name, str):
        raise TypeError(f"optimizer name must be a string, got {type(name).__name__} {name!r}")
    try:
        return OPTIMIZERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; known: {sorted(OPTIMIZERS)}") from None


def get_optimizer(name, params, **kwargs):
    """Build an optimizer by name (``"sgd"``, ``"adagrad"``, ``"rmsprop"``, ``"adam"``,
    ``"adamw"``; case does not matter): ``get_optimizer("adam", model.named_parameters(),
    lr=3e-3)``."""
    return _lookup(name)(params, **kwargs)


def optimizer_from_state_dict(state_dict, params):
    """Rebuild the optimizer saved by :meth:`Optimizer.state_dict` over ``params`` (the model's
    ``named_parameters()``): same class and hyper-parameters, ``steps`` and slots loaded."""
    sd = _check_state_dict(state_dict)
    cls = _lookup(sd["class"])
    if cls.__name__ != sd["class"]:
        raise ValueError(f"unknown optimizer class {sd['class']!r}; known: "
                         f"{sorted(c.__name__ for c in OPTIMIZERS.values())}")
    opt = cls(params, **_config_kwargs(cls, sd["config"]))
    opt.load_state_dict(sd)
    return opt
