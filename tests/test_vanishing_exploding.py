"""examples/vanishing_exploding.py: the adding-problem generator's statistics, the delayed-recall
stream, and a short run of the script (``--quick`` with smaller budgets) that writes
results.json and the PNGs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, load_script

SCRIPT = os.path.join(ROOT, "examples", "vanishing_exploding.py")


ve = load_script("vanishing_exploding", SCRIPT)


@pytest.mark.parametrize("T", [2, 3, 10, 101])
def test_adding_problem_structure(T):
    B = 5000
    x, y, w = ve.adding_problem(T, B, np.random.default_rng(T))
    assert x.shape == (T, B, 2) and y.shape == (T, B, 1) and w.shape == (T, B)
    assert x.dtype == y.dtype == w.dtype == np.float32
    numbers, markers = x[:, :, 0], x[:, :, 1]
    assert ((numbers >= 0) & (numbers < 1)).all()
    assert set(np.unique(markers)) <= {0.0, 1.0}
    assert (markers.sum(0) == 2).all()                       # exactly two markers
    assert (markers[:T // 2].sum(0) == 1).all()              # one in each half
    assert (markers[T // 2:].sum(0) == 1).all()
    np.testing.assert_allclose(y[-1, :, 0], (numbers * markers).sum(0), rtol=1e-6)
    assert ((y[-1] >= 0) & (y[-1] <= 2)).all() and not y[:-1].any()
    assert (w[-1] == 1).all() and not w[:-1].any()           # many-to-one
    if T >= 10:                                               # marker positions spread evenly
        first = markers[:T // 2].argmax(0)
        assert np.bincount(first, minlength=T // 2).min() > 0.5 * B / (T // 2)


def test_adding_problem_baseline_mse_is_one_sixth():
    x, y, _ = ve.adding_problem(8, 200_000, np.random.default_rng(0))
    target = y[-1, :, 0].astype(np.float64)
    assert target.mean() == pytest.approx(1.0, abs=0.005)
    # predicting the mean: MSE = Var(U1 + U2) = 2/12; its standard error here is 4.4e-4
    assert np.mean((target - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.003)
    assert ve.BASELINE_MSE == pytest.approx(0.1667, abs=1e-4)
    # Pascanu et al.'s accuracy of the trivial predictor: P(|S - 1| <= 0.2) = 1 - 0.8^2
    assert np.mean((target - 1.0) ** 2 <= ve.WRONG_SQERR) == pytest.approx(0.36, abs=0.005)


def test_adding_problem_is_reproducible_and_checked():
    a = ve.adding_problem(20, 4, np.random.default_rng(7))
    b = ve.adding_problem(20, 4, np.random.default_rng(7))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="T >= 2"):
        ve.adding_problem(1, 4, np.random.default_rng(0))


def test_delayed_recall():
    x, y = ve.delayed_recall(50, 3, 5, np.random.default_rng(0))
    np.testing.assert_array_equal(y[5:], x[:-5])
    assert not y[:5].any()


def test_help():
    r = subprocess.run([sys.executable, SCRIPT, "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "--quick" in r.stdout and "--T" in r.stdout


def test_quick_run_writes_results_and_plots(tmp_path):
    out = tmp_path / "ve"
    r = subprocess.run([sys.executable, SCRIPT, "--quick", "--out", str(out), "--T", "12",
                        "--max-updates", "60", "--eval-every", "20", "--hidden", "16",
                        "--steps", "30", "--reach-steps", "40", "--jac-hidden", "16"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("jacobian_decay.png", "gradient_reach.png", "clipping.png",
                 "adding_problem_T12.png", "results.json"):
        assert (out / name).stat().st_size > 1000, name
    res = json.loads((out / "results.json").read_text())
    ex = res["experiments"]
    assert set(ex) == {"jacobians", "reach", "clipping", "adding"}
    for row in ex["jacobians"]["rows"]:                  # the linear law, to ~1e-10
        assert row["linear"]["max_rel_error_vs_theory"] < 1e-10
        assert row["linear"]["rate"] == pytest.approx(row["rho"], rel=1e-9)
    assert set(ex["reach"]["models"]) == {"elman", "elman-uniform", "irnn", "lstm", "gru"}
    runs = ex["clipping"]["runs"]
    assert all(r["parameters_finite"] for r in runs.values())   # never a NaN model
    assert runs["no clipping"]["skipped"] > 0 and "non-finite" in runs["no clipping"]["first_skip"]
    assert runs["ClipGlobalNorm(1)"]["skipped"] == 0
    adding = ex["adding"]["by_T"]["12"]
    assert set(adding) == {"lstm", "gru", "elman", "irnn"}
    for run in adding.values():
        assert 0 < run["updates"] <= 60 and run["test_mse"] is not None
    assert "Adding problem T=12" in r.stdout and "wrote" in r.stdout
