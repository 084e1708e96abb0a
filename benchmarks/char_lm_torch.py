#!/usr/bin/env python
"""The character-level language model of ``examples/char_lm.py``, trained with PyTorch (CPU).

The side-by-side comparison of issue 4: the same text, split, stream layout, model, initial
weights, optimizer, clipping and time budget as ``examples/char_lm.py`` (whose data and
option functions this script imports), the training loop written the usual PyTorch way
(state detached between chunks, ``clip_grad_norm_``, ``torch.optim``). It prints the
characters per second of training and, as its last line, ``val_bpc X``: bits per character
over the whole validation text, computed exactly as the example does (the same
``eval_layout`` streams, state carried through each, per-character losses summed in float64).

    python benchmarks/char_lm_torch.py --minutes 5                  # the default corpus
    python benchmarks/char_lm_torch.py --data FILE --cell lstm --layers 1 --hidden 256 \\
        --embed 64 --seq 100 --batch 32 --optimizer adam --lr 2e-3 --clip 5 \\
        --dtype float32 --seed 0 --minutes 5
    python examples/char_lm.py   (same options)                     # the bptt side

Only the comparison needs PyTorch; ``bptt`` never imports it. The time budget counts training
only (as in the example). k2 may be at most --seq here (k2 < seq: the first seq - k2 steps of
a chunk run without gradient, as bptt's TBPTT defines it); k2 > seq, which needs the graph of
earlier chunks, is left out.
"""

import argparse
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import char_lm  # noqa: E402  (the example's data, layout and option functions)

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - the benchmark needs torch, bptt does not
    sys.exit("benchmarks/char_lm_torch.py needs PyTorch (pip install torch); bptt itself "
             "does not")

TORCH_CELLS = {"elman": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
TORCH_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam,
                    "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop,
                    "adagrad": torch.optim.Adagrad}


class CharLM(nn.Module):
    """Embedding, ``layers`` recurrent layers (each followed by dropout when > 0), Linear: the
    layout of :func:`char_lm.build_model`."""

    def __init__(self, vocab_size, cell="lstm", layers=1, hidden=256, embed=64, dropout=0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.cells = nn.ModuleList(TORCH_CELLS[cell](embed if i == 0 else hidden, hidden)
                                   for i in range(layers))
        self.drop = nn.Dropout(dropout) if dropout > 0 else None
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, x, state):
        """x: (T, B) int64; state: one entry per layer (None for zeros). Returns logits
        (T, B, V) and the new state."""
        h, new = self.embed(x), []
        for cell, s in zip(self.cells, state):
            h, s = cell(h, s)
            new.append(s)
            if self.drop is not None:
                h = self.drop(h)
        return self.head(h), new


def copy_bptt_weights(net, model):
    """Load the initial weights of a bptt model (:func:`char_lm.build_model`, same options)
    into ``net``: PyTorch's names and layouts are bptt's."""
    import bptt
    params = model.named_parameters()
    cells = iter(net.cells)
    with torch.no_grad():
        for i, part in enumerate(model.parts):
            if isinstance(part, bptt.Embedding):
                targets = {"weight": net.embed.weight}
            elif isinstance(part, (bptt.Elman, bptt.LSTM, bptt.GRU)):
                c = next(cells)
                targets = {k: getattr(c, f"{k}_l0") for k in
                           ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            elif isinstance(part, bptt.Dense):
                targets = {"weight": net.head.weight, "bias": net.head.bias}
            else:
                continue
            for k, t in targets.items():
                t.copy_(torch.from_numpy(np.asarray(params[f"{i}.{k}"], dtype=np.float64)))


def detach(state):
    return [None if s is None else (tuple(t.detach() for t in s) if isinstance(s, tuple)
                                    else s.detach()) for s in state]


def evaluate(net, x, y, w, chunk=char_lm.EVAL_CHUNK):
    """Mean loss (nats per character) over :func:`char_lm.eval_layout` arrays, as
    :func:`char_lm.evaluate` computes it."""
    net.eval()
    state, total = [None] * len(net.cells), 0.0
    with torch.no_grad():
        for a in range(0, x.shape[0], chunk):
            out, state = net(torch.from_numpy(x[a:a + chunk]), state)
            V = out.shape[-1]
            per = F.cross_entropy(out.reshape(-1, V), torch.from_numpy(y[a:a + chunk]).reshape(-1),
                                  reduction="none").reshape(out.shape[:2])
            total += float(np.sum(per.numpy().astype(np.float64) * w[a:a + chunk]))
    net.train()
    return total / float(w.sum())


def build_parser():
    p = argparse.ArgumentParser(
        prog="char_lm_torch.py", allow_abbrev=False,
        description="The char_lm.py model and training loop in PyTorch (CPU), for comparison: "
                    "same text, split, stream layout, initial weights and options. Prints "
                    "chars/s and, last, 'val_bpc X'.")
    char_lm.add_data_arguments(p)
    char_lm.add_model_arguments(p)
    char_lm.add_training_arguments(p)
    char_lm.add_budget_arguments(p)
    g = p.add_argument_group("PyTorch")
    g.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (default: PyTorch's choice)")
    g.add_argument("--init", choices=["bptt", "torch"], default="bptt",
                   help="initial weights: copied from the bptt model of the same --seed "
                        "(default), or PyTorch's own initialisation")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    k2 = args.seq if args.k2 is None else args.k2
    if k2 > args.seq:
        parser.error(f"--k2 {k2} > --seq {args.seq} is not implemented in the PyTorch twin")
    if args.steps is None and args.epochs is None and args.minutes is None:
        args.minutes = 2.0
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    try:
        corpus = char_lm.load_corpus(args.data, args.val_fraction, log=log)
        char_lm.check_sizes(corpus, args.batch, args.seq)
    except char_lm.DataError as e:
        parser.error(str(e))
    log(f"corpus {corpus.describe()}")
    x, y = char_lm.stream_layout(corpus.train_ids, args.batch)
    vx, vy, vw = char_lm.eval_layout(corpus.val_ids, args.eval_batch)
    steps_per_epoch = -(-x.shape[0] // args.seq)
    V = len(corpus.vocab)

    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    net = CharLM(V, args.cell, args.layers, args.hidden, args.embed, args.dropout).to(dtype)
    if args.init == "bptt":
        copy_bptt_weights(net, char_lm.build_model(V, args.cell, args.layers, args.hidden,
                                                   args.embed, args.dropout, args.dtype,
                                                   args.seed))
    opt = TORCH_OPTIMIZERS[args.optimizer](net.parameters(), lr=args.lr)
    params = list(net.parameters())
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.cell} "
        f"x{args.layers}, hidden {args.hidden}, embedding {args.embed}, "
        f"{sum(p.numel() for p in params):,} parameters, {args.dtype}; {args.batch} streams, "
        f"{steps_per_epoch} chunks of {args.seq} per epoch; k2 {k2}; {args.optimizer} lr "
        f"{args.lr:g}, clip {args.clip:g}; init {args.init}")

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    total_steps = [s for s in (args.steps, None if args.epochs is None else
                               int(math.ceil(args.epochs * steps_per_epoch))) if s is not None]
    max_steps = min(total_steps) if total_steps else math.inf
    max_seconds = 60 * args.minutes if args.minutes is not None else math.inf
    steps = chars = pos = epoch = 0
    seconds, last_print, state = 0.0, time.monotonic(), None
    net.train()
    while steps < max_steps and seconds < max_seconds:
        t0 = time.perf_counter()
        if pos == 0:
            state = [None] * len(net.cells)
        a, b = pos, min(pos + args.seq, x.shape[0])
        n = b - a
        xa, ya = xt[a:b], yt[a:b]
        state = detach(state)
        if k2 < n:
            with torch.no_grad():
                out1, state = net(xa[:n - k2], state)
                lost = F.cross_entropy(out1.reshape(-1, V), ya[:n - k2].reshape(-1),
                                       reduction="sum")
            state = detach(state)
            out, state = net(xa[n - k2:], state)
            loss = F.cross_entropy(out.reshape(-1, V), ya[n - k2:].reshape(-1),
                                   reduction="sum") / (n * args.batch)
            reported = float(loss.detach()) + float(lost) / (n * args.batch)
        else:
            out, state = net(xa, state)
            loss = F.cross_entropy(out.reshape(-1, V), ya.reshape(-1))
            reported = float(loss.detach())
        if args.lr_decay != 1.0:
            for group in opt.param_groups:
                group["lr"] = char_lm.decayed_lr(args.lr, epoch, args.lr_decay,
                                                 args.lr_decay_after)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        pos = b if b < x.shape[0] else 0
        epoch += pos == 0
        steps += 1
        chars += n * args.batch
        seconds += time.perf_counter() - t0
        if time.monotonic() - last_print >= 10:
            last_print = time.monotonic()
            log(f"step {steps}  loss {reported:.3f}  bpc {reported / char_lm.LN2:.3f}  "
                f"{chars / seconds:,.0f} chars/s  {seconds:.0f} s")
    t0 = time.perf_counter()
    val = evaluate(net, vx, vy, vw)
    rate = chars / seconds if seconds else 0.0
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads) on {corpus.name}: "
          f"{steps} steps, {chars:,} characters in {seconds:.1f} s of training at "
          f"{rate:,.0f} chars/s; validation {time.perf_counter() - t0:.1f} s")
    print(f"chars_per_s {rate:.0f}")
    print(f"val_bpc {val / char_lm.LN2:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
