"""Data-parallel truncated BPTT over MPI (mpi4py): every rank trains on its own share of the B
streams, and the gradients are combined before the guard, clipping and update.

Launch a script with ``mpiexec -n 4 python -m mpi4py train.py`` (install with
``pip install "bptt[mpi]"``)::

    from bptt.distributed import DataParallel

    trainer = bptt.TBPTT(model, loss, optimizer, k1=50, clip=bptt.ClipGlobalNorm(5.0))
    dp = DataParallel(trainer)                       # parameters broadcast from rank 0
    x_r, y_r = dp.shard(x), dp.shard(y)              # (L, B) -> this rank's (L, B_r) streams
    report = dp.fit(x_r, y_r)                        # report.loss: the global mean loss
    dp.save("run.npz")                               # collective; rank 0 writes

How the gradient is combined (:class:`MPIReducer`). For each chunk, rank r holds the gradient
g_r of its local mean loss S_r / W_r (S_r the weighted loss sum over its streams, W_r the sum
of its loss weights). The gradient of the global mean loss sum_r S_r / sum_r W_r is

    g = sum_r W_r g_r / sum_r W_r,

so each rank writes ``W_r * g_r`` (every parameter, packed one after another), ``W_r * loss_r``,
``W_r`` and a failure flag into one preallocated contiguous buffer, and a single
``Allreduce(SUM)`` over that buffer gives every rank the same sums; dividing by sum_r W_r gives
g and the global loss. With ``reduction="sum"`` losses, the gradients and losses are summed
unweighted. The buffer is float64 by default: for a float32 model the products W_r * g_r are
then exact (for integer W_r, as unweighted losses have) and the sums carry 29 bits more than
float32, so the order in which MPI adds them practically does not matter, and the result is
rounded to float32 once. For a float64 model the result equals the single-process gradient up
to summation order.

Clipping, the non-finite guard and the optimizer then run on identical gradients on every rank,
so the parameters stay identical without being broadcast again (they are broadcast once, from
rank 0, when :class:`DataParallel` is built). A non-finite value on one rank makes the sums
non-finite on every rank, so every rank skips (or raises) the same update. A rank that raises
during a chunk joins the same collective with the failure flag set (``reducer.abort()``), and
every other rank raises ``RuntimeError`` instead of waiting; :class:`DataParallel` also agrees
on the inputs (T, validation errors) before a call and on ``fit``'s callback after every chunk.
An exception that escapes elsewhere on one rank only is not coordinated: run scripts as
``mpiexec -n 4 python -m mpi4py train.py`` so that an uncaught exception aborts the whole job.
"""

import hashlib
import math
import time

import numpy as np

from .tbptt import FitReport

__all__ = ["DataParallel", "MPIReducer", "shard", "shard_bounds"]


def _mpi():
    """mpi4py's MPI module, imported on first use so that ``import bptt`` never needs MPI."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("bptt.distributed needs mpi4py and an MPI library: "
                          'pip install "bptt[mpi]"') from e
    return MPI


def _world(comm):
    return _mpi().COMM_WORLD if comm is None else comm


# -- splitting the streams ------------------------------------------------------------------
def shard_bounds(batch_size, size):
    """How ``batch_size`` streams are shared by ``size`` ranks: a list of ``(start, stop)``, one
    per rank, in rank order; the first ``batch_size % size`` ranks take one stream more."""
    batch_size, size = int(batch_size), int(size)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if batch_size < size:
        raise ValueError(f"{batch_size} streams cannot be shared by {size} ranks: every rank "
                         "needs at least one stream")
    q, extra = divmod(batch_size, size)
    bounds, start = [], 0
    for r in range(size):
        stop = start + q + (r < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def shard(a, rank, size, axis=1):
    """Rank ``rank``'s share (of ``size``) of the streams of ``a``: a C-contiguous copy of the
    slice :func:`shard_bounds` gives along ``axis`` (1, the batch axis of time-major (L, B) and
    (L, B, D) arrays). None stays None."""
    if a is None:
        return None
    a = np.asarray(a)
    lo, hi = shard_bounds(a.shape[axis], size)[rank]
    return np.ascontiguousarray(np.take(a, np.arange(lo, hi), axis=axis))


# -- the gradient reducer ---------------------------------------------------------------------
class MPIReducer:
    """``MPIReducer(comm=None, dtype=np.float64, reduction="mean")``: the TBPTT reducer protocol
    over MPI (see the module docstring for the weighting).

    comm: an mpi4py communicator (default ``MPI.COMM_WORLD``); dtype: of the buffer that
    travels (float64, or float32 to halve the traffic at the cost of a rounding in W_r * g_r);
    reduction: the loss's (``"mean"``: weighted by each rank's loss weight; ``"sum"``: summed).

    ``reduce(grads, loss, weight) -> (loss, weight, failed_elsewhere)`` replaces ``grads`` (dict
    of arrays, the same names and shapes on every rank) in place by the combined gradient; it
    is collective: every rank calls it, or :meth:`abort`, once per chunk. Timings: ``calls``,
    ``seconds`` (inside ``reduce``, including waiting for the slowest rank), ``comm_seconds``
    (inside ``Allreduce`` alone); ``nbytes`` is the buffer size.
    """

    def __init__(self, comm=None, dtype=np.float64, reduction="mean"):
        self.comm = _world(comm)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self._buf = self._flat = None
        self._layout = None
        self.aborted = 0
        self.elsewhere = []  # (call, global loss) where the loss was non-finite elsewhere only
        self.reset_timers()

    def __repr__(self):
        return (f"MPIReducer(rank={self.comm.Get_rank()}, size={self.comm.Get_size()}, "
                f"dtype={self.dtype.name}, reduction={self.reduction!r})")

    def reset_timers(self):
        self.calls, self.seconds, self.comm_seconds = 0, 0.0, 0.0

    @property
    def nbytes(self):
        return 0 if self._buf is None else self._buf.nbytes

    def prepare(self, grads):
        """Allocate the buffer for gradients shaped like ``grads`` (done on first use)."""
        layout = tuple((k, g.shape, id(g)) for k, g in grads.items())
        if layout != self._layout:
            n = sum(g.size for g in grads.values())
            self._buf = np.empty(n + 3, self.dtype)  # grads..., W*loss, W, failure flag
            self._layout = layout
            # gradients that are consecutive views of one flat array (a Sequential's) are
            # copied in and out in one go
            self._flat = _flat_base(list(grads.values()))
        return self._buf

    def reduce(self, grads, value, weight):
        t0 = time.perf_counter()
        buf = self.prepare(grads)
        n = buf.size - 3
        scale = float(weight) if self.reduction == "mean" else 1.0
        if self._flat is not None:
            buf[:n] = self._flat  # an exact upcast first, then the scaling in buf's dtype
        else:
            _pack(grads, buf)
        if scale != 1.0:
            buf[:n] *= scale
        local = float(value)
        # a rank without weight contributes nothing to the loss (its own mean is 0 or 0 * inf)
        buf[n] = scale * local if scale != 0.0 else 0.0
        buf[n + 1] = scale
        buf[n + 2] = 0.0
        t1 = time.perf_counter()
        self.comm.Allreduce(_mpi().IN_PLACE, buf, op=_mpi().SUM)
        self.comm_seconds += time.perf_counter() - t1
        failed = bool(buf[n + 2] != 0)
        total_w = float(buf[n + 1])
        if failed:
            value, weight = math.nan, total_w
        else:
            if self.reduction == "mean":
                if total_w > 0:
                    np.divide(buf[:n + 1], total_w, out=buf[:n + 1])
                value, weight = float(buf[n]), total_w
            else:
                value, weight = float(buf[n]), float(weight)
            if not math.isfinite(value):
                # the global loss is non-finite: make sure every rank's guard sees it in the
                # gradient too, whatever its own part was
                buf[:n] = np.nan
                if math.isfinite(local):
                    # this rank's own loss is finite: return it, so that the engine's guard
                    # looks for the cause in the gradient (it would look for a non-finite
                    # per-step loss here and not find one); DataParallel puts the global value
                    # back into the stats
                    self.elsewhere.append((self.calls, value))
                    value = local
            if self._flat is not None:
                self._flat[...] = buf[:n]
            else:
                _unpack(buf, grads)
        self.calls += 1
        self.seconds += time.perf_counter() - t0
        return value, weight, failed

    def abort(self):
        """Join this chunk's collective as a failed rank: the others raise instead of waiting."""
        self.aborted += 1
        buf = self._buf
        if buf is None:  # failed before any gradient existed: the size comes from the others
            raise RuntimeError("MPIReducer.abort() before prepare(): call prepare(grads) first")
        buf.fill(0)
        buf[-1] = 1.0
        self.comm.Allreduce(_mpi().IN_PLACE, buf, op=_mpi().SUM)


# -- the data-parallel trainer -----------------------------------------------------------------
class DataParallel:
    """``DataParallel(trainer, comm=None, dtype=np.float64)``: data-parallel training with a
    :class:`~bptt.TBPTT` engine, one MPI rank per process.

    Sets ``trainer.reducer`` to an :class:`MPIReducer` (buffer ``dtype``), checks that every
    rank built the same engine (k1, k2, accumulate, guard, parameter names and shapes, stream
    position), then broadcasts rank 0's parameters, optimizer state and dropout random state,
    so all ranks start equal even if they were seeded differently. Dropout then draws from a
    generator derived from (rank 0's seed, rank) on ranks other than 0, so that ranks do not
    draw the same masks. All methods below are collective (every rank calls them, in the same
    order) except :meth:`shard`; other attributes are the trainer's (``dp.position``,
    ``dp.model``, ``dp.reset_state()`` ...).

    Attributes: ``rank``, ``size``, ``is_main`` (rank 0: print and write files there),
    ``comm``, ``trainer``, ``reducer``.
    """

    def __init__(self, trainer, comm=None, dtype=np.float64):
        if getattr(trainer, "reducer", None) is not None:
            raise ValueError(f"the trainer already has a reducer ({trainer.reducer!r})")
        self.trainer = trainer
        self.comm = _world(comm)
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.is_main = self.rank == 0
        self.reducer = MPIReducer(self.comm, dtype, reduction=trainer.loss.reduction)
        self.reducer.prepare(trainer.model.named_grads())
        self._streams = None  # this rank's B at the last call
        self._agree_config()
        trainer.reducer = self.reducer
        self.broadcast(root=0)

    def __getattr__(self, name):
        if name == "trainer":  # not yet set (during __init__)
            raise AttributeError(name)
        return getattr(self.trainer, name)

    def __repr__(self):
        return f"DataParallel({self.trainer!r}, rank={self.rank}, size={self.size})"

    # -- agreement between ranks ---------------------------------------------------------------
    def _agree(self, fn, what, share=None):
        """Run ``fn()`` here; if it raised on any rank, raise on every rank (this rank's own
        exception where it failed, RuntimeError naming the failed ranks elsewhere). One
        collective. With ``share``, return ``[share(result) of every rank]`` (small values)."""
        try:
            result, error = fn(), None
        except Exception as e:  # noqa: BLE001 (re-raised below, after the others know)
            result, error = None, e
        msg = None if error is None else f"{type(error).__name__}: {error}"
        every = self.comm.allgather((msg, share(result) if share and error is None else None))
        if error is not None:
            raise error
        failed = [(r, m) for r, (m, _) in enumerate(every) if m is not None]
        if failed:
            raise RuntimeError(f"{what} failed on rank(s) {[r for r, _ in failed]}; every rank "
                               "stops: " + "; ".join(f"rank {r}: {m}" for r, m in failed))
        return [v for _, v in every] if share else result

    def _agree_config(self):
        t = self.trainer
        mine = (t.k1, t.k2, t.accumulate, t.on_nonfinite, t.loss.reduction,
                str(t.model.dtype), [(k, p.shape) for k, p in t.model.named_parameters().items()],
                t.position, t._pending)
        every = self.comm.allgather(mine)
        names = ("k1", "k2", "accumulate", "on_nonfinite", "loss reduction", "dtype",
                 "parameter names and shapes", "stream position", "pending chunks")
        for i, name in enumerate(names):
            values = [e[i] for e in every]
            if any(v != values[0] for v in values):
                shown = values if i != 6 else "differ"
                raise ValueError(f"every rank must build the same TBPTT engine: {name} "
                                 f"differs between ranks ({shown})")

    def _agree_inputs(self, x, y, weights, resets):
        """Validate here, then agree (one collective): no rank with bad input, and the same
        number of steps T on every rank. Returns the checked arrays and the global B."""
        checked = []

        def check():
            checked.extend(self.trainer._check_inputs(x, y, weights, resets))
            return checked[0].shape[:2]
        shapes = self._agree(check, "input validation", share=tuple)
        steps = [s[0] for s in shapes]
        if any(s != steps[0] for s in steps):
            raise ValueError(f"every rank must feed the same number of time steps T, got "
                             f"{steps} (rank order)")
        self._streams = shapes[self.rank][1]
        return (*checked, sum(s[1] for s in shapes))

    # -- parameters --------------------------------------------------------------------------
    def broadcast(self, root=0):
        """Copy ``root``'s parameters, optimizer state and dropout random state to every rank
        (done once at construction; again after changing parameters on one rank only)."""
        model, opt = self.trainer.model, self.trainer.optimizer
        params = model.named_parameters()
        flat = np.empty(sum(p.size for p in params.values()), model.dtype)
        if self.rank == root:
            _pack(params, flat)
        self.comm.Bcast(flat, root=root)
        if self.rank != root:
            _unpack(flat, params)
        if hasattr(opt, "state_dict"):
            sd = self.comm.bcast(opt.state_dict() if self.rank == root else None, root=root)
            if self.rank != root:
                opt.load_state_dict(sd)
        rng = self.comm.bcast(model.get_rng_state() if self.rank == root else None, root=root)
        model.set_rng_state(_rank_rng(rng, self.rank))

    def check_synchronized(self):
        """Raise RuntimeError unless every rank holds bit-identical parameters and optimizer
        slots (a debugging aid; they should never differ)."""
        h = hashlib.blake2b(digest_size=16)
        for p in self.trainer.model.named_parameters().values():
            h.update(np.ascontiguousarray(p).tobytes())
        opt = self.trainer.optimizer
        for name, slots in sorted(getattr(opt, "slots", {}).items()):
            for k, v in sorted(slots.items()):
                h.update(np.ascontiguousarray(v).tobytes())
        digests = self.comm.allgather(h.hexdigest())
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise RuntimeError(f"parameters or optimizer state of rank(s) {differ} differ "
                               "from rank 0's")
        return True

    # -- training ----------------------------------------------------------------------------
    def shard(self, a, axis=1):
        """This rank's share of the streams of ``a`` (time-major (L, B, ...)); see
        :func:`shard`. Not collective."""
        return shard(a, self.rank, self.size, axis)

    def step(self, x, y, weights=None, resets=None):
        """:meth:`TBPTT.step <bptt.TBPTT.step>` on this rank's streams (L, B_r). Every rank must
        feed the same number of steps. The returned stats hold the global loss and gradient
        norms; ``tokens_per_s`` counts the streams of all ranks."""
        x, y, weights, resets, total = self._agree_inputs(x, y, weights, resets)
        first = self._begin()
        stats = self.trainer.step(x, y, weights, resets)
        return self._finish(stats, total, first)

    def fit(self, x, y, weights=None, resets=None, reset_state=True, callback=None):
        """:meth:`TBPTT.fit <bptt.TBPTT.fit>` on this rank's streams. ``callback(report,
        chunk)`` runs on every rank after every chunk; if it returns False on any rank, every
        rank stops; if it raises on any rank, every rank raises. (Print or save only where
        ``is_main``; use :meth:`save`, which is collective, on every rank.)"""
        if reset_state:  # first, as TBPTT.fit does: the old state must not be checked
            self.trainer.reset_state()
        x, y, weights, resets, total = self._agree_inputs(x, y, weights, resets)
        agreed = None
        if callback is not None:
            def agreed(report, chunk):
                stops = self._agree(lambda: callback(report, chunk) is False, "the callback",
                                    share=bool)
                return not any(stops)
        first = self._begin()
        report = self.trainer.fit(x, y, weights, resets, reset_state, agreed)
        return self._finish(report, total, first)

    def _begin(self):
        self.reducer.elsewhere.clear()
        return self.reducer.calls

    def _finish(self, stats, total, first):
        """Global figures: tokens of every rank, and the global (non-finite) loss of a chunk
        that was skipped because of another rank's values."""
        stats.tokens_per_s = stats.steps_per_s * total
        if self.reducer.elsewhere:
            values = [v for _, v in self.reducer.elsewhere]
            stats.loss = sum(values)  # inf or nan, as the single-process loss would be
            for call, v in self.reducer.elsewhere:
                if isinstance(stats, FitReport) and 0 <= call - first < len(stats.losses):
                    stats.losses[call - first] = v
        return stats

    def evaluate(self, x, y, weights=None, resets=None, chunk=None):
        """Global mean loss (over every rank's streams) of the model; see
        :meth:`TBPTT.evaluate <bptt.TBPTT.evaluate>`."""
        t = self.trainer

        def local():
            value = t.evaluate(x, y, weights, resets, chunk)
            if t.loss.reduction == "sum":
                return value, 1.0
            target = np.asarray(y)  # what the mean divides by, on this rank
            probe = np.broadcast_to(np.zeros((), t.model.dtype),
                                    target.shape[:2] + (t.model.output_size(None) or 1,))
            ws = t.loss.total_weight(probe, target, weights)
            return value * ws, ws
        total, ws = self._agree(local, "evaluation")
        sums = np.array([total, ws])
        self.comm.Allreduce(_mpi().IN_PLACE, sums, op=_mpi().SUM)
        if t.loss.reduction == "sum":
            return float(sums[0])
        return float(sums[0] / sums[1]) if sums[1] > 0 else 0.0

    # -- stream state and checkpoints --------------------------------------------------------
    def state_dict(self):
        """The GLOBAL stream state (collective; every rank gets the same): the engine's
        :meth:`~bptt.TBPTT.state_dict` with the per-stream parts of all ranks (carried state,
        the kept overlap's inputs, resets and entering state) joined along the batch axis in
        rank order, so a single process, or any number of ranks, can continue from it. The
        parts that are the same on every rank (position, pending gradient, parameter
        snapshots) are rank 0's. Under ``"data_parallel"``: the streams per rank and every
        rank's random states (dropout), used when resuming with the same split."""
        sd = self.trainer.state_dict()
        mine = {"streams": self._local_streams(sd), "state": sd["state"],
                "history": [(h["x"], h["resets"], h["state_in"], h["rng_in"])
                            for h in sd["history"]],
                "rng": self.trainer.model.get_rng_state()}
        every = self.comm.allgather(mine)
        streams = [e["streams"] for e in every]
        out = dict(sd)
        out["state"] = _join_state([e["state"] for e in every], 0)
        history = []
        for i, h in enumerate(sd["history"]):
            parts = [e["history"][i] for e in every]
            h = dict(h)
            h["x"] = np.concatenate([p[0] for p in parts], axis=1)
            if all(p[1] is None for p in parts):
                h["resets"] = None
            else:
                h["resets"] = np.concatenate(
                    [np.zeros(p[0].shape[:2], bool) if p[1] is None else p[1] for p in parts],
                    axis=1)
            h["state_in"] = _join_state([p[2] for p in parts], 0)
            history.append(h)
        out["history"] = history
        out["data_parallel"] = {"streams": streams, "rng": [e["rng"] for e in every],
                                "rng_in": [[p[3] for p in e["history"]] for e in every]}
        return out

    def load_state_dict(self, sd):
        """Continue from a global stream state (from :meth:`state_dict`, or a single process's
        ``TBPTT.state_dict()``): each rank takes its share of the streams
        (:func:`shard_bounds` over this number of ranks). With the same split as when it was
        saved, every rank also gets its own random state back; with another, the kept overlap
        is rebuilt with dropout masks that differ from the original ones (models without
        Dropout resume exactly either way)."""
        def local():
            batch = _global_streams(sd)
            dp = sd.get("data_parallel")
            lo = hi = None
            same = dp is not None and len(dp["streams"]) == self.size
            if batch is not None:
                lo, hi = shard_bounds(batch, self.size)[self.rank]
                same = same and (list(dp["streams"]) ==
                                 [b - a for a, b in shard_bounds(batch, self.size)])
            mine = {k: v for k, v in sd.items() if k != "data_parallel"}
            mine["state"] = _slice_state(sd["state"], lo, hi)
            history = []
            for i, h in enumerate(sd["history"]):
                h = dict(h)
                h["x"] = np.ascontiguousarray(np.asarray(h["x"])[:, lo:hi])
                if h["resets"] is not None:
                    h["resets"] = np.ascontiguousarray(np.asarray(h["resets"])[:, lo:hi])
                h["state_in"] = _slice_state(h["state_in"], lo, hi)
                h["rng_in"] = (dp["rng_in"][self.rank][i] if same
                               else _rank_rng(h["rng_in"], self.rank))
                history.append(h)
            mine["history"] = history
            self.trainer.load_state_dict(mine)
            if same:
                self.trainer.model.set_rng_state(dp["rng"][self.rank])
            elif dp is not None:
                self.trainer.model.set_rng_state(_rank_rng(dp["rng"][0], self.rank))
            if lo is not None:
                self._streams = hi - lo
        self._agree(local, "loading the stream state")

    def save(self, path, **extra):
        """Write a checkpoint of the whole run (collective): the model and optimizer (the same
        on every rank) and the global stream state (:meth:`state_dict`), written by rank 0
        alone with :func:`bptt.save`; ``extra`` as there. If the write fails, every rank
        raises. Returns the path."""
        from .checkpoint import save
        sd = self.state_dict()
        trainer = self.trainer

        class _Global:  # what bptt.save reads from a trainer
            model, optimizer = trainer.model, trainer.optimizer

            @staticmethod
            def state_dict():
                return sd

        def write():
            if self.is_main:
                save(path, trainer=_Global, **extra)
        self._agree(write, f"writing checkpoint {path!r}")
        return path

    def load(self, path):
        """Resume from a checkpoint (collective): rank 0 reads ``path`` (only rank 0's host
        needs the file) and sends its parameters, optimizer state, stream state and extras to
        every rank; each rank takes its share of the streams (see :meth:`load_state_dict`;
        the number of ranks may differ from the run that saved it). Returns the checkpoint's
        ``extra`` dict."""
        from .checkpoint import load
        t = self.trainer

        def read():
            if self.is_main:
                ck = load(path, model=t.model, optimizer=t.optimizer)
                return ck.trainer_state, ck.extra
            return None
        got = self._agree(read, f"reading checkpoint {path!r}")
        sd, extra = self.comm.bcast(got, root=0)
        self.broadcast(root=0)  # parameters, optimizer state (rng: set below)
        if sd is None:
            raise ValueError(f"{path}: holds no trainer state to resume")
        self.load_state_dict(sd)
        return extra

    def _local_streams(self, sd):
        b = _global_streams(sd)
        return b if b is not None else self._streams


# -- helpers ------------------------------------------------------------------------------------
def _flat_base(arrays):
    """The 1-D array that ``arrays`` tile exactly, in order, as C-contiguous views, or None."""
    base = arrays[0].base if arrays else None
    if base is None or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    start, total = base.__array_interface__["data"][0], 0
    for a in arrays:
        if (a.base is not base or not a.flags.c_contiguous
                or a.__array_interface__["data"][0] != start + total * base.itemsize):
            return None
        total += a.size
    return base if total == base.size else None


def _pack(arrays, flat):
    off = 0
    for a in arrays.values():
        flat[off:off + a.size] = a.reshape(-1)
        off += a.size


def _unpack(flat, arrays):
    off = 0
    for a in arrays.values():
        a[...] = flat[off:off + a.size].reshape(a.shape)
        off += a.size


def _join_state(parts, axis):
    """Join per-rank (flattened) states, nested lists of arrays, along ``axis``."""
    if all(p is None for p in parts):
        return None
    if any(p is None for p in parts):
        raise ValueError("the carried state is None on some ranks only")
    first = parts[0]
    if isinstance(first, (list, tuple)):
        return [_join_state([p[i] for p in parts], axis) for i in range(len(first))]
    return np.concatenate([np.asarray(p) for p in parts], axis=axis)


def _slice_state(state, lo, hi):
    if state is None:
        return None
    if isinstance(state, (list, tuple)):
        return [_slice_state(s, lo, hi) for s in state]
    return np.ascontiguousarray(np.asarray(state)[lo:hi])


def _first_array(tree):
    if tree is None:
        return None
    if isinstance(tree, (list, tuple)):
        for t in tree:
            a = _first_array(t)
            if a is not None:
                return a
        return None
    return np.asarray(tree)


def _global_streams(sd):
    """The number of streams B of a stream state (None if it holds nothing per stream)."""
    a = _first_array(sd.get("state"))
    if a is not None:
        return a.shape[0]
    for h in sd.get("history", []):
        return np.asarray(h["x"]).shape[1]
    dp = sd.get("data_parallel")
    if dp is not None and all(s is not None for s in dp["streams"]):
        return int(sum(dp["streams"]))
    return None


def _rank_rng(state, rank):
    """Rank ``rank``'s dropout random state derived from rank 0's: each ``{"seed", "calls"}``
    (a :class:`~bptt.Dropout`'s) gets a seed mixed with the rank; rank 0's is unchanged."""
    if rank == 0 or state is None:
        return state
    if isinstance(state, dict) and set(state) == {"seed", "calls"}:
        seed = int(np.random.default_rng([int(state["seed"]), rank]).integers(2**62))
        return {"seed": seed, "calls": int(state["calls"])}
    if isinstance(state, (list, tuple)):
        return [_rank_rng(s, rank) for s in state]
    return state
