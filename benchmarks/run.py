"""The reference workloads of ../shared/WORKLOADS.md, measured: one command, one report.

    python benchmarks/run.py            # everything (4 to 6 minutes on 2 cores)
    python benchmarks/run.py --only w1 --cells lstm --steps 20

W1: one truncated-BPTT training step of a character LM (Embedding(65, 64) -> cell -> Dense,
softmax cross-entropy, backward, clip 5, SGD 0.1, state carried and cut), float32, for each
workload and cell: median ms per step, GFLOP/s, and the share of this machine's GEMM rate,
timed in the same interleaved rounds as the row's steps. When PyTorch is importable the
identical model and step run in the same process, interleaved with bptt's, and the ratio
PyTorch time / bptt time is printed (paired round by round: the median of the rounds' ratios,
with the lowest and highest); a plain-numpy implementation with a per-step Python
loop runs beside them too.
W2: peak resident memory of TBPTT over streams of 10^4, 10^5, 10^6 tokens (must stay flat).
W3: full BPTT over T = 1000: time per step and peak memory, bptt and PyTorch.
Cold start: import plus the first training step, with an empty and with a warm compile cache.
Also: time per step against hidden size (LSTM, T 50, B 32) for bptt and PyTorch, as a plot.

Writes benchmarks/results/RESULTS.md (the table the README quotes), results.json and
hidden_size.png.
"""

import argparse
import datetime
import functools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

V, E = 65, 64
W1 = [("tiny", 25, 1, 100), ("small", 100, 16, 64), ("mid", 50, 32, 128),
      ("wide", 50, 32, 256), ("large", 50, 64, 512)]
GATES = {"elman": 1, "lstm": 4, "gru": 3}
TARGETS = {"tiny": 10.0, "small": 3.0, "mid": 1.3, "wide": 1.3, "large": 1.0}


def flops(cell, T, B, H):
    """WORKLOADS.md's count: forward + backward of the cell and of the output layer."""
    return 3 * 2 * T * B * (E + H) * GATES[cell] * H + 3 * 2 * T * B * H * V


def flops_done(cell, T, B, H):
    """The arithmetic bptt does for the same step: where the V-row table is cheaper
    (V <= T*B), the Embedding is folded into the cell's input projection (bptt.cells), which
    replaces the T*B input products (forward, dW_ih and dx: 3 * 2*T*B*E*G*H) by the table and
    its two gradients (3 * 2*V*E*G*H)."""
    f = flops(cell, T, B, H)
    if V <= T * B:
        f += 3 * 2 * (V - T * B) * E * GATES[cell] * H
    return f


# -- the three implementations of one step ---------------------------------------------------
def bptt_step_fn(cell, T, B, H, seed=0):
    import bptt
    C = {"elman": bptt.Elman, "lstm": bptt.LSTM, "gru": bptt.GRU}[cell]
    model = bptt.Sequential([bptt.Embedding(V, E), C(E, H), bptt.Dense(H, V)],
                            dtype=np.float32, seed=seed)
    opt = bptt.optim.SGD(model.named_parameters(), lr=0.1)
    trainer = bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(), opt, k1=T,
                         clip=bptt.ClipGlobalNorm(5.0))
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))

    def step():
        return trainer.step(x, y)
    step.trainer = trainer
    return step


def torch_step_fn(cell, T, B, H, seed=0):
    import torch
    torch.manual_seed(seed)
    rnn = {"elman": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](E, H)
    emb, out = torch.nn.Embedding(V, E), torch.nn.Linear(H, V)
    params = list(emb.parameters()) + list(rnn.parameters()) + list(out.parameters())
    opt = torch.optim.SGD(params, lr=0.1)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.integers(0, V, (T, B)))
    y = torch.from_numpy(rng.integers(0, V, (T, B))).reshape(-1)
    state = [None]

    def step():
        h = state[0]
        if h is not None:
            h = tuple(s.detach() for s in h) if isinstance(h, tuple) else h.detach()
        opt.zero_grad(set_to_none=True)
        seq, h = rnn(emb(x), h)
        loss = loss_fn(out(seq).reshape(-1, V), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        state[0] = h
    return step


def numpy_step_fn(cell, T, B, H, seed=0):
    from numpy_rnn import NumpyCharRNN
    net = NumpyCharRNN(cell, V, E, H, B, seed=seed)
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    return lambda: net.step(x, y)


def time_rounds(fns, steps, warmup=3, rounds=4, settle=0.3, min_block=0.05):
    """Seconds per call of each function, ``{name: [the calls' times of round 0, of round 1,
    ...]}``, timed in blocks interleaved round by round.

    Before each block the machine is left idle for ``settle`` seconds and one untimed call is
    made: the BLAS and OpenMP worker threads of the previous framework spin for a while after
    their last job, and would otherwise be timed as part of the next one's. A block is
    ``steps // rounds`` calls, or as many as fill ``min_block`` seconds if more: after the
    idle time a step runs slow for the first few milliseconds (measured here: a 0.25 ms step
    took 0.37 ms, then 0.30, and about 8 steps to settle), so a block of ten short steps
    timed mostly the wake-up, while a training loop runs steps back to back."""
    times = {k: [[] for _ in range(rounds)] for k in fns}
    per_round = {}
    for k, f in fns.items():
        for _ in range(warmup):
            t0 = time.perf_counter()
            f()
            last = time.perf_counter() - t0
        per_round[k] = max(1, steps // rounds, math.ceil(min_block / max(last, 1e-9)))
    for r in range(rounds):
        for k, f in fns.items():
            time.sleep(settle)
            f()
            block = times[k][r]
            for _ in range(per_round[k]):
                t0 = time.perf_counter()
                f()
                block.append(time.perf_counter() - t0)
    return times


def medians(rounds):
    """Median seconds per call of each function over all its blocks (``rounds`` from
    :func:`time_rounds`)."""
    return {k: statistics.median([t for block in v for t in block]) for k, v in rounds.items()}


def time_interleaved(fns, steps, **kwargs):
    """Median seconds per call of each function, timed as :func:`time_rounds` does."""
    return medians(time_rounds(fns, steps, **kwargs))


def paired_ratio(slow_rounds, fast_rounds):
    """(median, min, max) over the rounds of each round's median time of ``slow_rounds``
    over the same round's of ``fast_rounds`` (lists of blocks, see :func:`time_rounds`).

    This machine's speed changes within seconds, for both implementations at once (in
    alternating blocks of 300 tiny Elman steps, bptt went from 0.20 to 0.32-0.35 ms just as
    PyTorch went from 1.75 to 2.7 ms, and back): the two blocks of one round run in the same
    state, while the medians over all rounds may each come from a different one."""
    ratios = [statistics.median(s) / statistics.median(f)
              for s, f in zip(slow_rounds, fast_rounds)]
    return statistics.median(ratios), min(ratios), max(ratios)


@functools.lru_cache(maxsize=1)
def _dot():
    """numba's np.dot (scipy's OpenBLAS, as the kernels' numba sees it), compiled once."""
    import numba

    @numba.njit
    def dot(a, b, out):
        np.dot(a, b, out)

    return dot


def gemm_call(m, k, n):
    """A function making one float32 GEMM (m, k) @ (k, n) through the BLAS the kernels use
    (numba's np.dot, scipy's OpenBLAS), and the FLOPs it does."""
    dot = _dot()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    out = np.empty((m, n), np.float32)
    dot(a, b, out)
    return (lambda: dot(a, b, out)), 2 * m * k * n


GEMM_SIZES = ((1024, 1024, 1024), (2048, 3200, 512))   # 1024^3, the large weight gradient's


def gemm_rate(repeats=10):
    """(GFLOP/s, size) of float32 GEMM at the best of GEMM_SIZES."""
    best = (0.0, GEMM_SIZES[0])
    for size in GEMM_SIZES:
        call, fl = gemm_call(*size)
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            call()
            ts.append(time.perf_counter() - t0)
        best = max(best, (fl / statistics.median(ts) / 1e9, size))
    return best


# -- W1 -----------------------------------------------------------------------------------
def run_w1(cells, steps, with_numpy, log):
    try:
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        have_torch = True
    except ImportError:
        have_torch = False
        log("PyTorch is not importable: its column is left empty (pip install torch==2.13.0)")
    rate, size = gemm_rate()
    log(f"GEMM rate (float32, scipy's OpenBLAS through numba): {rate:.0f} GFLOP/s at "
        f"{size[0]}x{size[1]}x{size[2]}; measured again beside every row")
    # the machine's speed drifts by 10-30% over minutes: the GEMM reference of a row is timed
    # in the same interleaved rounds as the row's steps, so that its share compares like
    # with like
    gemm, gemm_flops = gemm_call(*size)
    rows = []
    for name, T, B, H in W1:
        for cell in cells:
            fns = {"bptt": bptt_step_fn(cell, T, B, H)}
            if have_torch:
                fns["torch"] = torch_step_fn(cell, T, B, H)
            if with_numpy:
                fns["numpy"] = numpy_step_fn(cell, T, B, H)
            fns["gemm"] = gemm
            n = steps if name != "large" else max(20, steps // 2)
            rounds = time_rounds(fns, n)
            med = medians(rounds)
            f, done = flops(cell, T, B, H), flops_done(cell, T, B, H)
            row_rate = gemm_flops / med["gemm"] / 1e9
            row = {"workload": name, "cell": cell, "T": T, "B": B, "H": H,
                   "bptt_ms": med["bptt"] * 1e3, "gflops": f / med["bptt"] / 1e9,
                   "gflops_done": done / med["bptt"] / 1e9,
                   "gemm_gflops": row_rate, "gemm_share": done / med["bptt"] / 1e9 / row_rate,
                   "torch_ms": med["torch"] * 1e3 if "torch" in med else None,
                   "numpy_ms": med["numpy"] * 1e3 if "numpy" in med else None}
            row["ratio"] = row["ratio_min"] = row["ratio_max"] = None
            if "torch" in rounds:
                row["ratio"], row["ratio_min"], row["ratio_max"] = paired_ratio(
                    rounds["torch"], rounds["bptt"])
            rows.append(row)
            log(f"{name:<6} {cell:<6} bptt {row['bptt_ms']:8.3f} ms  "
                f"{row['gflops']:6.1f} GFLOP/s, {row['gflops_done']:6.1f} done "
                f"({100 * row['gemm_share']:4.1f}% of GEMM at {row_rate:.0f})"
                + (f"  torch {row['torch_ms']:8.3f} ms  ratio {row['ratio']:5.2f} "
                   f"({row['ratio_min']:.2f}-{row['ratio_max']:.2f})"
                   if row["ratio"] else "")
                + (f"  numpy {row['numpy_ms']:8.2f} ms" if row["numpy_ms"] else ""))
    return {"gemm_gflops": rate, "gemm_size": size, "rows": rows, "torch": have_torch}


def run_hidden_sweep(hiddens, steps, log):
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    out = []
    for H in hiddens:
        fns = {"bptt": bptt_step_fn("lstm", 50, 32, H)}
        if have_torch:
            fns["torch"] = torch_step_fn("lstm", 50, 32, H)
        med = time_interleaved(fns, steps)
        out.append({"H": H, **{k: v * 1e3 for k, v in med.items()}})
        log(f"hidden {H:5d}: " + "  ".join(f"{k} {v * 1e3:8.2f} ms" for k, v in med.items()))
    return out


# -- memory and cold start, each in a fresh process -------------------------------------------
CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    t0 = time.perf_counter()
    import bptt
    t_import = time.perf_counter() - t0
    kind, arg = sys.argv[1], int(sys.argv[2])
    V, E = 65, 64
    if kind == "w2":
        L, B, H = arg, 32, 128
        model = bptt.Sequential([bptt.Embedding(V, E), bptt.LSTM(E, H), bptt.Dense(H, V)],
                                dtype=np.float32, seed=0)
        tr = bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(),
                        bptt.optim.SGD(model.named_parameters(), lr=0.1), k1=50,
                        clip=bptt.ClipGlobalNorm(5.0))
        tokens = np.random.default_rng(0).integers(0, V, L + B)
        steps = L // B
        x = np.ascontiguousarray(tokens[:steps * B].reshape(B, steps).T)
        y = np.ascontiguousarray(tokens[1:steps * B + 1].reshape(B, steps).T)
        t1 = time.perf_counter()
        rep = tr.fit(x, y)
        out = {"seconds": time.perf_counter() - t1, "updates": rep.updates,
               "data_mb": (tokens.nbytes + x.nbytes + y.nbytes) / 2 ** 20}
    elif kind == "w3":
        T, B, H = arg, 16, 128
        model = bptt.Sequential([bptt.Embedding(V, E), bptt.LSTM(E, H), bptt.Dense(H, V)],
                                dtype=np.float32, seed=0)
        tr = bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(),
                        bptt.optim.SGD(model.named_parameters(), lr=0.1), k1=None, k2=None,
                        clip=bptt.ClipGlobalNorm(5.0))
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
        times = []
        for _ in range(6):
            tr.reset_state()
            t1 = time.perf_counter()
            tr.step(x, y)
            times.append(time.perf_counter() - t1)
        out = {"ms_per_step": 1e3 * sorted(times[1:])[len(times[1:]) // 2]}
    elif kind == "w3torch":
        import torch
        T, B, H = arg, 16, 128
        emb, rnn, lin = torch.nn.Embedding(V, E), torch.nn.LSTM(E, H), torch.nn.Linear(H, V)
        params = list(emb.parameters()) + list(rnn.parameters()) + list(lin.parameters())
        opt = torch.optim.SGD(params, lr=0.1)
        rng = np.random.default_rng(0)
        x = torch.from_numpy(rng.integers(0, V, (T, B)))
        y = torch.from_numpy(rng.integers(0, V, (T, B))).reshape(-1)
        times = []
        for _ in range(6):
            t1 = time.perf_counter()
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(lin(rnn(emb(x))[0]).reshape(-1, V), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            times.append(time.perf_counter() - t1)
        out = {"ms_per_step": 1e3 * sorted(times[1:])[len(times[1:]) // 2]}
    else:  # cold start: the first W1 mid LSTM training step
        model = bptt.Sequential([bptt.Embedding(V, E), bptt.LSTM(E, 128), bptt.Dense(128, V)],
                                dtype=np.float32, seed=0)
        tr = bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(),
                        bptt.optim.SGD(model.named_parameters(), lr=0.1), k1=50,
                        clip=bptt.ClipGlobalNorm(5.0))
        rng = np.random.default_rng(0)
        tr.step(rng.integers(0, V, (50, 32)), rng.integers(0, V, (50, 32)))
        out = {"import_s": t_import, "to_first_step_s": time.perf_counter() - t0}
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec
    with open("/proc/self/status") as f:
        hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    out["peak_rss_mb"] = hwm / 1024
    print(json.dumps(out))
""")


def child(kind, arg, env=None):
    res = subprocess.run([sys.executable, "-c", CHILD, kind, str(arg)], capture_output=True,
                         text=True, env=env, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark child {kind} {arg} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_w2(lengths, log):
    rows = []
    for L in lengths:
        r = child("w2", L)
        rows.append({"tokens": L, **r})
        log(f"W2 stream of {L:>9,} tokens: peak RSS {r['peak_rss_mb']:7.1f} MB "
            f"({r['data_mb']:.1f} MB of it the stream's arrays), {r['seconds']:6.1f} s, "
            f"{r['updates']} updates")
    return rows


def run_w3(T, log):
    out = {"bptt": child("w3", T)}
    log(f"W3 bptt full BPTT T={T}: {out['bptt']['ms_per_step']:.1f} ms/step, "
        f"peak RSS {out['bptt']['peak_rss_mb']:.0f} MB")
    try:
        import torch  # noqa: F401
        out["torch"] = child("w3torch", T)
        log(f"W3 torch full BPTT T={T}: {out['torch']['ms_per_step']:.1f} ms/step, "
            f"peak RSS {out['torch']['peak_rss_mb']:.0f} MB")
    except ImportError:
        pass
    return out


def run_cold(log):
    """Import and first step with numba's compile cache empty, then warm. Python may write its
    bytecode, as it does by default (pip writes it at install): with this machine's
    PYTHONDONTWRITEBYTECODE every warm start compiled bptt's sources again (about 0.1 s)."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cold = child("cold", 0, env)
        warm = [child("cold", 0, env) for _ in range(3)]
    warm = sorted(warm, key=lambda r: r["to_first_step_s"])[1]
    log(f"cold start (empty compile cache): import {cold['import_s']:.2f} s, first step after "
        f"{cold['to_first_step_s']:.2f} s; warm cache: import {warm['import_s']:.2f} s, "
        f"first step after {warm['to_first_step_s']:.2f} s")
    return {"cold": cold, "warm": warm}


# -- report ----------------------------------------------------------------------------------
def machine():
    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba
    import scipy
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "numba": numba.__version__, "scipy": scipy.__version__}
    try:
        import torch
        versions["torch"] = torch.__version__
    except ImportError:
        pass
    import bptt
    from bptt._config import blas_core
    from bptt._kernels.gemm import VBYTES
    return {"cpu": cpu, "cores": os.cpu_count(), "versions": versions,
            "blas": f"GEMM reference: scipy's OpenBLAS, {blas_core()} kernels"
                    + (f" (OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']})"
                       if "OPENBLAS_CORETYPE" in os.environ else "")
                    + f"; bptt: its own {8 * VBYTES}-bit micro-kernels, "
                      f"{bptt.get_num_threads()} threads",
            "date": datetime.date.today().isoformat()}


def markdown(res):
    m = res["machine"]
    lines = [f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores; " +
             ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + f"; {m['blas']}.", ""]
    if "w1" in res:
        w1 = res["w1"]
        rates = [r["gemm_gflops"] for r in w1["rows"]]
        m_, k_, n_ = w1["gemm_size"]
        lines += [f"**W1**, float32, median ms per training step (4 rounds, the three "
                  "implementations and a float32 GEMM interleaved, each block at least 10 "
                  "steps and 50 ms, after 0.3 s idle and one untimed step). GFLOP/s = "
                  "WORKLOADS.md's count over the time; % of GEMM = the arithmetic bptt actually "
                  "does over the time, as a share of the GEMM rate timed in the same rounds as "
                  f"the row (GEMM column: OpenBLAS, {m_}x{k_}x{n_}, the best size at the start; "
                  f"{min(rates):.0f} to {max(rates):.0f} GFLOP/s over the rows, "
                  f"{w1['gemm_gflops']:.0f} at the start: this machine's speed drifts over "
                  "minutes). bptt folds the Embedding into the cell's input "
                  "projection: a V-row table instead of T*B input products, so it does less "
                  "than the count. Ratio = PyTorch time / bptt time (higher is better for "
                  "bptt), paired round by round: the median over the rounds of each round's "
                  "PyTorch block over its bptt block, in brackets the lowest and the highest "
                  "round (the machine's speed changes within seconds, for both at once); "
                  "numpy = a per-step Python loop.", "",
                  "| workload | cell | bptt ms | GFLOP/s | % of GEMM | GEMM GFLOP/s | "
                  "PyTorch ms | ratio | target | numpy ms |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
        for r in w1["rows"]:
            tgt = TARGETS[r["workload"]] if r["cell"] in ("elman", "lstm") else None
            ok = r["ratio"] is not None and tgt is not None and r["ratio"] >= tgt
            if ok and r["workload"] == "large":
                ok = r["gemm_share"] >= 0.6   # and at least 60% of the GEMM rate
            met = ("" if tgt is None or r["ratio"] is None else
                   (" (met)" if ok else " (missed)"))
            lines.append(
                f"| {r['workload']} (T {r['T']}, B {r['B']}, H {r['H']}) | {r['cell']} | "
                f"{r['bptt_ms']:.3f} | {r['gflops']:.1f} | {100 * r['gemm_share']:.0f}% | "
                f"{r['gemm_gflops']:.0f} | "
                + (f"{r['torch_ms']:.3f} | {r['ratio']:.2f} ({r['ratio_min']:.2f}-"
                   f"{r['ratio_max']:.2f}) |" if r["ratio"] else "n/a | n/a |")
                + (f" >= {tgt}{', 60% of GEMM' if r['workload'] == 'large' else ''}{met} |"
                   if tgt else " |")
                + (f" {r['numpy_ms']:.2f} |" if r["numpy_ms"] else " |"))
        lines.append("")
    if "w2" in res:
        lines += ["**W2**, TBPTT (k1 = k2 = 50) of the mid LSTM over one token stream (B = 32); "
                  "the stream's own arrays (int64 tokens, inputs, targets) grow with it, the "
                  "rest must not:", "",
                  "| tokens | peak RSS MB | of which the stream's arrays | the rest | seconds |",
                  "| ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['tokens']:,} | {r['peak_rss_mb']:.1f} | {r['data_mb']:.1f} | "
                  f"{r['peak_rss_mb'] - r['data_mb']:.1f} | {r['seconds']:.1f} |"
                  for r in res["w2"]]
        lines.append("")
    if "w3" in res:
        w3 = res["w3"]
        lines += ["**W3**, full BPTT, LSTM, T = 1000, B = 16, H = 128:", "",
                  "| | ms per step | peak RSS MB |", "| --- | ---: | ---: |"]
        lines += [f"| {k} | {v['ms_per_step']:.1f} | {v['peak_rss_mb']:.0f} |"
                  for k, v in w3.items()]
        lines.append("")
    if "cold" in res:
        c = res["cold"]
        lines += ["**Cold start** (import bptt, build the mid LSTM, first training step; "
                  "Python's bytecode cached, numba's compile cache empty or warm):", "",
                  "| compile cache | import s | to first step s |", "| --- | ---: | ---: |",
                  f"| empty | {c['cold']['import_s']:.2f} | {c['cold']['to_first_step_s']:.2f} |",
                  f"| warm | {c['warm']['import_s']:.2f} | {c['warm']['to_first_step_s']:.2f} |",
                  ""]
    if "hidden" in res:
        lines += ["**Hidden size**, LSTM, T = 50, B = 32, ms per step: see hidden_size.png", "",
                  "| H | bptt ms | PyTorch ms |", "| ---: | ---: | ---: |"]
        lines += [f"| {r['H']} | {r['bptt']:.2f} | " +
                  (f"{r['torch']:.2f} |" if "torch" in r else "n/a |") for r in res["hidden"]]
        lines.append("")
    return "\n".join(lines)


def plot(sweep, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    Hs = [r["H"] for r in sweep]
    ax.plot(Hs, [r["bptt"] for r in sweep], "o-", label="bptt")
    if all("torch" in r for r in sweep):
        ax.plot(Hs, [r["torch"] for r in sweep], "s-", label="PyTorch 2 threads")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("hidden size H")
    ax.set_ylabel("ms per training step")
    ax.set_title("LSTM char-LM step, T = 50, B = 32, float32, CPU")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", choices=["w1", "w2", "w3", "cold", "hidden"],
                    help="run only these parts (default: all)")
    ap.add_argument("--cells", nargs="*", default=["elman", "lstm", "gru"],
                    choices=["elman", "lstm", "gru"])
    ap.add_argument("--steps", type=int, default=40, help="timed steps per W1 measurement")
    ap.add_argument("--no-numpy", action="store_true", help="skip the plain-numpy baseline")
    ap.add_argument("--w2-max", type=int, default=6, help="largest W2 stream, 10^k tokens")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args(argv)
    parts = args.only or ["w1", "w2", "w3", "cold", "hidden"]
    os.makedirs(args.out, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    res = {"machine": machine()}
    log(f"{res['machine']['cpu']}, {res['machine']['cores']} cores, {res['machine']['versions']}")
    if "w1" in parts:
        res["w1"] = run_w1(args.cells, args.steps, not args.no_numpy, log)
    if "hidden" in parts:
        res["hidden"] = run_hidden_sweep([32, 64, 128, 256, 512, 1024], 20, log)
        plot(res["hidden"], os.path.join(args.out, "hidden_size.png"))
    if "w2" in parts:
        res["w2"] = run_w2([10 ** k for k in range(4, args.w2_max + 1)], log)
    if "w3" in parts:
        res["w3"] = run_w3(1000, log)
    if "cold" in parts:
        res["cold"] = run_cold(log)
    md = markdown(res)
    with open(os.path.join(args.out, "RESULTS.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    log("\n" + md)


if __name__ == "__main__":
    main()
