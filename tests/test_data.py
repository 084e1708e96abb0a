"""bptt.data: padding, masks, bucketing, shuffling, splitting, and the errors on bad input."""

import numpy as np
import pytest

from bptt.data import (SequenceDataset, last_step_mask, many_to_one_targets, masks,
                       pad_sequences)


def features(rng, lengths, D=3):
    return [rng.standard_normal((n, D)) for n in lengths]


def test_pre_padding_aligns_every_sequence_at_the_last_step(rng):
    seqs = features(rng, [2, 4, 1])
    x, mask, resets = pad_sequences(seqs)
    assert x.shape == (4, 3, 3) and x.dtype == np.float64
    assert mask.dtype == bool and resets.dtype == bool
    for b, s in enumerate(seqs):
        n = len(s)
        np.testing.assert_array_equal(x[4 - n:, b], s)
        assert (x[:4 - n, b] == 0).all()
        np.testing.assert_array_equal(mask[:, b], np.arange(4) >= 4 - n)
        np.testing.assert_array_equal(resets[:, b], np.arange(4) == 4 - n)


def test_post_padding_and_its_resets(rng):
    seqs = features(rng, [2, 4, 1])
    x, mask, resets = pad_sequences(seqs, padding="post", dtype=np.float32)
    assert x.dtype == np.float32
    for b, s in enumerate(seqs):
        n = len(s)
        np.testing.assert_allclose(x[:n, b], s.astype(np.float32))
        np.testing.assert_array_equal(mask[:, b], np.arange(4) < n)
        # before step 0 and before the first padded step (cuts a backward direction off)
        want = (np.arange(4) == 0) | (np.arange(4) == n)
        np.testing.assert_array_equal(resets[:, b], want)


def test_tokens_and_one_dimensional_floats():
    x, mask, _ = pad_sequences([np.array([3, 1]), np.array([2, 2, 5])])
    assert x.dtype == np.int64 and x.shape == (3, 2)
    np.testing.assert_array_equal(x[:, 0], [0, 3, 1])
    x, _, _ = pad_sequences([np.array([0.5, 1.0]), np.array([2.0])])
    assert x.shape == (2, 2, 1)  # a 1-D float sequence is (len, 1)
    np.testing.assert_array_equal(x[:, 1, 0], [0.0, 2.0])


def test_readout_masks():
    mask, _, readout = masks([2, 4, 1])
    assert (np.argmax(readout, axis=0) == 3).all()  # pre: the last step of every column
    np.testing.assert_array_equal(last_step_mask(mask), readout)
    mask, _, readout = masks([2, 4, 1], padding="post")
    np.testing.assert_array_equal(np.argmax(readout, axis=0), [1, 3, 0])
    np.testing.assert_array_equal(last_step_mask(mask), readout)
    y, w = many_to_one_targets(np.array([7, 1, 4]), mask)
    assert y.shape == (4, 3) and (y == [7, 1, 4]).all()  # every position a valid class
    np.testing.assert_array_equal(w, readout.astype(float))
    with pytest.raises(ValueError, match="column 1 has no valid step"):
        last_step_mask(np.array([[True, False], [True, False]]))


def test_batches_of_a_dataset(rng):
    lengths = [3, 1, 5, 2]
    seqs = features(rng, lengths)
    ds = SequenceDataset(seqs, np.array([0, 1, 2, 1]))
    b = ds.batch([2, 0])
    assert b.x.shape == (5, 2, 3) and b.y.shape == (5, 2) and (b.y == [2, 0]).all()
    np.testing.assert_array_equal(b.weights, b.readout)
    assert b.readout[4].all() and b.readout.sum() == 2
    np.testing.assert_array_equal(b.lengths, [5, 3])
    mm = SequenceDataset(seqs, [rng.standard_normal((n, 2)) for n in lengths])
    assert mm.task == "many-to-many" and mm.target_kind == "values"
    b = mm.batch([0, 1])
    assert b.y.shape == (3, 2, 2)
    np.testing.assert_array_equal(b.weights, b.mask)
    np.testing.assert_array_equal(b.y[2, 1], mm.targets[1][0])
    assert (b.y[:2, 1] == 0).all()


def test_shuffling_is_seeded_per_epoch_and_covers_every_sequence(rng):
    ds = SequenceDataset(features(rng, rng.integers(1, 30, 101)), np.zeros(101, int))
    e0 = ds.batch_indices(8, shuffle=True, seed=5, epoch=0)
    assert sorted(np.concatenate(e0).tolist()) == list(range(101))
    again = ds.batch_indices(8, shuffle=True, seed=5, epoch=0)
    assert all((a == b).all() for a, b in zip(e0, again))
    e1 = ds.batch_indices(8, shuffle=True, seed=5, epoch=1)
    assert sorted(np.concatenate(e1).tolist()) == list(range(101))
    assert not all(len(a) == len(b) and (a == b).all() for a, b in zip(e0, e1))
    other = ds.batch_indices(8, shuffle=True, seed=6, epoch=0)
    assert not all(len(a) == len(b) and (a == b).all() for a, b in zip(e0, other))
    dropped = ds.batch_indices(8, shuffle=True, seed=5, drop_last=True)
    assert all(len(b) == 8 for b in dropped) and len(dropped) == 12


def test_bucketing_keeps_padding_small(rng):
    ds = SequenceDataset(features(rng, rng.integers(1, 100, 400)), np.zeros(400, int))
    plain = ds.padding_fraction(16, shuffle=True, bucket=False)
    bucketed = ds.padding_fraction(16, shuffle=True, bucket=True)
    assert bucketed < 0.1 < 0.3 < plain
    assert ds.padding_fraction(16, shuffle=False, bucket=True) < 0.05


def test_split_is_seeded_disjoint_and_stratifies(rng):
    labels = np.repeat([0, 1, 2], [60, 30, 10])
    ds = SequenceDataset(features(rng, rng.integers(1, 6, 100)), labels)
    tr, va = ds.split(0.2, seed=3)
    assert len(tr) == 80 and len(va) == 20
    tr2, va2 = ds.split(0.2, seed=3)
    assert (va2.targets == va.targets).all() and (va2.lengths == va.lengths).all()
    tr, va = ds.split(0.2, seed=3, stratify=True)
    np.testing.assert_array_equal(np.bincount(va.targets), [12, 6, 2])
    np.testing.assert_array_equal(np.bincount(tr.targets), [48, 24, 8])
    with pytest.raises(ValueError, match="both need at least one"):
        ds.split(100)
    with pytest.raises(ValueError, match="fraction in \\(0, 1\\) or a count"):
        ds.split(1.5)


def test_from_padded_and_static(rng):
    x = rng.standard_normal((3, 5, 2))
    ds = SequenceDataset.from_padded(x, np.array([5, 2, 3]), np.array([0, 1, 0]))
    np.testing.assert_array_equal(ds.lengths, [5, 2, 3])
    np.testing.assert_array_equal(ds.sequences[1], x[1, :2])
    y = rng.integers(0, 4, (3, 5))
    ds = SequenceDataset.from_padded(x, [5, 2, 3], y, task="many-to-many")
    np.testing.assert_array_equal(ds.targets[2], y[2, :3])
    st = SequenceDataset.static(rng.standard_normal((6, 4)), np.arange(6) % 2)
    assert st.max_length == 1 and st.num_features == 4 and st.task == "many-to-one"
    with pytest.raises(ValueError, match="x holds a non-finite value at row 1, feature 0"):
        SequenceDataset.static(np.array([[0.0, 1.0], [np.inf, 0.0]]))
    with pytest.raises(ValueError, match="lengths\\[1\\] = 7 is outside \\[0, 5\\]"):
        SequenceDataset.from_padded(x, np.array([5, 7, 3]))


# -- bad input: what was expected and what came ----------------------------------------------------
def test_empty_dataset():
    with pytest.raises(ValueError, match="the dataset is empty.*got 0"):
        pad_sequences([])
    with pytest.raises(ValueError, match="the dataset is empty"):
        SequenceDataset([], np.array([], int))
    with pytest.raises(ValueError, match="the dataset is empty"):
        SequenceDataset.static(np.zeros((0, 3)), np.zeros(0, int))


def test_zero_length_sequence_is_named(rng):
    seqs = features(rng, [3, 2]) + [np.zeros((0, 3))] + features(rng, [1])
    with pytest.raises(ValueError, match="sequences\\[2\\] has length 0"):
        pad_sequences(seqs)
    with pytest.raises(ValueError, match="sequences\\[1\\] has length 0"):
        SequenceDataset([np.array([1, 2]), np.array([], dtype=int)], np.array([0, 1]))


def test_ragged_feature_sizes(rng):
    seqs = [rng.standard_normal((3, 4)), rng.standard_normal((2, 4)), rng.standard_normal((2, 5))]
    with pytest.raises(ValueError, match="sequences\\[2\\] has 5 features per step, but "
                                         "sequences\\[0\\] has 4"):
        pad_sequences(seqs)


def test_wrong_types_and_shapes(rng):
    with pytest.raises(TypeError, match="must hold numbers.*got dtype <U1"):
        pad_sequences([np.array(["a", "b"])])
    with pytest.raises(TypeError, match="must be a list of arrays.*got int"):
        pad_sequences(5)
    with pytest.raises(TypeError, match="sequences\\[1\\] holds features .* but sequences\\[0\\] "
                                        "holds integer tokens"):
        pad_sequences([np.array([1, 2]), rng.standard_normal((2, 3))])
    with pytest.raises(ValueError, match="must be \\(len,\\) integer tokens or \\(len, D\\) "
                                         "features, got shape \\(2, 3, 4\\)"):
        pad_sequences([np.zeros((2, 3, 4))])
    with pytest.raises(ValueError, match="a 1-D array"):
        pad_sequences(np.arange(4.0))
    with pytest.raises(ValueError, match="sequences\\[0\\] holds token -3 at step 1"):
        pad_sequences([np.array([1, -3])])
    with pytest.raises(ValueError, match="sequences\\[1\\] holds a non-finite value at step 0, "
                                         "feature 2"):
        pad_sequences([np.zeros((1, 3)), np.array([[0, 0, np.nan]])])
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got float16"):
        pad_sequences([np.zeros((1, 3))], dtype=np.float16)
    with pytest.raises(ValueError, match="padding must be one of"):
        pad_sequences([np.zeros((1, 3))], padding="middle")


def test_bad_targets(rng):
    seqs = features(rng, [2, 3, 1])
    with pytest.raises(ValueError, match="got 3 sequences but 2 targets"):
        SequenceDataset(seqs, np.array([0, 1]))
    with pytest.raises(ValueError, match="label 4 of sequence 1 is outside the 3 classes "
                                         "\\[0, 3\\)"):
        SequenceDataset(seqs, np.array([0, 4, 1]), num_classes=3)
    with pytest.raises(ValueError, match="label -1 of sequence 2"):
        SequenceDataset(seqs, np.array([0, 1, -1]), num_classes=3)
    with pytest.raises(ValueError, match="label 3 at step 1 of sequence 1"):
        SequenceDataset(seqs, [np.array([0, 1]), np.array([0, 3, 1]), np.array([2])],
                        num_classes=3)
    with pytest.raises(ValueError, match="targets\\[1\\] must have one entry per step of "
                                         "sequence 1 \\(3 steps\\), got shape \\(2,\\)"):
        SequenceDataset(seqs, [np.array([0, 1]), np.array([0, 1]), np.array([2])])
    with pytest.raises(TypeError, match="targets must hold numbers"):
        SequenceDataset(seqs, np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match="task must be one of"):
        SequenceDataset(seqs, np.array([0, 1, 2]), task="one-to-many")
