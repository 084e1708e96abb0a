"""The MPI side of tests/test_distributed.py, launched as

    mpiexec -n N python tests/mpi_worker.py SCENARIO OUTDIR N [ARGS...]

Every rank writes what it saw to OUTDIR/SCENARIO-<rank>.json; rank 0 writes parameters to .npz
files there. The builders and data below are imported by the test, which computes the
single-process references itself (no MPI needed there). mpi4py is imported in main() only.
"""

import json
import os
import sys
import warnings

import numpy as np

import bptt

V = 7
# (name, k1, k2, accumulate, clip, loss reduction)
MODES = [("k1=k2", 3, 3, 1, None, "mean"),
         ("k2>k1+clip", 3, 5, 1, 0.3, "mean"),
         ("accumulate=2+clip", 4, 4, 2, 0.3, "mean"),
         ("k2>k1+accumulate=2", 3, 8, 2, None, "mean"),
         ("sum", 3, 4, 1, 2.0, "sum"),
         ("k1=k2, copied parameter by parameter", 3, 3, 1, None, "mean")]


def token_data(L=24, B=5, seed=0):
    """Tokens, targets, random loss weights and resets (L, B), the same on every rank."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, V, (L, B)), rng.integers(0, V, (L, B)), rng.random((L, B)),
            rng.random((L, B)) < 0.1)


def build(mode, dtype=np.float64, seed=0, dropout=False, adam=False):
    _, k1, k2, accumulate, clip, reduction = mode
    parts = [bptt.Embedding(V, 5), bptt.LSTM(5, 6)]
    parts += [bptt.Dropout(0.3)] if dropout else []
    model = bptt.Sequential(parts + [bptt.Dense(6, V)], dtype=dtype, seed=seed)
    params = model.named_parameters()
    opt = bptt.optim.Adam(params, lr=0.01) if adam else bptt.optim.SGD(params, lr=0.3)
    return bptt.TBPTT(model, bptt.SoftmaxCrossEntropy(reduction=reduction), opt, k1=k1, k2=k2,
                      accumulate=accumulate,
                      clip=None if clip is None else bptt.ClipGlobalNorm(clip))


def train(trainer, data, split=12):
    """What every scenario does with a trainer (plain or data-parallel): fit, then step."""
    x, y, w, r = data
    a = trainer.fit(x[:split], y[:split], w[:split], r[:split])
    b = trainer.step(x[split:], y[split:], w[split:], r[split:])
    return a, b


FLOAT32_MODE = ("float32", 5, 5, 1, 1.0, "mean")


def float32_data():
    return token_data(L=200, B=6, seed=1)


# a float-input model in which huge inputs on one stream make the loss overflow
def float_data(L=12, B=4):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((L, B, 3)), rng.standard_normal((L, B, 2))
    resets = np.zeros((L, B), bool)
    x[4, 3] = 1e200   # stream 3 (rank 1's with two ranks), in the second chunk
    resets[6, 3] = True  # the stream starts afresh in the third chunk
    return x, y, resets


def build_float(seed=0, on_nonfinite="skip"):
    model = bptt.Sequential([bptt.Dense(3, 4), bptt.Elman(4, 5, nonlinearity="relu"),
                             bptt.Dense(5, 2)], dtype=np.float64, seed=seed)
    return bptt.TBPTT(model, bptt.MeanSquaredError(),
                      bptt.optim.SGD(model.named_parameters(), lr=0.05), k1=3,
                      on_nonfinite=on_nonfinite)


CKPT_MODE = ("checkpoint", 3, 5, 2, 1.0, "mean")
CKPT_SPLIT = 7  # steps before the checkpoint: chunks of 3, 3 and 1 step, the last one pending


def params_of(trainer):
    return {k: v.copy() for k, v in trainer.model.named_parameters().items()}


# -- scenarios (run on every rank) ------------------------------------------------------------
def scenario_parity(dp_cls, comm, out, dtype="float64"):
    rank, res = comm.Get_rank(), []
    if dtype == "float64":
        cases = [(m, token_data()) for m in MODES]
        dt = np.float64
    else:
        cases = [(FLOAT32_MODE, float32_data())]
        dt = np.float32
    arrays = {}
    for mode, data in cases:
        dp = dp_cls(build(mode, dt, seed=100 + rank))  # different seeds: rank 0's win
        if "parameter by parameter" in mode[0]:
            dp.reducer._flat = None  # as for a model without a flat gradient buffer
        x, y, w, r = (dp.shard(v) for v in data)
        a, b = train(dp, (x, y, w, r))
        dp.check_synchronized()
        res.append({"mode": mode[0], "losses": a.losses, "loss": b.loss,
                    "updates": a.updates + b.updates, "reduces": dp.reducer.calls,
                    "nbytes": dp.reducer.nbytes, "evaluate": dp.evaluate(x, y, w, r, chunk=5)})
        for k, v in params_of(dp).items():
            arrays[f"{mode[0]}/{k}"] = v
    if rank == 0:
        np.savez(os.path.join(out, f"parity-{dtype}.npz"), **arrays)
    return res


def scenario_nonfinite(dp_cls, comm, out, on_nonfinite="skip"):
    rank = comm.Get_rank()
    x, y, resets = float_data()
    dp = dp_cls(build_float(seed=rank, on_nonfinite=on_nonfinite))
    x, y, resets = dp.shard(x), dp.shard(y), dp.shard(resets)
    res = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rep = dp.fit(x, y, resets=resets)
            res.update(updates=rep.updates, skipped=rep.skipped, losses=rep.losses,
                       loss=rep.loss, nonfinite=rep.nonfinite)
        except Exception as e:  # noqa: BLE001
            res.update(error=type(e).__name__, message=str(e))
    res["warnings"] = [str(w.message) for w in caught]
    res["position"] = dp.position
    dp.check_synchronized()
    if rank == 0:
        np.savez(os.path.join(out, f"nonfinite-{on_nonfinite}.npz"), **params_of(dp))
    return res


class BoomLoss(bptt.SoftmaxCrossEntropy):
    """Raises at its ``fail_at``-th call (never if None)."""

    fail_at = None
    calls = 0

    def __call__(self, *a, **k):
        self.calls += 1
        if self.calls == self.fail_at:
            raise FloatingPointError("boom")
        return super().__call__(*a, **k)


def scenario_failures(dp_cls, comm, out):
    rank, res = comm.Get_rank(), []
    mode = ("failures", 3, 3, 1, None, "mean")
    x, y, w, r = token_data(L=12, B=4)
    try:  # ranks that built different engines are told at once
        dp_cls(build(("k1 differs", 3 + rank, 3, 1, None, "mean")))
        res.append({"case": "config", "error": None, "position": 0})
    except ValueError as e:
        res.append({"case": "config", "error": "ValueError", "message": str(e), "position": 0})
    trainer = build(mode, seed=rank)
    trainer.loss = BoomLoss()
    dp = dp_cls(trainer)
    x, y = dp.shard(x), dp.shard(y)

    def attempt(case, fn):
        try:
            value = fn()
            entry = {"case": case, "error": None,
                     "value": value if isinstance(value, int) else None}
        except Exception as e:  # noqa: BLE001
            entry = {"case": case, "error": type(e).__name__, "message": str(e)}
        entry["position"] = dp.position
        dp.check_synchronized()  # collective: also proves no rank was left behind
        res.append(entry)

    bad = y.copy()
    if rank == 1:
        bad[2, 0] = V  # a target outside the classes, on rank 1 only
    attempt("bad_input", lambda: dp.step(x[:6], bad[:6]))
    attempt("length", lambda: dp.step(x[:6 - rank], y[:6 - rank]))
    if rank == 1:
        trainer.loss.fail_at = trainer.loss.calls + 2  # the second chunk of the next call
    attempt("in_chunk", lambda: dp.step(x[:6], y[:6]))
    attempt("continue", lambda: dp.step(x[6:], y[6:]).updates)

    def callback_raises(report, chunk):
        if rank == 0 and len(report.losses) == 2:
            raise OSError("disk full")
    attempt("callback_raise", lambda: dp.fit(x, y, callback=callback_raises))
    attempt("callback_stop", lambda: len(dp.fit(
        x, y, callback=lambda report, chunk: not (rank == 1 and len(report.losses) == 2)
    ).losses))
    attempt("save_fail", lambda: dp.save(os.path.join(out, "no", "such", "dir.npz")))
    attempt("load_fail", lambda: dp.load(os.path.join(out, "missing.npz")))
    return res


def scenario_ckpt_save(dp_cls, comm, out):
    rank = comm.Get_rank()
    data = token_data()
    res = {}
    for variant, dropout in (("plain", False), ("dropout", True)):
        dp = dp_cls(build(CKPT_MODE, seed=rank, dropout=dropout, adam=True))
        x, y, w, r = (dp.shard(v) for v in data)
        s = CKPT_SPLIT
        dp.step(x[:s], y[:s], w[:s], r[:s])
        dp.save(os.path.join(out, f"ck-{variant}.npz"), note="saved by rank 0", ranks=dp.size)
        res[variant] = {"pending": dp.trainer._pending, "history": len(dp.trainer._history)}
        dp.step(x[s:], y[s:], w[s:], r[s:])
        dp.check_synchronized()
        if rank == 0:
            np.savez(os.path.join(out, f"full-{variant}.npz"), **params_of(dp))
    return res


def scenario_ckpt_resume(dp_cls, comm, out, src):
    rank, size = comm.Get_rank(), comm.Get_size()
    data = token_data()
    res = {}
    for variant, dropout in (("plain", False), ("dropout", True)):
        dp = dp_cls(build(CKPT_MODE, seed=50 + rank, dropout=dropout, adam=True))
        extra = dp.load(os.path.join(src, f"ck-{variant}.npz"))
        x, y, w, r = (dp.shard(v) for v in data)
        s = CKPT_SPLIT
        res[variant] = {"position": dp.position, "extra": extra}
        dp.step(x[s:], y[s:], w[s:], r[s:])
        dp.check_synchronized()
        if rank == 0:
            np.savez(os.path.join(out, f"resumed-{variant}-n{size}.npz"), **params_of(dp))
    return res


def scenario_uncaught(dp_cls, comm, out):
    """Rank 1 raises outside anything collective, then rank 0 waits in a collective: only
    ``python -m mpi4py`` (MPI_Abort on an uncaught exception) ends the job."""
    dp = dp_cls(build(MODES[0], seed=0))
    x, y, _, _ = token_data(L=6, B=4)
    dp.step(dp.shard(x), dp.shard(y))
    if comm.Get_rank() == 1:
        raise KeyError("rank 1 fails on its own")
    dp.step(dp.shard(x), dp.shard(y))
    return {}


SCENARIOS = {"parity": scenario_parity, "nonfinite": scenario_nonfinite,
             "failures": scenario_failures, "ckpt_save": scenario_ckpt_save,
             "ckpt_resume": scenario_ckpt_resume, "uncaught": scenario_uncaught}


def main(argv):
    scenario, out, expected, *args = argv
    from mpi4py import MPI

    from bptt.distributed import DataParallel
    comm = MPI.COMM_WORLD
    if comm.Get_size() != int(expected):
        print(f"rank {comm.Get_rank()}: MPI world size {comm.Get_size()}, expected {expected}: "
              "this mpiexec does not belong to the MPI library mpi4py uses "
              f"({MPI.Get_library_version().splitlines()[0]})", file=sys.stderr)
        return 3
    result = SCENARIOS[scenario](DataParallel, comm, out, *args)
    with open(os.path.join(out, f"{scenario}-{comm.Get_rank()}.json"), "w") as f:
        json.dump(result, f, default=repr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
