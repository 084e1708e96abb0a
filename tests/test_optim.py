"""bptt.optim: optimizers against hand-computed values, a naive scalar reference and PyTorch;
state dicts; schedules; L-BFGS through scipy."""

import json
import math

import numpy as np
import pytest

import bptt
from bptt import optim

# -- a naive scalar reference: the textbook formulas, one element at a time ---------------------


def naive_run(name, p0, grads, lr=None, **kw):
    """Apply ``len(grads)`` updates to the flat list ``p0``; plain Python floats, no numpy."""
    p = list(p0)
    n = len(p)
    state = {}
    for t, g in enumerate(grads, start=1):
        lr_t = lr(t - 1) if callable(lr) else lr
        for i in range(n):
            wd = kw.get("weight_decay", 0.0 if name != "adamw" else 0.01)
            gi = g[i]
            if name != "adamw":
                gi = gi + wd * p[i]
            s = state.setdefault(i, {})
            if name == "sgd":
                mom, damp = kw.get("momentum", 0.0), kw.get("dampening", 0.0)
                if mom:
                    s["buf"] = gi if t == 1 else mom * s["buf"] + (1 - damp) * gi
                    gi = gi + mom * s["buf"] if kw.get("nesterov") else s["buf"]
                p[i] -= lr_t * gi
            elif name == "adagrad":
                s.setdefault("sum", kw.get("initial_accumulator_value", 0.0))
                s["sum"] += gi * gi
                clr = lr_t / (1 + (t - 1) * kw.get("lr_decay", 0.0))
                p[i] -= clr * gi / (math.sqrt(s["sum"]) + kw.get("eps", 1e-10))
            elif name == "rmsprop":
                a, mom = kw.get("alpha", 0.99), kw.get("momentum", 0.0)
                s["sq"] = a * s.get("sq", 0.0) + (1 - a) * gi * gi
                var = s["sq"]
                if kw.get("centered"):
                    s["ga"] = a * s.get("ga", 0.0) + (1 - a) * gi
                    var = var - s["ga"] ** 2
                avg = math.sqrt(var) + kw.get("eps", 1e-8)
                if mom:
                    s["buf"] = mom * s.get("buf", 0.0) + gi / avg
                    p[i] -= lr_t * s["buf"]
                else:
                    p[i] -= lr_t * gi / avg
            else:  # adam / adamw
                b1, b2 = kw.get("betas", (0.9, 0.999))
                if name == "adamw":
                    p[i] *= 1 - lr_t * wd
                s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * gi
                s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * gi * gi
                v = s["v"]
                if kw.get("amsgrad"):
                    s["vmax"] = max(s.get("vmax", 0.0), s["v"])
                    v = s["vmax"]
                m_hat = s["m"] / (1 - b1 ** t)
                denom = math.sqrt(v) / math.sqrt(1 - b2 ** t) + kw.get("eps", 1e-8)
                p[i] -= lr_t * m_hat / denom
    return p


CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.1, weight_decay=0.05)),
    ("sgd", dict(lr=0.1, momentum=0.9)),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.02)),
    ("sgd", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("adagrad", dict(lr=0.1)),
    ("adagrad", dict(lr=0.1, lr_decay=0.2, weight_decay=0.1, initial_accumulator_value=0.3)),
    ("rmsprop", dict(lr=0.01)),
    ("rmsprop", dict(lr=0.01, alpha=0.9, weight_decay=0.1)),
    ("rmsprop", dict(lr=0.01, momentum=0.7)),
    ("rmsprop", dict(lr=0.01, alpha=0.8, momentum=0.5, centered=True)),
    ("adam", dict(lr=0.01)),
    ("adam", dict(lr=0.01, betas=(0.3, 0.8), weight_decay=0.1)),
    ("adam", dict(lr=0.01, amsgrad=True)),
    ("adamw", dict(lr=0.01)),
    ("adamw", dict(lr=0.01, weight_decay=0.2, amsgrad=True)),
]
CASE_IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CASES]

P0 = [0.5, -1.25, 2.0]
GRADS = [[0.3, -0.7, 1.1], [-0.2, -0.4, 0.9], [1.5, 0.1, -0.6]]


@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_matches_naive_reference(name, kw):
    p = np.array(P0)
    opt = optim.get_optimizer(name, {"w": p}, **kw)
    for k, g in enumerate(GRADS, start=1):
        opt.step({"w": np.array(g)})
        want = naive_run(name, P0, GRADS[:k], **kw)
        np.testing.assert_allclose(p, want, rtol=1e-13, atol=1e-15,
                                   err_msg=f"{name} {kw} after {k} steps")
    assert opt.steps == 3


# -- values worked out by hand ------------------------------------------------------------------


def run(cls, grads, p0=1.0, **kw):
    p = np.array([p0])
    opt = cls({"w": p}, **kw)
    out = []
    for g in grads:
        opt.step({"w": np.array([g])})
        out.append(p[0])
    return out


def test_sgd_by_hand():
    assert run(optim.SGD, [1.0, 1.0, 1.0], lr=0.1) == pytest.approx([0.9, 0.8, 0.7])
    # momentum: buf = 1, 1.9, 2.71
    assert run(optim.SGD, [1.0, 1.0, 1.0], lr=0.1, momentum=0.9) == pytest.approx(
        [0.9, 0.71, 0.439])
    # dampening 0.5: buf = 1 (first step undamped), 0.9 + 0.5 = 1.4
    assert run(optim.SGD, [1.0, 1.0], lr=0.1, momentum=0.9, dampening=0.5) == pytest.approx(
        [0.9, 0.76])
    # nesterov: d = g + 0.9 * buf = 1.9, 2.71, 3.439
    assert run(optim.SGD, [1.0, 1.0, 1.0], lr=0.1, momentum=0.9, nesterov=True) == \
        pytest.approx([0.81, 0.539, 0.1951])
    # weight decay: d = 1 + 0.5 * 1 = 1.5 -> 0.85; d = 1 + 0.425 -> 0.7075
    assert run(optim.SGD, [1.0, 1.0], lr=0.1, weight_decay=0.5) == pytest.approx([0.85, 0.7075])


def test_adagrad_by_hand():
    # sum 4 -> p = 1 - 0.1 * 2 / 2; sum 8 -> p -= 0.1 * 2 / sqrt(8)
    out = run(optim.Adagrad, [2.0, 2.0], lr=0.1)
    assert out == pytest.approx([0.9, 0.9 - 0.2 / math.sqrt(8)], abs=1e-9)
    # lr_decay 1: second step uses lr / 2
    out = run(optim.Adagrad, [2.0, 2.0], lr=0.1, lr_decay=1.0, initial_accumulator_value=5.0)
    assert out == pytest.approx([1 - 0.2 / 3, 1 - 0.2 / 3 - 0.05 * 2 / math.sqrt(13)])


def test_rmsprop_by_hand():
    # square_avg = 0.01 * 4 = 0.04 -> avg 0.2 -> p = 1 - 0.01 * 2 / 0.2 = 0.9
    out = run(optim.RMSprop, [2.0, 2.0], lr=0.01, eps=0.0)
    sq2 = 0.99 * 0.04 + 0.04
    assert out == pytest.approx([0.9, 0.9 - 0.01 * 2 / math.sqrt(sq2)])
    # centered: grad_avg = 0.2 after one step, var = 0.04 - 0.04 * 0.01 = 0.0396
    out = run(optim.RMSprop, [2.0], lr=0.01, eps=0.0, centered=True)
    assert out == pytest.approx([1 - 0.02 / math.sqrt(0.0396)])
    # momentum: buf = 10, then 0.5 * 10 + 2 / sqrt(sq2)
    out = run(optim.RMSprop, [2.0, 2.0], lr=0.01, eps=0.0, momentum=0.5)
    assert out == pytest.approx([0.9, 0.9 - 0.01 * (5 + 2 / math.sqrt(sq2))])


def test_adam_by_hand():
    # the first bias-corrected step is lr * g / (|g| + eps)
    out = run(optim.Adam, [2.0, 2.0], lr=0.1, eps=0.0)
    assert out == pytest.approx([0.9, 0.8])  # a constant gradient moves by lr each step
    out = run(optim.Adam, [2.0, -2.0], lr=0.1, eps=0.0)
    m2 = (0.9 * 0.2 - 0.2) / (1 - 0.81)
    v2 = (0.999 * 0.004 + 0.004) / (1 - 0.999 ** 2)
    assert out == pytest.approx([0.9, 0.9 - 0.1 * m2 / math.sqrt(v2)])
    # amsgrad keeps the larger second moment: gradients 2 then 0.1
    plain = run(optim.Adam, [2.0, 0.1], lr=0.1, eps=0.0)
    ams = run(optim.Adam, [2.0, 0.1], lr=0.1, eps=0.0, amsgrad=True)
    v2 = 0.999 * 0.004 + 0.001 * 0.01
    vmax = 0.004
    m2 = (0.9 * 0.2 + 0.1 * 0.1) / (1 - 0.81)
    c2 = math.sqrt(1 - 0.999 ** 2)
    assert plain[1] == pytest.approx(0.9 - 0.1 * m2 / (math.sqrt(v2) / c2))
    assert ams[1] == pytest.approx(0.9 - 0.1 * m2 / (math.sqrt(max(v2, vmax)) / c2))
    # Adam's weight decay is an L2 term in the gradient: g = 0 + 1 * 1 -> moves by lr
    assert run(optim.Adam, [0.0], lr=0.1, weight_decay=1.0, eps=0.0) == pytest.approx([0.9])


def test_adamw_by_hand():
    # decoupled: p *= 1 - lr * wd first, then the Adam step (lr * sign(g))
    out = run(optim.AdamW, [2.0], lr=0.1, eps=0.0, weight_decay=0.5)
    assert out == pytest.approx([1 * (1 - 0.05) - 0.1])
    # zero gradient: only the decay acts (0/0 avoided by eps)
    out = run(optim.AdamW, [0.0, 0.0], lr=0.1, weight_decay=0.5)
    assert out == pytest.approx([0.95, 0.95 ** 2])


def test_rmsprop_centered_constant_gradient_stays_finite():
    # square_avg - grad_avg**2 tends to 0 and rounding can make it negative; PyTorch then takes
    # the square root of a negative number (nan), we clip the difference at 0
    p = np.zeros(4)
    opt = optim.RMSprop({"p": p}, lr=1e-12, alpha=0.9, centered=True)
    for _ in range(2000):
        opt.step({"p": np.array([0.1, 0.3, 0.7, 1.3])})
    assert np.isfinite(p).all()


# -- PyTorch --------------------------------------------------------------------------------------

TORCH = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adam": "Adam",
         "adamw": "AdamW"}


@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_matches_torch(name, kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    p0 = {"a": rng.normal(size=(4, 3)), "b": rng.normal(size=5)}
    grads = [{k: rng.normal(size=v.shape) for k, v in p0.items()} for _ in range(5)]
    ours = {k: v.copy() for k, v in p0.items()}
    opt = optim.get_optimizer(name, ours, **kw)
    theirs = [torch.tensor(v, requires_grad=True) for v in p0.values()]
    topt = getattr(torch.optim, TORCH[name])(theirs, **kw)
    for g in grads:
        opt.step(g)
        for t, k in zip(theirs, p0):
            t.grad = torch.tensor(g[k])
        topt.step()
        for t, k in zip(theirs, p0):
            np.testing.assert_allclose(ours[k], t.detach().numpy(), rtol=1e-12, atol=1e-14)
    # the slots hold what torch's state holds
    for t, k in zip(theirs, p0):
        for slot, arr in opt.slots[k].items():
            np.testing.assert_allclose(arr, topt.state[t][slot].numpy(), rtol=1e-12,
                                       atol=1e-14)


# -- dtypes, in-place updates, the grads passed in ------------------------------------------------


@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_float32_stays_float32(name, kw):
    rng = np.random.default_rng(3)
    p64 = rng.normal(size=(3, 4))
    p32 = p64.astype(np.float32)
    o64 = optim.get_optimizer(name, {"w": p64}, **kw)
    o32 = optim.get_optimizer(name, {"w": p32}, **kw)
    for i in range(3):
        g = rng.normal(size=(3, 4))
        o64.step({"w": g})
        # float32 and float64 gradients are both accepted; the update is done in float32
        o32.step({"w": g.astype(np.float32) if i % 2 else g})
        assert p32.dtype == np.float32
        assert all(s.dtype == np.float32 for s in o32.slots["w"].values())
    np.testing.assert_allclose(p32, p64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_step_does_not_modify_grads(name, kw):
    rng = np.random.default_rng(4)
    params = {"a": rng.normal(size=(2, 3)), "b": rng.normal(size=3)}
    opt = optim.get_optimizer(name, params, **kw)
    for _ in range(3):
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        kept = {k: v.copy() for k, v in grads.items()}
        opt.step(grads)
        for k in grads:
            np.testing.assert_array_equal(grads[k], kept[k])


def test_updates_model_arrays_in_place():
    model = bptt.Sequential([bptt.Elman(3, 4), bptt.Dense(4, 2)], dtype=np.float64, seed=0)
    before = {k: v.copy() for k, v in model.named_parameters().items()}
    opt = optim.Adam(model.named_parameters(), lr=0.1)
    x = np.random.default_rng(0).normal(size=(5, 2, 3))
    y = np.zeros((5, 2, 2))
    _, grads, _ = bptt.value_and_grad(model, bptt.MeanSquaredError(), x, y)
    opt.step(grads)
    for k, v in model.named_parameters().items():
        assert v is opt.params[k]
        assert not np.array_equal(v, before[k])
    # the model's own gradient buffers are accepted too
    opt.step(model.named_grads())
    assert opt.steps == 2


def test_params_as_pairs():
    a, b = np.ones(2), np.zeros(3)
    opt = optim.SGD([("a", a), ("b", b)], lr=0.5)
    opt.step({"a": np.ones(2), "b": np.ones(3)})
    np.testing.assert_array_equal(a, [0.5, 0.5])
    np.testing.assert_array_equal(b, [-0.5] * 3)


# -- learning rate and schedules ---------------------------------------------------------------


def test_schedule_values():
    s = optim.StepLR(1.0, step_size=3, gamma=0.5)
    assert [s(t) for t in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    e = optim.ExponentialLR(2.0, gamma=0.5)
    assert [e(t) for t in range(4)] == [2.0, 1.0, 0.5, 0.25]
    c = optim.CosineLR(1.0, total_steps=4, min_lr=0.2)
    assert [c(t) for t in range(6)] == pytest.approx(
        [1.0, 0.2 + 0.8 * (1 + math.cos(math.pi / 4)) / 2, 0.6,
         0.2 + 0.8 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.2, 0.2])
    assert optim.ConstantLR(0.3)(1000) == 0.3
    w = optim.WarmupLR(0.4, warmup_steps=4)
    assert [w(t) for t in range(6)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    w = optim.WarmupLR(optim.StepLR(1.0, step_size=2, gamma=0.1), warmup_steps=2)
    assert [w(t) for t in range(7)] == pytest.approx([0.5, 1.0, 1.0, 1.0, 0.1, 0.1, 0.01])
    for sched in (s, e, c, w, optim.ConstantLR(0.3), optim.WarmupLR(0.4, warmup_steps=4)):
        cfg = optim.schedule_config(sched)
        assert json.loads(json.dumps(cfg)) == cfg
        again = optim.schedule_from_config(cfg)
        assert again == sched and repr(again) == repr(sched)
        assert [again(t) for t in range(9)] == [sched(t) for t in range(9)]
    assert repr(w) == ("WarmupLR(after=StepLR(lr=1.0, step_size=2, gamma=0.1), "
                       "warmup_steps=2)")


@pytest.mark.parametrize("make,err,match", [
    (lambda: optim.StepLR(-1.0, 2), ValueError, "lr must be > 0, got -1.0"),
    (lambda: optim.StepLR(1.0, 0), ValueError, "step_size must be >= 1, got 0"),
    (lambda: optim.StepLR(1.0, 2.5), TypeError, "step_size must be an integer"),
    (lambda: optim.ExponentialLR(1.0, 0.0), ValueError, "gamma must be > 0"),
    (lambda: optim.CosineLR(1.0, 10, min_lr=2.0), ValueError, "min_lr must be <= lr"),
    (lambda: optim.CosineLR(1.0, 10, min_lr=-0.1), ValueError, "min_lr must be >= 0"),
    (lambda: optim.WarmupLR("fast", 10), TypeError, "after must be a schedule or a positive"),
    (lambda: optim.WarmupLR(0.1, 0), ValueError, "warmup_steps must be >= 1"),
    (lambda: optim.ConstantLR(float("nan")), ValueError, "lr must be finite"),
    (lambda: optim.ConstantLR(0.1)(-1), ValueError, "step must be >= 0, got -1"),
    (lambda: optim.ConstantLR(0.1)(1.5), TypeError, "step must be an integer"),
    (lambda: optim.schedule_from_config({"class": "Linear", "config": {}}), ValueError,
     r"unknown schedule class 'Linear'; known: \['ConstantLR'"),
    (lambda: optim.schedule_from_config({"class": "StepLR", "config": {"lr": 1.0}}),
     ValueError, r"missing \['step_size'\]"),
    (lambda: optim.schedule_from_config({"class": "ConstantLR", "config": {"lr": 1, "x": 2}}),
     ValueError, r"unexpected \['x'\]"),
])
def test_schedule_errors(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_optimizer_uses_schedule():
    p = np.zeros(1)
    sched = optim.StepLR(1.0, step_size=2, gamma=0.5)
    opt = optim.SGD({"p": p}, lr=sched)
    seen = []
    for _ in range(5):
        seen.append(opt.lr)
        opt.step({"p": np.ones(1)})
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert p[0] == pytest.approx(-3.25)
    assert opt.lr == 0.25 and opt.lr_schedule is sched
    opt.lr = 0.01
    assert opt.lr == 0.01 and opt.lr_schedule is None
    opt.step({"p": np.ones(1)})
    assert p[0] == pytest.approx(-3.26)
    with pytest.raises(ValueError, match="lr must be > 0, got -3"):
        opt.lr = -3
    assert opt.lr == 0.01
    assert repr(optim.SGD({"p": p}, lr=sched, momentum=0.9)) == (
        "SGD(lr=StepLR(lr=1.0, step_size=2, gamma=0.5), momentum=0.9, dampening=0.0, "
        "nesterov=False, weight_decay=0.0)")


def test_hyper_parameters_read_only():
    opt = optim.Adam({"p": np.zeros(2)})
    assert opt.betas == (0.9, 0.999) and opt.eps == 1e-8 and opt.amsgrad is False
    with pytest.raises(AttributeError):
        opt.amsgrad = True


def test_defaults_and_repr():
    p = {"p": np.zeros(2)}
    assert repr(optim.Adam(p)) == ("Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, "
                                   "weight_decay=0.0, amsgrad=False)")
    assert repr(optim.AdamW(p)) == ("AdamW(lr=0.001, betas=(0.9, 0.999), eps=1e-08, "
                                    "weight_decay=0.01, amsgrad=False)")
    assert repr(optim.Adagrad(p)) == ("Adagrad(lr=0.01, lr_decay=0.0, weight_decay=0.0, "
                                      "initial_accumulator_value=0.0, eps=1e-10)")
    assert repr(optim.RMSprop(p)) == ("RMSprop(lr=0.01, alpha=0.99, eps=1e-08, "
                                      "weight_decay=0.0, momentum=0.0, centered=False)")
    assert type(optim.get_optimizer("AdamW", p)) is optim.AdamW
    assert set(optim.OPTIMIZERS) == {"sgd", "adagrad", "rmsprop", "adam", "adamw"}


# -- state dicts --------------------------------------------------------------------------------


SCHED_CASES = CASES + [("adam", dict(lr=optim.WarmupLR(optim.CosineLR(0.01, 6), 2))),
                       ("sgd", dict(lr=optim.ExponentialLR(0.1, 0.9), momentum=0.9))]


@pytest.mark.parametrize("how", ["load_state_dict", "optimizer_from_state_dict", "json+npz"])
@pytest.mark.parametrize("name,kw", SCHED_CASES,
                         ids=CASE_IDS + ["adam-warmup-cosine", "sgd-exponential"])
def test_state_dict_round_trip(name, kw, how, tmp_path):
    rng = np.random.default_rng(5)
    p0 = {"0.weight": rng.normal(size=(3, 2)), "0.bias": rng.normal(size=3)}
    grads = [{k: rng.normal(size=v.shape) for k, v in p0.items()} for _ in range(7)]
    full = {k: v.copy() for k, v in p0.items()}
    opt = optim.get_optimizer(name, full, **kw)
    for g in grads:
        opt.step(g)

    part = {k: v.copy() for k, v in p0.items()}
    first = optim.get_optimizer(name, part, **kw)
    for g in grads[:3]:
        first.step(g)
    sd = first.state_dict()
    params = {k: v.copy() for k, v in part.items()}  # as a checkpoint would restore them
    if how == "json+npz":  # the config as JSON, the arrays in an .npz file
        text = json.dumps({k: sd[k] for k in ("class", "config", "steps")})
        flat = {f"{n}/{s}": a for n, slots in sd["slots"].items() for s, a in slots.items()}
        np.savez(tmp_path / "opt.npz", **flat)
        with np.load(tmp_path / "opt.npz") as z:
            slots = {n: {} for n in params}
            for key in z.files:
                n, s = key.split("/")
                slots[n][s] = z[key]
        sd = {**json.loads(text), "slots": slots}
        second = optim.optimizer_from_state_dict(sd, params)
    elif how == "load_state_dict":
        # built with default hyper-parameters: the state dict restores the saved ones
        second = optim.get_optimizer(name, params, lr=0.5)
        second.load_state_dict(sd)
    else:
        second = optim.optimizer_from_state_dict(sd, params)
    assert type(second) is type(first) and second.steps == 3
    assert second.get_config() == first.get_config()
    assert repr(second) == repr(first)
    assert second.lr == first.lr
    for g in grads[3:]:
        second.step(g)
    for k in p0:
        np.testing.assert_array_equal(params[k], full[k])
        for s in opt.slots[k]:
            np.testing.assert_array_equal(second.slots[k][s], opt.slots[k][s])


def test_state_dict_is_json_able_and_not_aliased():
    p = {"w": np.ones((2, 2))}
    opt = optim.RMSprop(p, lr=optim.CosineLR(0.1, 10), momentum=0.5, centered=True)
    opt.step({"w": np.ones((2, 2))})
    sd = opt.state_dict()
    assert sd["class"] == "RMSprop" and sd["steps"] == 1
    assert json.loads(json.dumps(sd["config"])) == sd["config"]
    assert sd["config"]["lr"] == {"class": "CosineLR",
                                  "config": {"lr": 0.1, "total_steps": 10, "min_lr": 0.0}}
    assert set(sd["slots"]["w"]) == {"square_avg", "momentum_buffer", "grad_avg"}
    sd["slots"]["w"]["square_avg"][...] = 99.0  # a copy: the optimizer is unaffected
    assert not (opt.slots["w"]["square_avg"] == 99.0).any()
    sd = opt.state_dict()
    other = optim.RMSprop({"w": np.ones((2, 2))}, momentum=0.5, centered=True)
    other.load_state_dict(sd)
    sd["slots"]["w"]["grad_avg"][...] = 99.0  # loaded by copy
    assert not (other.slots["w"]["grad_avg"] == 99.0).any()
    np.testing.assert_array_equal(other.slots["w"]["square_avg"],
                                  opt.slots["w"]["square_avg"])
    assert json.dumps(optim.Adam(p).state_dict()["config"]) == (
        '{"lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-08, "weight_decay": 0.0, '
        '"amsgrad": false}')


def test_load_float64_state_into_float32():
    p64 = {"w": np.array([1.0, 2.0])}
    opt = optim.Adam(p64, lr=0.1)
    opt.step({"w": np.array([0.5, -0.5])})
    p32 = {"w": p64["w"].astype(np.float32)}
    o32 = optim.optimizer_from_state_dict(opt.state_dict(), p32)
    assert o32.slots["w"]["exp_avg"].dtype == np.float32
    np.testing.assert_allclose(o32.slots["w"]["exp_avg"], opt.slots["w"]["exp_avg"])


def _sd():
    opt = optim.Adam({"a": np.zeros(2), "b": np.zeros((2, 3))}, lr=0.1)
    opt.step({"a": np.ones(2), "b": np.ones((2, 3))})
    return opt.state_dict()


@pytest.mark.parametrize("change,err,match", [
    (lambda sd: sd.update({"class": "SGD"}), ValueError,
     "the state dict is for a SGD optimizer, this is a Adam"),
    (lambda sd: sd.pop("steps"), ValueError, r"lacks the keys \['steps'\]"),
    (lambda sd: sd["slots"].pop("b"), ValueError, r"parameters without slots \['b'\]"),
    (lambda sd: sd["slots"].update({"c": {}}), ValueError,
     r"slots for unknown parameters \['c'\]"),
    (lambda sd: sd["slots"]["b"].update({"exp_avg": np.zeros((3, 2))}), ValueError,
     r"slot 'b'/'exp_avg': expected shape \(2, 3\), got \(3, 2\)"),
    (lambda sd: sd["slots"]["b"].pop("exp_avg_sq"), ValueError,
     r"expected \['exp_avg', 'exp_avg_sq'\]"),
    (lambda sd: sd["config"].update({"amsgrad": True}), ValueError,
     r"expected \['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'\]"),
    (lambda sd: sd["config"].update({"momentum": 0.9}), ValueError, r"unexpected \['momentum'\]"),
    (lambda sd: sd["config"].update({"lr": -1.0}), ValueError, "lr must be > 0, got -1.0"),
    (lambda sd: sd.update({"steps": -2}), ValueError, "steps must be >= 0, got -2"),
    (lambda sd: sd.update({"steps": "3"}), TypeError, "steps must be an integer"),
    (lambda sd: sd["slots"]["a"].update({"exp_avg": np.zeros(2, dtype=int)}), TypeError,
     "must be a floating-point array"),
])
def test_load_state_dict_errors(change, err, match):
    params = {"a": np.full(2, 3.0), "b": np.full((2, 3), 3.0)}
    opt = optim.Adam(params, lr=0.5)
    opt.step({"a": np.ones(2), "b": np.ones((2, 3))})
    before = opt.state_dict()
    sd = _sd()
    change(sd)
    with pytest.raises(err, match=match):
        opt.load_state_dict(sd)
    after = opt.state_dict()  # a failed load changes nothing
    assert after["config"] == before["config"] and after["steps"] == before["steps"]
    for n in before["slots"]:
        for s in before["slots"][n]:
            np.testing.assert_array_equal(after["slots"][n][s], before["slots"][n][s])


def test_optimizer_from_state_dict_errors():
    sd = _sd()
    with pytest.raises(ValueError, match=r"unknown optimizer 'Lion'; known: \['adagrad'"):
        optim.optimizer_from_state_dict({**sd, "class": "Lion"}, {"a": np.zeros(2)})
    with pytest.raises(ValueError, match=r"slots for unknown parameters \['b'\]"):
        optim.optimizer_from_state_dict(sd, {"a": np.zeros(2)})
    with pytest.raises(TypeError, match="a state dict must be a dict"):
        optim.optimizer_from_state_dict([sd], {"a": np.zeros(2)})


# -- bad inputs ---------------------------------------------------------------------------------


def test_step_errors():
    opt = optim.SGD({"a": np.zeros(2), "b": np.zeros((2, 3))}, lr=0.1)
    with pytest.raises(ValueError, match=r"missing \['b'\]; unexpected \['c'\]"):
        opt.step({"a": np.ones(2), "c": np.ones((2, 3))})
    with pytest.raises(ValueError, match=r"grads\['b'\] must have the parameter's shape "
                                         r"\(2, 3\), got \(3, 2\)"):
        opt.step({"a": np.ones(2), "b": np.ones((3, 2))})
    with pytest.raises(TypeError, match=r"grads\['a'\] must be a floating-point array"):
        opt.step({"a": np.ones(2, dtype=int), "b": np.ones((2, 3))})
    with pytest.raises(TypeError, match="grads must be a dict"):
        opt.step([np.ones(2), np.ones((2, 3))])
    assert opt.steps == 0
    np.testing.assert_array_equal(opt.params["a"], 0)


@pytest.mark.parametrize("make,err,match", [
    (lambda p: optim.SGD(p, lr=-3), ValueError, "lr must be > 0, got -3"),
    (lambda p: optim.SGD(p, lr=0), ValueError, "lr must be > 0, got 0"),
    (lambda p: optim.Adam(p, lr="fast"), TypeError, "lr must be a positive float or a schedule"),
    (lambda p: optim.Adam(p, lr=float("inf")), ValueError, "lr must be finite"),
    (lambda p: optim.SGD(p, 0.1, momentum=-0.5), ValueError, "momentum must be >= 0"),
    (lambda p: optim.SGD(p, 0.1, nesterov=True), ValueError,
     "nesterov=True requires momentum > 0 and dampening = 0"),
    (lambda p: optim.SGD(p, 0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "nesterov=True requires"),
    (lambda p: optim.SGD(p, 0.1, nesterov="yes"), TypeError, "nesterov must be True or False"),
    (lambda p: optim.Adam(p, betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in \[0, 1\)"),
    (lambda p: optim.Adam(p, betas=0.9), TypeError, "betas must be a pair"),
    (lambda p: optim.Adam(p, eps=-1e-8), ValueError, "eps must be >= 0"),
    (lambda p: optim.AdamW(p, weight_decay=-0.1), ValueError, "weight_decay must be >= 0"),
    (lambda p: optim.RMSprop(p, alpha=1.5), ValueError, r"alpha must be in \[0, 1\]"),
    (lambda p: optim.Adagrad(p, lr_decay=-1), ValueError, "lr_decay must be >= 0"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-1), ValueError,
     "initial_accumulator_value must be >= 0"),
    (lambda p: optim.get_optimizer("lion", p), ValueError,
     r"unknown optimizer 'lion'; known: \['adagrad', 'adam', 'adamw', 'rmsprop', 'sgd'\]"),
    (lambda p: optim.Adam({"w": [1.0, 2.0]}), TypeError, "parameter 'w' must be a numpy array"),
    (lambda p: optim.Adam({"w": np.zeros(2, dtype=np.int64)}), TypeError,
     "parameter 'w' must be float32 or float64, got int64"),
    (lambda p: optim.Adam({"w": np.zeros(2, dtype=np.float16)}), TypeError,
     "must be float32 or float64, got float16"),
    (lambda p: optim.Adam({}), ValueError, "params is empty"),
    (lambda p: optim.Adam(np.zeros(3)), TypeError, "params must be a dict"),
    (lambda p: optim.Adam([("a", p["w"]), ("a", np.zeros(1))]), ValueError,
     "'a' appears twice"),
    (lambda p: optim.Adam({"a": p["w"], "b": p["w"]}), ValueError,
     "parameters 'a' and 'b' are the same array"),
    (lambda p: optim.Adam({1: p["w"]}), TypeError, "parameter names must be strings"),
])
def test_constructor_errors(make, err, match):
    with pytest.raises(err, match=match):
        make({"w": np.zeros(3)})


def test_read_only_param_rejected():
    w = np.zeros(3)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        optim.SGD({"w": w}, lr=0.1)


# -- L-BFGS -------------------------------------------------------------------------------------


def _lbfgs_problem(parts_fn):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4, 3))
    teacher = bptt.Sequential(parts_fn(), dtype=np.float64, seed=1)
    y = teacher.forward(x)[0]
    model = bptt.Sequential(parts_fn(), dtype=np.float64, seed=0)
    return model, x, y


LBFGS_MODELS = {
    "dense-tanh-dense": lambda: [bptt.Dense(3, 8), bptt.Tanh(), bptt.Dense(8, 2)],
    "elman-dense": lambda: [bptt.Elman(3, 6), bptt.Dense(6, 2)],
}


@pytest.mark.parametrize("kind", sorted(LBFGS_MODELS))
def test_minimize_lbfgs(kind):
    model, x, y = _lbfgs_problem(LBFGS_MODELS[kind])
    loss = bptt.MeanSquaredError()
    v0, g0, _ = bptt.value_and_grad(model, loss, x, y)
    g0 = np.linalg.norm(optim.pack_parameters(g0))
    seen = []

    def callback(xk):
        seen.append(xk)
        np.testing.assert_array_equal(optim.pack_parameters(model), xk)  # the model holds xk

    res = optim.minimize_lbfgs(model, loss, x, y, maxiter=1000, callback=callback)
    assert res.fun < 1e-4 * v0
    assert np.linalg.norm(res.jac) < 1e-3 * g0
    assert len(seen) == res.nit and seen[-1].shape == res.x.shape
    # the model holds the solution, and res.fun / res.jac are its loss and gradient
    np.testing.assert_array_equal(optim.pack_parameters(model), res.x)
    v1, g1, _ = bptt.value_and_grad(model, loss, x, y)
    assert v1 == pytest.approx(res.fun, rel=1e-12)
    np.testing.assert_allclose(optim.pack_parameters(g1), res.jac, rtol=1e-10, atol=1e-14)


def test_minimize_lbfgs_to_gtol():
    model, x, y = _lbfgs_problem(LBFGS_MODELS["elman-dense"])
    res = optim.minimize_lbfgs(model, bptt.MeanSquaredError(), x, y, maxiter=3000, gtol=1e-6,
                               options={"ftol": 0.0})
    assert res.success and np.abs(res.jac).max() <= 1e-6


def test_minimize_lbfgs_stop_and_errors():
    model, x, y = _lbfgs_problem(LBFGS_MODELS["dense-tanh-dense"])
    loss = bptt.MeanSquaredError()

    def stop(xk):
        raise StopIteration

    res = optim.minimize_lbfgs(model, loss, x, y, callback=stop)
    assert res.nit == 1
    np.testing.assert_array_equal(optim.pack_parameters(model), res.x)
    with pytest.raises(ValueError, match="maxiter must be >= 1, got 0"):
        optim.minimize_lbfgs(model, loss, x, y, maxiter=0)
    with pytest.raises(ValueError, match="gtol must be >= 0"):
        optim.minimize_lbfgs(model, loss, x, y, gtol=-1.0)
    with pytest.raises(TypeError, match="callback must be callable"):
        optim.minimize_lbfgs(model, loss, x, y, callback=3)
    with pytest.raises(TypeError, match="model must be a bptt Module"):
        optim.minimize_lbfgs({"w": np.zeros(2)}, loss, x, y)
    with pytest.raises(ValueError, match="pass maxiter as the argument"):
        optim.minimize_lbfgs(model, loss, x, y, options={"maxiter": 3})


def test_pack_unpack():
    model = bptt.Sequential([bptt.Dense(3, 4), bptt.Tanh(), bptt.Dense(4, 2)], dtype=np.float32,
                            seed=0)
    params = model.named_parameters()
    flat = optim.pack_parameters(model)
    assert flat.dtype == np.float64 and flat.shape == (model.num_parameters(),)
    np.testing.assert_array_equal(flat[:12], params["0.weight"].ravel())
    np.testing.assert_array_equal(flat[-2:], params["2.bias"])
    new = np.arange(flat.size, dtype=np.float64)
    optim.unpack_parameters(model, new)
    after = model.named_parameters()
    assert all(after[k] is params[k] and after[k].dtype == np.float32 for k in params)
    np.testing.assert_array_equal(after["0.weight"], np.arange(12).reshape(4, 3))
    np.testing.assert_array_equal(optim.pack_parameters(model), new)
    with pytest.raises(ValueError, match=f"a vector of {flat.size} values .*, got shape \\(3,\\)"):
        optim.unpack_parameters(model, np.zeros(3))
    with pytest.raises(TypeError, match="floating-point vector"):
        optim.unpack_parameters(model, np.zeros(flat.size, dtype=int))


def test_minimize_lbfgs_float32_model():
    model, x, y = _lbfgs_problem(LBFGS_MODELS["dense-tanh-dense"])
    model.astype(np.float32)
    loss = bptt.MeanSquaredError()
    v0 = bptt.value_and_grad(model, loss, x, y)[0]
    res = optim.minimize_lbfgs(model, loss, x, y, maxiter=100)
    assert res.fun < 0.1 * v0
    assert all(p.dtype == np.float32 for p in model.named_parameters().values())


@pytest.mark.parametrize("name,kw", [("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True,
                                              "weight_decay": 0.01}),
                                     ("adagrad", {"lr": 0.1, "lr_decay": 0.01}),
                                     ("rmsprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
                                     ("adam", {"lr": 0.01, "amsgrad": True}),
                                     ("adamw", {"lr": 0.01})])
def test_flat_buffer_path_equals_per_parameter_path(name, kw):
    """A Sequential keeps parameters and gradients in flat buffers and the optimizer updates
    them in one pass; the result is that of updating each parameter on its own."""
    model = bptt.Sequential([bptt.Embedding(7, 3), bptt.GRU(3, 4), bptt.Dense(4, 7)],
                            dtype=np.float64, seed=0)
    loose = {k: v.copy() for k, v in model.named_parameters().items()}
    fast = bptt.optim.get_optimizer(name, model.named_parameters(), **kw)
    slow = bptt.optim.get_optimizer(name, loose, **kw)
    assert fast._flat is model.flat_params and slow._flat is None
    rng = np.random.default_rng(0)
    for _ in range(4):
        model.flat_grads[...] = rng.standard_normal(model.flat_grads.size)
        grads = model.named_grads()
        fast.step(grads)
        slow.step({k: g.copy() for k, g in grads.items()})
    for k, v in model.named_parameters().items():
        np.testing.assert_allclose(v, loose[k], rtol=1e-13, atol=1e-15, err_msg=k)
    sd = fast.state_dict()
    for k in sd["slots"]:
        for s in sd["slots"][k]:
            np.testing.assert_allclose(sd["slots"][k][s], slow.slots[k][s], rtol=1e-13,
                                       atol=1e-15)
    # a resumed optimizer takes the flat path again, with the loaded state
    again = bptt.optim.get_optimizer(name, model.named_parameters(), **kw)
    again.load_state_dict(sd)
    assert again._flat is model.flat_params
    np.testing.assert_array_equal(again._flat_slots[next(iter(again._flat_slots))],
                                  fast._flat_slots[next(iter(fast._flat_slots))])


# -- the compiled updates -----------------------------------------------------------------------
def _numpy_adam(p, g, m, v, vmax, lr, betas, eps, wd, step, amsgrad, decoupled):
    """Adam._update's numpy formulas (what the compiled update must equal bit for bit)."""
    beta1, beta2 = betas
    if decoupled:
        if wd != 0:
            p *= 1.0 - lr * wd
        d = g
    else:
        d = g + wd * p if wd != 0 else g
    w = 1.0 - beta1
    if abs(w) < 0.5:
        m += w * (d - m)
    else:
        m[...] = d - (d - m) * (1.0 - w)
    v *= beta2
    v += (1.0 - beta2) * (d * d)
    if amsgrad:
        np.maximum(vmax, v, out=vmax)
        v = vmax
    denom = np.sqrt(v)
    denom /= (1.0 - beta2 ** step) ** 0.5
    denom += eps
    p -= lr / (1.0 - beta1 ** step) * (m / denom)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kw", [{}, {"weight_decay": 0.1}, {"amsgrad": True},
                                {"betas": (0.3, 0.99)}], ids=["plain", "wd", "amsgrad", "beta"])
@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_compiled_adam_is_the_numpy_formula_bit_for_bit(dtype, kw, cls):
    rng = np.random.default_rng(8)
    p = rng.normal(size=(7, 5)).astype(dtype)
    ref = {"p": p.copy(), "m": np.zeros_like(p), "v": np.zeros_like(p), "vmax": np.zeros_like(p)}
    opt = getattr(optim, cls)({"w": p}, lr=0.01, **kw)
    hp = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01 if cls == "AdamW" else 0.0,
          "amsgrad": False, **kw}
    for step in range(1, 5):
        g = rng.normal(size=p.shape).astype(dtype)
        opt.step({"w": g})
        _numpy_adam(ref["p"], g, ref["m"], ref["v"], ref["vmax"], 0.01, hp["betas"], hp["eps"],
                    hp["weight_decay"], step, hp["amsgrad"], cls == "AdamW")
        np.testing.assert_array_equal(p, ref["p"])
        np.testing.assert_array_equal(opt.slots["w"]["exp_avg"], ref["m"])
        np.testing.assert_array_equal(opt.slots["w"]["exp_avg_sq"], ref["v"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("wd", [0.0, 0.25])
def test_compiled_sgd_is_the_numpy_formula_bit_for_bit(dtype, wd):
    rng = np.random.default_rng(9)
    p = rng.normal(size=(6, 4)).astype(dtype)
    ref = p.copy()
    opt = optim.SGD({"w": p}, lr=0.05, weight_decay=wd)
    for _ in range(3):
        g = rng.normal(size=p.shape).astype(dtype)
        opt.step({"w": g})
        ref -= 0.05 * (g + wd * ref if wd else g)
        np.testing.assert_array_equal(p, ref)
