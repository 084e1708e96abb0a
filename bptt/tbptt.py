"""The truncated-BPTT engine: TBPTT(k1, k2) over a stream, with the state carried across chunks.

Definition (Williams & Peng 1990; Sutskever 2013, section 2.8). The stream is cut into chunks
of k1 steps. After the forward pass of a chunk, the losses of that chunk are backpropagated
through the *window* of the last k2 steps ending at the chunk's last step, and the parameters
are updated. Precisely, for a chunk covering steps ``(t - n, t]`` (n = k1, or fewer for the
last chunk of a call), with per-step losses ``l_s`` and weights ``w_s``:

    J = sum_{s in chunk} w_s l_s / sum_{s in chunk} w_s        (reduction "mean")
    window = (t - k2, t]                        if k2 < n   (only the chunk's last k2 steps)
           = (t - n - (k2 - k1), t]             if k2 >= k1 (the chunk and the k2 - k1 steps
                                                             before it)
           = the whole stream so far            if k2 is None (full BPTT)

and the gradient is dJ/dtheta computed on the graph restricted to the window: the state that
enters the window is a constant (its gradient is cut), and a loss at a step outside the window
(the first n - k2 steps of the chunk, when k2 < n) adds to the reported loss but nothing to
the gradient. Every step of the window is evaluated with the parameters it actually ran with:
the forward pass of the steps before the chunk (k2 > k1) is kept, not recomputed, and was run
with the parameters of an earlier update, so backward through those steps uses those
parameters (exactly what an autograd framework does when it keeps the graph). The gradient
sums the contributions of every use of each parameter.

k1 = k2 is ordinary chunked training; k2 > k1 gives overlapping windows; k2 < k1 truncates
further; k2 = None is full BPTT from the start of the stream (memory grows with the stream).
``k1=None`` makes each call of :meth:`TBPTT.step` one chunk.
"""

import contextlib
import functools
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _parallel
from ._plan import StepPlan, loss_fits
from ._validate import bool_mask, choice, positive_int, weight_mask
from .clip import ClipGlobalNorm, as_clip_list, global_norm
from .errors import NonFiniteError
from .losses import Loss
from .module import BackwardContext, cache_length, slice_cache
from .value_and_grad import check_model

_SAME = object()


@dataclass
class StepStats:
    """Figures of one :meth:`TBPTT.step` (or :meth:`TBPTT.fit`) call.

    loss: mean loss over the time steps processed (weighted as the loss weights them);
    grad_norm / grad_norm_clipped: global gradient norm before / after clipping, at the last
    update (nan if none); updates / skipped: optimizer updates done / skipped (non-finite);
    clip_counts: how often each clip fired during the call; steps: time steps processed;
    seconds, steps_per_s, tokens_per_s (steps * streams per second); nonfinite: the messages of
    skipped updates.
    """

    loss: float = math.nan
    grad_norm: float = math.nan
    grad_norm_clipped: float = math.nan
    updates: int = 0
    skipped: int = 0
    clip_counts: dict = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    steps_per_s: float = 0.0
    tokens_per_s: float = 0.0
    nonfinite: list = field(default_factory=list)

    def as_dict(self):
        return dict(self.__dict__)


@dataclass
class FitReport(StepStats):
    """:class:`StepStats` over a whole stream, plus per-update histories: ``losses`` (each
    chunk's mean loss), ``grad_norms`` and ``grad_norms_clipped``."""

    losses: list = field(default_factory=list)
    grad_norms: list = field(default_factory=list)
    grad_norms_clipped: list = field(default_factory=list)


class _Segment:
    """The kept forward pass of an earlier chunk: its cache, where it starts in the stream, the
    parameter values it ran with (None while they are still the live ones), and what rebuilds
    the cache after a restart (its input, resets, entering state and random state)."""

    __slots__ = ("cache", "start", "length", "params", "x", "resets", "state_in", "rng_in")

    def __init__(self, cache, start, length, x, resets, state_in, rng_in):
        self.cache, self.start, self.length, self.params = cache, start, length, None
        self.x, self.resets, self.state_in, self.rng_in = x, resets, state_in, rng_in


class TBPTT:
    """``TBPTT(model, loss, optimizer, k1, k2=k1, clip=None, accumulate=1, on_nonfinite="skip")``

    model: a bptt Module (usually a :class:`~bptt.Sequential`); loss: a bptt loss;
    optimizer: a ``bptt.optim`` optimizer over ``model.named_parameters()``.
    k1: steps per chunk (an update every k1 steps), or None for one chunk per :meth:`step`;
    k2: steps backpropagated through (see the module docstring), None for full BPTT.
    clip: a clipping object or a list of them (:class:`~bptt.ClipGlobalNorm`,
        :class:`~bptt.ClipValue`, :class:`~bptt.ClipNormPerParameter`,
        :class:`~bptt.ClipStateGradient`), applied in the order given.
    accumulate: sum the gradients of this many chunks before one update.
    on_nonfinite: "skip" (default: warn, skip the update, leave parameters and optimizer
        untouched) or "raise" (raise :class:`~bptt.NonFiniteError` and restore the engine to
        its state before the chunk).
    reducer: for data-parallel training, an object that combines each chunk's gradient across
        processes before the guard, clipping and update: ``reducer.reduce(grads, loss, weight)
        -> (loss, weight, failed_elsewhere)`` replaces ``grads`` in place by the gradient of the
        global mean loss and returns the global loss and weight; ``reducer.abort()`` is called
        instead when this process fails during the chunk, so the others are not left waiting
        (see :mod:`bptt.distributed`).
    record_state_grads: record ||dL/ds_t|| at every step of every backward pass (see
        :class:`~bptt.BackwardContext`); each chunk's dict passed to ``fit``'s callback then
        holds them under "state_grads" (cell -> list of tuples of (T, B) arrays, newest window
        piece first).

    Chunks of the char-rnn model (Embedding, cell, Dense under softmax cross-entropy) whose
    window is the chunk run by a recorded plan of the step once their shape repeats (see
    bptt._plan): the same numbers, less Python. ``engine.use_plans = False`` turns it off.
    """

    use_plans = True   # False: every chunk by the general path (for comparisons, debugging)

    def __init__(self, model, loss, optimizer, k1, k2=_SAME, clip=None, accumulate=1,
                 on_nonfinite="skip", reducer=None, record_state_grads=False):
        self.model = check_model(model)
        self.loss = loss
        self.optimizer = optimizer
        self.k1 = None if k1 is None else positive_int("k1", k1)
        if k2 is _SAME:
            k2 = self.k1
        self.k2 = None if k2 is None else positive_int("k2", k2)
        self.state_clip, self.clips = as_clip_list(clip)
        self.accumulate = positive_int("accumulate", accumulate)
        self.on_nonfinite = choice("on_nonfinite", on_nonfinite, {"skip", "raise"})
        self.reducer = reducer
        self.record_state_grads = bool(record_state_grads)
        self._clip_names = [repr(c) for c in self._all_clips()]
        if not getattr(model, "supports_truncation", True) and not (k1 is None and k2 is None):
            raise ValueError(f"{model!r} holds a Bidirectional part, which needs whole sequences: "
                             "use k1=None and k2=None (one chunk per step call)")
        self._params = model.named_parameters()
        self._grads = model.named_grads()
        flat = getattr(model, "flat_grads", None)
        # the gradients as one vector where the model keeps them in one buffer (Sequential)
        self._global = {"all": flat} if flat is not None else self._grads
        held = getattr(optimizer, "params", self._params)
        missing = [k for k, p in self._params.items() if held.get(k) is not p]
        if missing:
            raise ValueError(f"the optimizer does not hold the model's live parameter arrays "
                             f"{missing}; build it from model.named_parameters() (after any "
                             "astype, which replaces the arrays)")
        self.reset_state()
        self._pending = 0
        self._plan = None           # the recorded plan of a step (bptt._plan), once made
        self._plan_refused = set()  # the chunk shapes (n, B) no plan could be made for
        self._last_shape = None     # (n, B) of the last chunk

    # -- stream state ---------------------------------------------------------------------
    def reset_state(self):
        """Start a new stream: zero state, no kept history, position 0."""
        self.state = self._own_state = None
        self._own_batch = None
        self.position = 0
        self._history = []

    def state_dict(self):
        """What a checkpoint needs to continue the stream exactly: the position, the carried
        state, the pending accumulated gradient, and the kept overlap (k2 > k1) as the inputs,
        entering state, random state and parameters that rebuild it. A dict of numbers, lists
        and numpy arrays (``bptt.save(..., trainer=engine.state_dict())`` stores it)."""
        snapshots, history = [], []
        for seg in self._history:
            if seg.params is not None and not any(seg.params is p for p in snapshots):
                snapshots.append(seg.params)
            history.append({
                "start": seg.start, "length": seg.length, "x": seg.x,
                "resets": seg.resets, "state_in": _flatten_state(seg.state_in),
                "rng_in": seg.rng_in,
                "params": next((i for i, p in enumerate(snapshots) if p is seg.params), None)})
        return {"position": self.position, "state": _flatten_state(self.state),
                "pending": self._pending,
                "pending_grads": ({k: g.copy() for k, g in self._grads.items()}
                                  if self._pending else None),
                "snapshots": snapshots, "history": history}

    def load_state_dict(self, sd):
        """Restore what :meth:`state_dict` saved (into an engine over the same model
        architecture); the kept overlap is rebuilt by re-running its forward pass with the
        parameters and random state it first ran with, so it is the same to the last bit."""
        model = self.model
        try:
            position, pending = int(sd["position"]), int(sd["pending"])
            state = _unflatten_state(sd["state"], model)
            snapshots = [{k: np.array(v[k], dtype=p.dtype) for k, p in self._params.items()}
                         for v in sd["snapshots"]]
            history = [(h, _unflatten_state(h["state_in"], model),
                        None if h["params"] is None else snapshots[h["params"]])
                       for h in sd["history"]]
            pending_grads = ({k: np.asarray(sd["pending_grads"][k]) for k in self._grads}
                             if pending else None)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"not a TBPTT state_dict for this model: {e!r}") from None
        rng_now, was_training = model.get_rng_state(), model.training
        live = {k: p.copy() for k, p in self._params.items()}
        segments = []
        try:
            model.train(True)
            for h, seg_state, params in history:
                _load(self._params, live if params is None else params)
                if h["rng_in"] is not None:
                    model.set_rng_state(h["rng_in"])
                resets = None if h["resets"] is None else np.asarray(h["resets"], bool)
                _, _, cache = model.forward(np.asarray(h["x"]), seg_state, resets)
                seg = _Segment(cache, int(h["start"]), int(h["length"]), h["x"], resets,
                               seg_state, h["rng_in"])
                seg.params = params
                segments.append(seg)
        finally:
            _load(self._params, live)
            model.set_rng_state(rng_now)
            model.train(was_training)
        self.position, self.state, self._history = position, state, segments
        self._pending = pending
        if pending:
            for k, g in self._grads.items():
                g[...] = pending_grads[k]

    @property
    def overlap(self):
        """How many steps before a chunk its window reaches back (None: to the stream start)."""
        if self.k2 is None:
            return None
        return max(self.k2 - (self.k1 or 0), 0) if self.k1 is not None else 0

    def __repr__(self):
        return (f"TBPTT(k1={self.k1}, k2={self.k2}, clip={self._all_clips()}, "
                f"accumulate={self.accumulate}, on_nonfinite={self.on_nonfinite!r})")

    # -- public API -----------------------------------------------------------------------
    def step(self, x, y, weights=None, resets=None):
        """Feed T more steps of the stream: forward, backward, clip and update every k1 steps.

        x: (T, B) tokens or (T, B, D) floats; y: targets (T, B) or (T, B, ...); weights:
        per-step loss weights (T, B); resets: boolean (T, B), zero a stream's state before that
        step. If T is not a multiple of k1 the last chunk is shorter. Returns :class:`StepStats`.
        """
        return self._run(x, y, weights, resets, StepStats())

    def fit(self, x, y, weights=None, resets=None, reset_state=True, callback=None):
        """Train over a whole (L, B) stream in chunks of k1, the state carried from chunk to
        chunk. ``callback(report, chunk_stats)`` is called after every chunk; it may return
        False to stop. Returns a :class:`FitReport`."""
        if reset_state:
            self.reset_state()
        return self._run(x, y, weights, resets, FitReport(), callback)

    def evaluate(self, x, y, weights=None, resets=None, chunk=None):
        """Mean loss of the model on a stream (no gradients, dropout off), from a zero state
        carried through the stream in chunks of ``chunk`` steps (default k1). The training
        state of the engine is not touched."""
        x, y, weights, resets = self._check_inputs(x, y, weights, resets)
        chunk = chunk or self.k1 or x.shape[0]
        was_training = self.model.training
        self.model.eval()
        try:
            state, total, wsum = None, 0.0, 0.0
            for a in range(0, x.shape[0], chunk):
                b = min(a + chunk, x.shape[0])
                out, state, _ = self.model.forward(x[a:b], state, _cut(resets, a, b))
                w = _cut(weights, a, b)
                ws = self.loss.total_weight(out, y[a:b], w)
                total += self.loss.value(out, y[a:b], w) * (ws if self.loss.reduction == "mean"
                                                              else 1.0)
                wsum += ws
        finally:
            self.model.train(was_training)
        if self.loss.reduction == "sum":
            return total
        return total / wsum if wsum > 0 else 0.0

    # -- the loop ---------------------------------------------------------------------------
    def _run(self, x, y, weights, resets, stats, callback=None):
        x, y, weights, resets = self._check_inputs(x, y, weights, resets)
        if not getattr(self.model, "supports_truncation", True):
            self.reset_state()  # whole sequences: nothing carries over between calls
        if self.state is not None and not (self.state is self._own_state
                                           and x.shape[1] == self._own_batch):
            # a state set from outside, or carried into a batch of another size, must fit it
            self.state = self.model.check_state(self.state, x.shape[1])
        self.model.train(True)
        T, B = x.shape[0], x.shape[1]
        k1 = self.k1 or T
        clips = self._all_clips()
        counts0 = [c.fired for c in clips]
        t0 = time.perf_counter()
        loss_sum = wsum = 0.0
        for a in range(0, T, k1):
            b = min(a + k1, T)
            plan = self._plan
            if (plan is not None and plan.fits(self.model, self.loss, b - a, B)
                    and self._plannable(b - a, weights, resets)):
                chunk = self._planned_chunk(plan, x[a:b], y[a:b])
            else:
                # a plan that does not fit lets go of its work arrays (the parts' own), so
                # that the general path can give their memory back as it replaces them
                self._plan = plan = None
                chunk = self._chunk(x[a:b], y[a:b], _cut(weights, a, b), _cut(resets, a, b))
            self._last_shape = (b - a, B)
            loss_sum += chunk["loss"] * chunk["weight"]
            wsum += chunk["weight"]
            stats.steps += b - a
            if chunk["updated"]:
                stats.updates += 1
                stats.grad_norm, stats.grad_norm_clipped = chunk["norm"], chunk["norm_clipped"]
            if chunk["nonfinite"]:
                stats.skipped += 1
                stats.nonfinite.append(chunk["nonfinite"])
            if isinstance(stats, FitReport):
                stats.losses.append(chunk["loss"])
                if chunk["updated"]:
                    stats.grad_norms.append(chunk["norm"])
                    stats.grad_norms_clipped.append(chunk["norm_clipped"])
                if callback is not None and callback(stats, chunk) is False:
                    break
        stats.loss = loss_sum / wsum if wsum > 0 else 0.0
        stats.seconds = time.perf_counter() - t0
        stats.steps_per_s = stats.steps / stats.seconds if stats.seconds > 0 else math.inf
        stats.tokens_per_s = stats.steps_per_s * B
        stats.clip_counts = {name: c.fired - n0
                             for name, c, n0 in zip(self._clip_names, clips, counts0)}
        return stats

    def _chunk(self, x, y, weights, resets):
        """One chunk: forward, loss, backward through the window, guard, clip, update."""
        model, n = self.model, x.shape[0]
        saved = (self.state, self.position, list(self._history), model.get_rng_state())
        start, state_in = self.position, self.state
        pending_sum = None
        if self.reducer is not None and self._pending:
            # the reducer combines this chunk's gradient alone; the pending sum waits aside
            pending_sum = {k: g.copy() for k, g in self._grads.items()}
        # a chunk that a plan could do, of the shape of the chunk before (not a stream's short
        # last one, nor shapes that alternate), is recorded to make one
        shape = (n, x.shape[1])
        record = (self._plan is None and shape == self._last_shape
                  and shape not in self._plan_refused and self._plannable(n, weights, resets))
        calls = None
        try:
            with _parallel.recording() if record else contextlib.nullcontext() as calls:
                out, new_state, cache = self._forward(x, self.state, resets)
                value, dout, weight = self._loss_value(out, y, weights)
                if self._pending == 0 or pending_sum is not None:
                    model.zero_grad()
                ctx = BackwardContext(None if self.state_clip is None else self.state_clip.value,
                                      self.record_state_grads)
                window = self._window(cache, dout, n, start)
                self._backward(window, ctx)
        except BaseException:
            if self.reducer is not None:
                self.reducer.abort()  # the other ranks must not wait for this one
            self._restore(saved, pending_sum)
            raise
        if self.state_clip is not None:
            self.state_clip.fired += ctx.state_clip_fired
            self.state_clip.calls += 1
        if self.reducer is not None:
            value, weight, failed = self.reducer.reduce(self._grads, value, weight)
            if failed:
                self._restore(saved, pending_sum)
                raise RuntimeError("another rank failed during this chunk; every rank stops")
            if pending_sum is not None:
                for k, g in self._grads.items():
                    g += pending_sum[k]

        result = {"loss": value, "weight": weight, "updated": False, "nonfinite": None,
                  "norm": math.nan, "norm_clipped": math.nan, "start": start, "steps": n}
        if self.record_state_grads:
            result["state_grads"] = ctx.state_grad_norms
        norm = _safe_norm(self._global)
        problem = (None if math.isfinite(value) and math.isfinite(norm) else
                   self._find_nonfinite(value, out, y, window, start))
        if problem is not None:
            model.zero_grad()
            self._pending = 0
            if self.on_nonfinite == "raise":
                self._restore(saved, None)
                raise problem
            warnings.warn(str(problem), RuntimeWarning, stacklevel=3)
            result["nonfinite"] = str(problem)
            self.state = _finite_rows(new_state)
            self.position = start + n
            self._history = []
            return result

        self.state = self._own_state = new_state
        self._own_batch = x.shape[1]
        self.position = start + n
        self._remember(_Segment(cache, start, n, x, resets, state_in, saved[3]))
        self._pending += 1
        if self._pending == self.accumulate:
            self._snapshot_history()
            self._update(result, norm)
            if calls is not None:
                self._plan = StepPlan.build(model, self.loss, calls, n, x.shape[1])
                if self._plan is None:
                    self._plan_refused.add(shape)
        return result

    def _update(self, result, norm):
        """Clip the gradients whose global norm is ``norm`` and update the parameters."""
        clipped = norm   # the global norm as it stands, while it is known without a pass
        for c in self.clips:
            if clipped is not None and type(c) is ClipGlobalNorm:
                clipped = c.clip_with_norm(self._global, clipped)[1]
            else:
                c(self._grads if c.per_parameter else self._global)
                clipped = None
        if clipped is None:
            clipped = _safe_norm(self._global)
        self.optimizer.step(self._grads)
        self._pending = 0
        result.update(updated=True, norm=norm, norm_clipped=clipped)

    def _planned_chunk(self, plan, x, y):
        """:meth:`_chunk` by the recorded plan (bptt._plan); a chunk whose loss or gradient is
        not finite is done again by :meth:`_chunk`, which skips or raises as configured (the
        plan has changed nothing but the gradients yet)."""
        n, B = x.shape[0], x.shape[1]
        state = self.state if self.state is not None else self.model.initial_state(B)
        value, new_state = plan.run(x, y, state)
        norm = _safe_norm(self._global)
        if not (math.isfinite(value) and math.isfinite(norm)):
            return self._chunk(x, y, None, None)
        start = self.position
        result = {"loss": value, "weight": float(n * B) if self.loss.reduction == "mean" else 1.0,
                  "updated": False, "nonfinite": None, "norm": math.nan,
                  "norm_clipped": math.nan, "start": start, "steps": n}
        self.state = self._own_state = new_state
        self._own_batch = B
        self.position = start + n
        self._update(result, norm)
        return result

    def _plannable(self, n, weights, resets):
        """Whether a chunk of ``n`` steps may run by a recorded plan (bptt._plan): no
        weights, resets, state clip, recording, accumulation (nor a gradient pending from
        one) or reducer; only global-norm clips; a window of exactly the chunk; the plan's
        kind of model and loss (checked when the plan is built)."""
        return (self.use_plans and weights is None and resets is None and self.state_clip is None
                and not self.record_state_grads and self.accumulate == 1 and self._pending == 0
                and self.reducer is None and self.overlap == 0
                and (self.k2 is not None and n <= self.k2)
                and all(type(c) is ClipGlobalNorm for c in self.clips) and loss_fits(self.loss))

    def _restore(self, saved, pending_sum):
        """Put the stream (and the pending gradient, if it was set aside) back as it was."""
        self.state, self.position, self._history = saved[0], saved[1], saved[2]
        self.model.set_rng_state(saved[3])
        if pending_sum is not None:
            for k, g in self._grads.items():
                g[...] = pending_sum[k]

    # -- the window -------------------------------------------------------------------------
    def _window(self, cache, dout, n, start):
        """The pieces of the backward window, newest first: (cache, dy, params, start)."""
        if self.k2 is not None and self.k2 < n:
            a = n - self.k2
            return [(slice_cache(cache, a, n), dout[a:], None, start + a)]
        pieces = [(cache, dout, None, start)]
        reach = self.overlap
        for seg in reversed(self._history):
            if reach is not None and reach <= 0:
                break
            take = seg.length if reach is None else min(reach, seg.length)
            piece = seg.cache if take == seg.length else slice_cache(seg.cache, seg.length - take,
                                                                     seg.length)
            pieces.append((piece, None, seg.params, seg.start + seg.length - take))
            if reach is not None:
                reach -= take
        return pieces

    def _backward(self, window, ctx, dstate=None):
        """Backpropagate through the window's pieces, newest first; a piece that ran with
        earlier parameter values is backpropagated with those values loaded."""
        live = None
        try:
            for cache, dy, params, _ in window:
                if params is not None:
                    live = live or {k: p.copy() for k, p in self._params.items()}
                    _load(self._params, params)
                elif live is not None:
                    _load(self._params, live)
                _, dstate = self.model.backward(dy, dstate, cache, ctx)
        finally:
            if live is not None:
                _load(self._params, live)
        return dstate

    def _remember(self, segment):
        """Keep the chunk's forward pass if later windows reach back into it."""
        reach = self.overlap
        if reach == 0:
            return
        self._history.append(segment)
        if reach is not None:
            while self._history and sum(s.length for s in self._history[1:]) >= reach:
                self._history.pop(0)

    def _snapshot_history(self):
        """Before an update: the kept segments that ran with the live parameters get a copy of
        them, so that later windows backpropagate through them with the values they used."""
        live = [s for s in self._history if s.params is None]
        if live:
            copy = {k: p.copy() for k, p in self._params.items()}
            for s in live:
                s.params = copy

    # -- the non-finite guard -------------------------------------------------------------
    def _find_nonfinite(self, value, out, y, window, start):
        bad_t = np.flatnonzero(~np.isfinite(out).reshape(out.shape[0], -1).all(axis=1))
        if bad_t.size:
            t = int(bad_t[0])
            return NonFiniteError(f"non-finite model output at time step {start + t} "
                                  f"(chunk step {t}); the update is skipped" +
                                  self._what_to_do(), what="output", step=start + t)
        if not math.isfinite(value):
            per = self.loss.per_step(out, y)
            bad = np.flatnonzero(~np.isfinite(per).all(axis=1))
            if bad.size:
                t = int(bad[0])
                return NonFiniteError(f"non-finite loss at time step {start + t}; the update "
                                      "is skipped" + self._what_to_do(), what="loss",
                                      step=start + t)
            # finite here: the combined loss of several processes is not
            return NonFiniteError("non-finite loss on another process (this one's is finite); "
                                  "the update is skipped", what="loss")
        name, step = self._locate_gradient(window)
        if name is None:
            return NonFiniteError("non-finite gradient from another process (this one's is "
                                  "finite); the update is skipped", what="gradient")
        where = f" at time step {step}" if step is not None else ""
        return NonFiniteError(f"non-finite gradient of '{name}' first appeared{where} "
                              "(walking back through time); the update is skipped" +
                              self._what_to_do(), what="gradient", param=name, step=step)

    def _what_to_do(self):
        return ("" if self.clips or self.state_clip else
                " (consider clip=bptt.ClipGlobalNorm(...) or a lower learning rate)")

    def _locate_gradient(self, window):
        """Re-run the window's backward one step at a time, newest first, into zeroed gradients,
        and name the first parameter (and step) whose gradient turns non-finite."""
        self.model.zero_grad()
        ctx = BackwardContext(None if self.state_clip is None else self.state_clip.value)
        # within a step, backward reaches the parts nearest the output first
        names = list(self._grads)[::-1]
        dstate = None
        with np.errstate(all="ignore"):
            for cache, dy, params, seg_start in window:
                for t in range(cache_length(cache) - 1, -1, -1):
                    piece = [(slice_cache(cache, t, t + 1), None if dy is None else dy[t:t + 1],
                              params, seg_start + t)]
                    dstate = self._backward(piece, ctx, dstate)
                    for name in names:
                        if not np.isfinite(self._grads[name]).all():
                            return name, seg_start + t
        # nothing non-finite here: with a reducer, it came from another process
        return (None, None) if self.reducer is not None else (names[0], None)

    # -- helpers ----------------------------------------------------------------------------
    def _all_clips(self):
        return ([self.state_clip] if self.state_clip is not None else []) + self.clips

    def _loss_value(self, out, y, weights):
        """(the chunk's loss, its gradient, :meth:`_loss_weight`) for inputs already checked."""
        loss = self.loss
        checked = getattr(loss, "_checked_value_grad_and_weight", None)
        cls = type(loss)
        if checked is None or any(getattr(cls, m) is not getattr(Loss, m)
                                  for m in ("__call__", "value_grad_and_weight")):
            # a loss of its own, or one that changes how it is called: call it as it is
            value, dout = loss(out, y, weights)
            return value, dout, self._loss_weight(out, y, weights)
        value, dout, total = checked(out, y, weights)
        return value, dout, (total if loss.reduction == "mean" else 1.0)

    def _loss_weight(self, out, y, weights):
        """What the chunk's mean loss divides by (1 for a summed loss): the weight that
        combines chunks (and processes) into one mean."""
        loss = self.loss
        if getattr(loss, "reduction", "mean") != "mean":
            return 1.0
        if weights is None and getattr(loss, "ignore_index", None) is None:
            return float(out.shape[0] * out.shape[1])
        return loss.total_weight(out, y, weights)

    def _forward(self, x, state, resets):
        """The model's forward on inputs ``_check_inputs`` has checked (no second check)."""
        model = self.model
        if not hasattr(model, "check_input"):
            return model.forward(x, state, resets)
        if state is None:
            state = model.initial_state(x.shape[1])
        return model._forward(x, state, resets)

    def _check_inputs(self, x, y, weights, resets):
        model = self.model
        x = model.check_input(x) if hasattr(model, "check_input") else np.asarray(x)
        T, B = x.shape[0], x.shape[1]
        y = np.asarray(y)
        if y.shape[:2] != (T, B):
            raise ValueError(f"targets must start with the input's (T, B) = {(T, B)}, "
                             f"got shape {y.shape}")
        weights = weight_mask("weights", weights, (T, B), model.dtype)
        resets = bool_mask("resets", resets, (T, B))
        out_features = model.output_size(None)
        if out_features is not None and hasattr(self.loss, "_check_target"):
            y = self.loss._check_target(_output_probe((T, B, out_features), model.dtype), y)
        return x, y, weights, resets


@functools.lru_cache(maxsize=16)
def _output_probe(shape, dtype):
    """A read-only array of a model output's shape and dtype (all zeros, zero strides: no
    memory) for a loss to check the targets against before the forward; made once per shape
    (building it costs a few microseconds, a per cent of a tiny model's step)."""
    return np.broadcast_to(np.zeros((), dtype), shape)


def _flatten_state(state):
    """A model state (tuples of arrays, one tuple per part) as a list of lists of arrays."""
    if state is None:
        return None
    return [[np.asarray(a) for a in part] if isinstance(part, tuple) else np.asarray(part)
            for part in state]


def _unflatten_state(flat, model):
    if flat is None:
        return None
    state = tuple(tuple(np.asarray(a) for a in part) if isinstance(part, (list, tuple))
                  else np.asarray(part) for part in flat)
    # validate against the model (shape, dtype) with the batch size the state holds
    batch = next((a.shape[0] for part in state for a in (part if isinstance(part, tuple)
                                                         else (part,))), None)
    return state if batch is None else model.check_state(state, batch)


def _safe_norm(grads):
    """Global norm; inf only if some gradient is non-finite, not when the sum of squares of
    finite (float64) gradients overflows."""
    norm = global_norm(grads)
    if math.isfinite(norm) or not all(np.isfinite(g).all() for g in grads.values()):
        return norm
    top = max(float(np.abs(g).max(initial=0.0)) for g in grads.values())
    return top * global_norm([g / top for g in grads.values()])


def _cut(a, start, stop):
    return None if a is None else a[start:stop]


def _load(params, values):
    for k, p in params.items():
        p[...] = values[k]


def _finite_rows(state):
    """A copy of a (nested) state whose streams holding a non-finite value are zeroed."""
    if isinstance(state, tuple):
        return tuple(_finite_rows(s) for s in state)
    bad = ~np.isfinite(state).reshape(state.shape[0], -1).all(axis=1)
    if not bad.any():
        return state
    s = state.copy()
    s[bad] = 0
    return s
