"""bptt.diagnostics: the linear-cell Jacobian law, Jacobian norms against finite differences and
a naive product, the recorded ||dL/dh_t|| against finite differences, recording switched off
costs nothing and changes nothing, the spectrum on known matrices, and the gradient history."""

import numpy as np
import pytest
import scipy.linalg

import bptt
from bptt import diagnostics as dg
from bptt._kernels import _common
from bptt.module import BackwardContext

KINDS = ("elman-tanh", "elman-relu", "lstm", "gru", "linear")


def make_cell(kind, D, H, seed=0, dtype=np.float64, **kw):
    if kind == "linear":
        return bptt.Elman(D, H, nonlinearity="linear", dtype=dtype, seed=seed, **kw)
    if kind.startswith("elman"):
        return bptt.Elman(D, H, nonlinearity=kind.split("-")[1], dtype=dtype, seed=seed, **kw)
    return {"lstm": bptt.LSTM, "gru": bptt.GRU}[kind](D, H, dtype=dtype, seed=seed, **kw)


def spectral(m):
    return float(scipy.linalg.svdvals(m)[0])


# -- the Jacobian product ------------------------------------------------------------------
@pytest.mark.parametrize("rho", [0.5, 0.9, 1.0, 1.1, 1.5, 2.0])
def test_linear_cell_jacobian_is_exactly_rho_to_the_lag(rho, rng):
    T, D, H = 40, 3, 8
    cell = bptt.Elman(D, H, nonlinearity="linear", dtype=np.float64, seed=1,
                      spectral_radius=rho)
    w = cell.params["weight_hh"]
    # W_hh = rho * Q with Q orthogonal
    np.testing.assert_allclose(w.T @ w, rho ** 2 * np.eye(H), atol=1e-12)
    j = dg.jacobian_norms(cell, rng.standard_normal((T, D)))
    assert j.lags.tolist() == list(range(T + 1))
    np.testing.assert_allclose(j.h, rho ** j.lags.astype(float), rtol=1e-10, atol=0)
    np.testing.assert_array_equal(j.state, j.h)
    assert j.rate == pytest.approx(rho, rel=1e-10)


def test_linear_law_through_a_model_and_any_input_or_state(rng):
    rho, T = 1.3, 25
    model = bptt.Sequential([bptt.Dense(3, 5),
                             bptt.Elman(5, 6, nonlinearity="linear", spectral_radius=rho),
                             bptt.Dense(6, 2)], dtype=np.float64, seed=4)
    x = 10 * rng.standard_normal((T, 3, 3))
    state = model.initial_state(3)
    state = (state[0], (rng.standard_normal((3, 6)),), state[2])
    j = dg.jacobian_norms(model, x, state=state, stream=2)
    np.testing.assert_allclose(j.h, rho ** np.arange(T + 1.0), rtol=1e-10)


def naive_elman_jacobians(cell, x):
    """dh_T/dh_t for every lag by multiplying the step Jacobians diag(act') W_hh in numpy."""
    p = cell.params
    h = np.zeros(cell.hidden_size)
    w = p["weight_hh"]
    steps = []
    for t in range(x.shape[0]):
        a = p["weight_ih"] @ x[t] + p["bias_ih"] + w @ h + p["bias_hh"]
        h = np.tanh(a) if cell.nonlinearity == "tanh" else np.maximum(a, 0)
        d = 1 - h * h if cell.nonlinearity == "tanh" else (h > 0).astype(float)
        steps.append(d[:, None] * w)              # dh_t / dh_{t-1}
    out, J = [1.0], np.eye(cell.hidden_size)
    for s in reversed(steps):
        J = J @ s
        out.append(spectral(J))
    return np.array(out)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_elman_jacobian_norms_match_a_naive_product(act, rng):
    cell = bptt.Elman(2, 7, nonlinearity=act, dtype=np.float64, seed=3, spectral_radius=1.2)
    cell.params["bias_ih"][:] = 0.3 * rng.standard_normal(7)  # relu units switch on and off
    x = rng.standard_normal((30, 2))
    j = dg.jacobian_norms(cell, x)
    np.testing.assert_allclose(j.h, naive_elman_jacobians(cell, x), rtol=1e-9, atol=1e-300)


def fd_state_jacobian(cell, x, t, which, eps=1e-6):
    """Finite-difference Jacobian of the final state arrays ``which`` (indices of the state
    tuple, concatenated) with respect to the state after step t (0-based: entering step t+1),
    the same arrays ``which``, one stream."""
    T = x.shape[0]
    _, s, _ = cell.forward(x[:t + 1, None])
    sizes = [s[i].shape[1] for i in which]
    n = sum(sizes)

    def final(v):
        st = [a.copy() for a in s]
        off = 0
        for i, size in zip(which, sizes):
            st[i][0] += v[off:off + size]
            off += size
        if t + 1 < T:
            _, st, _ = cell.forward(x[t + 1:, None], tuple(st))
        return np.concatenate([st[i][0] for i in which])

    cols = []
    for k in range(n):
        e = np.zeros(n)
        e[k] = eps
        cols.append((final(e) - final(-e)) / (2 * eps))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("kind", ["lstm", "gru", "elman-tanh"])
def test_jacobian_norms_match_finite_differences(kind, rng):
    T, D, H = 9, 3, 4
    cell = make_cell(kind, D, H, seed=2)
    x = rng.standard_normal((T, D))
    j = dg.jacobian_norms(cell, x)
    for t in (T - 1, T - 3, 2, 0):
        lag = T - 1 - t
        fd_h = fd_state_jacobian(cell, x, t, (0,))
        assert j.h[lag] == pytest.approx(spectral(fd_h), rel=1e-6), (kind, lag)
        if kind == "lstm":
            fd_s = fd_state_jacobian(cell, x, t, (0, 1))
            assert j.state[lag] == pytest.approx(spectral(fd_s), rel=1e-6), lag
    assert j.h[0] == 1.0 and j.state[0] == 1.0


def test_jacobian_norms_float32_cell_computed_in_float64(rng):
    cell = bptt.Elman(2, 6, spectral_radius=2.0)              # float32 cell
    x = rng.standard_normal((300, 2)).astype(np.float32)
    j = dg.jacobian_norms(cell, x)                              # default: a float64 copy
    assert np.isfinite(j.h).all() and cell.dtype == np.float32
    k = dg.jacobian_norms(cell, x[:20], dtype=None)             # the cell's own dtype
    np.testing.assert_allclose(k.h, dg.jacobian_norms(cell, x[:20]).h, rtol=1e-3)


def test_jacobian_norms_errors():
    model = bptt.Sequential([bptt.Dense(2, 3), bptt.Elman(3, 3)], dtype=np.float64)
    with pytest.raises(ValueError, match="recurrent Cell"):
        dg.jacobian_norms(model, np.zeros((4, 1, 2)), index=0)
    with pytest.raises(ValueError, match="stream"):
        dg.jacobian_norms(model, np.zeros((4, 1, 2)), stream=3)
    with pytest.raises(TypeError):
        dg.jacobian_norms("lstm", np.zeros((4, 2)))


def test_decay_rate_and_reach():
    lags = np.arange(61)
    norms = 0.8 ** lags
    assert dg.decay_rate(norms) == pytest.approx(0.8)
    # 0.8^k >= 1e-3 * 0.8  <=>  k - 1 <= log(1e-3) / log(0.8) = 30.96
    assert dg.reach(norms, 1e-3) == 31
    assert dg.reach(np.ones(10)) == 9                  # never drops: a lower bound
    assert dg.reach(np.array([1.0, 1.0, np.nan, 1.0])) == 1
    assert np.isnan(dg.decay_rate([1.0, 0.0, 0.0]))


# -- recorded ||dL/dh_t|| ------------------------------------------------------------------
def model_for(kind, seed=0):
    return bptt.Sequential([make_cell(kind, 3, 4, seed=seed), bptt.Dense(4, 2)],
                           dtype=np.float64, seed=seed)


def loss_with_state_perturbation(model, loss, x, y, t, b, dh, dc=None):
    """The chunk's loss with dh added to h_t of stream b, both as the output the head reads at
    step t and as the state carried to step t + 1 (and dc to the carried c_t)."""
    cell, head = model.parts[0], model.parts[1]
    h1, s, _ = cell.forward(x[:t + 1])
    h1 = h1.copy()
    h1[t, b] += dh
    s = tuple(a.copy() for a in s)
    s[0][b] += dh
    if dc is not None:
        s[1][b] += dc
    parts = [h1]
    if t + 1 < x.shape[0]:
        parts.append(cell.forward(x[t + 1:], s)[0])
    out, _, _ = head.forward(np.concatenate(parts))
    return loss.value(out, y)


@pytest.mark.parametrize("kind", KINDS)
def test_recorded_state_gradient_norms_match_finite_differences(kind, rng):
    T, B, eps = 6, 2, 1e-6
    model = model_for(kind)
    loss = bptt.MeanSquaredError()
    x, y = rng.standard_normal((T, B, 3)), rng.standard_normal((T, B, 2))
    rep = dg.state_gradient_norms(model, loss, x, y)
    assert list(rep) == ["0"]
    assert rep.loss == pytest.approx(loss.value(model.forward(x)[0], y), rel=1e-12)
    rec = rep["0"]
    assert rec.h_per_stream.shape == (T, B) and rec.h.shape == (T,)
    np.testing.assert_allclose(rec.h, np.sqrt((rec.h_per_stream ** 2).sum(1)), rtol=1e-12)
    H = 4
    for t in range(T):
        for b in range(B):
            g = np.empty(H)
            for k in range(H):
                e = np.zeros(H)
                e[k] = eps
                g[k] = (loss_with_state_perturbation(model, loss, x, y, t, b, e) -
                        loss_with_state_perturbation(model, loss, x, y, t, b, -e)) / (2 * eps)
            assert rec.h_per_stream[t, b] == pytest.approx(np.linalg.norm(g), rel=1e-6,
                                                           abs=1e-12), (t, b)
            if kind == "lstm":
                z = np.zeros(H)
                for k in range(H):
                    e = np.zeros(H)
                    e[k] = eps
                    g[k] = (loss_with_state_perturbation(model, loss, x, y, t, b, z, e) -
                            loss_with_state_perturbation(model, loss, x, y, t, b, z, -e)
                            ) / (2 * eps)
                assert rec.c_per_stream[t, b] == pytest.approx(np.linalg.norm(g), rel=1e-6,
                                                               abs=1e-12), (t, b)
    if kind == "lstm":
        assert rec.c[-1] == 0            # nothing flows into c_T from later steps
    else:
        assert rec.c is None and rec.c_per_stream is None


def test_recorded_norms_with_resets_and_weights(rng):
    T, B = 7, 3
    model = model_for("lstm")
    x, y = rng.standard_normal((T, B, 3)), rng.standard_normal((T, B, 2))
    w = np.zeros((T, B))
    w[-1] = 1                                         # loss at the last step only
    resets = np.zeros((T, B), bool)
    resets[4, 1] = True                               # stream 1 restarts before step 4
    rec = dg.state_gradient_norms(model, bptt.MeanSquaredError(), x, y, weights=w,
                                  resets=resets)["0"]
    # the state after step 3 is replaced by zeros before step 4: no gradient crosses
    assert (rec.h_per_stream[:4, 1] == 0).all() and (rec.c_per_stream[:4, 1] == 0).all()
    assert (rec.h_per_stream[4:, 1] > 0).all()
    assert (rec.h_per_stream[:, 0] > 0).all()


def test_state_gradient_norms_leave_the_model_as_it_was(rng):
    model = bptt.Sequential([bptt.Elman(3, 4), bptt.Dropout(0.3), bptt.LSTM(4, 5),
                             bptt.Dense(5, 2)], dtype=np.float64, seed=0)
    for g in model.named_grads().values():
        g[...] = rng.standard_normal(g.shape)
    grads = {k: g.copy() for k, g in model.named_grads().items()}
    rng_state = model.get_rng_state()
    x, y = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 2))
    rep = dg.state_gradient_norms(model, bptt.MeanSquaredError(), x, y)
    assert sorted(rep) == ["0", "2"] and rep["2"].c is not None and rep["0"].c is None
    for k, g in model.named_grads().items():
        np.testing.assert_array_equal(g, grads[k])
    assert model.get_rng_state() == rng_state


def test_bidirectional_records_in_forward_time(rng):
    T, B = 6, 2
    model = bptt.Sequential([bptt.Bidirectional(bptt.Elman(3, 4)), bptt.Dense(8, 2)],
                            dtype=np.float64, seed=0)
    x, y = rng.standard_normal((T, B, 3)), rng.standard_normal((T, B, 2))
    w = np.zeros((T, B))
    w[-1] = 1
    rep = dg.state_gradient_norms(model, bptt.MeanSquaredError(), x, y, weights=w)
    assert sorted(rep) == ["0.forward", "0.reverse"]
    assert (rep["0.forward"].h > 0).all()
    # the reverse cell reads time T-1 first; nothing flows from there to earlier times
    assert rep["0.reverse"].h[-1] > 0 and (rep["0.reverse"].h[:-1] == 0).all()


# -- recording switched off costs nothing ----------------------------------------------------
def test_norm_record_is_empty_when_not_asked():
    for ctx in (None, BackwardContext(), BackwardContext(state_clip=1.0)):
        rec = _common.norm_record(ctx, 2, 50, 3, np.dtype(np.float32))
        assert rec.shape == (2, 0, 3) and rec.nbytes == 0
    rec = _common.norm_record(BackwardContext(record_state_grads=True), 2, 50, 3,
                              np.dtype(np.float64))
    assert rec.shape == (2, 50, 3) and not rec.any()


@pytest.mark.parametrize("kind", ["elman-tanh", "elman-relu", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_recording_changes_nothing_and_kernels_get_an_empty_record(kind, dtype, rng,
                                                                   monkeypatch):
    cell = make_cell(kind, 3, 5, dtype=dtype)
    module = cell.kernel
    seen = []
    real = module._backward

    def spy(*args):
        seen.append(args[7].shape)           # the norms array
        return real(*args)

    monkeypatch.setattr(module, "_backward", spy)
    x = rng.standard_normal((8, 2, 3)).astype(dtype)
    dy = rng.standard_normal((8, 2, 5)).astype(dtype)
    results = []
    for record in (False, True):
        cell.zero_grad()
        _, final, cache = cell.forward(x)
        ctx = BackwardContext(state_clip=0.05, record_state_grads=record)
        dx, d0 = cell.backward(dy, tuple(np.ones_like(s) for s in final), cache, ctx)
        results.append((dx, d0, {k: g.copy() for k, g in cell.grads.items()},
                        ctx.state_clip_fired, ctx.state_grad_norms))
    n = len(cell.state_sizes)
    assert seen == [(n, 0, 2), (n, 8, 2)]
    (dx0, d00, g0, f0, r0), (dx1, d01, g1, f1, r1) = results
    np.testing.assert_array_equal(dx0, dx1)
    for a, b in zip(d00, d01):
        np.testing.assert_array_equal(a, b)
    for k in g0:
        np.testing.assert_array_equal(g0[k], g1[k])
    assert f0 == f1 and r0 == {} and len(r1[cell]) == 1


def test_training_results_identical_with_and_without_probes(rng):
    """A GradientHistory probing state-gradient norms (an extra recorded backward pass) during
    training leaves the run unchanged, even with a gradient pending (accumulate=2)."""
    x, y = rng.standard_normal((40, 3, 3)), rng.standard_normal((40, 3, 2))
    finals = []
    for probe in (None, (x[:5], y[:5])):
        model = model_for("lstm")
        opt = bptt.optim.Adam(model.named_parameters(), lr=1e-2)
        tr = bptt.TBPTT(model, bptt.MeanSquaredError(), opt, k1=4, accumulate=2)
        hist = dg.GradientHistory(tr, probe=probe, every=1)
        tr.fit(x, y, callback=hist)
        finals.append({k: v.copy() for k, v in model.named_parameters().items()})
        assert len(hist.state_grads) == (0 if probe is None else 5)
    for k in finals[0]:
        np.testing.assert_array_equal(finals[0][k], finals[1][k])


# -- spectrum and the Pascanu et al. conditions ---------------------------------------------
def elman_with(w, act="tanh"):
    cell = bptt.Elman(1, w.shape[0], nonlinearity=act, dtype=np.float64)
    cell.params["weight_hh"][...] = w
    return cell


def test_matrix_condition_on_known_spectra():
    c, s = np.cos(0.3), np.sin(0.3)
    rot = 0.9 * np.array([[c, -s], [s, c]])
    r = dg.matrix_condition(rot)
    assert r["spectral_radius"] == pytest.approx(0.9) and r["sigma_max"] == pytest.approx(0.9)
    assert r["vanishing_sufficient"] and not r["exploding_necessary"]
    # non-normal: eigenvalues 0.5, largest singular value (sqrt(b^2 + 4a^2) + b) / 2
    nn = np.array([[0.5, 3.0], [0.0, 0.5]])
    r = dg.matrix_condition(nn)
    assert r["spectral_radius"] == pytest.approx(0.5)
    assert r["sigma_max"] == pytest.approx((np.sqrt(10.0) + 3) / 2)
    assert not r["vanishing_sufficient"] and r["exploding_necessary"]
    assert not r["exploding_necessary_linear"]
    # with the sigmoid's bound gamma = 1/4, sigma_max = 3.08 < 4 guarantees vanishing
    assert dg.matrix_condition(nn, gamma=0.25)["vanishing_sufficient"]
    r = dg.matrix_condition(np.diag([2.0, 0.1, -0.5]))
    assert (r["spectral_radius"], r["sigma_max"]) == (pytest.approx(2.0), pytest.approx(2.0))
    assert r["exploding_necessary"] and r["exploding_necessary_linear"]
    with pytest.raises(ValueError, match="square"):
        dg.matrix_condition(np.ones((2, 3)))


def test_recurrent_spectrum_of_cells_and_models():
    spec = dg.recurrent_spectrum(elman_with(0.9 * np.eye(3)))
    assert list(spec) == ["cell"]
    s = spec["cell"]
    assert s.blocks == {"hh": {"spectral_radius": pytest.approx(0.9),
                               "sigma_max": pytest.approx(0.9)}}
    assert s.condition["gamma"] == 1.0 and s.condition["vanishing_sufficient"]
    assert "sufficient condition for vanishing gradients holds" in s.verdict
    s = dg.recurrent_spectrum(elman_with(np.diag([1.5, 0.2]), "relu"))["cell"]
    assert s.condition["exploding_necessary"] and "rho > 1" in s.verdict
    lstm = bptt.LSTM(2, 3, dtype=np.float64)
    for g, scale in enumerate((0.1, 0.2, 0.3, 0.4)):
        lstm.params["weight_hh"][3 * g:3 * g + 3] = scale * np.eye(3)
    model = bptt.Sequential([bptt.Elman(2, 2, nonlinearity="linear", spectral_radius=1.1), lstm,
                             bptt.Dense(3, 1)], dtype=np.float64)
    spec = dg.recurrent_spectrum(model)
    assert sorted(spec) == ["0", "1"]
    assert spec["0"].condition["spectral_radius"] == pytest.approx(1.1)
    assert spec["0"].nonlinearity == "linear"
    assert [b["sigma_max"] for b in spec["1"].blocks.values()] == pytest.approx([.1, .2, .3, .4])
    assert list(spec["1"].blocks) == ["i", "f", "g", "o"]
    assert spec["1"].condition is None and "gated" in spec["1"].verdict
    assert "LSTM" in str(spec["1"])


# -- the gradient history --------------------------------------------------------------------
def test_gradient_history_matches_the_fit_report(rng):
    model = model_for("elman-tanh")
    opt = bptt.optim.SGD(model.named_parameters(), lr=0.1)
    clips = [bptt.ClipStateGradient(1e-3), bptt.ClipGlobalNorm(0.05)]
    tr = bptt.TBPTT(model, bptt.MeanSquaredError(), opt, k1=5, clip=clips)
    x, y = rng.standard_normal((30, 2, 3)), rng.standard_normal((30, 2, 2))
    stops = []
    hist = dg.GradientHistory(tr, probe=(x[:5], y[:5]), every=2,
                              then=lambda rep, chunk: stops.append(chunk["start"]))
    report = tr.fit(x, y, callback=hist)
    assert hist.losses == report.losses and hist.norms == report.grad_norms
    assert hist.norms_clipped == report.grad_norms_clipped
    assert all(c <= 0.05 + 1e-6 for c in hist.norms_clipped)
    assert hist.updates_at == list(range(6)) and stops == list(range(0, 30, 5))
    assert hist.clip_fired[repr(clips[1])][-1] == clips[1].fired == 6
    assert hist.clip_fired[repr(clips[0])][-1] == clips[0].fired > 0
    assert hist.fired_fraction() == {repr(clips[1]): 1.0}
    assert [u for u, _ in hist.state_grads] == [0, 2, 4]
    assert hist.state_grads[0][1]["0"]["h"].shape == (5,)
    d = hist.as_dict()
    assert d["norms"] == report.grad_norms and len(d["state_grads"]) == 3


def test_gradient_history_keeps_skipped_updates(rng):
    model = model_for("elman-tanh")
    model.parts[1].params["weight"][...] = 1e300          # outputs overflow to inf
    opt = bptt.optim.SGD(model.named_parameters(), lr=0.1)
    tr = bptt.TBPTT(model, bptt.MeanSquaredError(), opt, k1=5)
    hist = dg.GradientHistory(tr)
    x, y = rng.standard_normal((10, 2, 3)), rng.standard_normal((10, 2, 2))
    with pytest.warns(RuntimeWarning, match="skipped"), np.errstate(all="ignore"):
        hist.add_step(tr.step(x, y))
    assert hist.norms == [] and len(hist.skipped) == 2
    assert "non-finite" in hist.skipped[0]["message"]
    assert hist.as_dict()["losses"] == [None]
    with pytest.raises(ValueError, match="probe"):
        dg.GradientHistory(None, probe=(x, y))


def test_linear_elman_gradients_and_checkpoint(rng, tmp_path):
    model = bptt.Sequential([bptt.Elman(3, 4, nonlinearity="linear", spectral_radius=0.9),
                             bptt.Dense(4, 2)],
                            dtype=np.float64, seed=0)
    x, y = rng.standard_normal((6, 2, 3)), rng.standard_normal((6, 2, 2))
    report = bptt.gradcheck(model, bptt.MeanSquaredError(), x, y, max_per_param=None)
    assert report.worst < 1e-6, str(report)
    bptt.save(tmp_path / "lin.npz", model)
    back = bptt.load(tmp_path / "lin.npz").model
    assert isinstance(back[0], bptt.Elman) and back[0].spectral_radius == 0.9
    assert back[0].nonlinearity == "linear"
