"""examples/char_lm.py: data preparation, the default corpus, evaluation, checkpoint/resume
exactness, sampling, the command line and its errors, an end-to-end run, and (where PyTorch is
installed) the PyTorch twin of benchmarks/char_lm_torch.py. Tiny models and texts throughout."""

import io
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bptt

from conftest import ROOT, load_script

SCRIPT = os.path.join(ROOT, "examples", "char_lm.py")


clm = load_script("char_lm", SCRIPT)


def prose(n):
    """Real English text of about ``n`` characters (the language reference Python ships)."""
    import pydoc_data.topics as t
    text = "\n\n".join(t.topics[k] for k in sorted(t.topics))
    return text[:n]


@pytest.fixture
def textfile(tmp_path):
    def make(n=20000, name="text.txt"):
        path = tmp_path / name
        path.write_text(prose(n), encoding="utf-8")
        return str(path)
    return make


TINY = ["--hidden", "16", "--embed", "8", "--seq", "10", "--batch", "4", "--no-plot",
        "--sample-every", "0"]


# -- data preparation -------------------------------------------------------------------------
def test_vocabulary_encode_decode():
    text = "hello, wörld\n😀 hello"
    vocab = clm.build_vocab(text)
    assert vocab == "".join(sorted(set(text)))
    ids = clm.encode(text, vocab)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert clm.decode(ids, vocab) == text
    assert [vocab[i] for i in ids[:5]] == list("hello")
    with pytest.raises(clm.DataError, match="'z' is not in the vocabulary"):
        clm.encode("hez", vocab)


def test_split_is_the_last_tenth():
    text = "".join(chr(65 + i % 26) for i in range(1234))
    train, val = clm.split_text(text)
    assert train + val == text and len(val) == 123 and val == text[-123:]


def test_stream_layout_is_b_contiguous_streams():
    ids = np.arange(103)
    x, y = clm.stream_layout(ids, 4)
    L = (len(ids) - 1) // 4
    assert x.shape == y.shape == (L, 4) and x.flags.c_contiguous
    for b in range(4):
        np.testing.assert_array_equal(x[:, b], ids[b * L:(b + 1) * L])
        np.testing.assert_array_equal(y[:, b], ids[b * L + 1:(b + 1) * L + 1])


@pytest.mark.parametrize("n,streams", [(2, 64), (100, 7), (101, 10), (1000, 64)])
def test_eval_layout_covers_every_prediction_once(n, streams):
    ids = np.arange(n) * 3 % 17
    x, y, w = clm.eval_layout(ids, streams)
    assert x.shape == y.shape == w.shape and x.shape[1] <= streams
    assert w.sum() == n - 1
    # read column by column (each a contiguous stream), the valid positions are every pair
    # (ids[i], ids[i+1]) in order
    mask = w.T.ravel() > 0
    np.testing.assert_array_equal(x.T.ravel()[mask], ids[:-1])
    np.testing.assert_array_equal(y.T.ravel()[mask], ids[1:])


def _fake_stdlib(root, names):
    for rel, body in names:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body), encoding="utf-8")


STDLIB_FILES = [
    ("zeta.py", '"""Zeta module."""\ndef f():\n    """Zeta f."""\n'),
    ("alpha.py", '"""Alpha module."""\nclass A:\n    """Alpha A."""\n'
                 '    def m(self):\n        """Alpha A.m."""\n'),
    ("pkg/__init__.py", '"""Package."""\n'),
    ("pkg/inner.py", 'import sys\nprint("side effect")\ndef g():\n    """Inner g."""\n'),
    ("broken.py", 'def (:\n    """Never read."""\n'),
    ("test/test_alpha.py", '"""A test."""\n'),
    ("tkinter/__init__.py", '"""GUI."""\n'),
    ("idlelib/x.py", '"""IDLE."""\n'),
    ("site-packages/third.py", '"""Third party."""\n'),
    ("test_top.py", '"""Top-level test."""\n'),
    ("pydoc_data/topics.py", "topics = {'b': 'Topic B text.\\n', 'a': 'Topic A text.'}\n"),
]


def test_default_corpus_builder_is_deterministic(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _fake_stdlib(one, STDLIB_FILES)
    _fake_stdlib(two, STDLIB_FILES[::-1])          # created in the other order
    text = clm.build_default_corpus(one)
    assert text == clm.build_default_corpus(two)
    assert text == ("Topic A text.\n\nTopic B text.\n\nAlpha module.\n\nAlpha A.\n\nAlpha A.m."
                    "\n\nPackage.\n\nInner g.\n\nZeta module.\n\nZeta f.\n")
    for skipped in ("Never", "test", "GUI", "IDLE", "Third", "Top-level"):
        assert skipped not in text


def test_default_corpus_is_cached_atomically(tmp_path):
    root, cache = tmp_path / "lib", tmp_path / "cache"
    _fake_stdlib(root, STDLIB_FILES)
    text, path = clm.default_corpus(cache_dir=cache, root=root)
    assert path == str(cache / clm.default_corpus_name())
    assert open(path, encoding="utf-8").read() == text
    assert [p for p in os.listdir(cache) if p.startswith(".tmp")] == []
    (root / "extra.py").write_text('"""New."""\n')
    again, _ = clm.default_corpus(cache_dir=cache, root=root)
    assert again == text                             # read from the cache, not rebuilt


def test_stdlib_sources_skip_tests_and_gui():
    root = clm.stdlib_dir()
    files = clm.stdlib_sources(root)
    assert len(files) > 300 and files == sorted(files)
    assert "json/__init__.py" in files and "argparse.py" in files
    assert not [f for f in files if f.split("/")[0] in ("test", "idlelib", "tkinter",
                                                        "turtledemo", "site-packages")]
    with open(os.path.join(root, "json", "__init__.py"), "rb") as f:
        docs = clm.docstrings(f.read())
    assert docs[0].startswith("JSON (JavaScript Object Notation)")


def test_lr_decay_follows_char_rnn():
    """The first N epochs at lr, then a factor of lr_decay per epoch."""
    assert [clm.decayed_lr(1.0, e, 0.5, 2) for e in range(5)] == [1, 1, 0.5, 0.25, 0.125]
    assert [clm.decayed_lr(2e-3, e) for e in range(20)] == [2e-3] * 20


# -- evaluation ---------------------------------------------------------------------------------
def test_evaluate_carries_the_state_through_each_stream():
    V = 11
    ids = np.random.default_rng(0).integers(0, V, 300)
    model = clm.build_model(V, "gru", 1, 8, 4, 0.2, "float64", seed=1)
    x, y, w = clm.eval_layout(ids, 5)
    whole = clm.evaluate(model, x, y, w, chunk=10_000)
    assert clm.evaluate(model, x, y, w, chunk=7) == pytest.approx(whole, rel=1e-12)
    # reference: each stream alone in one forward pass, from a zero state
    loss = bptt.SoftmaxCrossEntropy()
    model.eval()
    total = 0.0
    S = x.shape[0]
    for e in range(x.shape[1]):
        seg = ids[e * S:min((e + 1) * S + 1, len(ids))]
        out = model.forward(seg[:-1, None])[0]
        total += loss.per_step(out, seg[1:, None]).sum()
    assert whole == pytest.approx(total / (len(ids) - 1), rel=1e-12)
    assert model.training is False                   # evaluate restores the mode it found
    model.train()
    clm.evaluate(model, x, y, w)
    assert model.training


# -- the command line ---------------------------------------------------------------------------
def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        clm.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--data", "--cell", "--layers", "--hidden", "--embed", "--dropout", "--seq",
                "--k2", "--batch", "--optimizer", "--lr", "--lr-decay", "--clip", "--dtype",
                "--seed", "--steps", "--epochs", "--minutes", "--eval-every", "--sample-every",
                "--out", "--resume", "sample", "val_bpc"):
        assert opt in out, opt
    with pytest.raises(SystemExit) as e:
        clm.main(["sample", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ("CHECKPOINT", "--prime", "--temperature", "--top-k", "--length", "--seed"):
        assert opt in out, opt


def test_the_issue_spelling_and_the_defaults():
    _, args = clm.parse_train_args(
        "--data FILE --cell lstm --layers 1 --hidden 256 --embed 64 --seq 100 --batch 32 "
        "--optimizer adam --lr 2e-3 --clip 5 --dtype float32 --seed 0 --minutes 5".split())
    _, default = clm.parse_train_args([])
    want = dict(cell="lstm", layers=1, hidden=256, embed=64, seq=100, k2=100, batch=32,
                optimizer="adam", lr=2e-3, clip=5.0, dtype="float32", seed=0, dropout=0.0,
                eval_batch=64)
    for k, v in want.items():
        assert getattr(args, k) == v and getattr(default, k) == v, k
    assert args.minutes == 5 and args.data == os.path.abspath("FILE")
    assert default.minutes == 2 and default.steps is None and default.data is None


@pytest.mark.parametrize("make,message", [
    (lambda d: ["--data", str(d / "missing.txt")], "missing.txt: no such file"),
    (lambda d: ["--data", str(d / "latin1.txt")], "not UTF-8 text (byte 0xe9 at offset 3"),
    (lambda d: ["--data", str(d / "short.txt")], "too short"),
    (lambda d: ["--data", str(d / "short.txt"), "--cell", "transformer"],
     "argument --cell: invalid choice: 'transformer'"),
    (lambda d: ["--data", str(d / "short.txt"), "--hidden", "0"], "must be >= 1, got 0"),
    (lambda d: ["--resume", "--out", str(d / "nothing")], "--resume: no checkpoint at"),
])
def test_bad_input_is_a_clear_usage_error(tmp_path, capsys, make, message):
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9 au lait".encode("latin-1"))
    (tmp_path / "short.txt").write_text(prose(3000))
    with pytest.raises(SystemExit) as e:
        clm.main(make(tmp_path) + ["--out", str(tmp_path / "run"), "--no-plot"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_bad_input_exits_without_a_traceback(tmp_path):
    r = subprocess.run([sys.executable, SCRIPT, "--data", str(tmp_path / "nope.txt")],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2
    assert os.listdir(tmp_path) == []                # nothing written for a failed start
    assert "usage:" in r.stderr and "nope.txt: no such file" in r.stderr
    assert "Traceback" not in r.stderr


# -- checkpoints and resume ---------------------------------------------------------------------
def _arrays(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k.startswith(("param/", "optim/"))}


def test_resume_gives_the_same_parameters_bitwise(tmp_path, textfile, capsys):
    """N steps in one go, or N/2, then --resume to N: the same parameters and optimizer state
    to the last bit. Two GRU layers with dropout, k2 > seq (kept overlap), learning-rate decay
    per epoch, evaluation and samples on the way, several epoch boundaries."""
    data = textfile(4000)
    run = ["--data", data, "--cell", "gru", "--layers", "2", "--dropout", "0.2", "--hidden", "12",
           "--embed", "6", "--seq", "10", "--k2", "15", "--batch", "8", "--lr-decay", "0.9",
           "--lr-decay-after", "1", "--eval-every", "7", "--sample-every", "9",
           "--sample-length", "20", "--save-every", "5", "--no-plot"]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    clm.main(run + ["--steps", "130", "--out", a])
    whole = capsys.readouterr().out.strip().splitlines()[-1]
    clm.main(run + ["--steps", "65", "--out", b])
    capsys.readouterr()
    clm.main(["--resume", "--out", b, "--steps", "130"])
    resumed = capsys.readouterr()
    assert "resumed from" in resumed.err
    assert resumed.out.strip().splitlines()[-1] == whole
    pa, pb = _arrays(os.path.join(a, "last.npz")), _arrays(os.path.join(b, "last.npz"))
    assert len(pa) > 10 and pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
    ck = bptt.load(os.path.join(b, "last.npz"))
    r = ck.extra["run"]
    assert r["steps"] == 130 and r["epoch"] >= 2 and len(r["history"]["train_loss"]) == 130
    assert ck.optimizer.steps == 130
    assert os.path.exists(os.path.join(b, "best.npz"))
    # a run option that contradicts the checkpoint is refused
    with pytest.raises(SystemExit):
        clm.main(["--resume", "--out", b, "--hidden", "64", "--steps", "140"])
    assert "trained with --hidden 12" in capsys.readouterr().err


# -- sampling -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    path = d / "text.txt"
    path.write_text(prose(6000), encoding="utf-8")
    out = io.StringIO()
    parser, args = clm.parse_train_args(["--data", str(path), "--steps", "20", "--out",
                                         str(d / "run"), "--eval-every", "0"] + TINY)
    clm.train(args, log=lambda s: None, out=out)
    assert out.getvalue().splitlines()[-1].startswith("val_bpc ")
    return str(d / "run" / "last.npz")


class Recorder(io.StringIO):
    def __init__(self):
        super().__init__()
        self.flushed = []

    def flush(self):
        self.flushed.append(self.getvalue())


def _sample(monkeypatch, argv):
    rec = Recorder()
    monkeypatch.setattr(sys, "stdout", rec)
    assert clm.main(["sample"] + argv) == 0
    return rec


def test_sampling_is_deterministic_under_a_seed_and_streams(monkeypatch, checkpoint):
    argv = [checkpoint, "--prime", "The ", "--temperature", "0.8", "--top-k", "10",
            "--length", "50", "--seed", "0"]
    one, two = _sample(monkeypatch, argv), _sample(monkeypatch, argv)
    assert one.getvalue() == two.getvalue()
    assert one.getvalue().startswith("The ") and len(one.getvalue()) == 4 + 50 + 1
    assert _sample(monkeypatch, argv[:-1] + ["1"]).getvalue() != one.getvalue()
    # streamed: flushed after the prime and after every character
    sizes = [len(s) for s in one.flushed]
    assert sizes[:3] == [4, 5, 6] and len(sizes) >= 51


def test_sampling_steps_agree_with_a_whole_forward_pass():
    """Greedy generation one step at a time (state carried) picks, at every step, the argmax
    of a forward pass over the whole text so far."""
    vocab = "abcdefgh"
    model = clm.build_model(len(vocab), "lstm", 2, 10, 4, 0.3, "float64", seed=3)
    text = clm.sample_text(model, vocab, "abc", 30, temperature=0)
    assert model.training                            # restored after sampling
    model.eval()
    full = model.forward(clm.encode("abc" + text, vocab)[:, None])[0][:, 0]
    assert text == "".join(vocab[i] for i in full[2:-1].argmax(-1))
    assert clm.sample_text(model, vocab, "abc", 30, temperature=1.0, top_k=1,
                           rng=np.random.default_rng(5)) == text


def test_top_k_limits_the_choices():
    rng = np.random.default_rng(0)
    logits = np.array([0.0, 3.0, 1.0, 2.5, -1.0])
    picks = {clm.next_index(logits, rng, 1.0, top_k=2) for _ in range(300)}
    assert picks == {1, 3}
    assert len({clm.next_index(logits, rng, 5.0) for _ in range(500)}) == 5


def test_sample_errors(monkeypatch, capsys, checkpoint, tmp_path):
    with pytest.raises(SystemExit):
        clm.main(["sample", checkpoint, "--prime", "\u20ac"])
    assert "the prime holds characters the model does not know" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        clm.main(["sample", str(tmp_path / "none.npz")])
    assert "no such checkpoint" in capsys.readouterr().err


# -- end to end -------------------------------------------------------------------------------
def test_end_to_end_learns_and_reports(tmp_path, textfile):
    data = textfile(40000)
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, SCRIPT, "--data", data, "--hidden", "64", "--embed", "16",
                        "--seq", "32", "--batch", "16", "--lr", "1e-2", "--steps", "120",
                        "--eval-every", "60", "--sample-every", "60", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-1].startswith("val_bpc ")
    val_bpc = float(lines[-1].split()[1])
    V = len(set(prose(40000)))
    assert val_bpc < 0.65 * math.log2(V)             # uniform baseline: log2(V) bits
    assert "chars/s" in lines[-2]
    assert "vocabulary of" in r.stderr and "sample at step 60" in r.stderr
    assert "step 60: val_bpc" in r.stderr
    ck = bptt.load(out / "last.npz")
    train_loss = ck.extra["run"]["history"]["train_loss"]
    assert np.mean(train_loss[-10:]) < 0.65 * math.log(V)
    with open(out / "loss.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert (out / "best.npz").exists()


# -- the PyTorch twin -------------------------------------------------------------------------
def test_torch_twin_is_the_same_model_and_loop():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    ct = load_script("char_lm_torch", os.path.join(ROOT, "benchmarks", "char_lm_torch.py"))
    V = 13
    ids = np.random.default_rng(0).integers(0, V, 600)
    x, y = clm.stream_layout(ids, 4)
    for cell in ("elman", "gru", "lstm"):
        model = clm.build_model(V, cell, 2, 9, 5, 0.0, "float64", seed=2)
        net = ct.CharLM(V, cell, 2, 9, 5, 0.0).double()
        ct.copy_bptt_weights(net, model)
        vx, vy, vw = clm.eval_layout(ids[:200], 3)
        assert ct.evaluate(net, vx, vy, vw) == pytest.approx(clm.evaluate(model, vx, vy, vw),
                                                             rel=1e-12)
        trainer = clm.build_trainer(model, "adam", 1e-2, 10, 10, 0.5)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        state = [None, None]
        for s in range(4):
            a, b = 10 * s, 10 * s + 10
            trainer.step(x[a:b], y[a:b])
            state = ct.detach(state)
            out, state = net(torch.from_numpy(x[a:b]), state)
            loss = F.cross_entropy(out.reshape(-1, V), torch.from_numpy(y[a:b]).reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(net.parameters()), 0.5)
            opt.step()
        # equal up to rounding (Adam divides by sqrt(v) + eps, which magnifies the rounding
        # of near-zero gradients); a difference of method would show at the size of lr
        p = model.named_parameters()
        for name, theirs in (("3.weight", net.head.weight),
                             ("2.weight_hh", net.cells[1].weight_hh_l0)):
            np.testing.assert_allclose(p[name], theirs.detach().numpy(), rtol=1e-6, atol=1e-7,
                                       err_msg=f"{cell} {name}")
