"""Datasets of variable-length sequences: padding, bucketing, shuffling, splitting, batches.

A dataset is a list of sequences, each ``(len_i, D)`` floats (features; a 1-D float array is
read as ``(len_i, 1)``) or ``(len_i,)`` integers (tokens for an Embedding), with one target per
sequence (*many-to-one*: a class label, or a vector) or one per step (*many-to-many*).

Padding scheme (pre-padding, as Keras's ``pad_sequences`` by default). A batch of B sequences
becomes a time-major array of T = max(len_i) steps in which every sequence is padded at the
*front*, so all of them end at step T - 1, and

- ``mask[t, b]`` is True at the valid steps ``T - len_b <= t < T``;
- ``resets[T - len_b, b]`` is True: the model's state is zeroed before each sequence's first
  valid step, so the state entering it is exactly zero whatever ran over the padding, and no
  value or gradient crosses from the valid steps into the padding (``bptt.unroll``);
- the loss weights are 0 on the padding (many-to-many: the weights are the mask) and, for
  many-to-one, 1 at each sequence's *last valid step* only (``readout``), which under
  pre-padding is step T - 1 for every sequence.

The padding therefore contributes nothing to the loss, the gradients or the final state: the
final state of each stream is the state after its last valid step, and a padded batch gives the
same loss and gradients as its sequences run one at a time (up to the order of floating-point
sums; ``tests/test_sequences.py`` checks it for Elman, LSTM, GRU and Bidirectional). A
Bidirectional part reads the sequence backward from step T - 1, a valid step, and meets the
padding only after the valid steps, behind the reversed reset.

``padding="post"`` (valid steps first) is also offered: resets are then set before step 0 and
before each sequence's first padded step, which keeps the loss, the gradients and Bidirectional
outputs exact, but the final state is then the state after the padding, not after the last
valid step. Dropout draws masks over padded steps too, so in training mode with Dropout a padded
batch equals the one-by-one run in distribution, not to the bit.
"""

import numbers
from dataclasses import dataclass

import numpy as np

from ._validate import as_dtype, choice, positive_int

TASKS = ("many-to-one", "many-to-many")
PADDINGS = ("pre", "post")


# -- checking sequences --------------------------------------------------------------------------
def _as_list(items, name):
    """A non-empty list of the items of a list, tuple, object array or sample-major array."""
    if isinstance(items, np.ndarray):
        if items.dtype == object:
            items = list(items)
        elif items.ndim >= 2:
            items = list(items)  # sample-major (N, len, ...) of equal lengths
        else:
            raise ValueError(f"{name} must be a list of sequences, got a {items.ndim}-D array of "
                             f"shape {items.shape}; wrap a single sequence in a list")
    elif isinstance(items, (list, tuple)):
        items = list(items)
    else:
        raise TypeError(f"{name} must be a list of arrays (one per sequence), got "
                        f"{type(items).__name__}")
    if not items:
        raise ValueError(f"the dataset is empty: {name} must hold at least one sequence, got 0")
    return items


def _numeric(a, what):
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold numbers (integers for tokens or class labels, floats "
                        f"for features or values), got dtype {a.dtype}")


def check_sequences(sequences, name="sequences"):
    """Validate a list of sequences; returns ``(list of arrays, kind, num_features)``.

    kind is ``"tokens"`` (each ``(len_i,)`` int64, num_features None) or ``"features"`` (each
    ``(len_i, D)`` floats, num_features D). Refused, naming the sequence's index: an empty list,
    a zero-length sequence, a non-numeric dtype (TypeError), a mix of tokens and features
    (TypeError), more than 2 dimensions, feature sizes that differ from sequence 0, negative
    tokens, non-finite values.
    """
    items = _as_list(sequences, name)
    out, kind, size = [], None, None
    for i, s in enumerate(items):
        a = np.asarray(s)
        _numeric(a, f"{name}[{i}]")
        if a.ndim == 0 or a.ndim > 2:
            raise ValueError(f"{name}[{i}] must be (len,) integer tokens or (len, D) features, "
                             f"got shape {a.shape}")
        if a.shape[0] == 0:
            raise ValueError(f"{name}[{i}] has length 0: every sequence needs at least one step "
                             "(drop it, or give it one step)")
        k = "tokens" if (a.ndim == 1 and a.dtype.kind in "iu") else "features"
        if kind is None:
            kind = k
        elif k != kind:
            first = "integer tokens (len,)" if kind == "tokens" else "features (len, D)"
            this = "integer tokens (len,)" if k == "tokens" else f"features of shape {a.shape}"
            raise TypeError(f"{name}[{i}] holds {this} but {name}[0] holds {first}: a dataset "
                            "holds one kind")
        if k == "tokens":
            a = a.astype(np.int64, copy=False)
            if a.min() < 0:
                t = int(np.flatnonzero(a < 0)[0])
                raise ValueError(f"{name}[{i}] holds token {int(a[t])} at step {t}; tokens must "
                                 "be >= 0")
        else:
            if a.ndim == 1:
                a = a[:, None]
            if a.dtype.kind != "f":
                a = a.astype(np.float64)
            if size is None:
                size = a.shape[1]
            elif a.shape[1] != size:
                raise ValueError(f"{name}[{i}] has {a.shape[1]} features per step, but "
                                 f"{name}[0] has {size}: every sequence must have the same "
                                 "feature size")
            if not np.isfinite(a).all():
                t, d = np.argwhere(~np.isfinite(a))[0]
                raise ValueError(f"{name}[{i}] holds a non-finite value at step {int(t)}, "
                                 f"feature {int(d)}")
        out.append(a)
    return out, kind, size


def _pad_into(dest, seqs, lengths, padding):
    """Copy each sequence into column b of dest (T, B, ...), aligned by ``padding``."""
    T = dest.shape[0]
    if (lengths == T).all():
        np.stack(seqs, axis=1, out=dest)
        return dest
    for b, (s, n) in enumerate(zip(seqs, lengths)):
        if padding == "pre":
            dest[T - n:, b] = s
        else:
            dest[:n, b] = s
    return dest


def masks(lengths, padding="pre", T=None):
    """``(mask, resets, readout)``, each a boolean (T, B) array, for sequences of ``lengths``.

    mask: the valid steps; resets: zero the state before each sequence's first valid step (and,
    for ``"post"``, before its first padded step); readout: each sequence's last valid step
    (step T - 1 for every sequence under ``"pre"``)."""
    padding = choice("padding", padding, set(PADDINGS))
    lengths = np.asarray(lengths, dtype=np.int64)
    T = int(lengths.max()) if T is None else int(T)
    B = lengths.shape[0]
    steps = np.arange(T)[:, None]
    cols = np.arange(B)
    if padding == "pre":
        first, last = T - lengths, np.full(B, T - 1)
        mask = steps >= first
    else:
        first, last = np.zeros(B, np.int64), lengths - 1
        mask = steps < lengths
    resets = np.zeros((T, B), dtype=bool)
    resets[first, cols] = True
    if padding == "post":
        short = lengths < T
        resets[lengths[short], cols[short]] = True
    readout = np.zeros((T, B), dtype=bool)
    readout[last, cols] = True
    return mask, resets, readout


def pad_sequences(sequences, padding="pre", dtype=None, value=0):
    """Pad variable-length sequences into one time-major batch.

    sequences: a list of ``(len_i, D)`` float arrays (a 1-D float array is ``(len_i, 1)``) or of
        ``(len_i,)`` integer token arrays; at least one, none of length 0.
    padding: ``"pre"`` (default: pad at the front, every sequence ends at step T - 1) or
        ``"post"`` (pad at the back). See the module docstring for what each keeps exact.
    dtype: of the float features (float32 or float64; default: float64 unless every sequence is
        float32). Tokens are always int64.
    value: what fills the padding (0; a token value must be a valid token, since it reaches the
        Embedding, with zero gradient).

    Returns ``(x, mask, resets)``: x (T, B, D) floats or (T, B) int64 tokens with T = max(len_i),
    mask (T, B) bool (True at valid steps), resets (T, B) bool (True before each sequence's first
    valid step; pass it to ``model.forward``/``value_and_grad``/``TBPTT``).
    """
    seqs, kind, size = check_sequences(sequences)
    padding = choice("padding", padding, set(PADDINGS))
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    x = _alloc(seqs, kind, size, lengths.max(), dtype, value)
    _pad_into(x, seqs, lengths, padding)
    mask, resets, _ = masks(lengths, padding)
    return x, mask, resets


def _alloc(seqs, kind, size, T, dtype, value):
    B = len(seqs)
    if kind == "tokens":
        if dtype is not None and not np.issubdtype(np.dtype(dtype), np.integer):
            raise TypeError(f"token sequences are padded as integers; dtype must be an integer "
                            f"type, got {np.dtype(dtype)}")
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"the padding value of token sequences must be a token >= 0, got "
                             f"{value!r}")
        return np.full((T, B), value, dtype=np.int64)
    if dtype is None:
        dtype = (np.float32 if all(s.dtype == np.float32 for s in seqs) else np.float64)
    dtype = as_dtype(dtype)
    return np.full((T, B, size), value, dtype=dtype)


def last_step_mask(mask):
    """The readout mask of a (T, B) validity mask: True at each column's last valid step.

    Under pre-padding that is step T - 1 of every column; under post-padding step len_b - 1."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be (T, B), got shape {m.shape}")
    empty = ~m.any(axis=0)
    if empty.any():
        raise ValueError(f"mask column {int(np.flatnonzero(empty)[0])} has no valid step")
    T = m.shape[0]
    last = T - 1 - np.argmax(m[::-1], axis=0)
    out = np.zeros_like(m)
    out[last, np.arange(m.shape[1])] = True
    return out


def many_to_one_targets(labels, mask, dtype=np.float64):
    """Targets and loss weights that make a per-step loss read one output per sequence.

    labels: (B,) integer class labels, or (B, C) target vectors; mask: (T, B) validity mask.
    Returns ``(y, weights)``: y (T, B) or (T, B, C), the label repeated at every step (so every
    position holds a valid class, though only one counts), and weights (T, B), 1 at each
    sequence's last valid step (:func:`last_step_mask`) and 0 elsewhere. With
    ``loss(out, y, weights)`` and reduction "mean", the loss is the mean over the B sequences of
    the loss at their last valid step.
    """
    readout = last_step_mask(mask)
    T, B = readout.shape
    lab = np.asarray(labels)
    _numeric(lab, "labels")
    if lab.shape[:1] != (B,) or lab.ndim > 2:
        raise ValueError(f"labels must be (B,) or (B, C) with B = {B}, got shape {lab.shape}")
    y = np.ascontiguousarray(np.broadcast_to(lab, (T,) + lab.shape))
    return y, readout.astype(dtype)


# -- batches and datasets ------------------------------------------------------------------------
@dataclass
class Batch:
    """One padded, time-major batch of a :class:`SequenceDataset`.

    x: (T, B, D) floats or (T, B) tokens; y: targets (T, B) class labels or (T, B, C) values
    (None for a dataset without targets); weights: (T, B) loss weights (the readout mask for
    many-to-one, the validity mask for many-to-many; None without targets); resets, mask,
    readout: (T, B) bool (see :func:`masks`); lengths: (B,); index: (B,) positions in the dataset.
    """

    x: np.ndarray
    y: object
    weights: object
    resets: np.ndarray
    mask: np.ndarray
    readout: np.ndarray
    lengths: np.ndarray
    index: np.ndarray

    @property
    def size(self):
        return int(self.lengths.shape[0])

    @property
    def steps(self):
        return int(self.x.shape[0])


def _rng(seed, epoch):
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be an integer >= 0, a numpy Generator or None, got {seed!r}")
    return np.random.default_rng([int(seed), int(epoch)])


class SequenceDataset:
    """``SequenceDataset(sequences, targets=None, task=None, num_classes=None, padding="pre")``

    sequences: a list (or object array) of ``(len_i, D)`` float arrays or ``(len_i,)`` integer
        token arrays, or a sample-major array ``(N, L, ...)`` of equal-length sequences.
    targets: None (for prediction only), or
        - many-to-one: an array with one entry per sequence: ``(N,)`` integer class labels,
          ``(N,)`` floats (read as ``(N, 1)``) or ``(N, C)`` values;
        - many-to-many: a list with one array per sequence, of that sequence's length:
          ``(len_i,)`` integer labels, ``(len_i,)`` floats or ``(len_i, C)`` values.
    task: ``"many-to-one"`` or ``"many-to-many"``; by default an array of targets is
        many-to-one and a list of arrays many-to-many. With ``task="many-to-many"`` an array
        ``(N, L, ...)`` is read as per-step targets, the first len_i steps belonging to sequence i.
    num_classes: if given, integer labels are checked to lie in [0, num_classes).
    padding: how :meth:`batch` pads (``"pre"``, default, or ``"post"``; see the module docs).

    Attributes: ``sequences`` (list of arrays), ``targets``, ``lengths`` (N,), ``kind``
    ("tokens" or "features"), ``num_features``, ``task``, ``target_kind`` ("classes", "values"
    or None), ``num_targets`` (C for values).
    """

    def __init__(self, sequences, targets=None, task=None, num_classes=None, padding="pre"):
        self._init(check_sequences(sequences), targets, task, num_classes, padding)

    def _init(self, checked, targets, task, num_classes, padding):
        self.sequences, self.kind, self.num_features = checked
        self.lengths = np.array([len(s) for s in self.sequences], dtype=np.int64)
        self.padding = choice("padding", padding, set(PADDINGS))
        if task is not None:
            choice("task", task, set(TASKS))
        self.targets, self.task, self.target_kind, self.num_targets = None, task, None, None
        if targets is not None:
            self._set_targets(targets, task)
        if num_classes is not None:
            self.check_labels(num_classes)

    # -- construction helpers ------------------------------------------------------------------
    @classmethod
    def from_padded(cls, x, lengths, targets=None, task=None, num_classes=None, padding="pre"):
        """From a sample-major padded array ``x`` (N, L, D) or (N, L) holding each sequence's
        valid steps first (``x[i, :lengths[i]]``), as sequences are usually stored on disk.
        Many-to-many targets may likewise be padded (N, L) or (N, L, C)."""
        x = np.asarray(x)
        lengths = np.asarray(lengths)
        if lengths.dtype.kind not in "iu":
            raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
        if x.ndim < 2 or lengths.shape != (x.shape[0],):
            raise ValueError(f"lengths must be (N,) for x of shape (N, L, ...); got x "
                             f"{x.shape} and lengths {lengths.shape}")
        if lengths.size and (lengths.min() < 0 or lengths.max() > x.shape[1]):
            i = int(np.flatnonzero((lengths < 0) | (lengths > x.shape[1]))[0])
            raise ValueError(f"lengths[{i}] = {int(lengths[i])} is outside [0, {x.shape[1]}] "
                             f"(x holds {x.shape[1]} steps)")
        seqs = [x[i, :n] for i, n in enumerate(lengths)]
        if targets is not None and task == "many-to-many":
            t = np.asarray(targets)
            if t.dtype != object:
                targets = [t[i, :n] for i, n in enumerate(lengths)]
        return cls(seqs, targets, task=task, num_classes=num_classes, padding=padding)

    @classmethod
    def static(cls, x, targets=None, num_classes=None):
        """Static data: rows of ``x`` (N, D) become sequences of one step (T = 1), so a model
        with no recurrent part (Dense -> Tanh -> Dense) trains through the same code."""
        x = np.asarray(x)
        _numeric(x, "x")
        if x.ndim != 2:
            raise ValueError(f"static inputs must be (N, D), got shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError("the dataset is empty: x must hold at least one row, got 0")
        if x.dtype.kind != "f":
            x = x.astype(np.float64)
        if not np.isfinite(x).all():
            i, d = np.argwhere(~np.isfinite(x))[0]
            raise ValueError(f"x holds a non-finite value at row {int(i)}, feature {int(d)}")
        # checked as a whole: no per-row checks for what may be a million rows
        new = object.__new__(cls)
        new._init((list(x[:, None, :]), "features", x.shape[1]), targets,
                  "many-to-one" if targets is not None else None, num_classes, "pre")
        return new

    def _set_targets(self, targets, task):
        N = len(self.sequences)
        if task is None:
            is_list = isinstance(targets, (list, tuple)) or (
                isinstance(targets, np.ndarray) and targets.dtype == object)
            task = "many-to-many" if is_list else "many-to-one"
        self.task = task
        if task == "many-to-one":
            y = np.asarray(targets)
            if y.dtype == object:
                raise TypeError("many-to-one targets must be a numeric array with one entry per "
                                "sequence, got an object array (a list of per-step targets is "
                                "many-to-many)")
            _numeric(y, "targets")
            if y.ndim == 0 or y.shape[0] != N:
                raise ValueError(f"got {N} sequences but {y.shape[0] if y.ndim else 0} targets "
                                 f"(targets shape {y.shape})")
            if y.dtype.kind in "iu":
                if y.ndim != 1:
                    raise ValueError(f"integer class labels must be (N,) = ({N},), got shape "
                                     f"{y.shape} (use floats for target vectors)")
                self.target_kind, self.targets = "classes", y.astype(np.int64)
            else:
                if y.ndim > 2:
                    raise ValueError(f"many-to-one target values must be (N,) or (N, C), got "
                                     f"shape {y.shape}")
                y = y.astype(np.float64) if y.dtype.kind != "f" else y
                y = y[:, None] if y.ndim == 1 else y
                if not np.isfinite(y).all():
                    i = int(np.argwhere(~np.isfinite(y))[0][0])
                    raise ValueError(f"the target of sequence {i} holds a non-finite value")
                self.target_kind, self.targets, self.num_targets = "values", y, y.shape[1]
            return
        # many-to-many: one array per sequence
        if isinstance(targets, np.ndarray) and targets.dtype != object:
            if targets.ndim < 2 or targets.shape[0] != N:
                raise ValueError(f"many-to-many targets as an array must be (N, L, ...) with "
                                 f"N = {N}, got shape {targets.shape}")
            targets = [targets[i, :n] for i, n in enumerate(self.lengths)]
        items = _as_list(targets, "targets")
        if len(items) != N:
            raise ValueError(f"got {N} sequences but {len(items)} per-step targets")
        out, kind, size = [], None, None
        for i, t in enumerate(items):
            a = np.asarray(t)
            _numeric(a, f"targets[{i}]")
            if a.ndim == 0 or a.ndim > 2 or a.shape[0] != self.lengths[i]:
                raise ValueError(f"targets[{i}] must have one entry per step of sequence {i} "
                                 f"({self.lengths[i]} steps), got shape {a.shape}")
            k = "classes" if (a.ndim == 1 and a.dtype.kind in "iu") else "values"
            if kind is None:
                kind = k
            elif k != kind:
                raise TypeError(f"targets[{i}] holds {k} but targets[0] holds {kind}: use "
                                "integer labels (len,) or float values (len, C) throughout")
            if k == "classes":
                a = a.astype(np.int64, copy=False)
            else:
                a = a.astype(np.float64) if a.dtype.kind != "f" else a
                a = a[:, None] if a.ndim == 1 else a
                if size is None:
                    size = a.shape[1]
                elif a.shape[1] != size:
                    raise ValueError(f"targets[{i}] has {a.shape[1]} values per step, but "
                                     f"targets[0] has {size}")
                if not np.isfinite(a).all():
                    t = int(np.argwhere(~np.isfinite(a))[0][0])
                    raise ValueError(f"targets[{i}] holds a non-finite value at step {t}")
            out.append(a)
        self.target_kind, self.targets, self.num_targets = kind, out, size

    def check_labels(self, num_classes, ignore_index=None):
        """Raise ValueError naming the first label outside [0, num_classes) (``ignore_index``
        excepted), TypeError if the targets are not integer labels."""
        num_classes = positive_int("num_classes", num_classes)
        if self.target_kind != "classes":
            raise TypeError(f"class labels must be integers, got {self.target_kind or 'no'} "
                            "targets")
        if self.task == "many-to-one":
            arrays = [self.targets]
        else:
            arrays = self.targets
        for j, a in enumerate(arrays):
            bad = (a < 0) | (a >= num_classes)
            if ignore_index is not None:
                bad &= a != ignore_index
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                where = (f"of sequence {k}" if self.task == "many-to-one"
                         else f"at step {k} of sequence {j}")
                raise ValueError(f"label {int(a[k])} {where} is outside the {num_classes} "
                                 f"classes [0, {num_classes})")

    # -- views -------------------------------------------------------------------------------
    def __len__(self):
        return len(self.sequences)

    @property
    def max_length(self):
        return int(self.lengths.max())

    def subset(self, indices):
        """A dataset of the sequences at ``indices`` (sharing their arrays)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError("the dataset is empty: a subset needs at least one index")
        if idx.min() < -len(self) or idx.max() >= len(self):
            raise IndexError(f"indices must lie in [0, {len(self)}), got "
                             f"{int(idx.min())}..{int(idx.max())}")
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.sequences = [self.sequences[i] for i in idx]
        new.lengths = self.lengths[idx]
        if self.targets is not None:
            new.targets = (self.targets[idx] if self.task == "many-to-one"
                           else [self.targets[i] for i in idx])
        return new

    def split(self, validation=0.2, seed=0, stratify=False):
        """``(train, validation)`` datasets, drawn under ``seed`` (the same split every time).

        validation: a fraction in (0, 1) or a number of sequences; stratify: keep each class's
        share in both parts (many-to-one class labels only)."""
        N = len(self)
        if isinstance(validation, numbers.Integral) and not isinstance(validation, bool):
            n_val = int(validation)
        elif isinstance(validation, numbers.Real) and 0 < validation < 1:
            n_val = int(round(validation * N))
        else:
            raise ValueError(f"validation must be a fraction in (0, 1) or a count, got "
                             f"{validation!r}")
        if not 1 <= n_val <= N - 1:
            raise ValueError(f"a split of {N} sequences with validation={validation!r} leaves "
                             f"{n_val} for validation and {N - n_val} for training; both need at "
                             "least one")
        rng = _rng(seed, 0)
        if stratify:
            if self.task != "many-to-one" or self.target_kind != "classes":
                raise ValueError("stratify=True needs many-to-one integer class labels")
            val = []
            for c in np.unique(self.targets):
                members = rng.permutation(np.flatnonzero(self.targets == c))
                val.extend(members[:int(round(len(members) * n_val / N))])
            val = np.array(sorted(val), dtype=np.int64)
            if not 1 <= val.size <= N - 1:
                raise ValueError(f"a stratified split of {N} sequences leaves {val.size} for "
                                 "validation; use a larger validation fraction")
        else:
            val = np.sort(rng.permutation(N)[:n_val])
        train = np.setdiff1d(np.arange(N), val)
        return self.subset(train), self.subset(val)

    # -- batches -----------------------------------------------------------------------------
    def batch(self, indices, dtype=None):
        """The padded :class:`Batch` of the sequences at ``indices`` (features in ``dtype``,
        default the data's own)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError("a batch needs at least one sequence")
        seqs = [self.sequences[i] for i in idx]
        lengths = self.lengths[idx]
        T = int(lengths.max())
        x = _pad_into(_alloc(seqs, self.kind, self.num_features, T, dtype, 0), seqs, lengths,
                      self.padding)
        mask, resets, readout = masks(lengths, self.padding, T)
        y = weights = None
        wdtype = x.dtype if x.dtype.kind == "f" else np.float64
        if self.targets is not None:
            if self.task == "many-to-one":
                lab = self.targets[idx]
                if self.target_kind == "values":
                    lab = lab.astype(wdtype, copy=False)
                y = np.ascontiguousarray(np.broadcast_to(lab, (T,) + lab.shape))
                weights = readout.astype(wdtype)
            else:
                tg = [self.targets[i] for i in idx]
                if self.target_kind == "classes":
                    y = np.zeros((T, len(idx)), dtype=np.int64)
                else:
                    y = np.zeros((T, len(idx), self.num_targets), dtype=wdtype)
                _pad_into(y, tg, lengths, self.padding)
                weights = mask.astype(wdtype)
        return Batch(x, y, weights, resets, mask, readout, lengths, idx)

    def batch_indices(self, batch_size, shuffle=False, seed=0, epoch=0, bucket=True, pool=32,
                      drop_last=False):
        """The index arrays of one epoch's batches (see :meth:`batches`)."""
        batch_size = positive_int("batch_size", batch_size)
        N = len(self)
        if shuffle:
            rng = _rng(seed, epoch)
            order = rng.permutation(N)
            if bucket:
                span = N if pool is None else positive_int("pool", pool) * batch_size
                groups = []
                for a in range(0, N, span):
                    g = order[a:a + span]
                    groups.append(g[np.argsort(self.lengths[g], kind="stable")])
                order = np.concatenate(groups)
        else:
            order = (np.argsort(self.lengths, kind="stable") if bucket else np.arange(N))
        batches = [order[a:a + batch_size] for a in range(0, N, batch_size)]
        if drop_last and len(batches[-1]) < batch_size:
            batches.pop()
        if shuffle and batches:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def batches(self, batch_size, shuffle=False, seed=0, epoch=0, bucket=True, pool=32,
                drop_last=False, dtype=None):
        """Iterate over one epoch as padded :class:`Batch` es.

        shuffle: draw a new order for each ``epoch`` from ``seed`` (the order depends on
            ``(seed, epoch)`` alone, so a resumed run sees the same batches; a numpy Generator
            may be given instead of an int);
        bucket: put sequences of similar length together so padding stays small: the shuffled
            sequences are cut into pools of ``pool`` batches (``pool=None``: the whole dataset),
            each pool is sorted by length and cut into batches, and the batches are shuffled.
            Without shuffling, bucketing sorts the whole dataset by length.
        drop_last: leave out a last batch smaller than ``batch_size``.
        """
        for idx in self.batch_indices(batch_size, shuffle, seed, epoch, bucket, pool,
                                      drop_last):
            yield self.batch(idx, dtype)

    def padding_fraction(self, batch_size, **kwargs):
        """Fraction of padded positions over one epoch of :meth:`batches` (for tuning)."""
        total = valid = 0
        for idx in self.batch_indices(batch_size, **kwargs):
            L = self.lengths[idx]
            total += int(L.max()) * len(idx)
            valid += int(L.sum())
        return 1.0 - valid / total

    def __repr__(self):
        what = (f"{self.num_features} features" if self.kind == "features" else "tokens")
        return (f"SequenceDataset({len(self)} sequences of {what}, lengths "
                f"{int(self.lengths.min())}..{int(self.lengths.max())}, task={self.task!r}, "
                f"targets={self.target_kind!r})")
