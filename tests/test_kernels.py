"""The compiled sequence kernels (bptt._kernels) against the step path they must agree with.

The reference is the same cell with ``use_kernels = False``: the Unroller driving the cell's
plain-numpy ``step_forward``/``step_backward``. The fast path is never its own reference.
"""

import copy

import numba
import numpy as np
import pytest

import bptt
from bptt import _kernels
from bptt.module import BackwardContext, cache_length, slice_cache

KINDS = {
    "elman-tanh": lambda d, h, dt: bptt.Elman(d, h, dtype=dt, seed=3),
    "elman-relu": lambda d, h, dt: bptt.Elman(d, h, nonlinearity="relu", dtype=dt, seed=3),
    "elman-linear": lambda d, h, dt: bptt.Elman(d, h, nonlinearity="linear", dtype=dt, seed=3),
    "lstm": lambda d, h, dt: bptt.LSTM(d, h, dtype=dt, seed=3),
    "gru": lambda d, h, dt: bptt.GRU(d, h, dtype=dt, seed=3),
}
DTYPES = [np.float32, np.float64]
CACHE_KEYS = {
    "elman-tanh": {"x", "h_prev", "h", "resets", "kernel", "stream_major"},
    "elman-relu": {"x", "h_prev", "h", "resets", "kernel", "stream_major"},
    "elman-linear": {"x", "h_prev", "h", "resets", "kernel", "stream_major"},
    "lstm": {"x", "h_prev", "c_prev", "gates", "tanh_c", "resets", "kernel", "stream_major"},
    "gru": {"x", "h_prev", "gates", "hn", "resets", "kernel", "stream_major"},
}
D, H = 3, 5

jit_only = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="inspects compiled code")
kinds = pytest.mark.parametrize("kind", sorted(KINDS))
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


def tol(dtype):
    if np.dtype(dtype) == np.float64:
        return {"rtol": 1e-10, "atol": 1e-12}
    return {"rtol": 1e-4, "atol": 1e-5}


def pair(kind, dtype):
    """The kernel cell and an identical copy that runs the step path."""
    fast = KINDS[kind](D, H, dtype)
    # Non-zero biases, so that bias handling (b_hn inside the GRU's reset gate) is exercised.
    rng = np.random.default_rng(7)
    for name in ("bias_ih", "bias_hh"):
        fast.params[name][...] = rng.uniform(-0.5, 0.5, fast.params[name].shape)
    slow = copy.deepcopy(fast)
    slow.use_kernels = False
    return fast, slow


def random_state(cell, B, rng, scale=0.8):
    return tuple(rng.standard_normal(s.shape) * scale for s in cell.initial_state(B))


def some_resets(T, B, rng):
    r = rng.random((T, B)) < 0.3
    r[0, 0] = True          # a reset at t = 0
    if T > 2:
        r[T // 2, B - 1] = True
    return r


def assert_close(a, b, dtype, what):
    np.testing.assert_allclose(a, b, err_msg=what, **tol(dtype))


def assert_same_run(fast, slow, outs_fast, outs_slow, dtype):
    """Compare (y, final, dx, dstate0) tuples and all parameter gradients."""
    for name, a, b in zip(("y", "final", "dx", "dstate0"), outs_fast, outs_slow):
        if isinstance(a, tuple):
            assert len(a) == len(b)
            for i, (u, v) in enumerate(zip(a, b)):
                assert u.dtype == np.dtype(dtype), f"{name}[{i}]: dtype {u.dtype}"
                assert_close(u, v, dtype, f"{name}[{i}]")
        else:
            assert a.dtype == np.dtype(dtype), f"{name}: dtype {a.dtype}"
            assert_close(a, b, dtype, name)
    for k in slow.grads:
        assert fast.grads[k].dtype == np.dtype(dtype)
        assert_close(fast.grads[k], slow.grads[k], dtype, f"grad {k}")


def run(cell, x, state, resets, dy, dstate, clip=None, dy_none=False):
    y, final, cache = cell.forward(x, state, resets)
    ctx = None if clip is None else BackwardContext(clip)
    dx, d0 = cell.backward(None if dy_none else dy, dstate, cache, ctx)
    fired = None if ctx is None else ctx.state_clip_fired
    return (y, final, dx, d0), cache, fired


SCENARIOS = ["plain", "state", "resets", "dy-none", "clip", "everything"]


@kinds
@dtypes
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("T,B", [(1, 1), (1, 4), (7, 1), (7, 4)])
def test_kernel_matches_step_path(kind, dtype, scenario, T, B):
    rng = np.random.default_rng([sorted(KINDS).index(kind), SCENARIOS.index(scenario), T, B])
    fast, slow = pair(kind, dtype)
    x = rng.standard_normal((T, B, D))
    every = scenario == "everything"
    state = random_state(fast, B, rng) if scenario == "state" or every else None
    resets = some_resets(T, B, rng) if scenario == "resets" or every else None
    dy = rng.standard_normal((T, B, H))
    dstate = (random_state(fast, B, rng, scale=1.0)
              if scenario in ("state", "dy-none", "clip") or every else None)
    clip = 0.05 if scenario == "clip" or every else None
    dy_none = scenario == "dy-none"
    args = (x, state, resets, dy, dstate, clip, dy_none)
    outs_fast, cache_fast, fired_fast = run(fast, *args)
    outs_slow, cache_slow, fired_slow = run(slow, *args)
    assert cache_fast.get("kernel") is True
    assert "kernel" not in cache_slow
    assert_same_run(fast, slow, outs_fast, outs_slow, dtype)
    assert fired_fast == fired_slow
    if clip is not None and T > 1:
        assert fired_fast > 0, "the clip value should be small enough to fire"


@kinds
@dtypes
@pytest.mark.parametrize("start", [0, 1, 3, 6])
@pytest.mark.parametrize("clip", [None, 0.05])
def test_backward_on_sliced_cache(kind, dtype, start, clip):
    rng = np.random.default_rng(start)
    T, B = 7, 3
    fast, slow = pair(kind, dtype)
    x = rng.standard_normal((T, B, D))
    state = random_state(fast, B, rng)
    resets = some_resets(T, B, rng)
    dy = rng.standard_normal((T, B, H))
    dstate = random_state(fast, B, rng, scale=1.0)
    results = []
    for cell in (fast, slow):
        _, _, cache = cell.forward(x, state, resets)
        piece = slice_cache(cache, start, T)
        assert cache_length(piece) == T - start
        ctx = BackwardContext(clip)
        dx, d0 = cell.backward(dy[start:], dstate, piece, ctx)
        assert dx.shape == (T - start, B, D)
        results.append((dx, d0, ctx.state_clip_fired))
    (dx_f, d0_f, fired_f), (dx_s, d0_s, fired_s) = results
    assert_same_run(fast, slow, (dx_f, d0_f), (dx_s, d0_s), dtype)
    assert fired_f == fired_s


@kinds
@dtypes
def test_a_window_is_read_in_place_and_agrees_with_a_copy(kind, dtype):
    """The backward of a cache cut in time reads the forward's own stream-major arrays from
    the window's first step (no copy), with the same numbers as the same window handed over
    as plain time-major copies (which the backward copies to stream-major)."""
    rng = np.random.default_rng(12)
    T, B, a, b = 7, 3, 2, 6
    cell, _ = pair(kind, dtype)
    x = rng.standard_normal((T, B, D))
    _, _, cache = cell.forward(x, random_state(cell, B, rng), some_resets(T, B, rng))
    piece = slice_cache(cache, a, b)
    names = ("h_prev",) + tuple(k for k in ("gates", "c_prev", "tanh_c", "hn") if k in cache)
    arrays, t0 = _kernels._common.stream_major_window(piece, names, np.dtype(dtype))
    assert t0 == a
    whole = {k: arr for k, arr, _ in cache["stream_major"]}
    for k, arr in zip(names, arrays):
        assert arr is whole[k]   # the forward's array itself
    copied = copy.deepcopy(piece)   # its arrays no longer views of the forward's
    assert _kernels._common.stream_major_window(copied, names, np.dtype(dtype))[1] == 0
    dy, dstate = rng.standard_normal((b - a, B, H)), random_state(cell, B, rng)
    out = []
    for c in (piece, copied):
        cell.zero_grad()
        dx, d0 = cell.backward(dy, dstate, c)
        out.append((dx, d0, {k: g.copy() for k, g in cell.grads.items()}))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    for u, v in zip(out[0][1], out[1][1]):
        np.testing.assert_array_equal(u, v)
    for k in out[0][2]:
        np.testing.assert_array_equal(out[0][2][k], out[1][2][k])


@kinds
@dtypes
def test_one_step_slices_chain_to_the_full_backward(kind, dtype):
    """Backward one step at a time on slice_cache(cache, t, t+1) equals one full backward."""
    rng = np.random.default_rng(11)
    T, B = 5, 2
    cell, _ = pair(kind, dtype)
    x = rng.standard_normal((T, B, D))
    _, final, cache = cell.forward(x, random_state(cell, B, rng), some_resets(T, B, rng))
    dy = rng.standard_normal((T, B, H))
    dstate = random_state(cell, B, rng)
    dx_full, d0_full = cell.backward(dy, dstate, cache)
    full = {k: g.copy() for k, g in cell.grads.items()}
    cell.zero_grad()
    ds, dxs = dstate, [None] * T
    for t in range(T - 1, -1, -1):
        dxs[t], ds = cell.backward(dy[t:t + 1], ds, slice_cache(cache, t, t + 1))
    assert_close(np.concatenate(dxs), dx_full, dtype, "dx")
    for a, b in zip(ds, d0_full):
        assert_close(a, b, dtype, "dstate0")
    for k in full:
        assert_close(cell.grads[k], full[k], dtype, k)


@kinds
@dtypes
def test_gradients_accumulate(kind, dtype):
    rng = np.random.default_rng(5)
    T, B = 4, 3
    cell, _ = pair(kind, dtype)
    x = rng.standard_normal((T, B, D))
    _, _, cache = cell.forward(x, random_state(cell, B, rng), some_resets(T, B, rng))
    dy = rng.standard_normal((T, B, H))
    dx1, d01 = cell.backward(dy, None, cache)
    once = {k: g.copy() for k, g in cell.grads.items()}
    assert all(np.any(g != 0) for g in once.values())
    dx2, d02 = cell.backward(dy, None, cache)
    for k in once:
        assert_close(cell.grads[k], 2 * once[k], dtype, k)
    np.testing.assert_array_equal(dx1, dx2)   # dx and dstate0 are returned, not accumulated
    for a, b in zip(d01, d02):
        np.testing.assert_array_equal(a, b)


@kinds
@dtypes
def test_cache_layout(kind, dtype):
    """Every array of the cache is indexed by time on axis 0 with exactly T entries (the
    gates gate-major: (T, G, B, H))."""
    rng = np.random.default_rng(2)
    T, B = 6, 2
    cell, _ = pair(kind, dtype)
    y, final, cache = cell.forward(rng.standard_normal((T, B, D)))
    assert set(cache) == CACHE_KEYS[kind]
    assert cache["resets"].shape == (T, B) and cache["resets"].dtype == bool
    for k, v in cache.items():
        if isinstance(v, np.ndarray):
            want = (T, cell.gates, B) if k == "gates" else (T, B)
            assert v.shape[:len(want)] == want, k
            if v.dtype != bool:
                assert v.dtype == np.dtype(dtype), k
    assert y.shape == (T, B, H)
    for f, s in zip(final, cell.initial_state(B)):
        assert f.shape == s.shape and f.dtype == s.dtype
    # the final state is a fresh array, not a view of y or of the cache
    for f in final:
        for v in cache.values():
            if isinstance(v, np.ndarray):
                assert not np.shares_memory(f, v)
        assert not np.shares_memory(f, y)


@kinds
@dtypes
def test_non_finite_values_propagate_like_the_step_path(kind, dtype):
    rng = np.random.default_rng(9)
    T, B = 5, 3
    fast, slow = pair(kind, dtype)
    x = rng.standard_normal((T, B, D))
    x[2, 1, 0] = np.nan
    dy = rng.standard_normal((T, B, H))
    dy[3, 0, 1] = np.inf
    flat = []
    for cell in (fast, slow):
        y, final, cache = cell.forward(x)
        with np.errstate(invalid="ignore", over="ignore"):
            dx, d0 = cell.backward(dy, None, cache)
        flat.append([y, *final, dx, *d0])
    assert np.isnan(flat[1][0]).any() and np.isnan(flat[1][-1]).any()
    for a, b in zip(*flat):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    for k in fast.grads:
        np.testing.assert_array_equal(np.isfinite(fast.grads[k]), np.isfinite(slow.grads[k]))


@kinds
def test_odd_inputs_are_normalised(kind):
    """Read-only, non-contiguous and other-dtype inputs give the same numbers and compile no
    extra specialisations (checked in test_few_specialisations)."""
    rng = np.random.default_rng(4)
    T, B = 4, 2
    dtype = np.float32
    fast, slow = pair(kind, dtype)
    x = np.asfortranarray(rng.standard_normal((T, B, D)))
    state = tuple(np.asfortranarray(s) for s in random_state(fast, B, rng))
    for s in state:
        s.flags.writeable = False
    resets = some_resets(T, B, rng)
    resets.flags.writeable = False
    dy = np.asfortranarray(rng.standard_normal((T, B, H)))   # float64 into a float32 cell
    dy.flags.writeable = False
    dstate = tuple(np.asfortranarray(s) for s in random_state(fast, B, rng))
    outs = []
    for cell in (fast, slow):
        y, final, cache = cell.forward(x, state, resets)
        dx, d0 = cell.backward(dy, dstate, cache, BackwardContext(0.1))
        outs.append((y, final, dx, d0))
    assert_same_run(fast, slow, outs[0], outs[1], dtype)


@kinds
def test_wrong_gradient_shapes_are_refused(kind):
    cell, _ = pair(kind, np.float64)
    T, B = 3, 2
    _, _, cache = cell.forward(np.zeros((T, B, D)))
    with pytest.raises(ValueError, match=r"output gradient of shape \(3, 2, 5\)"):
        cell.backward(np.zeros((T, B, H + 1)), None, cache)
    with pytest.raises(ValueError, match=r"dstate\[0\] of shape \(2, 5\)"):
        cell.backward(None, tuple(np.zeros((B + 1, H)) for _ in cell.state_sizes), cache)


def _dispatchers():
    out = {}
    for mod in (_kernels.elman, _kernels.lstm, _kernels.gru):
        for name in ("_forward", "_backward"):
            out[f"{mod.__name__}.{name}"] = getattr(mod, name)
    out["weight_gradients"] = _kernels._common.weight_gradients
    return out


def _run_all_kernels():
    rng = np.random.default_rng(0)
    for kind in KINDS:
        for dtype in DTYPES:
            cell, _ = pair(kind, dtype)
            _, _, cache = cell.forward(rng.standard_normal((2, 2, D)))
            cell.backward(None, None, cache, BackwardContext(1.0))


@jit_only
def test_few_specialisations():
    """One compiled specialisation per dtype (and a single one covering tanh and relu): every
    array argument is C-contiguous and writeable, whatever the caller passed."""
    _run_all_kernels()
    for name, disp in _dispatchers().items():
        sigs = disp.signatures
        assert len(sigs) <= len(DTYPES), (name, sigs)
        for sig in sigs:
            for a in sig:
                if isinstance(a, numba.types.Array):
                    assert a.layout == "C" and a.mutable, (name, sig)


# float64 accumulators passed in on purpose (the per-stream bias sums of the backward kernels)
FLOAT64_ARGUMENTS = {"sums"}


def _float64_values(func, sig):
    fresh = numba.njit(func)   # uncached, so that the type annotation is available
    fresh.compile(sig)
    typemap = fresh.overloads[sig].type_annotation.typemap
    deliberate = {k for k in typemap if k in FLOAT64_ARGUMENTS or k.startswith("arg.")
                  and k[4:] in FLOAT64_ARGUMENTS}
    found = {k: str(v) for k, v in typemap.items() if k not in deliberate
             and (v == numba.float64 or getattr(v, "dtype", None) == numba.float64)}
    # views of the accumulators (sums[b, 0]) are float64 arrays too; scalars never may be
    return {k: v for k, v in found.items() if not (deliberate and v.startswith("array("))}


@jit_only
def test_float32_kernels_do_no_float64_arithmetic():
    """No value in a float32 kernel is typed float64 (a float literal would upcast)."""
    _run_all_kernels()
    checked = 0
    for name, disp in _dispatchers().items():
        for sig in disp.signatures:
            if sig[0].dtype == numba.float32:
                assert not _float64_values(disp.py_func, sig), name
                checked += 1
    assert checked == len(_dispatchers())
    f32, flag, i = numba.float32[:, ::1], numba.boolean[::1], numba.intp
    common = _kernels._common
    for func, sig in ((common.load_state, (numba.float32[:, :, ::1], i, f32, flag, i, i)),
                      (common.reset_rows, (f32, flag, i, i)),
                      (common.clip_inplace, (f32, numba.float32, i, i)),
                      (_kernels.gemm._gemm, (numba.float32[::1], numba.boolean, i, i, i,
                                            numba.float32[:, :, ::1], i, numba.float32[::1], i,
                                            i, i, numba.boolean, i, i))):
        assert not _float64_values(func.py_func, sig), func.__name__
