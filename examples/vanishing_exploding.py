#!/usr/bin/env python
"""Vanishing and exploding gradients: four experiments with bptt.diagnostics.

    python examples/vanishing_exploding.py --out runs/ve            # everything (minutes)
    python examples/vanishing_exploding.py --quick --out runs/ve    # everything, under 3 min
    python examples/vanishing_exploding.py --only 4 --T 200 400     # the adding problem only

1. Jacobians (``jacobian_decay.png``). Elman cells, linear and tanh, with W_hh = rho * Q (Q
   orthogonal) for rho in 0.5, 0.9, 1.0, 1.1, 1.5, 2.0: ||dh_T/dh_t|| (largest singular value
   of the Jacobian of the last hidden state with respect to the one after step t,
   :func:`bptt.diagnostics.jacobian_norms`) against the lag T - t, beside the theoretical rate
   rho^(T-t). For the linear cell the two are equal; for tanh, rho^(T-t) is the Pascanu, Mikolov
   & Bengio (2013) bound (gamma = 1), and the table gives the fitted per-step factor.
2. Reach (``gradient_reach.png``). Untrained Elman (tanh), IRNN, LSTM (forget bias 1) and GRU
   cells on the same adding-problem input: how far back the gradient still reaches. Reach is
   the largest lag k = T - t such that the norm stays at or above 1e-3 times its value at lag 1
   for every lag up to k (a lower bound when it never drops), measured both on the Jacobian
   norm ||dh_T/dh_t|| (one stream) and on the recorded ||dL/dh_t|| of a loss read at the last
   step only (over a batch, :func:`bptt.diagnostics.state_gradient_norms`; lag T - 1 - t).
3. Clipping (``clipping.png``). A tanh Elman network initialised in the exploding regime
   (rho = 2) learns a delayed recall (y_t = x_{t-5}) by truncated BPTT with plain SGD: without
   clipping, with ``ClipGlobalNorm`` and with ``ClipStateGradient``. Loss curves, the gradient
   norm before/after clipping at every update, clip counts, and what the non-finite guard did
   without clipping (it skips the update with a warning and says where: never a NaN model).
4. The adding problem (``adding_problem_T<T>.png``; Hochreiter & Schmidhuber 1997; Le, Jaitly &
   Hinton 2015): sequences of T pairs (uniform number in [0, 1], marker), exactly two markers
   (one in each half), target = the sum of the two marked numbers, read at the last step only.
   Predicting the mean (1) gives MSE 1/6 = 0.167. LSTM, GRU, tanh Elman and IRNN (relu Elman,
   identity init), float32, Adam, global-norm clip, a fresh batch of sequences per update;
   each model trains until its validation MSE (1000 sequences, checked every 100 updates) is
   below ``--stop-mse`` (0.005) or its budget runs out; "solved at" is the first check below
   0.01. Reported: updates, sequences, wall time, test MSE and
   the accuracy of Pascanu et al. (a sequence is wrong when its squared error exceeds 0.04),
   and the reach of the trained model.

Every experiment prints a table; ``--out DIR`` receives the PNGs and ``results.json`` (all the
figures). Timings are wall-clock on whatever machine runs it.
"""

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings

import numpy as np

import bptt
from bptt import diagnostics as dg

RHOS = (0.5, 0.9, 1.0, 1.1, 1.5, 2.0)
BASELINE_MSE = 1.0 / 6.0      # variance of the sum of two independent U(0, 1)
SOLVED_MSE = 0.01
WRONG_SQERR = 0.04             # Pascanu et al. (2013): a sequence is wrong above this
REACH_THRESHOLD = 1e-3
# Adam learning rates of the adding problem (per model; found to work at T = 100 and 200)
ADDING_LR = {"lstm": 3e-3, "gru": 3e-3, "elman": 1e-3, "irnn": 3e-4}
ADDING_NAMES = {"lstm": "LSTM", "gru": "GRU", "elman": "Elman (tanh)", "irnn": "IRNN (relu)",
                "elman-uniform": "Elman (tanh), PyTorch init"}


# =============================================================================================
# data
# =============================================================================================
def adding_problem(T, batch, rng, dtype=np.float32):
    """A batch of the adding problem, time-major.

    Returns ``x`` (T, B, 2): column 0 uniform numbers in [0, 1], column 1 the markers (exactly
    two ones per sequence: one at a position drawn uniformly from the first half [0, T // 2),
    one from the second half [T // 2, T), as Le et al. 2015 and Arjovsky et al. 2016 do);
    ``y`` (T, B, 1): the sum of the two marked numbers at the last step (zeros elsewhere, which
    the weights mask out); ``w`` (T, B): loss weights, one at t = T - 1 only (many-to-one).
    """
    if T < 2:
        raise ValueError(f"the adding problem needs T >= 2, got {T}")
    x = np.zeros((T, batch, 2), dtype=dtype)
    x[:, :, 0] = rng.random((T, batch))
    b = np.arange(batch)
    first = rng.integers(0, T // 2, batch)
    second = rng.integers(T // 2, T, batch)
    x[first, b, 1] = 1
    x[second, b, 1] = 1
    y = np.zeros((T, batch, 1), dtype=dtype)
    y[-1, :, 0] = x[first, b, 0] + x[second, b, 0]
    w = np.zeros((T, batch), dtype=dtype)
    w[-1] = 1
    return x, y, w


def delayed_recall(length, batch, delay, rng, dtype=np.float32):
    """A stream (L, B, 1) of N(0, 1) numbers and its targets y_t = x_{t - delay} (0 before)."""
    x = rng.standard_normal((length, batch, 1)).astype(dtype)
    y = np.zeros_like(x)
    y[delay:] = x[:-delay]
    return x, y


# =============================================================================================
# helpers
# =============================================================================================
def finite_list(a):
    return [float(v) if math.isfinite(v) else None for v in np.asarray(a, dtype=np.float64)]


def table(title, header, rows):
    """Print a plain-text table; returns its lines."""
    cols = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cols) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cols[1:]]
    print("\n".join(lines) + "\n", flush=True)
    return lines


def fmt(v, spec=".3g"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-" if v is None else str(v)
    return format(v, spec)


def reach_text(k, maximum):
    return f">={k}" if k >= maximum else str(k)


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def adding_model(kind, hidden, seed):
    cells = {"lstm": lambda: bptt.LSTM(2, hidden, forget_bias=1.0),
             "gru": lambda: bptt.GRU(2, hidden),
             "elman": lambda: bptt.Elman(2, hidden),
             "elman-uniform": lambda: bptt.Elman(2, hidden, recurrent_init="uniform"),
             "irnn": lambda: bptt.Elman(2, hidden, nonlinearity="relu",
                                        recurrent_init="identity")}
    return bptt.Sequential([cells[kind](), bptt.Dense(hidden, 1)], dtype=np.float32, seed=seed)


# =============================================================================================
# 1. Jacobian norms against the theoretical rate
# =============================================================================================
def experiment_jacobians(args, out):
    T, H, D = args.steps, args.jac_hidden, 4
    x = np.random.default_rng(args.seed).standard_normal((T, D))
    res = {"T": T, "hidden": H, "input": f"N(0, 1), {D} features, one stream", "rows": []}
    curves = {}
    for rho in RHOS:
        row = {"rho": rho}
        for kind in ("linear", "tanh"):
            cell = bptt.Elman(D, H, nonlinearity=kind, dtype=np.float64, seed=args.seed,
                              spectral_radius=rho)
            j = dg.jacobian_norms(cell, x)
            spec = dg.recurrent_spectrum(cell)["cell"]
            curves[kind, rho] = j.h
            row[kind] = {"rate": j.rate, "reach": j.reach(REACH_THRESHOLD),
                         "norm_at_T": float(j.h[-1]),
                         "sigma_max": spec.condition["sigma_max"],
                         "spectral_radius": spec.condition["spectral_radius"],
                         "vanishing_sufficient": spec.condition["vanishing_sufficient"],
                         "exploding_necessary": spec.condition["exploding_necessary"],
                         "verdict": spec.verdict, "norms": finite_list(j.h)}
            if kind == "linear":
                theory = rho ** j.lags.astype(np.float64)
                row[kind]["max_rel_error_vs_theory"] = float(np.max(np.abs(j.h / theory - 1)))
        res["rows"].append(row)

    def cond(r):
        return ("vanish (sufficient)" if r["vanishing_sufficient"] else
                "explode possible" if r["exploding_necessary"] else "boundary")

    res["table"] = table(
        f"1. ||dh_T/dh_t|| of Elman cells with W_hh = rho*Q (H={H}, T={T}); theory rho^(T-t)",
        ["rho", "linear rate", "max rel err vs rho^k", "tanh rate", "tanh ||dh_T/dh_0||",
         "tanh reach", "Pascanu et al."],
        [[f"{r['rho']:g}", fmt(r["linear"]["rate"], ".6f"),
          fmt(r["linear"]["max_rel_error_vs_theory"], ".1e"), fmt(r["tanh"]["rate"], ".4f"),
          fmt(r["tanh"]["norm_at_T"], ".3g"), reach_text(r["tanh"]["reach"], T),
          cond(r["tanh"])] for r in res["rows"]])
    if not args.no_plot:
        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
        lags = np.arange(T + 1)
        colors = plt.cm.viridis(np.linspace(0, 0.95, len(RHOS)))
        for ax, kind in zip(axes, ("linear", "tanh")):
            for rho, col in zip(RHOS, colors):
                y = np.where(curves[kind, rho] > 0, curves[kind, rho], np.nan)
                ax.semilogy(lags, y, color=col, lw=2, label=f"rho = {rho:g}",
                            marker="o" if kind == "linear" else None, markevery=10, ms=4)
                ax.semilogy(lags, rho ** lags.astype(float), ls="--", lw=1,
                            color="k" if kind == "linear" else col)
            ax.set_title(f"{kind} Elman: measured (solid) and rho^(T-t) (dashed)" +
                         (": equal" if kind == "linear" else ": the bound"))
            ax.set_xlabel("T - t (steps back)")
            ax.grid(True, which="major", alpha=0.3)
        axes[0].set_ylabel("||dh_T / dh_t||  (largest singular value)")
        axes[0].set_ylim(1e-30, 1e30)
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "jacobian_decay.png"), dpi=110)
        plt.close(fig)
    return res


# =============================================================================================
# 2. How far back the gradient reaches: LSTM and GRU against Elman
# =============================================================================================
REACH_KINDS = ("elman-uniform", "elman", "irnn", "lstm", "gru")


def reach_figures(model, x, y, w):
    """Jacobian norms (stream 0) and the recorded ||dL/dh_t|| (whole batch) of ``model``."""
    j = dg.jacobian_norms(model, x, stream=0)
    rep = dg.state_gradient_norms(model, bptt.MeanSquaredError(), x, y, weights=w)
    rec = rep["0"].h[::-1]            # indexed by lag T - 1 - t
    T = x.shape[0]
    return j, rec, {"jacobian_rate": j.rate, "jacobian_reach": j.reach(REACH_THRESHOLD),
                    "jacobian_state_rate": j.state_rate,
                    "jacobian_state_reach": dg.reach(j.state, REACH_THRESHOLD),
                    "recorded_reach": dg.reach(rec, REACH_THRESHOLD),
                    "recorded_rate": dg.decay_rate(rec),
                    "max_lag": T - 1, "jacobian_h": finite_list(j.h),
                    "jacobian_state": finite_list(j.state), "recorded_dL_dh": finite_list(rec)}


def experiment_reach(args, out):
    T, H, B = args.reach_steps, args.hidden, 32
    x, y, w = adding_problem(T, B, np.random.default_rng(args.seed + 1))
    res = {"T": T, "hidden": H, "batch": B, "threshold": REACH_THRESHOLD, "models": {}}
    curves = {}
    for kind in REACH_KINDS:
        model = adding_model(kind, H, args.seed)
        j, rec, figs = reach_figures(model, x, y, w)
        figs["spectrum"] = {k: v.as_dict() for k, v in dg.recurrent_spectrum(model).items()}
        res["models"][kind] = figs
        curves[kind] = (j, rec)
    rows = []
    for kind in REACH_KINDS:
        f = res["models"][kind]
        rows.append([ADDING_NAMES[kind], fmt(f["jacobian_rate"], ".4f"),
                     reach_text(f["jacobian_reach"], T),
                     reach_text(f["jacobian_state_reach"], T) if kind == "lstm" else "",
                     fmt(f["recorded_rate"], ".4f"), reach_text(f["recorded_reach"], T - 1)])
    res["table"] = table(
        f"2. Reach of the gradient at initialisation (H={H}, T={T}, adding-problem input; reach "
        f"= largest lag with norm >= {REACH_THRESHOLD:g} x its value at lag 1)",
        ["model", "||dh_T/dh_t|| rate", "reach", "LSTM (h,c) reach", "recorded ||dL/dh_t|| rate",
         "reach"], rows)
    if not args.no_plot:
        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
        for kind in REACH_KINDS:
            j, rec = curves[kind]
            line, = axes[0].semilogy(j.lags[1:], j.h[1:] / j.h[1], lw=2,
                                     label=f"{ADDING_NAMES[kind]}")
            if kind == "lstm":
                axes[0].semilogy(j.lags[1:], j.state[1:] / j.state[1], lw=1, ls="--",
                                 color=line.get_color(), label="LSTM, whole state (h, c)")
            r = np.where(rec > 0, rec, np.nan)
            axes[1].semilogy(np.arange(T)[1:], r[1:] / r[1], lw=2, color=line.get_color(),
                             label=ADDING_NAMES[kind])
        for ax in axes:
            ax.axhline(REACH_THRESHOLD, color="k", lw=0.8, ls=":")
            ax.set_xlabel("T - t (steps back)")
            ax.grid(True, alpha=0.3)
        axes[0].set_title("||dh_T/dh_t|| / its value at lag 1 (one stream)")
        axes[1].set_title("recorded ||dL/dh_t|| (loss at the last step, 32 streams)")
        axes[0].set_ylabel("relative norm (dotted: reach threshold)")
        axes[0].set_ylim(1e-12, 1e3)
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "gradient_reach.png"), dpi=110)
        plt.close(fig)
    return res


# =============================================================================================
# 3. Exploding gradients and clipping
# =============================================================================================
def experiment_clipping(args, out):
    L = 10000 if args.quick else 30000
    B, H, rho, lr, delay, k = 16, 32, 2.0, 0.3, 5, 50
    x, y = delayed_recall(L, B, delay, np.random.default_rng(args.seed + 2))
    xv, yv = delayed_recall(2000, 8, delay, np.random.default_rng(args.seed + 3))
    probe_x, probe_y = x[1000:1000 + k], y[1000:1000 + k]
    runs = {"no clipping": None, "ClipGlobalNorm(1)": bptt.ClipGlobalNorm(1.0),
            "ClipStateGradient(0.01)": bptt.ClipStateGradient(0.01),
            "both": [bptt.ClipStateGradient(0.01), bptt.ClipGlobalNorm(1.0)]}
    res = {"task": f"delayed recall y_t = x_(t-{delay}), x ~ N(0, 1); MSE of predicting 0 is 1",
           "stream": [L, B], "k1": k, "k2": k, "hidden": H, "spectral_radius": rho,
           "optimizer": f"SGD lr={lr}", "runs": {}}
    hists = {}
    for name, clip in runs.items():
        model = bptt.Sequential([bptt.Elman(1, H, spectral_radius=rho), bptt.Dense(H, 1)],
                                dtype=np.float32, seed=args.seed)
        spectrum = dg.recurrent_spectrum(model)["0"]
        opt = bptt.optim.SGD(model.named_parameters(), lr=lr)
        trainer = bptt.TBPTT(model, bptt.MeanSquaredError(), opt, k1=k, clip=clip)
        hist = dg.GradientHistory(trainer, probe=(probe_x, probe_y), every=5)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            report = trainer.fit(x, y, callback=hist)
        seconds = time.perf_counter() - t0
        with np.errstate(all="ignore"):
            val = trainer.evaluate(xv, yv)
        params = model.named_parameters()
        norms = np.array(hist.norms)
        guard = [str(m.message) for m in caught if "skipped" in str(m.message)]
        tail = np.array(hist.losses[-max(len(hist.losses) // 10, 1):])
        res["runs"][name] = {
            "updates": report.updates, "skipped": report.skipped,
            "first_skip": report.nonfinite[0] if report.nonfinite else None,
            "guard_warnings": len(guard), "seconds": seconds,
            "final_train_loss": float(np.mean(tail)) if np.isfinite(tail).all() else None,
            "validation_mse": val if math.isfinite(val) else None,
            "max_grad_norm": float(np.nanmax(norms)) if norms.size else None,
            "median_grad_norm": float(np.nanmedian(norms)) if norms.size else None,
            "clip_counts": report.clip_counts,
            "parameters_finite": bool(all(np.isfinite(p).all() for p in params.values())),
            "max_abs_parameter": float(max(np.abs(p).max() for p in params.values())),
            "initial_verdict": spectrum.verdict, "history": hist.as_dict()}
        hists[name] = hist

    def counts(r):
        c = r["clip_counts"]
        return ", ".join(f"{k.split('(')[0].replace('Clip', '')} {v}" for k, v in c.items()) or "-"

    res["table"] = table(
        f"3. Exploding regime: tanh Elman, rho(W_hh) = {rho}, H={H}, SGD lr={lr}, "
        f"TBPTT k1=k2={k}, {L}x{B} stream",
        ["run", "updates", "skipped (non-finite)", "median / max grad norm", "clip fired",
         "final train loss", "val MSE", "params finite", "max |param|"],
        [[n, r["updates"], r["skipped"],
          f"{fmt(r['median_grad_norm'])} / {fmt(r['max_grad_norm'])}", counts(r),
          fmt(r["final_train_loss"], ".4f"), fmt(r["validation_mse"], ".4f"),
          r["parameters_finite"], fmt(r["max_abs_parameter"])] for n, r in res["runs"].items()])
    first = res["runs"]["no clipping"]["first_skip"]
    if first:
        print("Without clipping the non-finite guard reported, for the first skipped update:\n  "
              + first + "\n")
    if not args.no_plot:
        plt = pyplot()
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
        for name, hist in hists.items():
            losses = np.array(hist.losses, dtype=float)
            line, = axes[0].semilogy(np.where(np.isfinite(losses), losses, np.nan), lw=1,
                                     label=name)
            sk = [s["chunk"] for s in hist.skipped]
            if sk:
                axes[0].plot(sk, np.full(len(sk), 1e3), "x", color=line.get_color(), ms=3)
            ups = np.array(hist.updates_at)
            axes[1].semilogy(ups, hist.norms, lw=1, color=line.get_color(), label=name)
            if name != "no clipping":
                axes[1].semilogy(ups, hist.norms_clipped, lw=1, ls=":", color=line.get_color())
        axes[0].axhline(1.0, color="k", lw=0.8, ls=":")
        axes[0].set_title("training loss per chunk (x: update skipped, non-finite)")
        axes[0].set_xlabel("chunk")
        axes[0].set_ylim(1e-2, 1e4)
        axes[0].legend(fontsize=8)
        axes[1].set_title("gradient norm before (solid) / after (dotted) clipping")
        axes[1].set_xlabel("chunk")
        # per-step state-gradient norms on the probe chunk, during the unclipped run
        h = hists["no clipping"]
        cmap = plt.cm.plasma(np.linspace(0, 0.9, max(len(h.state_grads), 1)))
        for (u, cells), col in zip(h.state_grads, cmap):
            v = np.array([np.nan if a is None else a for a in cells["0"]["h"]], dtype=float)
            axes[2].semilogy(np.arange(k), np.where(v > 0, v, np.nan), color=col,
                             label=f"update {u}")
        axes[2].set_title("no clipping: recorded ||dL/dh_t|| on a probe chunk")
        axes[2].set_xlabel("t within the chunk")
        axes[2].legend(fontsize=7)
        for ax in axes:
            ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "clipping.png"), dpi=110)
        plt.close(fig)
    return res


# =============================================================================================
# 4. The adding problem
# =============================================================================================
def evaluate_adding(model, x, y):
    """(MSE, accuracy) at the last step: accuracy = share of squared errors <= 0.04."""
    out, _, _ = model.forward(x)
    err = (out[-1, :, 0].astype(np.float64) - y[-1, :, 0]) ** 2
    if not np.isfinite(err).all():
        return math.nan, 0.0
    return float(err.mean()), float(np.mean(err <= WRONG_SQERR))


def train_adding(kind, T, args, val, test):
    """Train one model until its validation MSE < 0.01 (checked every ``eval_every`` updates)
    or the budget (updates, seconds) runs out."""
    model = adding_model(kind, args.hidden, args.seed)
    lr = ADDING_LR[kind] if args.lr is None else args.lr
    opt = bptt.optim.Adam(model.named_parameters(), lr=lr)
    clip = bptt.ClipGlobalNorm(args.clip)
    trainer = bptt.TBPTT(model, bptt.MeanSquaredError(), opt, k1=None, k2=None, clip=clip)
    hist = dg.GradientHistory(trainer)
    rng = np.random.default_rng(args.seed + 100)
    curve = [(0, evaluate_adding(model, val[0], val[1])[0])]
    solved = None
    t0 = time.perf_counter()
    train_seconds = 0.0
    updates = 0
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", RuntimeWarning)
        while updates < args.max_updates and time.perf_counter() - t0 < args.max_seconds:
            x, y, w = adding_problem(T, args.batch, rng)
            s = time.perf_counter()
            trainer.reset_state()                  # independent sequences: no carried state
            hist.add_step(trainer.step(x, y, w))
            train_seconds += time.perf_counter() - s
            updates += 1
            if updates % args.eval_every == 0:
                mse = evaluate_adding(model, val[0], val[1])[0]
                curve.append((updates, mse))
                if solved is None and mse < SOLVED_MSE:
                    solved = {"updates": updates, "sequences": updates * args.batch,
                              "seconds": time.perf_counter() - t0,
                              "train_seconds": train_seconds}
                if mse < args.stop_mse:
                    break
    seconds = time.perf_counter() - t0
    test_mse, acc = evaluate_adding(model, test[0], test[1])
    j, rec, figs = reach_figures(model, val[0][:, :32], val[1][:, :32], val[2][:, :32])
    return model, {
        "model": ADDING_NAMES[kind], "hidden": args.hidden, "lr": lr, "clip": args.clip,
        "batch": args.batch, "updates": updates, "sequences": updates * args.batch,
        "seconds": seconds, "train_seconds": train_seconds, "solved": solved,
        "test_mse": test_mse if math.isfinite(test_mse) else None, "test_accuracy": acc,
        "skipped": len(hist.skipped),
        "clipped_fraction": next(iter(hist.fired_fraction().values()), 0.0),
        "curve": [[u, m if math.isfinite(m) else None] for u, m in curve],
        "trained_jacobian_rate": figs["jacobian_rate"],
        "trained_jacobian_reach": figs["jacobian_reach"],
        "trained_recorded_reach": figs["recorded_reach"],
        "trained_jacobian_h": figs["jacobian_h"]}


def experiment_adding(args, out):
    res = {"definition": "x: (uniform [0,1], marker); two markers, one per half; target = sum "
                         "of the marked numbers at t = T-1; baseline MSE 1/6",
           "solved_mse": SOLVED_MSE, "wrong_if_squared_error_above": WRONG_SQERR, "by_T": {}}
    for T in args.T:
        val = adding_problem(T, 1000, np.random.default_rng(args.seed + 10_000 + T))
        test = adding_problem(T, 2000, np.random.default_rng(args.seed + 20_000 + T))
        runs = {}
        for kind in args.models:
            print(f"   adding problem T={T}: training {ADDING_NAMES[kind]} ...", flush=True)
            _, runs[kind] = train_adding(kind, T, args, val, test)
        res["by_T"][str(T)] = runs
        rows = []
        for kind, r in runs.items():
            s = r["solved"]
            rows.append([r["model"], f"{r['lr']:g}", r["updates"], r["sequences"],
                         f"{r['seconds']:.1f}",
                         f"{s['updates']} upd / {s['sequences']} seq / {s['seconds']:.1f} s"
                         if s else "not solved", fmt(r["test_mse"], ".4f"),
                         f"{100 * r['test_accuracy']:.1f}%",
                         reach_text(r["trained_jacobian_reach"], T)])
        res[f"table_T{T}"] = table(
            f"4. Adding problem T={T} (H={args.hidden}, batch {args.batch}, Adam, "
            f"ClipGlobalNorm({args.clip:g}); baseline MSE {BASELINE_MSE:.3f}; solved = val "
            f"MSE < {SOLVED_MSE}; budget {args.max_updates} updates / {args.max_seconds:g} s)",
            ["model", "lr", "updates", "sequences", "wall s", "solved at", "test MSE",
             "accuracy (sq err <= 0.04)", "reach after training"], rows)
        if not args.no_plot:
            plt = pyplot()
            fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
            for kind, r in runs.items():
                c = np.array([[u, np.nan if m is None else m] for u, m in r["curve"]], float)
                line, = axes[0].semilogy(c[:, 0] * args.batch, c[:, 1], lw=2, label=r["model"])
                h = np.array([np.nan if v is None else v for v in r["trained_jacobian_h"]])
                axes[1].semilogy(np.arange(1, h.size), h[1:] / h[1], lw=2,
                                 color=line.get_color(), label=r["model"])
            axes[0].axhline(BASELINE_MSE, color="k", ls="--", lw=0.8, label="predict the mean")
            axes[0].axhline(SOLVED_MSE, color="k", ls=":", lw=0.8, label="MSE 0.01")
            axes[0].set_xlabel("training sequences")
            axes[0].set_ylabel("validation MSE at the last step")
            axes[0].set_title(f"adding problem, T = {T}")
            axes[0].legend(fontsize=8)
            axes[1].axhline(REACH_THRESHOLD, color="k", lw=0.8, ls=":")
            axes[1].set_ylim(1e-12, 1e3)
            axes[1].set_xlabel("T - t (steps back)")
            axes[1].set_title("after training: ||dh_T/dh_t|| / its value at lag 1")
            for ax in axes:
                ax.grid(True, alpha=0.3)
            fig.tight_layout()
            fig.savefig(os.path.join(out, f"adding_problem_T{T}.png"), dpi=110)
            plt.close(fig)
    return res


# =============================================================================================
# command line
# =============================================================================================
EXPERIMENTS = {1: ("jacobians", experiment_jacobians), 2: ("reach", experiment_reach),
               3: ("clipping", experiment_clipping), 4: ("adding", experiment_adding)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                epilog="Experiments: 1 Jacobians against rho^(T-t); 2 reach of "
                                       "the gradient in Elman/IRNN/LSTM/GRU; 3 exploding "
                                       "gradients and clipping; 4 the adding problem.")
    p.add_argument("--out", default="vanishing-exploding-output",
                   help="folder for the PNGs and results.json")
    p.add_argument("--quick", action="store_true",
                   help="smaller budgets (all four experiments in under three minutes)")
    p.add_argument("--only", type=int, nargs="+", choices=sorted(EXPERIMENTS),
                   default=sorted(EXPERIMENTS), help="which experiments to run")
    p.add_argument("--T", type=int, nargs="+", default=None,
                   help="adding-problem sequence lengths (default 100 200; --quick: 100)")
    p.add_argument("--models", nargs="+", choices=sorted(ADDING_LR),
                   default=["lstm", "gru", "elman", "irnn"], help="adding-problem models")
    p.add_argument("--hidden", type=int, default=64, help="hidden units (experiments 2 and 4)")
    p.add_argument("--batch", type=int, default=32, help="adding-problem batch size")
    p.add_argument("--lr", type=float, default=None,
                   help=f"Adam learning rate for every adding model (default per model: "
                        f"{ADDING_LR})")
    p.add_argument("--clip", type=float, default=1.0, help="adding problem: global-norm clip")
    p.add_argument("--max-updates", type=int, default=None,
                   help="adding problem: most updates per model (default 8000; --quick 2500)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="adding problem: most seconds per model (default 600; --quick 40)")
    p.add_argument("--stop-mse", type=float, default=0.005,
                   help="adding problem: stop a model once its validation MSE is below this "
                        "('solved at' is the first time it was below 0.01)")
    p.add_argument("--eval-every", type=int, default=100,
                   help="adding problem: updates between validation checks")
    p.add_argument("--steps", type=int, default=100,
                   help="sequence length of experiment 1")
    p.add_argument("--reach-steps", type=int, default=None,
                   help="sequence length of experiment 2 (default 400; --quick 200)")
    p.add_argument("--jac-hidden", type=int, default=64, help="hidden units of experiment 1")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the models")
    p.add_argument("--no-plot", action="store_true", help="no PNGs (results.json only)")
    args = p.parse_args(argv)
    if args.T is None:
        args.T = [100] if args.quick else [100, 200]
    if args.reach_steps is None:
        args.reach_steps = 200 if args.quick else 400
    if args.max_updates is None:
        args.max_updates = 2500 if args.quick else 8000
    if args.max_seconds is None:
        args.max_seconds = 40.0 if args.quick else 600.0
    for name in ("hidden", "batch", "max_updates", "eval_every", "steps", "reach_steps",
                 "jac_hidden"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if min(args.T) < 2:
        p.error(f"--T must be >= 2, got {args.T}")
    return args


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    results = {"command": " ".join([os.path.basename(sys.argv[0])] + (sys.argv[1:] if argv is None
                                                                       else list(argv))),
               "quick": args.quick, "seed": args.seed,
               "machine": {"python": platform.python_version(), "numpy": np.__version__,
                           "processor": platform.processor() or platform.machine(),
                           "cpus": os.cpu_count()},
               "experiments": {}, "wall_seconds": {}}
    t_all = time.perf_counter()
    for number in args.only:
        name, run = EXPERIMENTS[number]
        t0 = time.perf_counter()
        results["experiments"][name] = run(args, args.out)
        results["wall_seconds"][name] = time.perf_counter() - t0
        print(f"   [{name}: {results['wall_seconds'][name]:.1f} s]\n", flush=True)
    results["wall_seconds"]["total"] = time.perf_counter() - t_all
    path = os.path.join(args.out, "results.json")
    with open(path, "w") as f:
        json.dump(_clean(results), f, indent=1, allow_nan=False)
    print(f"wrote {path} (total {results['wall_seconds']['total']:.1f} s)")
    return results


def _clean(o):
    """``o`` as strict JSON: numpy scalars and arrays as Python values, nan and inf as null."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


if __name__ == "__main__":
    main()
