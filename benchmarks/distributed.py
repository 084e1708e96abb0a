"""Data-parallel TBPTT over MPI: throughput with 1 and 2 ranks, the all-reduce's share of the
step time, and an estimate of the scaling to many hosts. One command:

    python benchmarks/distributed.py                 # about a minute on 2 cores
    python benchmarks/distributed.py --ranks 1 2 4 --steps 40 --bandwidth-gbps 25 --latency-us 5

Workload: W1 ``mid`` of ../shared/WORKLOADS.md, the LSTM variant: Embedding(65, 64) ->
LSTM(64, 128) -> Dense(128, 65), T = 50, B = 32 streams in all (split across the ranks,
unevenly if need be), float32, softmax cross-entropy, clip 5, SGD lr 0.1, one update per step
(k1 = k2 = 50). Each rank runs with ``--threads`` BLAS/numba threads (default 1, so that 2
ranks use the cores 1 rank does not; the table says how many cores the machine has).

Measured, median over ``--steps`` steps after ``--warmup``:
- step: the slowest rank's time for one ``dp.step`` call (the ranks wait for each other in the
  all-reduce every step); tokens/s = B * T / step. A plain single-process TBPTT (no reducer)
  runs beside the 1-rank case as the baseline.
- reduce: time inside ``MPIReducer.reduce`` (pack, Allreduce, unpack, and waiting for the
  slowest rank); Allreduce alone: the same buffer reduced after a barrier (no waiting).
- compute t_c(b): single-process step time with b streams, for the strong-scaling estimate.

Estimate (printed with its assumptions): a host runs one rank; the all-reduce of S bytes over
p hosts costs ``t_ar(p) = 2 * ceil(log2 p) * alpha + 2 * (p - 1) / p * S / beta``
(reduce-scatter + all-gather, the bandwidth-optimal algorithm MPICH uses for large buffers),
with alpha the network latency and beta its bandwidth (``--latency-us``, default 50 us;
``--bandwidth-gbps``, default 10 Gb/s). The all-reduce is not overlapped with compute, so a
step takes t_c + t_ar. Weak scaling: every host keeps 32 streams, efficiency
t_c(32) / (t_c(32) + t_ar(p)). Strong scaling: 32 streams in all, a host computes 32/p of them
in t_c(32/p) (measured here), tokens/s = 32 * T / (t_c(32/p) + t_ar(p)).
"""

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

V, E, H, T, B = 65, 64, 128, 50, 32


def find_mpiexec():
    if os.environ.get("BPTT_MPIEXEC"):
        return os.environ["BPTT_MPIEXEC"]
    for path in (os.path.dirname(sys.executable), None):
        found = shutil.which("mpiexec", path=path)
        if found:
            return found
    sys.exit('no mpiexec found: pip install "bptt[mpi]"')


def build(seed=0):
    import bptt
    model = bptt.Sequential([bptt.Embedding(V, E), bptt.LSTM(E, H), bptt.Dense(H, V)],
                            dtype=np.float32, seed=seed)
    opt = bptt.optim.SGD(model.named_parameters(), lr=0.1)
    return bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(), opt, k1=T,
                      clip=bptt.ClipGlobalNorm(5.0))


def stream(n_steps, batch, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (n_steps * T, batch)), rng.integers(0, V, (n_steps * T, batch))


def time_plain(batch, steps, warmup):
    """Median seconds per step of a plain single-process TBPTT on ``batch`` streams."""
    trainer = build()
    x, y = stream(steps + warmup, batch)
    times = []
    for i in range(steps + warmup):
        t0 = time.perf_counter()
        trainer.step(x[i * T:(i + 1) * T], y[i * T:(i + 1) * T])
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


# -- the MPI side ---------------------------------------------------------------------------------
def worker(args):
    from mpi4py import MPI

    from bptt.distributed import DataParallel, shard_bounds
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    result = {"ranks": size}
    if size == 1:
        result["plain"] = time_plain(B, args.steps, args.warmup)
    dp = DataParallel(build(seed=rank))
    x, y = stream(args.steps + args.warmup, B)
    x, y = dp.shard(x), dp.shard(y)
    step_t, reduce_t, comm_t = [], [], []
    for i in range(args.steps + args.warmup):
        r0, c0 = dp.reducer.seconds, dp.reducer.comm_seconds
        t0 = time.perf_counter()
        dp.step(x[i * T:(i + 1) * T], y[i * T:(i + 1) * T])
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            step_t.append(dt)
            reduce_t.append(dp.reducer.seconds - r0)
            comm_t.append(dp.reducer.comm_seconds - c0)
    dp.check_synchronized()
    # the slowest rank sets the pace: per step, the maximum over ranks
    step_t = np.max(comm.allgather(step_t), axis=0)
    reduce_t = np.max(comm.allgather(reduce_t), axis=0)
    comm_t = np.max(comm.allgather(comm_t), axis=0)
    # the Allreduce alone, every rank ready (no waiting for a slower one)
    buf = np.zeros(dp.reducer.nbytes // 8)
    alone = []
    for _ in range(args.steps):
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        alone.append(time.perf_counter() - t0)
    alone = np.max(comm.allgather(alone), axis=0)
    result.update(step=float(np.median(step_t)), reduce=float(np.median(reduce_t)),
                  allreduce_in_step=float(np.median(comm_t)),
                  allreduce_alone=float(np.median(alone)), nbytes=dp.reducer.nbytes,
                  streams=[b - a for a, b in shard_bounds(B, size)],
                  parameters=dp.model.num_parameters())
    if size == 1:
        result["compute"] = {b: time_plain(b, max(args.steps // 2, 3), args.warmup)
                             for b in args.compute_batches}
    if rank == 0:
        print("RESULT " + json.dumps(result), flush=True)


# -- the launcher and the report -------------------------------------------------------------
def launch(n, args):
    env = dict(os.environ, HYDRA_LAUNCHER="fork")
    for var in ("BPTT_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(args.threads)
    cmd = [find_mpiexec(), "-n", str(n), sys.executable, "-m", "mpi4py",
           os.path.abspath(__file__), "--worker", "--steps", str(args.steps),
           "--warmup", str(args.warmup),
           "--compute-batches", *map(str, args.compute_batches)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[0][len("RESULT "):])


def allreduce_model(p, nbytes, alpha, beta):
    """Seconds for an all-reduce of ``nbytes`` over ``p`` hosts (see the module docstring)."""
    if p == 1:
        return 0.0
    return 2 * math.ceil(math.log2(p)) * alpha + 2 * (p - 1) / p * nbytes / beta


def report(runs, args):
    ms = lambda s: f"{1e3 * s:.2f}"  # noqa: E731
    out = [f"# Data-parallel TBPTT (W1 mid, LSTM, T={T}, B={B} in all, float32)", "",
           f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
           f"{platform.python_version()}; {args.threads} thread(s) per rank; "
           f"median over {args.steps} steps after {args.warmup} of warm-up.", ""]
    base = runs[0]
    out += ["| ranks | streams per rank | step (ms) | tokens/s | speed-up | reduce (ms) | "
            "share of step | Allreduce in step (ms) | Allreduce alone (ms) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    if "plain" in base:
        out.append(f"| 1, plain TBPTT | {B} | {ms(base['plain'])} | "
                   f"{B * T / base['plain']:,.0f} | - | - | - | - | - |")
    for r in runs:
        out.append(
            f"| {r['ranks']} | {'+'.join(map(str, r['streams']))} | {ms(r['step'])} | "
            f"{B * T / r['step']:,.0f} | {base['step'] / r['step']:.2f}x | {ms(r['reduce'])} | "
            f"{100 * r['reduce'] / r['step']:.1f}% | {ms(r['allreduce_in_step'])} | "
            f"{ms(r['allreduce_alone'])} |")
    S = base["nbytes"]
    out += ["", "Allreduce in step minus Allreduce alone is time spent waiting for the slowest "
            "rank (load imbalance, or other load on the machine)."]
    out += [f"All-reduce buffer: {base['parameters']:,} gradients + 3 values in float64 = "
            f"{S / 1e6:.3f} MB per step (dtype=np.float32 halves it)."]
    if "plain" in base:
        out.append(f"Overhead of the reducer on 1 rank (pack, unpack, a 1-rank Allreduce): "
                   f"{100 * (base['step'] / base['plain'] - 1):+.1f}% of the step.")

    alpha, beta = args.latency_us * 1e-6, args.bandwidth_gbps * 1e9 / 8
    comp = {int(k): v for k, v in base["compute"].items()}
    t32 = comp[B]
    out += ["", "## Estimate for many hosts (one rank per host)", "",
            f"Assumptions: latency alpha = {args.latency_us:g} us, bandwidth beta = "
            f"{args.bandwidth_gbps:g} Gb/s, S = {S / 1e6:.3f} MB; all-reduce time "
            "t_ar(p) = 2 ceil(log2 p) alpha + 2 (p-1)/p S / beta (reduce-scatter + all-gather), "
            "not overlapped with compute; compute times t_c(b) measured above with 1 rank "
            f"and {args.threads} thread(s). Ignores load imbalance and jitter between hosts, "
            "which the 'reduce' column above includes.", "",
            "| hosts p | t_ar(p) (ms) | weak: 32 streams per host, tokens/s | weak efficiency "
            "| strong: 32 streams in all, per host | strong tokens/s | strong speed-up |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for p in (1, 2, 4, 8, 16, 32, 64):
        tar = allreduce_model(p, S, alpha, beta)
        weak = p * B * T / (t32 + tar)
        eff = t32 / (t32 + tar)
        b = B // p
        if b >= 1 and b in comp and B % p == 0:
            strong = B * T / (comp[b] + tar)
            s_cells = f"{b} | {strong:,.0f} | {strong / (B * T / t32):.2f}x"
        else:
            s_cells = f"{b if b >= 1 else '<1'} | not measured | -"
        out.append(f"| {p} | {ms(tar)} | {weak:,.0f} | {100 * eff:.0f}% | {s_cells} |")
    out += ["", "Compute time per step t_c(b) on 1 rank: " +
            ", ".join(f"b={b}: {ms(t)} ms" for b, t in sorted(comp.items(), reverse=True))]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="BLAS/numba threads per rank")
    ap.add_argument("--bandwidth-gbps", type=float, default=10.0)
    ap.add_argument("--latency-us", type=float, default=50.0)
    ap.add_argument("--compute-batches", type=int, nargs="+", default=[32, 16, 8, 4, 2, 1])
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 3 steps, 1 warm-up")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.steps, args.warmup, args.compute_batches = 3, 1, [32, 16]
    if B not in args.compute_batches:
        args.compute_batches.append(B)
    if args.worker:
        return worker(args)
    runs = [launch(n, args) for n in sorted(set(args.ranks) | {1})]
    print(report(runs, args))


if __name__ == "__main__":
    main()
