"""Train a recurrent network on your own sequences: a template to copy and adapt.

Three commands:

    python examples/train_sequences.py demo demo.npz             # write a small demo data set
    python examples/train_sequences.py train demo.npz --out run  # train, checkpoint into run/
    python examples/train_sequences.py evaluate run/best.npz demo.npz

The data file is an ``.npz`` holding the inputs and the targets in one of these layouts
(samples first, as data are usually stored; the library pads and turns them time-major):

- a list: ``x_0, x_1, ...`` one array per sequence, ``(len_i, D)`` floats or ``(len_i,)``
  integer tokens (no pickle needed);
- padded: ``x`` ``(N, L, D)`` or ``(N, L)`` with ``lengths`` ``(N,)``, sequence i being
  ``x[i, :lengths[i]]``; without ``lengths`` every sequence has L steps;
- an object array ``x`` of sequences (needs ``--allow-pickle``; load only files you trust).

Targets: ``y`` ``(N,)`` integer class labels or ``(N,)``/``(N, C)`` float values, one per
sequence (many-to-one), or one per step (many-to-many): ``y_0, y_1, ...``, or ``y`` padded like
``x``. ``--task`` says which when the shapes cannot. To train from arrays you already hold in
Python, call ``train(sequences, targets, args)`` with a list of arrays (see ``main``).

Integer labels train with softmax cross-entropy (accuracy reported), float targets with mean
squared error (``--loss`` to choose). Checkpoints (``bptt.save``, written atomically): ``last.npz``
after every epoch (with the optimizer, for ``--resume``) and ``best.npz`` whenever the monitored
validation figure improves.
"""

import argparse
import os
import sys

# Small matrices: one BLAS thread is faster, and with other work on the machine a threaded BLAS
# can be ten times slower. Set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import bptt  # noqa: E402
from bptt.data import SequenceDataset  # noqa: E402
from bptt.losses import LOSSES  # noqa: E402
from bptt.sequences import evaluate, fit  # noqa: E402

CELLS = {"lstm": bptt.LSTM, "gru": bptt.GRU, "elman": bptt.Elman}
LOSS_NAMES = {"ce": "SoftmaxCrossEntropy", "mse": "MeanSquaredError",
              "bce": "BinaryCrossEntropyWithLogits"}


# -- data ------------------------------------------------------------------------------------------
def _numbered(z, prefix):
    keys = sorted((k for k in z.files if k.startswith(prefix) and k[len(prefix):].isdigit()),
                  key=lambda k: int(k[len(prefix):]))
    if keys and [int(k[len(prefix):]) for k in keys] != list(range(len(keys))):
        raise ValueError(f"arrays {prefix}0, {prefix}1, ... must be numbered without gaps")
    return [z[k] for k in keys]


def load_npz(path, task=None, allow_pickle=False, padding="pre"):
    """A SequenceDataset from an .npz file in one of the layouts of the module docstring."""
    try:
        z = np.load(path, allow_pickle=allow_pickle)
    except FileNotFoundError:
        sys.exit(f"no such data file: {path}")
    with z:
        try:
            xs = _numbered(z, "x_")
            ys = _numbered(z, "y_")
            arrays = {k: z[k] for k in z.files if not k[2:].isdigit()}
        except ValueError as e:
            if "allow_pickle" in str(e):
                sys.exit(f"{path} holds object arrays, which load only with --allow-pickle "
                         "(pickle runs code: only for files you trust). The x_0, x_1, ... "
                         "layout needs no pickle.")
            raise
    lengths = arrays.get("lengths")
    if xs:
        seqs = xs
    elif "x" in arrays:
        x = arrays["x"]
        if x.dtype == object:
            seqs = list(x)
        elif lengths is not None:
            seqs = [x[i, :n] for i, n in enumerate(lengths)]
        else:
            seqs = list(x)
    else:
        sys.exit(f"{path} holds neither x nor x_0, x_1, ...: found {sorted(z.files)[:10]}")
    if ys:
        targets = ys
        task = task or "many-to-many"
    elif "y" in arrays:
        y = arrays["y"]
        if y.dtype == object:
            targets, task = list(y), task or "many-to-many"
        else:
            L = max(len(s) for s in seqs)
            if task is None:
                per_step = (y.ndim >= 2 and y.shape[1] == L and
                            (y.dtype.kind in "iu" or y.ndim == 3))
                task = "many-to-many" if per_step else "many-to-one"
            if task == "many-to-many":
                targets = [y[i, :len(s)] for i, s in enumerate(seqs)]
            else:
                targets = y
    else:
        targets = None
    return SequenceDataset(seqs, targets, task=task if targets is not None else None,
                           padding=padding)


def make_demo(path, n=600, task="many-to-one", seed=0, layout="list"):
    """Noisy sine waves of random length (10..40 steps, 2 features: the signal and a noise
    channel). many-to-one: the class is the frequency (3 classes); many-to-many: at every step,
    is the running mean of the signal so far positive (2 classes)?"""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(10, 41, n)
    freqs = np.array([0.05, 0.15, 0.3])
    labels = rng.integers(0, 3, n)
    xs, ys = [], []
    for L, c in zip(lengths, labels):
        t = np.arange(L)
        signal = np.sin(2 * np.pi * freqs[c] * t + rng.uniform(0, 2 * np.pi))
        x = np.stack([signal + 0.3 * rng.standard_normal(L), rng.standard_normal(L)], axis=1)
        xs.append(x.astype(np.float32))
        ys.append((np.cumsum(x[:, 0]) > 0).astype(np.int64))
    if layout == "list":
        arrays = {f"x_{i}": x for i, x in enumerate(xs)}
        if task == "many-to-one":
            arrays["y"] = labels
        else:
            arrays.update({f"y_{i}": y for i, y in enumerate(ys)})
    else:  # padded, valid steps first
        L = int(lengths.max())
        x = np.zeros((n, L, 2), np.float32)
        y = np.zeros((n, L), np.int64)
        for i, (xi, yi) in enumerate(zip(xs, ys)):
            x[i, :len(xi)], y[i, :len(yi)] = xi, yi
        arrays = {"x": x, "lengths": lengths, "y": labels if task == "many-to-one" else y}
    np.savez_compressed(path, **arrays)
    return path


# -- model -----------------------------------------------------------------------------------------
def build_model(ds, args, num_outputs):
    parts = []
    if ds.kind == "tokens":
        vocab = args.vocab or int(max(s.max() for s in ds.sequences)) + 1
        parts.append(bptt.Embedding(vocab, args.embed))
        size = args.embed
    else:
        size = ds.num_features
    for layer in range(args.layers):
        cell = CELLS[args.cell](size, args.hidden)
        part = bptt.Bidirectional(cell) if args.bidirectional else cell
        parts.append(part)
        size = part.output_size(size)
        if args.dropout > 0:
            parts.append(bptt.Dropout(args.dropout))
    parts.append(bptt.Dense(size, num_outputs))
    return bptt.Sequential(parts, dtype=np.dtype(args.dtype), seed=args.seed)


def choose_loss(ds, name):
    if name == "auto":
        name = "ce" if ds.target_kind == "classes" else "mse"
    return LOSSES[LOSS_NAMES[name]]()


def num_outputs(ds, loss, args):
    if isinstance(loss, bptt.SoftmaxCrossEntropy):
        if args.classes:
            return args.classes
        labels = ds.targets if ds.task == "many-to-one" else np.concatenate(ds.targets)
        return int(labels.max()) + 1
    return ds.num_targets


# -- training --------------------------------------------------------------------------------------
def train(sequences, targets, args):
    """Train on a list of arrays (or a SequenceDataset when targets is None); returns
    (model, history)."""
    ds = (sequences if isinstance(sequences, SequenceDataset) else
          SequenceDataset(sequences, targets, task=args.task, padding=args.padding))
    if ds.targets is None:
        sys.exit("the data hold no targets (y or y_0, y_1, ...)")
    loss = choose_loss(ds, args.loss)
    os.makedirs(args.out, exist_ok=True)
    last_path, best_path = os.path.join(args.out, "last.npz"), os.path.join(args.out, "best.npz")
    initial_epoch, past = 0, []
    if args.resume and os.path.exists(last_path):
        ck = bptt.load(last_path)
        model, opt = ck.model, ck.optimizer
        initial_epoch, past = int(ck.extra["epoch"]), list(ck.extra["history"])
        print(f"resuming from {last_path} after epoch {initial_epoch}")
    else:
        model = build_model(ds, args, num_outputs(ds, loss, args))
        opt = bptt.optim.get_optimizer(args.optimizer, model.named_parameters(), lr=args.lr,
                                       **({"weight_decay": args.weight_decay}
                                          if args.weight_decay else {}))
    print(f"{ds}\n{model}\nloss {loss!r}, optimizer {opt!r}, {model.num_parameters()} "
          "parameters")
    info = {"task": ds.task, "loss": type(loss).__name__, "padding": ds.padding,
            "kind": ds.kind, "args": {k: v for k, v in vars(args).items() if k != "func"}}

    def checkpoint(entry, model):
        past.append(entry)
        bptt.save(last_path, model=model, optimizer=opt, epoch=entry["epoch"], history=past,
                  **info)
        if entry.get("improved"):
            bptt.save(best_path, model=model, epoch=entry["epoch"], metrics=entry, **info)

    clip = bptt.ClipGlobalNorm(args.clip) if args.clip > 0 else None
    validation = args.validation if args.validation > 0 else None
    if validation is None and args.monitor.startswith("val_"):
        args.monitor = args.monitor[len("val_"):]  # no validation data: watch the training loss
    history = fit(model, loss, ds, epochs=args.epochs, batch_size=args.batch, optimizer=opt,
                  validation_split=validation, k1=args.k1, k2=args.k2, clip=clip,
                  l1=args.l1, l2=args.l2, patience=args.patience, monitor=args.monitor,
                  seed=args.seed, callback=checkpoint, initial_epoch=initial_epoch,
                  progress=not args.quiet)
    if history:
        last = history[-1]
        figures = ", ".join(f"{k} {last[k]:.4f}" for k in ("loss", "accuracy", "val_loss",
                                                           "val_accuracy") if k in last)
        print(f"after epoch {last['epoch']}: {figures}")
    if history.best_epoch is not None:
        print(f"best {args.monitor} {history.best_value:.4f} at epoch {history.best_epoch}: "
              f"{best_path}")
    return model, history


def evaluate_checkpoint(checkpoint, data, allow_pickle=False, batch=256):
    ck = bptt.load(checkpoint)
    task, padding = ck.extra.get("task"), ck.extra.get("padding", "pre")
    ds = load_npz(data, task=task, allow_pickle=allow_pickle, padding=padding)
    loss = LOSSES[ck.extra.get("loss", "SoftmaxCrossEntropy")]()
    result = evaluate(ck.model, loss, ds, batch_size=batch)
    print(f"{checkpoint} (epoch {ck.extra.get('epoch')}) on {data}: {len(ds)} sequences, " +
          ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
    return result


# -- command line ----------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="write a small demo data set")
    d.add_argument("path", help="where to write the .npz")
    d.add_argument("--n", type=int, default=600, help="number of sequences")
    d.add_argument("--task", choices=["many-to-one", "many-to-many"], default="many-to-one")
    d.add_argument("--layout", choices=["list", "padded"], default="list")
    d.add_argument("--seed", type=int, default=0)

    t = sub.add_parser("train", help="train on an .npz data file",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("data", help=".npz file (layouts: see the module docstring)")
    t.add_argument("--out", default="run", help="folder for checkpoints")
    t.add_argument("--task", choices=["many-to-one", "many-to-many"], default=None,
                   help="default: told by the targets' layout")
    t.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    t.add_argument("--hidden", type=int, default=64)
    t.add_argument("--layers", type=int, default=1)
    t.add_argument("--bidirectional", action="store_true")
    t.add_argument("--dropout", type=float, default=0.0, help="after each recurrent layer")
    t.add_argument("--embed", type=int, default=32, help="embedding size (token inputs)")
    t.add_argument("--vocab", type=int, default=None, help="default: largest token + 1")
    t.add_argument("--classes", type=int, default=None, help="default: largest label + 1")
    t.add_argument("--loss", choices=["auto", *LOSS_NAMES], default="auto",
                   help="auto: ce for integer labels, mse for float targets")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--optimizer", default="adam", help="sgd, adam, adamw, rmsprop, adagrad")
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--weight-decay", type=float, default=0.0, help="the optimizer's own")
    t.add_argument("--clip", type=float, default=5.0, help="global-norm clip (0: none)")
    t.add_argument("--l1", type=float, default=0.0, help="L1 penalty on the weights")
    t.add_argument("--l2", type=float, default=0.0, help="L2 penalty on the weights")
    t.add_argument("--k1", type=int, default=None, help="TBPTT: update every k1 steps")
    t.add_argument("--k2", type=int, default=None, help="TBPTT: backpropagate k2 steps")
    t.add_argument("--validation", type=float, default=0.15,
                   help="held-out fraction (0: none; then the training loss is monitored)")
    t.add_argument("--patience", type=int, default=8, help="early stopping (-1: none)")
    t.add_argument("--monitor", default="val_loss")
    t.add_argument("--padding", choices=["pre", "post"], default="pre")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.npz")
    t.add_argument("--allow-pickle", action="store_true")
    t.add_argument("--quick", action="store_true", help="a tiny run (for tests)")
    t.add_argument("--quiet", action="store_true", help="no per-epoch lines")

    e = sub.add_parser("evaluate", help="evaluate a checkpoint on an .npz data file")
    e.add_argument("checkpoint")
    e.add_argument("data")
    e.add_argument("--allow-pickle", action="store_true")
    e.add_argument("--batch", type=int, default=256)

    args = p.parse_args(argv)
    if args.command == "train":
        if args.quick:
            args.epochs, args.hidden = min(args.epochs, 3), min(args.hidden, 16)
        if args.patience < 0:
            args.patience = None
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.command == "demo":
        make_demo(args.path, args.n, args.task, args.seed, args.layout)
        print(f"wrote {args.path}: {args.n} sequences, {args.task}, layout {args.layout}")
    elif args.command == "train":
        ds = load_npz(args.data, args.task, args.allow_pickle, args.padding)
        # your own data instead: train(list_of_arrays, targets, args)
        train(ds, None, args)
    else:
        evaluate_checkpoint(args.checkpoint, args.data, args.allow_pickle, args.batch)


if __name__ == "__main__":
    main()
