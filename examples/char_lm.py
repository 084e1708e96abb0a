#!/usr/bin/env python
"""A character-level language model trained by truncated BPTT: train, watch, sample, resume.

    python examples/char_lm.py                      # about 2 minutes on a built-in corpus
    python examples/char_lm.py --data input.txt --minutes 10 --out runs/mine
    python examples/char_lm.py --resume --out runs/mine --minutes 20     # continue a run
    python examples/char_lm.py sample runs/mine/best.npz --prime "The " --length 500

Training. The text (``--data FILE``, any UTF-8 file; by default a corpus built from the Python
standard library's own documentation, see :func:`build_default_corpus`) is split into training
text (the first 90%) and validation text (the last 10%). The training text is cut into
``--batch`` B equal parts, each a contiguous stream, so one batch holds B streams side by side
(time-major ``(L, B)``, the standard layout for stateful truncated BPTT). An epoch walks the
streams in chunks of ``--seq`` steps: every chunk is one :meth:`bptt.TBPTT.step` (k1 = seq,
k2 = ``--k2``, default k1), one update, and the state is carried from chunk to chunk (reset at
the start of each epoch).

Validation bits per character are measured over the whole validation text, cut into
``--eval-batch`` contiguous streams (state carried through each, dropout off), in chunks of
many steps. The run ends with a plot of training and validation loss against characters seen,
a one-line summary and, as the very last line, ``val_bpc X``.

Checkpoints (``last.npz`` at intervals and at the end, ``best.npz`` at the best validation
loss) hold the model, the optimizer, the engine's stream state, the data position, the
counters, the sampler's random state, the vocabulary and the history, so ``--resume``
continues a run exactly: an interrupted run and an uninterrupted one end with the same
parameters, to the last bit (with a budget in ``--steps`` or ``--epochs``).

Structured as functions (data, model, training, evaluation, sampling, plotting) that tests and
the PyTorch twin (``benchmarks/char_lm_torch.py``) import.
"""

import argparse
import ast
import hashlib
import math
import os
import platform
import signal
import sys
import sysconfig
import tempfile
import threading
import time

import numpy as np

import bptt

LN2 = math.log(2.0)
CELLS = {"elman": bptt.Elman, "lstm": bptt.LSTM, "gru": bptt.GRU}
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
EVAL_CHUNK = 512          # time steps per forward call when evaluating
CORPUS_RECIPE = 1         # bump when the default-corpus recipe changes (names the cache file)
# options that define a run; on --resume they come from the checkpoint
RUN_OPTIONS = ("data", "val_fraction", "cell", "layers", "hidden", "embed", "dropout", "seq",
               "k2", "batch", "optimizer", "lr", "lr_decay", "lr_decay_after", "clip", "dtype",
               "seed", "eval_batch")
BUDGET_OPTIONS = ("steps", "epochs", "minutes")


class DataError(ValueError):
    """A data file or text that cannot be used, with a message for the user."""


# =============================================================================================
# data
# =============================================================================================
# directories of the standard library left out of the default corpus: tests, GUI and demo
# packages, third-party packages, compiled extensions and build files
SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "tkinter",
             "turtledemo", "__pycache__", "lib-dynload", "ensurepip", "pydoc_data"}


def stdlib_dir():
    """The directory of the standard library's ``.py`` files."""
    return sysconfig.get_paths()["stdlib"]


def stdlib_sources(root):
    """The ``.py`` files under ``root`` that the default corpus reads, as paths relative to
    ``root`` with ``/`` separators, sorted (so the order is the same on every machine)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(("config-", "."))]
        for f in files:
            if f.endswith(".py") and not f.startswith("test_"):
                found.append(os.path.relpath(os.path.join(folder, f), root).replace(os.sep, "/"))
    return sorted(found)


def docstrings(source):
    """The docstrings of a module's source (bytes or str), in source order: the module's, then
    each class's and function's, cleaned of indentation (``ast.get_docstring``). Nothing is
    imported or executed. Returns [] if the source does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    nodes = [n for n in ast.walk(tree)
             if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    nodes.sort(key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0)))
    out = []
    for n in nodes:
        doc = ast.get_docstring(n, clean=True)
        if doc and doc.strip():
            out.append(doc.strip())
    return out


def topic_texts(source):
    """The texts of ``pydoc_data/topics.py`` (the language reference that ``help()`` shows),
    read with ``ast`` from its ``topics = {...}`` literal, in sorted key order."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                and any(isinstance(t, ast.Name) and t.id == "topics" for t in node.targets)):
            items = {}
            for k, v in zip(node.value.keys, node.value.values):
                if (isinstance(k, ast.Constant) and isinstance(k.value, str)
                        and isinstance(v, ast.Constant) and isinstance(v.value, str)):
                    items[k.value] = v.value.strip()
            return [items[k] for k in sorted(items) if items[k]]
    return []


def build_default_corpus(root=None):
    """The default corpus, built from the Python installation alone (no download):

    1. the language reference topics of ``pydoc_data/topics.py`` (sorted by topic name);
    2. the docstrings of every ``.py`` file of the standard library (modules in sorted path
       order; docstrings in source order), leaving out tests, ``idlelib``, ``tkinter``,
       ``turtledemo``, ``site-packages`` and files that do not parse.

    Texts are joined by blank lines. The sources are parsed with ``ast``, never imported, so
    building is fast, has no side effects and gives the same text for the same Python
    version. About 2.0 million characters for CPython 3.11.
    """
    root = stdlib_dir() if root is None else os.fspath(root)
    parts = []
    topics = os.path.join(root, "pydoc_data", "topics.py")
    if os.path.isfile(topics):
        with open(topics, "rb") as f:
            parts.extend(topic_texts(f.read()))
    for rel in stdlib_sources(root):
        try:
            with open(os.path.join(root, rel), "rb") as f:
                source = f.read()
        except OSError:
            continue
        parts.extend(docstrings(source))
    return "\n\n".join(parts) + "\n"


def default_cache_dir():
    """``$XDG_CACHE_HOME/bptt`` or ``~/.cache/bptt``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "bptt")


def default_corpus_name():
    return (f"stdlib-docs-v{CORPUS_RECIPE}-{sys.implementation.name}-"
            f"{platform.python_version()}.txt")


def _umask_mode():
    """The mode a new file gets (0o666 less the umask); mkstemp's files are 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path, data):
    """Write bytes to ``path`` through a temporary file beside it and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def default_corpus(cache_dir=None, root=None):
    """``(text, path)``: the default corpus, read from its cache file in ``cache_dir``
    (default :func:`default_cache_dir`), or built from ``root`` (default: this Python's
    standard library) and cached, written atomically. ``path`` is None if the cache could not
    be written."""
    path = os.path.join(default_cache_dir() if cache_dir is None else os.fspath(cache_dir),
                        default_corpus_name())
    if os.path.isfile(path):
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8"), path
        except (OSError, UnicodeDecodeError):
            pass  # rebuild below
    text = build_default_corpus(root)
    try:
        write_atomic(path, text.encode("utf-8"))
    except OSError:
        path = None
    return text, path


def read_text(path):
    """The text of a UTF-8 file (a leading byte-order mark dropped); :class:`DataError` with a
    clear message if it is missing, unreadable, empty or not UTF-8."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"--data {path}: no such file")
    if os.path.isdir(path):
        raise DataError(f"--data {path}: is a directory, expected a text file")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"--data {path}: cannot read it ({e.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"--data {path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
                        f"{e.start} is not valid UTF-8); convert it first, for example with "
                        f"iconv -f latin1 -t utf-8") from None
    if not text:
        raise DataError(f"--data {path}: the file is empty")
    return text


def split_text(text, val_fraction=0.1):
    """``(train, val)``: the validation text is the last ``val_fraction`` of the characters
    (``int(len(text) * val_fraction)`` of them), the training text the rest."""
    n_val = int(len(text) * val_fraction)
    return text[:len(text) - n_val], text[len(text) - n_val:]


def build_vocab(text):
    """The vocabulary: the distinct characters of ``text``, sorted by code point, as a str."""
    return "".join(sorted(set(text)))


def encode(text, vocab):
    """Character indices of ``text`` in ``vocab`` as an int64 array (every character must be
    in the vocabulary)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    table = np.frombuffer(vocab.encode("utf-32-le"), dtype=np.uint32)
    ids = np.searchsorted(table, codes)
    ids = np.minimum(ids, len(table) - 1)
    bad = table[ids] != codes
    if bad.any():
        ch = text[int(np.flatnonzero(bad)[0])]
        raise DataError(f"character {ch!r} is not in the vocabulary")
    return ids.astype(np.int64)


def decode(ids, vocab):
    return "".join(vocab[int(i)] for i in np.ravel(ids))


def stream_layout(ids, batch):
    """Inputs and targets ``(L, B)`` of B contiguous streams over ``ids``.

    Stream b reads ``ids[b*L : (b+1)*L]`` and predicts ``ids[b*L+1 : (b+1)*L+1]`` with
    ``L = (len(ids) - 1) // B``; the last ``len(ids) - 1 - B*L`` characters are not used."""
    ids = np.asarray(ids)
    L = (len(ids) - 1) // batch
    if L < 1:
        raise DataError(f"{len(ids)} characters are too few for {batch} streams")
    x = np.ascontiguousarray(ids[:batch * L].reshape(batch, L).T)
    y = np.ascontiguousarray(ids[1:batch * L + 1].reshape(batch, L).T)
    return x, y


def eval_layout(ids, streams):
    """Inputs, targets and weights ``(S, E)`` that cover every prediction of ``ids`` (each
    character from the ones before it) once: E <= ``streams`` contiguous streams of
    ``S = ceil((len(ids) - 1) / streams)`` steps; the tail of the last stream is padding with
    weight 0. The state is carried through each stream."""
    ids = np.asarray(ids)
    n = len(ids) - 1
    if n < 1:
        raise DataError("the validation text needs at least 2 characters")
    S = -(-n // streams)
    E = -(-n // S)
    pos = np.arange(E)[None, :] * S + np.arange(S)[:, None]      # (S, E) target positions
    valid = pos < n
    pos = np.where(valid, pos, 0)
    return (np.ascontiguousarray(ids[pos]), np.ascontiguousarray(ids[pos + 1]),
            valid.astype(np.float64))


class Corpus:
    """A text prepared for training: ``text``, ``name``, ``vocab``, ``train_ids``,
    ``val_ids``, ``sha256`` (of the text, to recognise it on --resume)."""

    def __init__(self, text, name, val_fraction=0.1):
        self.text, self.name = text, name
        self.vocab = build_vocab(text)
        train, val = split_text(text, val_fraction)
        self.train_ids, self.val_ids = encode(train, self.vocab), encode(val, self.vocab)
        self.sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()

    def describe(self):
        return (f"{self.name}: {len(self.text):,} characters ({len(self.train_ids):,} training, "
                f"{len(self.val_ids):,} validation), vocabulary of {len(self.vocab)}")


def load_corpus(data=None, val_fraction=0.1, cache_dir=None, log=None):
    """The :class:`Corpus` of ``--data FILE``, or of the default corpus if ``data`` is None."""
    if data is None:
        t0 = time.perf_counter()
        text, path = default_corpus(cache_dir)
        where = f"cached in {path}" if path else "not cached: cache directory not writable"
        if log:
            log(f"default corpus: Python {platform.python_version()} standard library "
                f"documentation ({where}, {time.perf_counter() - t0:.1f} s)")
        name = f"stdlib docs (Python {platform.python_version()})"
    else:
        text = read_text(data)
        name = os.path.basename(os.fspath(data))
    return Corpus(text, name, val_fraction)


def check_sizes(corpus, batch, seq):
    """:class:`DataError` if the text is too short for the stream layout."""
    need = 2 * batch * seq + 1
    if len(corpus.train_ids) < need:
        raise DataError(f"the text is too short: its training part has "
                        f"{len(corpus.train_ids):,} characters, but --batch {batch} streams of "
                        f"at least 2 chunks of --seq {seq} need {need:,} (batch*seq*2+1); "
                        f"use a longer text or a smaller --batch or --seq")
    if len(corpus.val_ids) < 2:
        raise DataError(f"the validation text has {len(corpus.val_ids)} "
                        f"characters; it needs at least 2")


# =============================================================================================
# model and optimizer
# =============================================================================================
def build_model(vocab_size, cell="lstm", layers=1, hidden=256, embed=64, dropout=0.0,
                dtype="float32", seed=0):
    """``Embedding(V, embed)``, then ``layers`` recurrent cells of ``hidden`` units, each
    followed by ``Dropout(dropout)`` when dropout > 0 (as in char-rnn: between layers and
    before the output layer), then ``Dense(hidden, V)`` giving the logits."""
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; choose from {sorted(CELLS)}")
    parts, size = [bptt.Embedding(vocab_size, embed)], embed
    for _ in range(layers):
        parts.append(CELLS[cell](size, hidden))
        size = hidden
        if dropout > 0:
            parts.append(bptt.Dropout(dropout))
    parts.append(bptt.Dense(size, vocab_size))
    return bptt.Sequential(parts, dtype=np.dtype(dtype), seed=seed)


def warm_up(model, batch):
    """Run a 2-step forward and backward pass so numba compiles its kernels (or loads them
    from its cache) before the training clock starts; gradients are zeroed and the random
    state of dropout restored afterwards, so training is unaffected. Returns the seconds."""
    t0 = time.perf_counter()
    rng_state, was_training = model.get_rng_state(), model.training
    try:
        model.train(True)
        out, _, cache = model.forward(np.zeros((2, batch), np.int64))
        model.backward(np.zeros_like(out), None, cache)
        model.eval()
        model.forward(np.zeros((1, 1), np.int64))
    finally:
        model.zero_grad()
        model.set_rng_state(rng_state)
        model.train(was_training)
    return time.perf_counter() - t0


def decayed_lr(lr, epoch, lr_decay=1.0, lr_decay_after=10):
    """char-rnn's learning-rate decay: the first ``lr_decay_after`` epochs (epoch = 0, 1, ...)
    run at ``lr``, each later one at ``lr_decay`` times the one before:
    ``lr * lr_decay ** max(0, epoch - lr_decay_after + 1)``. The training loop sets the
    optimizer's ``lr`` from the epoch counter before every chunk, so a checkpoint holds a plain
    float and a resumed run decays exactly as an uninterrupted one."""
    return float(lr) * float(lr_decay) ** max(0, int(epoch) - int(lr_decay_after) + 1)


def build_trainer(model, optimizer="adam", lr=2e-3, seq=100, k2=None, clip=5.0):
    """A :class:`bptt.TBPTT` engine: softmax cross-entropy, the named optimizer (PyTorch's
    default hyper-parameters besides ``lr``), k1 = seq, k2 (default k1), global-norm clipping
    at ``clip`` (none if 0)."""
    opt = bptt.optim.get_optimizer(optimizer, model.named_parameters(), lr=float(lr))
    return bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(), opt, k1=seq,
                      k2=seq if k2 is None else k2,
                      clip=bptt.ClipGlobalNorm(clip) if clip and clip > 0 else None)


# =============================================================================================
# evaluation and sampling
# =============================================================================================
def evaluate(model, x, y, w, chunk=EVAL_CHUNK):
    """Mean loss in nats per character over an :func:`eval_layout` ``(x, y, w)``: dropout off,
    zero state carried through each stream, ``chunk`` steps per forward call, per-character
    losses summed in float64."""
    loss = bptt.SoftmaxCrossEntropy()
    was_training = model.training
    model.eval()
    try:
        state, total = None, 0.0
        for a in range(0, x.shape[0], chunk):
            out, state, _ = model.forward(x[a:a + chunk], state)
            total += float(np.sum(loss.per_step(out, y[a:a + chunk]) * w[a:a + chunk],
                                  dtype=np.float64))
    finally:
        model.train(was_training)
    return total / float(w.sum())


def next_index(logits, rng, temperature=1.0, top_k=0):
    """Draw a character index from ``logits`` (V,): softmax of ``logits / temperature``
    restricted to the ``top_k`` largest (0: all); temperature 0 picks the largest."""
    z = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return int(np.argmax(z))
    z = z / temperature
    if 0 < top_k < z.size:
        kth = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max())
    c = np.cumsum(p)
    return min(int(np.searchsorted(c, rng.random() * c[-1], side="right")), z.size - 1)


def generate(model, vocab, prime="", length=500, temperature=1.0, top_k=0, rng=None):
    """An iterator of ``length`` sampled characters, one at a time, after reading ``prime``
    (checked here: ValueError if it holds a character outside ``vocab``).

    The model runs one step at a time (T = 1, state carried, dropout off). With an empty
    prime, generation starts after a newline (or the vocabulary's first character)."""
    rng = np.random.default_rng() if rng is None else rng
    missing = sorted(set(prime) - set(vocab))
    if missing:
        raise ValueError(f"the prime holds characters the model does not know: "
                         f"{''.join(missing)!r}")
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    start = prime or ("\n" if "\n" in vocab else vocab[0])
    return _generate(model, vocab, start, length, temperature, top_k, rng)


def _generate(model, vocab, start, length, temperature, top_k, rng):
    was_training = model.training
    model.eval()
    try:
        ids = encode(start, vocab)
        out, state, _ = model.forward(ids[:, None], None)
        logits = out[-1, 0]
        for _ in range(length):
            i = next_index(logits, rng, temperature, top_k)
            yield vocab[i]
            out, state, _ = model.forward(np.array([[i]], dtype=np.int64), state)
            logits = out[-1, 0]
    finally:
        model.train(was_training)


def sample_text(model, vocab, prime="", length=500, temperature=1.0, top_k=0, rng=None):
    return "".join(generate(model, vocab, prime, length, temperature, top_k, rng))


# =============================================================================================
# training
# =============================================================================================
def parse_interval(text):
    """``"200"`` (steps), ``"30s"``, ``"2m"`` (seconds of training) or ``"0"`` (never) ->
    ``("steps"|"seconds", value)``."""
    s = str(text).strip().lower()
    try:
        if s.endswith("s"):
            kind, value = "seconds", float(s[:-1])
        elif s.endswith("m"):
            kind, value = "seconds", 60.0 * float(s[:-1])
        else:
            kind, value = "steps", int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of steps (200), seconds (30s) or minutes (2m), got {text!r}"
        ) from None
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return kind, value


class Interval:
    """Something done every N steps or every N seconds of training (0: never)."""

    def __init__(self, spec, steps=0, seconds=0.0):
        self.kind, self.every = spec
        self.mark(steps, seconds)

    def mark(self, steps, seconds):
        self.last = steps if self.kind == "steps" else seconds

    def due(self, steps, seconds):
        if not self.every:
            return False
        if self.kind == "steps":
            return steps % int(self.every) == 0
        return seconds - self.last >= self.every


class Progress:
    """A live status line on stderr: rewritten in place on a terminal, else printed as a plain
    line every ``every`` seconds. :meth:`line` prints a permanent line."""

    def __init__(self, stream=None, every=10.0):
        self.stream = sys.stderr if stream is None else stream
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every, self.last, self.live = every, -math.inf, False

    def update(self, text):
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self.live = True
        elif time.monotonic() - self.last >= self.every:
            self.stream.write(text + "\n")
            self.last = time.monotonic()
        self.stream.flush()

    def line(self, text=""):
        if self.live:
            self.stream.write("\r\x1b[K")
            self.live = False
        self.stream.write(text + "\n")
        self.stream.flush()


def clock(seconds):
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class RunState:
    """The counters and history of a run (what a checkpoint adds to the trainer's state)."""

    def __init__(self):
        self.epoch = 0            # epochs completed
        self.pos = 0              # time step within the epoch where the next chunk starts
        self.steps = 0            # chunks trained (one update each)
        self.chars = 0            # training characters seen
        self.seconds = 0.0        # training time (evaluation, sampling, saving not counted)
        self.best_val = math.inf  # best validation loss (nats), and where
        self.best_step = -1
        self.sampler = None       # numpy bit-generator state of the sampler
        self.train_chars, self.train_loss = [], []    # per step
        self.val_chars, self.val_loss = [], []        # per evaluation

    def to_extra(self):
        return {"epoch": self.epoch, "pos": self.pos, "steps": self.steps, "chars": self.chars,
                "seconds": self.seconds,
                "best_val": None if math.isinf(self.best_val) else self.best_val,
                "best_step": self.best_step, "sampler": self.sampler,
                "history": {"train_chars": np.asarray(self.train_chars, np.int64),
                            "train_loss": np.asarray(self.train_loss, np.float64),
                            "val_chars": np.asarray(self.val_chars, np.int64),
                            "val_loss": np.asarray(self.val_loss, np.float64)}}

    @classmethod
    def from_extra(cls, d):
        r = cls()
        r.epoch, r.pos, r.steps, r.chars = (int(d["epoch"]), int(d["pos"]), int(d["steps"]),
                                            int(d["chars"]))
        r.seconds = float(d["seconds"])
        r.best_val = math.inf if d["best_val"] is None else float(d["best_val"])
        r.best_step = int(d["best_step"])
        r.sampler = d["sampler"]
        h = d["history"]
        r.train_chars, r.train_loss = list(h["train_chars"]), list(h["train_loss"])
        r.val_chars, r.val_loss = list(h["val_chars"]), list(h["val_loss"])
        return r


def run_config(args):
    return {k: getattr(args, k) for k in RUN_OPTIONS}


def save_checkpoint(path, trainer, args, corpus, run):
    """Everything to continue or sample: model, optimizer, stream state (``trainer=``), and as
    extras the run's options, budget, vocabulary, corpus fingerprint and the run state. With a
    :class:`bptt.distributed.DataParallel` as ``trainer`` this is collective (every rank
    calls it; rank 0 writes the global stream state)."""
    extra = dict(config=run_config(args), budget={k: getattr(args, k) for k in BUDGET_OPTIONS},
                 vocab=corpus.vocab, corpus={"name": corpus.name, "sha256": corpus.sha256,
                                             "chars": len(corpus.text)},
                 run=run.to_extra(), format="char_lm-1")
    if getattr(trainer, "reducer", None) is not None:
        return trainer.save(path, **extra)
    return bptt.save(path, trainer=trainer, **extra)


def budget_left(args, run, steps_per_epoch):
    """``(done, seconds_left)`` for the --steps/--epochs/--minutes budget (whichever ends
    first; seconds of training left, estimated from the time per step so far)."""
    ends = []
    rate = run.seconds / run.steps if run.steps else None
    if args.steps is not None:
        ends.append((run.steps >= args.steps, (args.steps - run.steps) * (rate or 0)))
    if args.epochs is not None:
        total = int(math.ceil(args.epochs * steps_per_epoch))
        ends.append((run.steps >= total, (total - run.steps) * (rate or 0)))
    if args.minutes is not None:
        ends.append((run.seconds >= 60 * args.minutes, 60 * args.minutes - run.seconds))
    done = any(d for d, _ in ends)
    left = min(s for _, s in ends) if ends else math.inf
    return done, max(left, 0.0)


class _StopFlag:
    """First Ctrl-C: stop after the current chunk (then evaluate, save, plot); second: abort."""

    def __init__(self):
        self.stop, self.previous = False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train(args, log=None, out=None):
    """Train as the command line says (``args`` from :func:`parse_train_args`); returns a dict
    with ``val_bpc``, ``val_loss``, ``steps``, ``chars``, ``seconds``, ``checkpoint``, ``best``,
    ``plot``, ``model``, ``trainer``, ``corpus``. ``log(text)`` receives progress lines (default:
    a :class:`Progress` on stderr); the summary and ``val_bpc`` go to ``out`` (stdout)."""
    dp, main_rank = None, True
    if getattr(args, "distributed", False):
        from mpi4py import MPI

        from bptt.distributed import DataParallel, shard_bounds
        main_rank = MPI.COMM_WORLD.Get_rank() == 0
    progress = Progress()
    if not main_rank:  # only rank 0 prints and plots
        quiet = open(os.devnull, "w")
        progress, log, out = Progress(stream=quiet), (lambda *a, **k: None), quiet
    log = log or progress.line
    out = sys.stdout if out is None else out
    last_path, best_path = os.path.join(args.out, "last.npz"), os.path.join(args.out, "best.npz")

    resume = None
    if args.resume:
        resume_path = last_path if args.resume is True else args.resume
        if not os.path.isfile(resume_path):
            raise DataError(f"--resume: no checkpoint at {resume_path}")
        try:
            resume = bptt.load(resume_path)
        except bptt.CheckpointError as e:
            raise DataError(f"--resume: {e}") from None
        if resume.extra.get("format") != "char_lm-1":
            raise DataError(f"--resume: {resume_path} is not a char_lm checkpoint")

    corpus = load_corpus(args.data, args.val_fraction, log=log)
    if resume is not None and resume.extra["corpus"]["sha256"] != corpus.sha256:
        raise DataError(f"--resume: the text differs from the one the checkpoint was trained "
                        f"on ({resume.extra['corpus']['name']}, "
                        f"{resume.extra['corpus']['chars']:,} characters)")
    check_sizes(corpus, args.batch, args.seq)
    log(f"corpus {corpus.describe()}")
    log(f"vocabulary {corpus.vocab!r}")

    x, y = stream_layout(corpus.train_ids, args.batch)
    vx, vy, vw = eval_layout(corpus.val_ids, args.eval_batch)
    steps_per_epoch = -(-x.shape[0] // args.seq)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise DataError(f"--out {args.out}: cannot create the directory ({e.strerror})") from None

    model = build_model(len(corpus.vocab), args.cell, args.layers, args.hidden, args.embed,
                        args.dropout, args.dtype, args.seed)
    trainer = build_trainer(model, args.optimizer, args.lr, args.seq, args.k2, args.clip)
    sampler = np.random.default_rng(np.random.SeedSequence(args.seed).spawn(1)[0])
    compile_seconds = warm_up(model, args.batch)
    if compile_seconds > 1.0:
        log(f"compiled the numba kernels in {compile_seconds:.1f} s (once per machine; not "
            f"counted in the budget)")
    if getattr(args, "distributed", False):
        dp = DataParallel(trainer)  # rank 0's parameters everywhere
        if args.batch < dp.size:
            raise DataError(f"--batch {args.batch} streams cannot be shared by {dp.size} ranks")
        x, y = dp.shard(x), dp.shard(y)  # this rank's streams; args.batch stays the total
        log(f"data-parallel over {dp.size} MPI ranks: streams per rank "
            f"{[b - a for a, b in shard_bounds(args.batch, dp.size)]}")
    if resume is not None:
        if dp is not None:
            dp.load(resume_path)  # any number of ranks: the streams are re-split
        else:
            bptt.load(resume_path, trainer=trainer)
        run = RunState.from_extra(resume.extra["run"])
        sampler.bit_generator.state = run.sampler
        log(f"resumed from {resume_path}: step {run.steps}, epoch {run.epoch}, "
            f"{run.chars:,} characters seen, {run.seconds:.0f} s trained")
    else:
        run = RunState()
    n_params = model.num_parameters()
    log(f"model {args.cell} x{args.layers}, hidden {args.hidden}, embedding {args.embed}, "
        f"{n_params:,} parameters, {args.dtype}; {args.batch} streams of "
        f"{x.shape[0]:,} steps, {steps_per_epoch} chunks of {args.seq} per epoch; "
        f"TBPTT(k1={args.seq}, k2={trainer.k2}); {args.optimizer} lr {args.lr:g}"
        + (f", clip {args.clip:g}" if args.clip else "")
        + f"; uniform baseline {math.log(len(corpus.vocab)) / LN2:.2f} bits per character")
    budget = ", ".join(f"{k} {getattr(args, k):g}" for k in BUDGET_OPTIONS
                       if getattr(args, k) is not None)
    log(f"budget: {budget} (training time; evaluation, samples and checkpoints not counted)")

    evals = Interval(args.eval_every, run.steps, run.seconds)
    samples = Interval(args.sample_every, run.steps, run.seconds)
    saves = Interval(args.save_every, run.steps, run.seconds)
    recent = []              # (loss, chars, seconds) of the last steps, for the status line
    extra_seconds = 0.0      # evaluation, sampling, saving
    last_eval_step = None

    def do_eval():
        nonlocal last_eval_step
        t = time.perf_counter()
        if dp is not None and vx.shape[1] >= dp.size:  # each rank its share of the streams
            w = dp.shard(vw)
            part = np.array([evaluate(model, dp.shard(vx), dp.shard(vy), w) * w.sum(), w.sum()])
            dp.comm.Allreduce(MPI.IN_PLACE, part, op=MPI.SUM)
            v = float(part[0] / part[1])
        else:
            v = evaluate(model, vx, vy, vw)
        run.val_chars.append(run.chars)
        run.val_loss.append(v)
        last_eval_step = run.steps
        better = v < run.best_val
        if better:
            run.best_val, run.best_step = v, run.steps
        log(f"step {run.steps}: val_bpc {v / LN2:.4f} over {int(vw.sum()):,} characters "
            f"({time.perf_counter() - t:.1f} s)" + ("  best" if better else ""))
        return better

    def do_sample(length):
        text = sample_text(model, corpus.vocab, "", length, 0.8, 0, sampler)
        run.sampler = sampler.bit_generator.state
        log(f"--- sample at step {run.steps} (temperature 0.8) ---\n{text}\n---")

    def do_save(best=False):
        run.sampler = sampler.bit_generator.state
        save_checkpoint(last_path, dp or trainer, args, corpus, run)
        if best:
            save_checkpoint(best_path, dp or trainer, args, corpus, run)

    with _StopFlag() as stop:
        done, _ = budget_left(args, run, steps_per_epoch)
        while not done and not stop.stop:
            if run.pos == 0:
                trainer.reset_state()          # a new epoch: each stream starts afresh
            if args.lr_decay != 1.0:
                trainer.optimizer.lr = decayed_lr(args.lr, run.epoch, args.lr_decay,
                                                  args.lr_decay_after)
            t0 = time.perf_counter()
            a, b = run.pos, min(run.pos + args.seq, x.shape[0])
            stats = (dp or trainer).step(x[a:b], y[a:b])
            dt = time.perf_counter() - t0
            if dp is not None:
                # every rank must take the same decisions (budget, evaluation, saving, Ctrl-C):
                # share the slowest rank's step time and whether any rank was interrupted
                shared = np.array([dt, float(stop.stop)])
                dp.comm.Allreduce(MPI.IN_PLACE, shared, op=MPI.MAX)
                dt, stop.stop = float(shared[0]), bool(shared[1])
            run.steps += 1
            run.chars += (b - a) * args.batch
            run.seconds += dt
            run.pos = b if b < x.shape[0] else 0
            if run.pos == 0:
                run.epoch += 1
            run.train_chars.append(run.chars)
            run.train_loss.append(stats.loss)
            recent = (recent + [(stats.loss, (b - a) * args.batch, dt)])[-20:]
            done, left = budget_left(args, run, steps_per_epoch)

            t1 = time.perf_counter()
            best = False
            if not done and evals.due(run.steps, run.seconds):
                best = do_eval()
                evals.mark(run.steps, run.seconds)
            if not done and samples.due(run.steps, run.seconds):
                do_sample(args.sample_length)
                samples.mark(run.steps, run.seconds)
            if best or (not done and saves.due(run.steps, run.seconds)):
                do_save(best)
                saves.mark(run.steps, run.seconds)
            extra_seconds += time.perf_counter() - t1

            rl = sum(r[0] for r in recent) / len(recent)
            cps = sum(r[1] for r in recent) / max(sum(r[2] for r in recent), 1e-9)
            val = f"  val {run.val_loss[-1] / LN2:.3f}" if run.val_loss else ""
            epoch = run.epoch + run.pos / x.shape[0]
            progress.update(f"step {run.steps}  epoch {epoch:.2f}  loss {rl:.3f}  "
                            f"bpc {rl / LN2:.3f}  {cps:,.0f} chars/s{val}  left {clock(left)}")
            if stats.skipped:
                log(f"step {run.steps}: update skipped ({stats.nonfinite[-1]})")
        if stop.stop:
            log(f"interrupted at step {run.steps}: evaluating and saving (Ctrl-C again aborts)")

        t1 = time.perf_counter()
        if last_eval_step != run.steps:
            best = do_eval()
        else:
            best = run.best_step == run.steps
        if args.sample_every[1]:
            do_sample(args.sample_length)
        do_save(best)
        extra_seconds += time.perf_counter() - t1
    val_loss = run.val_loss[-1]

    plot = None
    if args.plot and main_rank:
        plot = plot_history(run, os.path.join(args.out, "loss.png"),
                            title=f"{args.cell} {args.layers}x{args.hidden} on {corpus.name}",
                            log=log)
    if progress.live:
        progress.line()
    rate = run.chars / run.seconds if run.seconds else 0.0
    tail = run.train_loss[-20:]
    train_bpc = sum(tail) / len(tail) / LN2 if tail else math.nan
    print(f"{corpus.name}: {run.steps} steps, {run.chars:,} characters "
          f"({run.chars / (x.shape[0] * args.batch):.2f} epochs) in {run.seconds:.1f} s of "
          f"training at {rate:,.0f} chars/s (+{extra_seconds:.1f} s evaluating, sampling, "
          f"saving); train bpc {train_bpc:.3f}, best val_bpc "
          f"{run.best_val / LN2:.4f} at step {run.best_step}; checkpoints in {args.out}"
          + (f", plot {plot}" if plot else ""), file=out)
    print(f"val_bpc {val_loss / LN2:.4f}", file=out, flush=True)
    return {"val_bpc": val_loss / LN2, "val_loss": val_loss, "steps": run.steps,
            "chars": run.chars, "seconds": run.seconds, "checkpoint": last_path,
            "best": best_path if os.path.exists(best_path) else None, "plot": plot,
            "model": model, "trainer": trainer, "corpus": corpus, "run": run,
            "extra_seconds": extra_seconds}


def plot_history(run, path, title="", log=print):
    """A PNG of training (per step, light, and a moving mean) and validation loss in bits per
    character against characters seen; returns its path, or None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install -e '.[examples]'): no plot")
        return None
    tc, tl = np.asarray(run.train_chars, float), np.asarray(run.train_loss, float) / LN2
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if tc.size:
        ax.plot(tc, tl, color="tab:blue", alpha=0.25, lw=0.8)
        k = max(1, min(50, tc.size // 10))
        smooth = np.convolve(tl, np.ones(k) / k, mode="valid")
        ax.plot(tc[k - 1:], smooth, color="tab:blue", lw=1.5, label="training")
    if run.val_chars:
        ax.plot(run.val_chars, np.asarray(run.val_loss) / LN2, "o-", color="tab:orange",
                lw=1.5, ms=4, label="validation")
    ax.set_xlabel("characters seen")
    ax.set_ylabel("bits per character")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# =============================================================================================
# command line
# =============================================================================================
def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _float(lo=None, hi=None, lo_open=False, hi_open=False):
    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise argparse.ArgumentTypeError(f"must be {'>' if lo_open else '>='} {lo:g}, "
                                             f"got {v:g}")
        if hi is not None and (v > hi or (hi_open and v == hi)):
            raise argparse.ArgumentTypeError(f"must be {'<' if hi_open else '<='} {hi:g}, "
                                             f"got {v:g}")
        return v
    return parse


def add_data_arguments(p):
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="FILE", default=None,
                   help="a UTF-8 text file to train on (default: the Python standard "
                        "library's documentation, built once and cached in "
                        "$XDG_CACHE_HOME/bptt or ~/.cache/bptt; about 2 million characters)")
    g.add_argument("--val-fraction", type=_float(0, 0.5, lo_open=True), default=0.1,
                   metavar="F", help="the last F of the text is the validation text "
                                     "(default %(default)s)")
    return g


def add_model_arguments(p):
    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=sorted(CELLS), default="lstm",
                   help="recurrent cell (default %(default)s)")
    g.add_argument("--layers", type=_positive_int, default=1, help="stacked recurrent layers "
                                                                   "(default %(default)s)")
    g.add_argument("--hidden", type=_positive_int, default=256, help="units per recurrent "
                                                                     "layer (default %(default)s)")
    g.add_argument("--embed", type=_positive_int, default=64,
                   help="character embedding size (default %(default)s)")
    g.add_argument("--dropout", type=_float(0, 1, hi_open=True), default=0.0,
                   help="dropout after each recurrent layer (default %(default)s)")
    g.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="floating-point type of the model (default %(default)s)")
    g.add_argument("--seed", type=int, default=0,
                   help="seeds the initial weights, dropout and sampling (default %(default)s)")
    return g


def add_training_arguments(p):
    g = p.add_argument_group("training")
    g.add_argument("--seq", type=_positive_int, default=100, metavar="K1",
                   help="steps per chunk: an update every K1 steps (TBPTT k1; default "
                        "%(default)s)")
    g.add_argument("--k2", type=_positive_int, default=None,
                   help="steps backpropagated through at each update (TBPTT k2; default: "
                        "--seq)")
    g.add_argument("--batch", type=_positive_int, default=32, metavar="B",
                   help="parallel streams: the training text cut into B contiguous parts "
                        "(default %(default)s)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                   help="default %(default)s")
    g.add_argument("--lr", type=_float(0, lo_open=True), default=2e-3,
                   help="learning rate (default %(default)s)")
    g.add_argument("--lr-decay", type=_float(0, 1, lo_open=True), default=1.0, metavar="G",
                   help="multiply the learning rate by G at the end of every epoch after the "
                        "first --lr-decay-after (char-rnn; default %(default)s: no decay)")
    g.add_argument("--lr-decay-after", type=_positive_int, default=10, metavar="N",
                   help="epochs at the full learning rate before the decay (default "
                        "%(default)s)")
    g.add_argument("--clip", type=_float(0), default=5.0,
                   help="clip the global gradient norm to this (0: no clipping; default "
                        "%(default)s)")
    g.add_argument("--eval-batch", type=_positive_int, default=64, metavar="E",
                   help="validation text cut into E contiguous streams, state carried "
                        "through each (default %(default)s)")
    return g


def add_budget_arguments(p, default_minutes=2.0):
    g = p.add_argument_group(
        "budget", f"training stops at the first budget reached (default: --minutes "
                  f"{default_minutes:g}); time counts training only")
    g.add_argument("--steps", type=_positive_int, default=None,
                   help="chunks trained in all (one update each)")
    g.add_argument("--epochs", type=_float(0, lo_open=True), default=None,
                   help="passes through the training streams (may be fractional)")
    g.add_argument("--minutes", type=_float(0, lo_open=True), default=None,
                   help="minutes of training")
    return g


def build_parser():
    p = argparse.ArgumentParser(
        prog="char_lm.py", allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a character-level language model with truncated BPTT, watch it "
                    "learn, sample from it.\n\n"
                    "  python examples/char_lm.py                  # 2 minutes on the default "
                    "corpus\n"
                    "  python examples/char_lm.py --data input.txt --minutes 10\n"
                    "  python examples/char_lm.py --resume         # continue runs/char_lm\n"
                    "  python examples/char_lm.py sample runs/char_lm/best.npz --prime \"The \"\n"
                    "                                              # (sample --help for more)",
        epilog="Progress, validation and samples go to stderr; a one-line summary and, last,\n"
               "'val_bpc X' (bits per character over the whole validation text) to stdout.\n"
               "Ctrl-C stops after the current chunk, then evaluates, saves and plots; a second\n"
               "Ctrl-C aborts. A run stopped early continues exactly with --resume.")
    add_data_arguments(p)
    add_model_arguments(p)
    add_training_arguments(p)
    add_budget_arguments(p)
    g = p.add_argument_group("monitoring and checkpoints")
    g.add_argument("--eval-every", type=parse_interval, default=None, metavar="N|Ns|Nm",
                   help="validation bits per character every N steps, or every N seconds/"
                        "minutes of training, and at the end (0: only at the end; default: "
                        "every 30 s, or an eighth of a longer --minutes budget)")
    g.add_argument("--sample-every", type=parse_interval, default=("seconds", 60.0),
                   metavar="N|Ns|Nm", help="print a sample this often, and at the end (0: "
                                           "never; default 60s)")
    g.add_argument("--sample-length", type=_positive_int, default=200,
                   help="characters per sample (default %(default)s)")
    g.add_argument("--save-every", type=parse_interval, default=("seconds", 60.0),
                   metavar="N|Ns|Nm",
                   help="write OUT/last.npz this often (always at the end, and OUT/best.npz "
                        "whenever validation improves; default 60s)")
    g.add_argument("--out", metavar="DIR", default=os.path.join("runs", "char_lm"),
                   help="checkpoints and plot go here (default %(default)s)")
    g.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                   help="continue from CHECKPOINT (default OUT/last.npz) exactly where it "
                        "stopped; the model, data and optimizer options come from the "
                        "checkpoint, the budget from the command line (or the checkpoint)")
    g.add_argument("--no-plot", dest="plot", action="store_false",
                   help="do not write OUT/loss.png")
    g = p.add_argument_group("several processes (MPI)")
    g.add_argument("--distributed", action="store_true",
                   help="data-parallel training over MPI: run as 'mpiexec -n N python -m "
                        "mpi4py examples/char_lm.py --distributed ...'; each of the N ranks "
                        "trains on its share of the --batch streams, the gradients are "
                        "combined every step, rank 0 prints and writes the checkpoints "
                        "(needs pip install \"bptt[mpi]\"; --resume works with any N)")
    return p


def build_sample_parser():
    p = argparse.ArgumentParser(
        prog="char_lm.py sample", allow_abbrev=False,
        description="Sample text from a checkpoint written by char_lm.py, streaming characters "
                    "to stdout as they come (the prime first).")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a .npz written by char_lm.py")
    p.add_argument("--prime", default="", help="text the model reads first (default: a "
                                               "newline, not printed)")
    p.add_argument("--temperature", type=_float(0), default=0.8,
                   help="divide the logits by this; lower is more conservative, 0 always "
                        "takes the most likely character (default %(default)s)")
    p.add_argument("--top-k", type=int, default=0, metavar="K",
                   help="sample among the K most likely characters only (0: all; default "
                        "%(default)s)")
    p.add_argument("--length", type=int, default=500, help="characters to generate (default "
                                                           "%(default)s)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: fresh "
                                                           "randomness)")
    return p


def parse_train_args(argv):
    """Parse the training command line; on --resume, take the run options from the
    checkpoint (an explicitly given option that differs is an error)."""
    parser = build_parser()
    given = argparse.Namespace(**{a.dest: _NOT_GIVEN for a in parser._actions
                                  if a.dest != "help"})
    parser.parse_args(argv, namespace=given)
    explicit = {k for k, v in vars(given).items() if v is not _NOT_GIVEN}
    args = parser.parse_args(argv)
    args.explicit = explicit
    if args.k2 is None:
        args.k2 = args.seq
    if args.data is not None:
        args.data = os.path.abspath(args.data)
    if args.resume:
        path = os.path.join(args.out, "last.npz") if args.resume is True else args.resume
        if not os.path.isfile(path):
            parser.error(f"--resume: no checkpoint at {path}")
        try:
            ck = bptt.load(path)
        except (bptt.CheckpointError, OSError) as e:
            parser.error(f"--resume: {e}")
        cfg = ck.extra.get("config")
        if not isinstance(cfg, dict) or set(cfg) != set(RUN_OPTIONS):
            parser.error(f"--resume: {path} is not a checkpoint of this script")
        for k in RUN_OPTIONS:
            if k in explicit and getattr(args, k) != cfg[k]:
                parser.error(f"--resume: the checkpoint was trained with "
                             f"--{k.replace('_', '-')} {cfg[k]}, the command line says "
                             f"{getattr(args, k)}; leave the option out, or start a new run")
            setattr(args, k, cfg[k])
        if not explicit & set(BUDGET_OPTIONS):
            for k, v in ck.extra["budget"].items():
                setattr(args, k, v)
    if args.steps is None and args.epochs is None and args.minutes is None:
        args.minutes = 2.0
    if args.eval_every is None:
        args.eval_every = ("seconds", max(30.0, 60.0 * (args.minutes or 0) / 8))
    return parser, args


_NOT_GIVEN = object()


def sample_main(argv):
    parser = build_sample_parser()
    args = parser.parse_args(argv)
    if args.top_k < 0:
        parser.error(f"--top-k must be >= 0, got {args.top_k}")
    if args.length < 0:
        parser.error(f"--length must be >= 0, got {args.length}")
    if not os.path.isfile(args.checkpoint):
        parser.error(f"no such checkpoint: {args.checkpoint}")
    try:
        ck = bptt.load(args.checkpoint)
    except bptt.CheckpointError as e:
        parser.error(str(e))
    vocab = ck.extra.get("vocab")
    if not isinstance(vocab, str):
        parser.error(f"{args.checkpoint} holds no vocabulary: not written by char_lm.py")
    rng = np.random.default_rng(args.seed)
    try:
        chars = generate(ck.model, vocab, args.prime, args.length, args.temperature,
                         args.top_k, rng)
        out = sys.stdout
        out.write(args.prime)
        out.flush()
        for ch in chars:
            out.write(ch)
            out.flush()
        out.write("\n")
        out.flush()
    except ValueError as e:
        parser.error(str(e))
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["sample"]:
        return sample_main(argv[1:])
    if argv[:1] == ["train"]:
        argv = argv[1:]
    parser, args = parse_train_args(argv)
    try:
        train(args)
    except DataError as e:
        parser.error(str(e))
    except KeyboardInterrupt:
        print("\naborted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
