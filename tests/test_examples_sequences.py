"""examples/digits.py and examples/train_sequences.py, end to end in their quick modes, plus the
template's data layouts."""

import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits.py")
TEMPLATE = os.path.join(ROOT, "examples", "train_sequences.py")


def run(script, *args, cwd=None):
    r = subprocess.run([sys.executable, script, *map(str, args)], capture_output=True,
                       text=True, timeout=300, cwd=cwd)
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def template():
    """The template as a module (its loaders), without leaking its BLAS-thread settings."""
    saved = dict(os.environ)
    try:
        spec = importlib.util.spec_from_file_location("train_sequences_template", TEMPLATE)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return mod


def test_digits_quick_prints_accuracies_and_saves_pngs(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    r = run(DIGITS, "--quick", "--out", tmp_path)
    for name in ("LSTM", "MLP"):
        m = re.search(rf"^{name} test accuracy: (0\.\d+|1\.0+) \((\d+)/(\d+)\)", r.stdout, re.M)
        assert m, r.stdout
        acc, right, total = float(m.group(1)), int(m.group(2)), int(m.group(3))
        assert 340 < total < 380  # 20% of 1,797, stratified
        assert acc == pytest.approx(right / total, abs=1e-4) and acc > 0.3
        png = tmp_path / f"misclassified_{name.lower()}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert r.stdout.count("true \\ predicted") == 2  # the two confusion matrices
    assert "epoch 1/2" in r.stderr and "val_accuracy" in r.stderr  # the per-epoch lines


def test_digits_help():
    r = run(DIGITS, "--help")
    assert "--quick" in r.stdout and "--out" in r.stdout


def test_template_demo_train_evaluate_resume(tmp_path):
    data, out = tmp_path / "demo.npz", tmp_path / "run"
    run(TEMPLATE, "demo", data, "--n", "120")
    r = run(TEMPLATE, "train", data, "--out", out, "--quick", "--epochs", "2", "--l2", "1e-4")
    assert "task='many-to-one'" in r.stdout and "penalty" in r.stderr
    assert re.search(r"after epoch 2: loss [\d.]+, accuracy [\d.]+, val_loss [\d.]+, "
                     r"val_accuracy [\d.]+", r.stdout)
    assert (out / "last.npz").exists() and (out / "best.npz").exists()
    r = run(TEMPLATE, "evaluate", out / "best.npz", data)
    m = re.search(r"on .*demo.npz: 120 sequences, loss ([\d.]+), accuracy ([\d.]+)", r.stdout)
    assert m and 0 <= float(m.group(2)) <= 1
    r = run(TEMPLATE, "train", data, "--out", out, "--quick", "--epochs", "3", "--l2", "1e-4",
            "--resume")
    assert "resuming from" in r.stdout and "after epoch 2" in r.stdout
    assert "epoch 3/3" in r.stderr and "epoch 1/3" not in r.stderr


def test_template_many_to_many_tbptt_with_padded_layout(tmp_path):
    data = tmp_path / "mm.npz"
    run(TEMPLATE, "demo", data, "--n", "60", "--task", "many-to-many", "--layout", "padded")
    r = run(TEMPLATE, "train", data, "--out", tmp_path / "run", "--quick", "--cell", "gru",
            "--k1", "10", "--k2", "20", "--quiet")
    assert "task='many-to-many'" in r.stdout
    m = re.search(r"after epoch 3: loss ([\d.]+), accuracy ([\d.]+)", r.stdout)
    assert m and np.isfinite(float(m.group(1)))


def test_template_data_layouts(tmp_path, rng):
    mod = template()
    seqs = [rng.standard_normal((n, 2)).astype(np.float32) for n in (3, 5, 2)]
    labels = np.array([0, 2, 1])
    padded = np.zeros((3, 5, 2), np.float32)
    for i, s in enumerate(seqs):
        padded[i, :len(s)] = s
    layouts = {
        "list": {**{f"x_{i}": s for i, s in enumerate(seqs)}, "y": labels},
        "padded": {"x": padded, "lengths": np.array([3, 5, 2]), "y": labels},
    }
    for name, arrays in layouts.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        ds = mod.load_npz(str(tmp_path / f"{name}.npz"))
        assert ds.task == "many-to-one" and list(ds.lengths) == [3, 5, 2], name
        for a, b in zip(ds.sequences, seqs):
            np.testing.assert_array_equal(a, b)
    # per-step targets, padded like x
    y = rng.integers(0, 2, (3, 5))
    np.savez(tmp_path / "mm.npz", x=padded, lengths=np.array([3, 5, 2]), y=y)
    ds = mod.load_npz(str(tmp_path / "mm.npz"))
    assert ds.task == "many-to-many"
    np.testing.assert_array_equal(ds.targets[2], y[2, :2])
    # an object array needs --allow-pickle
    obj = np.empty(3, dtype=object)
    obj[:] = seqs
    np.savez(tmp_path / "obj.npz", x=obj, y=labels)
    with pytest.raises(SystemExit, match="--allow-pickle"):
        mod.load_npz(str(tmp_path / "obj.npz"))
    ds = mod.load_npz(str(tmp_path / "obj.npz"), allow_pickle=True)
    assert list(ds.lengths) == [3, 5, 2]
