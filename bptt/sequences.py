"""Training on datasets of sequences, and on static data: :func:`fit`, :func:`evaluate`,
:func:`predict`.

The data are a list of variable-length sequences with one target each (many-to-one) or one per
step (many-to-many), a :class:`~bptt.data.SequenceDataset`, a time-major array (T, N, D) of
equal-length sequences, or a static array (N, D) (rows become sequences of one step, so a model
with no recurrent part trains through the same code). Batches are pre-padded (see
:mod:`bptt.data`): padding contributes nothing to the loss, the gradients or the final state,
and the many-to-one loss reads the output at each sequence's last valid step.

Per batch, :func:`fit` computes the loss and its exact gradient by full backpropagation through
time (``k1=None, k2=None``, the default), or runs :class:`~bptt.TBPTT` over the batch for long
sequences (``k1``/``k2`` given; the state starts from zero at every batch). Then, in this order:
the non-finite guard, the L1/L2 penalty's gradient is added, the clips run, the optimizer steps.

Penalties follow Keras's convention: ``l1 * sum|w| + l2 * sum w**2`` over the penalised
parameters, added once per update to the batch's mean loss (so their strength does not depend on
the batch size), gradient ``l1 * sign(w) + 2 * l2 * w`` (sign(0) = 0). By default only weights
are penalised, not biases (``penalize="weights"``: every parameter whose name ends in a
``weight...`` component: Dense and Embedding ``weight``, cell ``weight_ih``/``weight_hh``,
``..._reverse``); ``penalize="all"``, a list of names, or a callable ``name -> bool`` choose
otherwise. They are besides the optimizers' own ``weight_decay`` (which acts in the update and
is not part of the reported loss).

Metrics: ``loss`` is the loss over the dataset as the loss reduces it (reduction "mean": the
weighted mean over all counted positions, so many-to-one the mean over sequences and
many-to-many the mean over valid steps; reduction "sum": the sum per sequence), plus the
penalty for the training loss; ``accuracy`` (for :class:`~bptt.SoftmaxCrossEntropy`: argmax
equals the label; for :class:`~bptt.BinaryCrossEntropyWithLogits`: ``logit > 0`` equals
``target > 0.5``, averaged over outputs) counts each position with a non-zero weight once.
Training figures are those of the batches as they were trained (with Dropout on);
validation figures come from :func:`evaluate` after the epoch (Dropout off, no penalty).
"""

import math
import sys
import time
import warnings

import numpy as np

from . import optim as _optim
from ._validate import choice, positive_float, positive_int
from .clip import Clip, as_clip_list, global_norm
from .data import SequenceDataset
from .errors import NonFiniteError
from .losses import BinaryCrossEntropyWithLogits, MeanSquaredError, SoftmaxCrossEntropy
from .module import BackwardContext
from .tbptt import TBPTT
from .value_and_grad import check_model


# -- data in any of the accepted forms -----------------------------------------------------------
def as_dataset(x, y=None, task=None, padding="pre"):
    """A :class:`~bptt.data.SequenceDataset` from what :func:`fit` accepts:

    - a SequenceDataset (then ``y`` must be None);
    - a list (or object array) of variable-length sequences, with targets ``y``;
    - a 2-D array (N, D): static data, each row a sequence of one step;
    - a 3-D float array (T, N, D): N time-major sequences of equal length (the library's
      layout; T = 1 is static data). ``y`` (N,) or (N, C) is many-to-one, (T, N) or (T, N, C)
      many-to-many (pass ``task=`` if the shape cannot tell).
    """
    if isinstance(x, SequenceDataset):
        if y is not None:
            raise ValueError("the SequenceDataset holds its targets; give y=None")
        if task is not None and x.targets is not None and task != x.task:
            raise ValueError(f"task={task!r} but the dataset is {x.task}")
        return x
    if isinstance(x, np.ndarray) and x.dtype != object:
        if x.ndim == 2:
            if task == "many-to-many":
                raise ValueError("a 2-D array (N, D) is static data (one step per row); "
                                 "many-to-many needs sequences")
            return SequenceDataset.static(x, y)
        if x.ndim == 3:
            T, N = x.shape[:2]
            seqs = [x[:, i] for i in range(N)]
            targets = None
            if y is not None:
                yy = np.asarray(y)
                if task is None:
                    task = _time_major_task(yy, T, N)
                if task == "many-to-many":
                    if yy.dtype == object or yy.ndim < 2 or yy.shape[:2] != (T, N):
                        raise ValueError(f"many-to-many targets of time-major x {x.shape} must "
                                         f"be (T, N) or (T, N, C) = ({T}, {N}, ...), got "
                                         f"{yy.shape}")
                    targets = [yy[:, i] for i in range(N)]
                else:
                    targets = yy
            return SequenceDataset(seqs, targets, task=task, padding=padding)
        raise ValueError(f"an input array must be (N, D) static rows or (T, N, D) time-major "
                         f"sequences, got shape {x.shape}; pass variable-length sequences as a "
                         "list of (len_i, D) arrays")
    return SequenceDataset(x, y, task=task, padding=padding)


def _time_major_task(y, T, N):
    if y.ndim == 1:
        return "many-to-one"
    if y.ndim == 3:
        return "many-to-many"
    one = y.shape[0] == N and y.dtype.kind == "f"
    many = y.shape[:2] == (T, N)
    if one and many:
        raise ValueError(f"targets of shape {y.shape} fit both many-to-one (N, C) and "
                         f"many-to-many (T, N); pass task=")
    if many:
        return "many-to-many"
    return "many-to-one"


def _input_size(model):
    first = model.parts[0] if hasattr(model, "parts") else model
    return getattr(first, "input_size", getattr(first, "in_features", None)), first


def check_compatible(model, loss, ds, what="data"):
    """Check a dataset against a model and a loss before any work: tokens or features, feature
    size, vocabulary, target kind and size, label range. Errors name the offending sequence."""
    first_takes_tokens = bool(getattr(model, "takes_tokens", False))
    size, first = _input_size(model)
    if ds.kind == "tokens" and not first_takes_tokens:
        raise TypeError(f"{what} holds integer token sequences, but the model starts with "
                        f"{first!r}, which takes float features (len, D); start the model with "
                        "an Embedding, or give float sequences")
    if ds.kind == "features" and first_takes_tokens:
        raise TypeError(f"{what} holds float feature sequences, but the model starts with "
                        f"{first!r}, which takes integer tokens (len,)")
    if ds.kind == "tokens":
        V = first.num_embeddings
        for i, s in enumerate(ds.sequences):
            if s.max() >= V:
                t = int(np.flatnonzero(s >= V)[0])
                raise ValueError(f"{what}: sequence {i} holds token {int(s[t])} at step {t}, "
                                 f"outside the model's vocabulary [0, {V})")
    elif size is not None and ds.num_features != size:
        raise ValueError(f"{what} has {ds.num_features} features per step, but the model "
                         f"({first!r}) takes {size}")
    if ds.targets is None:
        return
    C = model.output_size(None)
    if isinstance(loss, SoftmaxCrossEntropy):
        if ds.target_kind != "classes":
            raise TypeError(f"{what}: {loss!r} needs integer class labels, got float target "
                            "values")
        if C is not None:
            try:
                ds.check_labels(C, loss.ignore_index)
            except ValueError as e:
                raise ValueError(f"{what}: {e} (the model outputs {C} classes)") from None
    elif isinstance(loss, (MeanSquaredError, BinaryCrossEntropyWithLogits)):
        if ds.target_kind == "classes":
            raise TypeError(f"{what}: {loss!r} needs float target values, got integer class "
                            "labels (use SoftmaxCrossEntropy for classes, or give the targets "
                            "as floats, e.g. y[:, None].astype(float))")
        if C is not None and ds.num_targets != C:
            per = "sequence" if ds.task == "many-to-one" else "step"
            raise ValueError(f"{what}: targets have {ds.num_targets} values per {per}, but the "
                             f"model outputs {C}")


# -- penalties -----------------------------------------------------------------------------------
class Penalty:
    """``Penalty(l1=0.0, l2=0.0, penalize="weights")``: ``l1 * sum|w| + l2 * sum w**2`` over the
    chosen parameters (see the module docstring for ``penalize``)."""

    def __init__(self, l1=0.0, l2=0.0, penalize="weights"):
        self.l1 = positive_float("l1", l1, allow_zero=True)
        self.l2 = positive_float("l2", l2, allow_zero=True)
        if not (penalize in ("weights", "all") or callable(penalize) or
                (isinstance(penalize, (list, tuple, set)) and
                 all(isinstance(n, str) for n in penalize))):
            raise TypeError(f"penalize must be 'weights', 'all', a list of parameter names or a "
                            f"callable name -> bool, got {penalize!r}")
        self.penalize = penalize

    @property
    def active(self):
        return self.l1 > 0 or self.l2 > 0

    def names(self, params):
        """The names of ``params`` that are penalised."""
        p = self.penalize
        if p == "all":
            return list(params)
        if p == "weights":
            return [k for k in params if k.rsplit(".", 1)[-1].startswith("weight")]
        if callable(p):
            return [k for k in params if p(k)]
        unknown = [n for n in p if n not in params]
        if unknown:
            raise ValueError(f"penalize names {unknown} are not parameters of the model; known: "
                             f"{list(params)}")
        return [k for k in params if k in p]

    def value(self, params):
        """The penalty at ``params`` (a dict name -> array), as a float."""
        total = 0.0
        if not self.active:
            return total
        for k in self.names(params):
            w = params[k]
            if self.l1:
                total += self.l1 * float(np.sum(np.abs(w), dtype=np.float64))
            if self.l2:
                total += self.l2 * float(np.sum(np.square(w, dtype=np.float64)))
        return total

    def add_gradient(self, params, grads):
        """Add the penalty's gradient into ``grads`` in place; return the penalty's value."""
        if not self.active:
            return 0.0
        for k in self.names(params):
            w, g = params[k], grads[k]
            if self.l1:
                g += g.dtype.type(self.l1) * np.sign(w)
            if self.l2:
                g += g.dtype.type(2 * self.l2) * w
        return self.value(params)

    def __repr__(self):
        return f"Penalty(l1={self.l1!r}, l2={self.l2!r}, penalize={self.penalize!r})"


def penalized_value_and_grad(model, loss, x, y, weights=None, resets=None, state=None, l1=0.0,
                             l2=0.0, penalize="weights", state_clip=None):
    """:func:`bptt.value_and_grad` plus an L1/L2 penalty: returns ``(loss + penalty, grads of
    both, final_state)``, the exact objective and gradient :func:`fit` trains on per batch."""
    check_model(model)
    pen = Penalty(l1, l2, penalize)
    out, final_state, cache = model.forward(x, state, resets)
    value, dout = loss(out, y, weights)
    model.zero_grad()
    model.backward(dout, None, cache, BackwardContext(state_clip))
    grads = {k: g.copy() for k, g in model.named_grads().items()}
    value += pen.add_gradient(model.named_parameters(), grads)
    return value, grads, final_state


class _PenaltyHook(Clip):
    """Adds the penalty gradient inside the TBPTT engine, as the first of its clips (after the
    guard, before the user's clips), and records the penalty and the gradient norm."""

    def __init__(self, penalty, params):
        super().__init__()
        self.penalty, self.params = penalty, params
        self.values, self.norms = [], []

    def __call__(self, grads):
        self.calls += 1
        self.values.append(self.penalty.add_gradient(self.params, grads))
        self.norms.append(global_norm(grads))

    def get_config(self):
        return {"penalty": self.penalty}


# -- metrics -------------------------------------------------------------------------------------
def _accuracy_kind(loss):
    if isinstance(loss, SoftmaxCrossEntropy):
        return "classes"
    if isinstance(loss, BinaryCrossEntropyWithLogits):
        return "binary"
    return None


class _Metrics:
    """Running loss and accuracy over the batches of an epoch (see the module docstring)."""

    def __init__(self, loss):
        self.loss, self.kind = loss, _accuracy_kind(loss)
        self.loss_sum = self.weight = 0.0
        self.correct = self.count = 0.0

    def batch_weight(self, y, w, n_sequences):
        """What a batch's loss is weighted by when batches are combined: sum(w) over the
        counted positions (reduction "mean"), the number of sequences (reduction "sum")."""
        loss = self.loss
        if getattr(loss, "reduction", "mean") != "mean":
            return float(n_sequences)
        w = np.ones(np.shape(y)[:2]) if w is None else np.asarray(w, dtype=np.float64)
        if getattr(loss, "ignore_index", None) is not None:
            w = w * (np.asarray(y) != loss.ignore_index)
        return float(w.sum())

    def add_loss(self, value, y, w, n_sequences):
        """A batch's loss (skipped if non-finite: its update was skipped too)."""
        if not math.isfinite(value):
            return
        wt = self.batch_weight(y, w, n_sequences)
        if getattr(self.loss, "reduction", "mean") != "mean":
            value = value / wt  # a sum per sequence
        self.loss_sum += value * wt
        self.weight += wt

    def add_outputs(self, out, y, w):
        """Accuracy counts of a batch (or chunk) of outputs."""
        if self.kind is None:
            return
        valid = np.ones(out.shape[:2], bool) if w is None else np.asarray(w) > 0
        if self.kind == "classes":
            if self.loss.ignore_index is not None:
                valid &= y != self.loss.ignore_index
            self.correct += float(((out.argmax(-1) == y) & valid).sum())
        else:
            hit = ((out > 0) == (np.asarray(y) > 0.5)).mean(axis=-1)
            self.correct += float(hit[valid].sum())
        self.count += float(valid.sum())

    def add(self, out, y, w, value, n_sequences):
        self.add_loss(value, y, w, n_sequences)
        self.add_outputs(out, y, w)

    @property
    def running_loss(self):
        return self.loss_sum / self.weight if self.weight > 0 else math.nan

    def result(self):
        r = {"loss": self.running_loss}
        if self.kind is not None:
            r["accuracy"] = self.correct / self.count if self.count else math.nan
        return r


class _RecordingLoss:
    """The user's loss, passing each chunk's outputs to the accuracy counts (TBPTT path; the
    loss itself is taken from the engine's figures)."""

    def __init__(self, loss):
        self._loss, self.metrics = loss, None

    def __call__(self, y, target, weights=None):
        result = self._loss(y, target, weights)
        self._record(y, target, weights)
        return result

    def value_grad_and_weight(self, y, target, weights=None):
        result = self._loss.value_grad_and_weight(y, target, weights)
        self._record(y, target, weights)
        return result

    def _record(self, y, target, weights):
        if self.metrics is not None:
            self.metrics.add_outputs(np.asarray(y), np.asarray(target), weights)

    def __getattr__(self, name):
        return getattr(self._loss, name)

    def __repr__(self):
        return repr(self._loss)


# -- progress ------------------------------------------------------------------------------------
def _fmt(entry):
    parts = []
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if k in entry:
            parts.append(f"{k} {entry[k]:.4f}")
    if entry.get("penalty"):
        parts.append(f"penalty {entry['penalty']:.4g}")
    if entry.get("skipped"):
        parts.append(f"skipped {entry['skipped']}")
    return "  ".join(parts)


class _Progress:
    """One line per epoch on ``stream``; on a terminal, a bar that moves during the epoch."""

    def __init__(self, progress, epochs):
        if progress is True:
            progress = sys.stderr
        self.stream = progress if progress not in (False, None) else None
        self.live = bool(self.stream is not None and getattr(self.stream, "isatty", None)
                         and self.stream.isatty())
        self.epochs, self.width = epochs, len(str(epochs))
        self._last = 0.0

    def start(self, epoch, n):
        self.epoch, self.n, self._last = epoch, n, 0.0

    def update(self, i, loss):
        if not self.live or (time.perf_counter() - self._last < 0.1 and i < self.n):
            return
        self._last = time.perf_counter()
        done = int(20 * i / max(self.n, 1))
        bar = "=" * done + (">" if done < 20 else "") + " " * (19 - done)
        self.stream.write(f"\repoch {self.epoch:>{self.width}}/{self.epochs} [{bar}] "
                          f"{i}/{self.n}  loss {loss:.4f}")
        self.stream.flush()

    def end(self, entry):
        if self.stream is None:
            return
        mark = "  *" if entry.get("improved") else ""
        line = (f"epoch {entry['epoch']:>{self.width}}/{self.epochs}  {_fmt(entry)}  "
                f"{entry['seconds']:.1f}s{mark}")
        self.stream.write(("\r\033[K" if self.live else "") + line + "\n")
        self.stream.flush()

    def note(self, text):
        if self.stream is not None:
            self.stream.write(text + "\n")
            self.stream.flush()


# -- history -------------------------------------------------------------------------------------
class History(list):
    """What :func:`fit` returns: a list with one dict per epoch, and the early-stopping record.

    Each dict has ``epoch`` (counted from 1), ``loss`` (the training objective: data loss plus
    penalty), ``penalty`` (when l1/l2 are set), ``accuracy`` (classification losses),
    ``val_loss``/``val_accuracy`` (with validation data), ``grad_norm`` (mean over the updates of
    the global gradient norm before clipping, penalty included), ``lr`` (at the epoch's end),
    ``updates``, ``skipped`` (non-finite updates skipped), ``seconds`` and ``improved`` (whether
    the monitored figure improved, when it is available).

    Attributes: ``monitor``, ``mode`` ("min"/"max"), ``best_epoch``, ``best_value``,
    ``stopped_epoch`` (the epoch after which early stopping ended training, else None),
    ``restored`` (True if the parameters of ``best_epoch`` were put back).
    """

    def __init__(self, monitor=None, mode=None):
        super().__init__()
        self.monitor, self.mode = monitor, mode
        self.best_epoch = self.best_value = self.stopped_epoch = None
        self.restored = False

    def column(self, key):
        """The values of ``key`` over the epochs (None where absent)."""
        return [e.get(key) for e in self]

    def __repr__(self):
        return (f"History({len(self)} epochs, monitor={self.monitor!r}, best_epoch="
                f"{self.best_epoch}, best_value={self.best_value}, stopped_epoch="
                f"{self.stopped_epoch}, restored={self.restored})")


def _mode(monitor, mode):
    if mode != "auto":
        return choice("mode", mode, {"min", "max"})
    if "loss" in monitor:
        return "min"
    if "acc" in monitor:
        return "max"
    raise ValueError(f"cannot tell whether monitor={monitor!r} should go down or up; pass "
                     "mode='min' or mode='max'")


def _make_optimizer(optimizer, model, lr):
    params = model.named_parameters()
    if isinstance(optimizer, str):
        return _optim.get_optimizer(optimizer, params, lr=1e-3 if lr is None else lr)
    if isinstance(optimizer, _optim.Optimizer):
        if lr is not None:
            raise ValueError("lr= is for an optimizer given by name; an optimizer object holds "
                             "its own learning rate")
        missing = [k for k, p in params.items() if optimizer.params.get(k) is not p]
        if missing:
            raise ValueError(f"the optimizer does not hold the model's live parameter arrays "
                             f"{missing}; build it from model.named_parameters()")
        return optimizer
    raise TypeError(f"optimizer must be a name ('adam', 'sgd', ...) or a bptt.optim optimizer, "
                    f"got {type(optimizer).__name__}")


def _batch_dtype(model, ds):
    return model.dtype if ds.kind == "features" else None


# -- one update by full BPTT -----------------------------------------------------------------------
def _full_step(model, loss, batch, opt, penalty, clips, state_clip, on_nonfinite, metrics,
               where):
    """Forward, loss, backward, guard, penalty, clips, update. Returns (penalty, norm) or None
    if the update was skipped."""
    out, _, cache = model.forward(batch.x, None, batch.resets)
    value, dout = loss(out, batch.y, batch.weights)
    model.zero_grad()
    ctx = BackwardContext(None if state_clip is None else state_clip.value)
    model.backward(dout, None, cache, ctx)
    if state_clip is not None:
        state_clip.fired += ctx.state_clip_fired
        state_clip.calls += 1
    if math.isfinite(value):
        metrics.add(out, batch.y, batch.weights, value, batch.size)
    grads = model.named_grads()
    norm = global_norm(grads)
    if not (math.isfinite(value) and math.isfinite(norm)):
        bad = [k for k, g in grads.items() if not np.isfinite(g).all()]
        if math.isfinite(value) and not bad:
            norm = global_norm([g.astype(np.float64) for g in grads.values()])
        else:
            what = "loss" if not math.isfinite(value) else "gradient"
            param = bad[0] if (bad and what == "gradient") else None
            msg = (f"non-finite {what}{f' of {param!r}' if param else ''} in {where}; the "
                   "update is skipped" + ("" if clips or state_clip else
                                          " (consider clip=bptt.ClipGlobalNorm(...) or a "
                                          "lower learning rate)"))
            model.zero_grad()
            if on_nonfinite == "raise":
                raise NonFiniteError(msg, what=what, param=param)
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
            return None
    params = model.named_parameters()
    pen = 0.0
    if penalty.active:
        pen = penalty.add_gradient(params, grads)
        norm = global_norm(grads)
    for c in clips:
        c(grads)
    opt.step(grads)
    return pen, norm


# -- fit / evaluate / predict --------------------------------------------------------------------
def fit(model, loss, x, y=None, *, epochs=10, batch_size=32, optimizer="adam", lr=None,
        validation_data=None, validation_split=None, k1=None, k2=None, clip=None, l1=0.0,
        l2=0.0, penalize="weights", patience=None, monitor="val_loss", mode="auto",
        min_delta=0.0, restore_best=True, shuffle=True, bucket=True, seed=0, task=None,
        padding="pre", on_nonfinite="skip", progress=True, callback=None, initial_epoch=0,
        eval_batch_size=256):
    """Train ``model`` on a dataset of sequences (or static rows) for some epochs.

    model: a :class:`~bptt.Sequential` (or any bptt Module); loss: a bptt loss (for example
        :class:`~bptt.SoftmaxCrossEntropy` for classes).
    x, y: the data in any form :func:`as_dataset` accepts (a list of (len_i, D) or (len_i,)
        arrays with targets ``y``, a :class:`~bptt.data.SequenceDataset`, a static (N, D) array,
        a time-major (T, N, D) array).
    epochs: train up to this epoch (counted from 1), starting after ``initial_epoch`` (to
        resume a run: the batches of an epoch depend on ``(seed, epoch)`` alone).
    batch_size: sequences per update. optimizer: a name ("adam", "sgd", "rmsprop", "adagrad",
        "adamw", with ``lr``, default 1e-3) or a ``bptt.optim`` optimizer over
        ``model.named_parameters()`` (to set momentum, weight decay or a schedule).
    validation_data: a SequenceDataset or an ``(x, y)`` pair; validation_split: instead, a
        fraction (or count) of the data held out under ``seed``.
    k1, k2: None and None (default): full BPTT over each batch, one update per batch. Otherwise
        each batch runs through ``bptt.TBPTT(model, loss, optimizer, k1, k2)`` from a zero state:
        an update every k1 steps (k1=None: one per batch) backpropagating through k2 steps
        (None: to the batch's start). For many-to-one data use ``k1=None, k2=K``: the readout
        is at the batch's last step, so chunks before it carry no loss.
    clip: a bptt clip or a list of them (:class:`~bptt.ClipGlobalNorm`, ...).
    l1, l2, penalize: the penalty (module docstring).
    patience: stop after this many epochs without improvement of ``monitor`` (None: never);
        monitor: a key of the epoch dict ("val_loss", "val_accuracy", "loss", ...); mode:
        "auto" (down for losses, up for accuracies), "min" or "max"; min_delta: the least
        change that counts as improvement; restore_best: with patience set, put back the
        parameters of the best epoch at the end (the optimizer's state stays at the last epoch).
    shuffle, bucket: per-epoch shuffling under ``seed`` and length bucketing
        (:meth:`~bptt.data.SequenceDataset.batches`). task, padding: see
        :class:`~bptt.data.SequenceDataset`.
    on_nonfinite: "skip" (warn, skip the update) or "raise" (:class:`~bptt.NonFiniteError`).
    progress: True (a line per epoch on stderr, with a moving bar on a terminal), False, or a
        file to write to. callback: ``callback(epoch_dict, model)`` after each epoch; returning
        False stops training.

    Returns a :class:`History`. The model is left in the training mode it came in.
    """
    check_model(model)
    epochs = positive_int("epochs", epochs, minimum=0)
    initial_epoch = positive_int("initial_epoch", initial_epoch, minimum=0)
    batch_size = positive_int("batch_size", batch_size)
    on_nonfinite = choice("on_nonfinite", on_nonfinite, {"skip", "raise"})
    train = as_dataset(x, y, task, padding)
    if train.targets is None:
        raise ValueError("fit needs targets: give y, or a SequenceDataset built with targets")
    val = None
    if validation_split is not None:
        if validation_data is not None:
            raise ValueError("give validation_data or validation_split, not both")
        train, val = train.split(validation_split, seed=seed)
    elif validation_data is not None:
        if isinstance(validation_data, SequenceDataset):
            val = validation_data
        elif isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
            val = as_dataset(validation_data[0], validation_data[1], train.task, train.padding)
        else:
            raise TypeError("validation_data must be a SequenceDataset or an (x, y) pair, got "
                            f"{type(validation_data).__name__}")
        if val.targets is None:
            raise ValueError("validation_data needs targets")
        if val.task != train.task:
            raise ValueError(f"validation data are {val.task} but training data are "
                             f"{train.task}")
    check_compatible(model, loss, train, "the training data")
    if val is not None:
        check_compatible(model, loss, val, "the validation data")

    opt = _make_optimizer(optimizer, model, lr)
    params = model.named_parameters()
    penalty = Penalty(l1, l2, penalize)
    penalty.names(params)  # refuse unknown names now
    state_clip, clips = as_clip_list(clip)
    if patience is not None:
        patience = positive_int("patience", patience, minimum=0)
    min_delta = positive_float("min_delta", min_delta, allow_zero=True)
    if not isinstance(monitor, str):
        raise TypeError(f"monitor must be a string, got {type(monitor).__name__}")
    mode = _mode(monitor, mode)
    if patience is not None and monitor.startswith("val_") and val is None:
        raise ValueError(f"early stopping on monitor={monitor!r} needs validation data: pass "
                         "validation_data= or validation_split= (or monitor='loss')")

    engine = hook = metrics = None
    if k1 is not None or k2 is not None:
        if train.task == "many-to-one" and k1 is not None and k1 < train.max_length:
            warnings.warn("many-to-one data with k1 chunks: only each batch's last chunk holds "
                          "the readout, so the updates of the earlier chunks have no loss "
                          "(only the penalty and the optimizer's momentum move them); use "
                          "k1=None, k2=K to truncate the gradient with one update per batch",
                          RuntimeWarning, stacklevel=2)
        hook = _PenaltyHook(penalty, params)
        proxy = _RecordingLoss(loss)
        engine = TBPTT(model, proxy, opt, k1=k1, k2=k2,
                       clip=([state_clip] if state_clip else []) + [hook] + clips,
                       on_nonfinite=on_nonfinite)

    bar = _Progress(progress, epochs)
    history = History(monitor, mode)
    best_params, wait = None, 0
    dt = _batch_dtype(model, train)
    was_training = model.training
    last_epoch = initial_epoch
    try:
        for epoch in range(initial_epoch, epochs):
            t0 = time.perf_counter()
            model.train(True)
            metrics = _Metrics(loss)
            pens, norms, updates, skipped = [], [], 0, 0
            order = train.batch_indices(batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                                        bucket=bucket)
            bar.start(epoch + 1, len(order))
            for i, idx in enumerate(order):
                batch = train.batch(idx, dt)
                if engine is None:
                    r = _full_step(model, loss, batch, opt, penalty, clips, state_clip,
                                   on_nonfinite, metrics, f"batch {i} of epoch {epoch + 1}")
                    if r is None:
                        skipped += 1
                    else:
                        updates += 1
                        pens.append(r[0])
                        norms.append(r[1])
                else:
                    proxy.metrics = metrics
                    n_hook = len(hook.values)
                    engine.reset_state()
                    stats = engine.step(batch.x, batch.y, batch.weights, batch.resets)
                    value = stats.loss
                    if getattr(loss, "reduction", "mean") != "mean":
                        # the engine averages a summed loss over the chunks: back to the sum
                        value *= -(-batch.steps // (k1 or batch.steps))
                    metrics.add_loss(value, batch.y, batch.weights, batch.size)
                    updates += stats.updates
                    skipped += stats.skipped
                    pens.extend(hook.values[n_hook:])
                    norms.extend(hook.norms[n_hook:])
                bar.update(i + 1, metrics.running_loss)
            if hook is not None:
                hook.values, hook.norms = [], []
            entry = {"epoch": epoch + 1}
            entry.update(metrics.result())
            if penalty.active:
                entry["penalty"] = float(np.mean(pens)) if pens else 0.0
                entry["loss"] += entry["penalty"]
            if val is not None:
                for k, v in evaluate(model, loss, val, batch_size=eval_batch_size).items():
                    entry[f"val_{k}"] = v
            entry["grad_norm"] = float(np.mean(norms)) if norms else math.nan
            entry["lr"] = float(opt.lr)
            entry["updates"], entry["skipped"] = updates, skipped
            entry["seconds"] = time.perf_counter() - t0
            # the monitored figure
            value = entry.get(monitor)
            improved = False
            if value is not None:
                value = float(value)
                best = history.best_value
                improved = math.isfinite(value) and (
                    best is None or (value < best - min_delta if mode == "min"
                                     else value > best + min_delta))
                entry["improved"] = improved
                if improved:
                    history.best_value, history.best_epoch, wait = value, epoch + 1, 0
                    if patience is not None and restore_best:
                        best_params = {k: p.copy() for k, p in params.items()}
                else:
                    wait += 1
            elif patience is not None:
                raise ValueError(f"monitor={monitor!r} is not among the epoch's figures "
                                 f"{sorted(entry)}")
            history.append(entry)
            last_epoch = epoch + 1
            bar.end(entry)
            stop = callback is not None and callback(entry, model) is False
            if patience is not None and not improved and wait >= max(patience, 1):
                history.stopped_epoch = epoch + 1
                stop = True
            if stop:
                break
    finally:
        model.train(was_training)
    if best_params is not None and history.best_epoch != last_epoch:
        for k, p in params.items():
            p[...] = best_params[k]
        history.restored = True
    if history.stopped_epoch is not None or history.restored:
        bar.note((f"early stopping after epoch {history.stopped_epoch}: "
                  if history.stopped_epoch is not None else "") +
                 f"best {monitor} {history.best_value:.4f} at epoch {history.best_epoch}" +
                 ("; its parameters restored" if history.restored else ""))
    return history


def evaluate(model, loss, x, y=None, *, batch_size=256, task=None, padding="pre"):
    """Loss (and accuracy, for classification losses) of ``model`` on a dataset, in eval mode
    (Dropout off), without penalty. The data as :func:`fit` takes them. Returns a dict
    ``{"loss": ..., "accuracy": ...}`` (see the module docstring for the definitions)."""
    check_model(model)
    ds = as_dataset(x, y, task, padding)
    if ds.targets is None:
        raise ValueError("evaluate needs targets: give y, or a SequenceDataset with targets")
    check_compatible(model, loss, ds)
    batch_size = positive_int("batch_size", batch_size)
    metrics = _Metrics(loss)
    dt = _batch_dtype(model, ds)
    was_training = model.training
    model.eval()
    try:
        for idx in ds.batch_indices(batch_size, shuffle=False, bucket=True):
            b = ds.batch(idx, dt)
            out, _, _ = model.forward(b.x, None, b.resets)
            metrics.add(out, b.y, b.weights, loss.value(out, b.y, b.weights), b.size)
    finally:
        model.train(was_training)
    return metrics.result()


def predict(model, x, *, batch_size=256, readout=None, padding="pre"):
    """Outputs of ``model`` (eval mode) on sequences given as :func:`fit` takes them (targets,
    if any, are ignored).

    readout: ``"last"``: an array (N, C), each sequence's output at its last valid step (for
    many-to-one models and static data); ``"all"``: a list of (len_i, C) arrays, the outputs at
    every valid step. Default: "all" for a many-to-many SequenceDataset, else "last". Outputs
    are in the order of the sequences given.
    """
    check_model(model)
    ds = as_dataset(x, None, None, padding) if not isinstance(x, SequenceDataset) else x
    check_compatible(model, None, ds)
    if readout is None:
        readout = "all" if ds.task == "many-to-many" else "last"
    readout = choice("readout", readout, {"last", "all"})
    batch_size = positive_int("batch_size", batch_size)
    dt = _batch_dtype(model, ds)
    results = [None] * len(ds)
    was_training = model.training
    model.eval()
    try:
        for idx in ds.batch_indices(batch_size, shuffle=False, bucket=True):
            b = ds.batch(idx, dt)
            out, _, _ = model.forward(b.x, None, b.resets)
            if readout == "last":
                last = np.argmax(b.readout, axis=0)
                rows = out[last, np.arange(b.size)]
                for j, i in enumerate(idx):
                    results[i] = rows[j]
            else:
                for j, i in enumerate(idx):
                    results[i] = out[b.mask[:, j], j]
    finally:
        model.train(was_training)
    return np.stack(results) if readout == "last" else results
