"""save/load: round trips, resuming exactly, atomic writes, and clear errors."""

import os

import numpy as np
import pytest

import bptt


def model(seed=0, H=6):
    return bptt.Sequential([bptt.Embedding(9, 4), bptt.Dropout(0.2), bptt.GRU(4, H),
                            bptt.Dense(H, 9)], seed=seed)


def data(rng, L=24, B=3):
    return rng.integers(0, 9, (L, B)), rng.integers(0, 9, (L, B))


def test_round_trip_rebuilds_the_model(tmp_path, rng):
    m = bptt.Sequential([bptt.Embedding(9, 4), bptt.Bidirectional(bptt.LSTM(4, 3)),
                         bptt.Tanh(), bptt.Dense(6, 9)], dtype=np.float64, seed=2)
    path = bptt.save(tmp_path / "m.npz", m, note="hello", table=np.arange(4), step=7)
    ck = bptt.load(path)
    assert ck.optimizer is None and ck.extra["note"] == "hello" and ck.extra["step"] == 7
    np.testing.assert_array_equal(ck.extra["table"], np.arange(4))
    assert ck.model.dtype == np.float64
    x, y = data(rng)
    np.testing.assert_array_equal(ck.model.forward(x)[0], m.forward(x)[0])
    assert list(ck.model.named_parameters()) == list(m.named_parameters())


@pytest.mark.parametrize("k1,k2,accumulate", [(6, 6, 1), (6, 8, 1), (4, 11, 1), (6, 6, 3),
                                               (4, None, 1)])
def test_resume_continues_exactly(tmp_path, rng, k1, k2, accumulate):
    """Train over a stream; or train half of it, save, load everything into fresh objects and
    train the rest: the same parameters to the last bit (optimizer state, learning-rate
    schedule, dropout masks, carried state, kept overlap and pending gradient included)."""
    x, y = data(rng)
    loss = bptt.SoftmaxCrossEntropy()

    def trainer(seed=0):
        m = model(seed)
        opt = bptt.optim.Adam(m.named_parameters(), lr=bptt.optim.StepLR(0.01, 2, 0.5))
        return bptt.TBPTT(m, loss, opt, k1=k1, k2=k2, clip=bptt.ClipGlobalNorm(1.0),
                          accumulate=accumulate)

    whole = trainer()
    whole.fit(x, y)

    first = trainer()
    first.step(x[:12], y[:12])
    bptt.save(tmp_path / "ck.npz", trainer=first, data_position=12)
    second = trainer(seed=99)           # different weights: all of it must come from the file
    ck = bptt.load(tmp_path / "ck.npz", trainer=second)
    assert ck.extra["data_position"] == 12 and second.position == 12
    second.step(x[12:], y[12:])
    for k, v in whole.model.named_parameters().items():
        np.testing.assert_array_equal(second.model.named_parameters()[k], v, err_msg=k)
    assert second.optimizer.steps == whole.optimizer.steps
    assert second.model.get_rng_state() == whole.model.get_rng_state()


def test_resume_with_k1_equal_k2_matches_uninterrupted(tmp_path, rng):
    x, y = data(rng)
    loss = bptt.SoftmaxCrossEntropy()
    m1 = model()
    o1 = bptt.optim.SGD(m1.named_parameters(), lr=0.1, momentum=0.9)
    t1 = bptt.TBPTT(m1, loss, o1, k1=6)
    t1.fit(x, y)
    m2 = model()
    o2 = bptt.optim.SGD(m2.named_parameters(), lr=0.1, momentum=0.9)
    t2 = bptt.TBPTT(m2, loss, o2, k1=6)
    t2.step(x[:12], y[:12])
    bptt.save(tmp_path / "ck.npz", m2, o2)
    ck = bptt.load(tmp_path / "ck.npz")
    t3 = bptt.TBPTT(ck.model, loss, ck.optimizer, k1=6)
    t3.state, t3.position = t2.state, t2.position
    t3.step(x[12:], y[12:])
    for k, v in m1.named_parameters().items():
        np.testing.assert_array_equal(ck.model.named_parameters()[k], v, err_msg=k)


def test_load_into_existing_objects_and_mismatch(tmp_path):
    m = model()
    opt = bptt.optim.RMSprop(m.named_parameters(), lr=0.01)
    bptt.save(tmp_path / "a.npz", m, opt)
    other = model(seed=5)
    other_opt = bptt.optim.RMSprop(other.named_parameters())
    target = model(seed=5)
    target_opt = bptt.optim.RMSprop(target.named_parameters(), lr=0.5)
    ck = bptt.load(tmp_path / "a.npz", model=target, optimizer=target_opt)
    assert ck.model is target and ck.optimizer is target_opt and target_opt.lr == 0.01
    for k, v in m.named_parameters().items():
        np.testing.assert_array_equal(target.named_parameters()[k], v)
    wrong = model(H=7)
    before = {k: v.copy() for k, v in wrong.named_parameters().items()}
    with pytest.raises(bptt.CheckpointError, match=r"'2.weight_ih': expected shape \(21, 4\), "
                                                    r"got \(18, 4\)"):
        bptt.load(tmp_path / "a.npz", model=wrong)
    for k, v in wrong.named_parameters().items():
        np.testing.assert_array_equal(v, before[k])
    bptt.save(tmp_path / "b.npz", m)
    with pytest.raises(bptt.CheckpointError, match="no optimizer state"):
        bptt.load(tmp_path / "b.npz", model=other, optimizer=other_opt)
    trainer = bptt.TBPTT(other, bptt.SoftmaxCrossEntropy(), other_opt, k1=4)
    with pytest.raises(bptt.CheckpointError, match="no trainer state"):
        bptt.load(tmp_path / "a.npz", trainer=trainer)


def test_damaged_and_foreign_files(tmp_path):
    path = tmp_path / "m.npz"
    bptt.save(path, model())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(bptt.CheckpointError, match="not a readable checkpoint"):
        bptt.load(path)
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(bptt.CheckpointError, match="not a readable checkpoint"):
        bptt.load(tmp_path / "t.txt")
    np.savez(tmp_path / "plain.npz", a=np.arange(3))
    with pytest.raises(bptt.CheckpointError, match="not a bptt checkpoint"):
        bptt.load(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError):
        bptt.load(tmp_path / "missing.npz")
    with pytest.raises(TypeError, match="extra value 'f' must be built of numpy arrays"):
        bptt.save(tmp_path / "x.npz", model(), f=object())


def test_write_is_atomic(tmp_path, monkeypatch):
    """A crash while writing leaves the previous file intact and no temporary behind."""
    path = tmp_path / "m.npz"
    m = model()
    bptt.save(path, m)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        bptt.save(path, model(seed=9))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def test_file_mode_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = bptt.save(tmp_path / "m.npz", model())
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644
