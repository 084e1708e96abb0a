"""Handwritten digits, read row by row: an LSTM classifier beside a static MLP.

scikit-learn ships the data (``sklearn.datasets.load_digits``: 1,797 images of 8x8 pixels, no
download). The LSTM reads each image as a sequence of 8 steps (the rows) of 8 pixels and
classifies it from its output at the last step (many-to-one); the MLP (Dense -> Tanh -> Dense)
sees the 64 pixels at once, through the same ``fit``, as a sequence of one step. Both train
with early stopping on a validation split and are scored on a held-out test set (the same
stratified split for both). Prints both accuracies and confusion matrices; saves a PNG of the
misclassified test digits of each model into ``--out``.

    python examples/digits.py                    # both models, a few seconds each
    python examples/digits.py --quick --out /tmp/digits   # a few seconds (for tests)

Needs the ``examples`` extra (scikit-learn, matplotlib).
"""

import argparse
import os
import sys
import time

# Small matrices: one BLAS thread is faster, and with other work on the machine a threaded BLAS
# can be ten times slower (and its sums are not reproducible to the bit). Set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import bptt  # noqa: E402
from bptt.data import SequenceDataset  # noqa: E402
from bptt.sequences import evaluate, fit, predict  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="digits-output", help="folder for the PNGs")
    p.add_argument("--quick", action="store_true", help="tiny models, 2 epochs (for tests)")
    p.add_argument("--epochs", type=int, default=80, help="most epochs per model")
    p.add_argument("--patience", type=int, default=10,
                   help="stop after this many epochs without a better validation loss")
    p.add_argument("--lstm-hidden", type=int, default=64, help="LSTM hidden units")
    p.add_argument("--mlp-hidden", type=int, default=256, help="MLP hidden units")
    p.add_argument("--dropout", type=float, default=0.3, help="MLP dropout")
    p.add_argument("--lstm-lr", type=float, default=1e-2, help="LSTM Adam learning rate")
    p.add_argument("--mlp-lr", type=float, default=2e-3, help="MLP Adam learning rate")
    p.add_argument("--batch", type=int, default=32, help="batch size")
    p.add_argument("--test", type=float, default=0.2, help="test fraction")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, shuffles and models")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.lstm_hidden, args.mlp_hidden = 2, 16, 32
    return args


def load():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("this example needs scikit-learn: pip install -e '.[examples]'")
    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0  # (1797, 8, 8), pixels in [0, 1]
    return images, digits.target.astype(np.int64)


def confusion(y_true, y_pred, k=10):
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def format_confusion(m):
    k = m.shape[0]
    lines = ["true \\ predicted " + " ".join(f"{j:>4}" for j in range(k))]
    for i in range(k):
        lines.append(f"{i:>16} " + " ".join(f"{v:>4}" if v else "   ." for v in m[i]))
    return "\n".join(lines)


def save_misclassified(path, images, y_true, y_pred, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wrong = np.flatnonzero(y_true != y_pred)[:40]
    cols = 10
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3 + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), wrong):
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"{y_true[i]}\u2192{y_pred[i]}", fontsize=9, color="crimson")
    fig.suptitle(f"{title}: {len(np.flatnonzero(y_true != y_pred))} misclassified "
                 "(true\u2192predicted)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def train_and_test(name, model, lr, train, test, args, test_images):
    loss = bptt.SoftmaxCrossEntropy()
    t0 = time.perf_counter()
    hist = fit(model, loss, train, epochs=args.epochs, batch_size=args.batch, lr=lr,
               clip=bptt.ClipGlobalNorm(5.0), validation_split=0.1, patience=args.patience,
               monitor="val_loss", seed=args.seed, progress=not args.quiet)
    result = evaluate(model, loss, test)
    seconds = time.perf_counter() - t0
    pred = predict(model, test).argmax(axis=1)
    y = test.targets
    assert np.isclose(result["accuracy"], np.mean(pred == y))
    print(f"{name} test accuracy: {result['accuracy']:.4f} ({int(np.sum(pred == y))}/{len(y)}),"
          f" test loss {result['loss']:.4f}, {len(hist)} epochs (best {hist.best_epoch}), "
          f"{model.num_parameters()} parameters, {seconds:.1f}s")
    print(format_confusion(confusion(y, pred)))
    path = os.path.join(args.out, f"misclassified_{name.lower()}.png")
    save_misclassified(path, test_images, y, pred, name)
    print(f"saved {path}")
    return result["accuracy"], seconds


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    images, labels = load()
    n = len(labels)

    # the LSTM reads 8 rows of 8 pixels; the MLP sees the 64 pixels as one step
    rows = SequenceDataset(images, labels)                       # (8, 8) sequences
    flat = SequenceDataset.static(images.reshape(n, 64), labels)  # (1, 64) "sequences"
    train_rows, test_rows = rows.split(args.test, seed=args.seed, stratify=True)
    train_flat, test_flat = flat.split(args.test, seed=args.seed, stratify=True)
    assert (test_rows.targets == test_flat.targets).all()  # the same split: same seed, labels
    test_images = np.stack(test_rows.sequences)
    print(f"digits: {len(train_rows)} training images (10% of them for validation), "
          f"{len(test_rows)} test images")

    H, M = args.lstm_hidden, args.mlp_hidden
    lstm = bptt.Sequential([bptt.LSTM(8, H), bptt.Dense(H, 10)], dtype=np.float32,
                           seed=args.seed)
    mlp = bptt.Sequential([bptt.Dense(64, M), bptt.ReLU(), bptt.Dropout(args.dropout),
                           bptt.Dense(M, 10)], dtype=np.float32, seed=args.seed)
    acc_lstm, s_lstm = train_and_test("LSTM", lstm, args.lstm_lr, train_rows, test_rows, args,
                                      test_images)
    acc_mlp, s_mlp = train_and_test("MLP", mlp, args.mlp_lr, train_flat, test_flat, args,
                                    test_images)
    print(f"summary: LSTM {acc_lstm:.4f} in {s_lstm:.1f}s, MLP {acc_mlp:.4f} in {s_mlp:.1f}s")


if __name__ == "__main__":
    main()
