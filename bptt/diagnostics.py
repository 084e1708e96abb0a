"""Gradient flow through time: how much of step t still reaches step T, and why.

Backpropagation through time multiplies the gradient by one Jacobian per step,
``dh_T/dh_t = prod_{s=t+1..T} dh_s/dh_{s-1}``, so it shrinks or grows exponentially with the
distance T - t (Hochreiter 1991; Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio
2013). This module measures that directly:

- :func:`state_gradient_norms`: ||dL/dh_t|| (and ||dL/dc_t|| for an LSTM) at every step of a
  chunk, from the ordinary backward pass (the compiled kernels record it when asked through
  :class:`~bptt.BackwardContext`, and record nothing otherwise);
- :func:`jacobian_norms`: the spectral norm of the Jacobian product ||dh_T/dh_t|| for every t,
  and its fitted exponential rate (:func:`decay_rate`), and how far back it reaches
  (:func:`reach`);
- :func:`recurrent_spectrum`: spectral radius and largest singular value of each recurrent
  block of ``weight_hh``, with the Pascanu et al. (2013) conditions spelled out;
- :class:`GradientHistory`: a callback for :meth:`bptt.TBPTT.fit` (or a collector for
  :meth:`bptt.TBPTT.step` loops) keeping the gradient norm before and after clipping, the clip
  counts, the skipped (non-finite) updates and, at an interval, the per-step state-gradient
  norms on a fixed probe batch;
- the reference cell of the experiments is ``bptt.Elman(D, H, nonlinearity="linear")``, whose
  Jacobian product is exactly ``W_hh^(T-t)``: with ``W_hh = rho * Q`` (Q orthogonal) its norm
  is ``rho^(T-t)``.

Time is indexed as everywhere in bptt: step t (0-based) maps the state s_t entering it to the
state s_{t+1} after it; in the figures here, "lag" k = T - t counts steps between a state and
the final state s_T.
"""

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from ._validate import positive_float, positive_int
from .bidirectional import Bidirectional
from .module import BackwardContext, Cell, Module, slice_cache
from .sequential import Sequential


def _linalg():
    """scipy.linalg, imported when first needed (it takes 0.2 s, at every ``import bptt``
    otherwise)."""
    import scipy.linalg
    return scipy.linalg

__all__ = ["CellStateGradients", "GradientHistory", "JacobianNorms",
           "StateGradientReport", "CellSpectrum", "decay_rate", "jacobian_norms",
           "matrix_condition", "named_cells", "reach", "recurrent_spectrum",
           "state_gradient_norms"]

# bound on |act'| for the Pascanu et al. condition
GAMMA = {"tanh": 1.0, "relu": 1.0, "linear": 1.0, "identity": 1.0, "sigmoid": 0.25}
# names of the (H, H) blocks of weight_hh, in PyTorch's gate order
GATE_NAMES = {"Elman": ("hh",), "LSTM": ("i", "f", "g", "o"),
              "GRU": ("r", "z", "n")}


# =============================================================================================
# which cells a model holds
# =============================================================================================
def named_cells(model):
    """``[(name, cell, reversed)]`` for every recurrent cell of ``model``.

    Names are the part's index in a :class:`~bptt.Sequential` (``"1"``), with ``".forward"`` /
    ``".reverse"`` for the two cells of a :class:`~bptt.Bidirectional` part; a bare cell is
    called ``"cell"``. ``reversed`` is True for a cell that reads its sequence backward in time.
    """
    out = []

    def walk(m, name, rev):
        if isinstance(m, Cell):
            out.append((name or "cell", m, rev))
        elif isinstance(m, Bidirectional):
            pre = f"{name}." if name else ""
            out.append((pre + "forward", m.cells[0], rev))
            out.append((pre + "reverse", m.cells[1], not rev))
        elif isinstance(m, Sequential):
            for i, p in enumerate(m.parts):
                walk(p, f"{name}.{i}" if name else str(i), rev)

    walk(model, "", False)
    return out


# =============================================================================================
# ||dL/dh_t|| from the ordinary backward pass
# =============================================================================================
@dataclass
class CellStateGradients:
    """Recorded state-gradient norms of one cell over a chunk of T steps.

    per_stream: one (T, B) array per state array of the cell ((h,) or (h, c)); entry [t, b] is
        ||dL/ds_t|| for stream b (see :func:`state_gradient_norms` for the exact meaning).
    norms: one (T,) array per state array: the norm over all streams at once,
        ``sqrt(sum_b per_stream[t, b]^2)``, i.e. the norm of the gradient with respect to the
        whole (B, n) state array after step t.
    ``h`` / ``c`` (and ``h_per_stream`` / ``c_per_stream``) name the first / second entries.
    """

    name: str
    cell: str
    per_stream: tuple
    norms: tuple

    @property
    def h(self):
        return self.norms[0]

    @property
    def c(self):
        return self.norms[1] if len(self.norms) > 1 else None

    @property
    def h_per_stream(self):
        return self.per_stream[0]

    @property
    def c_per_stream(self):
        return self.per_stream[1] if len(self.per_stream) > 1 else None


@dataclass
class StateGradientReport:
    """What :func:`state_gradient_norms` returns: the chunk's loss and, per cell name (as
    :func:`named_cells` gives it, e.g. ``"1"``), a :class:`CellStateGradients`.
    Indexable by name: ``report["1"].h``."""

    loss: float
    cells: dict

    def __getitem__(self, name):
        return self.cells[name]

    def __iter__(self):
        return iter(self.cells)

    def __len__(self):
        return len(self.cells)

    def keys(self):
        return self.cells.keys()

    def items(self):
        return self.cells.items()

    def values(self):
        return self.cells.values()


def state_gradient_norms(model, loss, x, y, state=None, weights=None, resets=None):
    """Norm of the loss gradient with respect to every cell's state at every step of a chunk.

    One ordinary forward and backward pass of ``model`` on the chunk (the model's current
    mode: dropout masks as in training if it is in training mode), with
    ``BackwardContext(record_state_grads=True)``: the compiled kernels (or the unroller, for
    user cells) record the norms as they go. x: (T, B) tokens or (T, B, D) floats; y: targets
    for ``loss``; state: initial state (None for zeros); weights: per-step loss weights (T, B);
    resets: boolean (T, B).

    Definition (that of :class:`~bptt.BackwardContext`): with s_t the state after step t
    (t = 0..T-1) as carried to step t + 1, entry [t, b] of the h record is ||dL/dh_t|| for
    stream b, the whole gradient of L with respect to h_t: the part from the loss at step t
    (h_t is also the cell's output there) plus the part from all later steps. For an LSTM the c
    record is ||dL/dc_t|| with c_t taken as the state carried to step t + 1, i.e. the gradient
    arriving from the later steps only (h_t = o_t tanh(c_t) is treated as a separate variable,
    whose own gradient is the h record). L is the loss as ``loss`` reduces it (a mean divides
    every gradient by the total weight). No state-gradient clipping is applied. A gradient does
    not cross a reset: before a reset the state gradient holds only the loss at that step.

    Returns a :class:`StateGradientReport` (``report.loss``, ``report["1"].h`` (T,),
    ``report["1"].h_per_stream`` (T, B), ``.c`` / ``.c_per_stream`` for an LSTM). The aggregate
    over streams is the root of the sum of squares. For a Bidirectional part, the reverse
    cell's records are put back in forward time order. The model is left as it was: its
    gradient buffers and random state are restored after the pass.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a bptt Module (for example a Sequential), got "
                        f"{type(model).__name__}")
    saved = {k: g.copy() for k, g in model.named_grads().items()}
    rng_state = model.get_rng_state()
    ctx = BackwardContext(record_state_grads=True)
    try:
        out, _, cache = model.forward(x, state, resets)
        value, dout = loss(out, y, weights)
        model.backward(dout, None, cache, ctx)
    finally:
        for k, g in model.named_grads().items():
            g[...] = saved[k]
        model.set_rng_state(rng_state)
    T = out.shape[0]
    cells = {}
    for name, cell, rev in named_cells(model):
        records = ctx.state_grad_norms.get(cell)
        if not records:
            continue
        # one record per backward call; with several, later steps were recorded first
        per_stream = tuple(
            np.concatenate([r[i] for r in records[::-1]], axis=0).astype(np.float64)
            for i in range(len(records[0])))
        if rev:
            per_stream = tuple(np.ascontiguousarray(a[::-1]) for a in per_stream)
        if per_stream[0].shape[0] != T:
            raise RuntimeError(f"cell {name}: recorded {per_stream[0].shape[0]} steps, "
                               f"expected {T}")
        norms = tuple(np.sqrt(np.sum(a * a, axis=1)) for a in per_stream)
        cells[name] = CellStateGradients(name, repr(cell), per_stream, norms)
    return StateGradientReport(float(value), cells)


# =============================================================================================
# ||dh_T/dh_t||: the Jacobian product
# =============================================================================================
def decay_rate(norms, lags=None, start=1):
    """Per-step factor of an exponential fitted to ``norms`` against ``lags``.

    Least squares of log(norm) on the lag over the entries with lag >= ``start`` whose norm is
    finite and > 0; returns exp(slope): < 1 for vanishing, > 1 for exploding gradients (for the
    linear cell with ``W_hh = rho Q``, exactly rho). ``lags`` defaults to 0, 1, 2, ...; the fit
    starts at lag 1 by default because lag 0 is the identity, not a step of the dynamics.
    nan if fewer than two entries qualify.
    """
    norms = np.asarray(norms, dtype=np.float64)
    lags = np.arange(norms.shape[0]) if lags is None else np.asarray(lags, dtype=np.float64)
    ok = (lags >= start) & np.isfinite(norms) & (norms > 0)
    if ok.sum() < 2:
        return math.nan
    slope = np.polyfit(lags[ok], np.log(norms[ok]), 1)[0]
    return float(np.exp(slope))


def reach(norms, threshold=1e-3, ref=1):
    """How many steps back a gradient still reaches: the largest lag k such that
    ``norms[j] >= threshold * norms[ref]`` for every lag j in ref..k (``norms`` indexed by
    lag). If the norm never falls below, that is the largest lag available: a lower bound.
    nan-safe (a nan or inf norm ends the reach)."""
    norms = np.asarray(norms, dtype=np.float64)
    if norms.shape[0] <= ref:
        return 0
    base = norms[ref]
    ok = np.isfinite(norms[ref:]) & (norms[ref:] >= threshold * base)
    bad = np.flatnonzero(~ok)
    return int(norms.shape[0] - 1 if bad.size == 0 else ref + bad[0] - 1)


@dataclass
class JacobianNorms:
    """What :func:`jacobian_norms` returns, indexed by lag k = T - t = 0..T.

    h: ||dh_T/dh_t||_2, the largest singular value of the Jacobian of the final hidden state
        with respect to the hidden state after step t (for an LSTM the block of the full-state
        Jacobian with c_t held fixed; see :func:`jacobian_norms`);
    state: ||ds_T/ds_t||_2 for the whole state s = (h, c) of an LSTM; the same as ``h`` for
        single-state cells;
    rate: the per-step factor fitted to ``h`` (:func:`decay_rate`, from lag 1);
    state_rate: the same for ``state``.
    """

    cell: str
    lags: np.ndarray
    h: np.ndarray
    state: np.ndarray
    rate: float
    state_rate: float

    def reach(self, threshold=1e-3):
        """:func:`reach` of ``h``: the largest lag at which ||dh_T/dh_t|| is still at least
        ``threshold`` times its value at lag 1 (and at every lag in between)."""
        return reach(self.h, threshold)


def _resolve_cell(cell_or_model, x, state, index, stream):
    """The cell, its input (T, 1, D) for the chosen stream, and its initial state (1, n)."""
    if isinstance(cell_or_model, Cell):
        cell = cell_or_model
        x = np.asarray(x)
        if x.ndim == 2:
            x = x[:, None, :]
        if x.ndim != 3:
            raise ValueError(f"expected the cell's input as (T, D) or (T, B, D), got {x.shape}")
        if not 0 <= stream < x.shape[1]:
            raise ValueError(f"stream must be in [0, {x.shape[1]}), got {stream}")
        if state is not None:
            state = tuple(np.asarray(s)[stream:stream + 1] for s in state)
        return cell, x[:, stream:stream + 1], state
    if not isinstance(cell_or_model, Sequential):
        raise TypeError(f"expected a bptt Cell or Sequential, got {type(cell_or_model).__name__}")
    model = cell_or_model
    if index is None:
        found = [i for i, p in enumerate(model.parts) if isinstance(p, Cell)]
        if not found:
            raise ValueError(f"the model holds no recurrent Cell part: {model!r}")
        index = found[0]
    index = int(index)
    if not 0 <= index < len(model.parts):
        raise ValueError(f"index must be in [0, {len(model.parts)}), got {index}")
    if not isinstance(model.parts[index], Cell):
        raise ValueError(f"index must name a recurrent Cell part of the model, got {index}: "
                         f"{model.parts[index]!r}")
    x = np.asarray(x)
    token_in = model.takes_tokens
    if x.ndim == (1 if token_in else 2):
        x = x[:, None]
    if not 0 <= stream < x.shape[1]:
        raise ValueError(f"stream must be in [0, {x.shape[1]}), got {stream}")
    x = model.check_input(x[:, stream:stream + 1])
    one = lambda s: tuple(np.asarray(a)[stream:stream + 1] for a in s)  # noqa: E731
    full_state = None if state is None else tuple(one(s) for s in state)
    was_training = model.training
    model.eval()
    try:
        for i in range(index):
            p = model.parts[i]
            s = p.initial_state(1) if full_state is None else p.check_state(full_state[i], 1)
            x, _, _ = p._forward(x, s, np.zeros(x.shape[:2], dtype=bool))
    finally:
        model.train(was_training)
    cell_state = None if full_state is None else full_state[index]
    return model.parts[index], x, cell_state


def jacobian_norms(cell_or_model, x, state=None, index=None, stream=0, dtype=np.float64):
    """||dh_T/dh_t|| (spectral norm) for every t, along one stream's trajectory.

    cell_or_model: a :class:`~bptt.Cell` (x is then its input, (T, D) or (T, B, D)), or a
        :class:`~bptt.Sequential` (x is the model's input; the parts before the cell run in eval
        mode to produce the cell's input); index: which part of the Sequential (default: the
        first recurrent cell); state: the initial state (the cell's, or the model's); stream:
        which stream of a batched x; dtype: the arithmetic (float64 by default, so norms of
        2^200 or 1e-200 are representable; None keeps the cell's dtype).

    Method: the stream's forward pass is replicated S times (S = total state size: H, or 2H for
    an LSTM) on a copy of the cell, the final state gradient is seeded with the S x S identity,
    and the cell's own backward is run one step at a time over its cache
    (:func:`bptt.module.slice_cache`, no output gradient), so after going back through steps
    t..T-1 the S rows hold the full Jacobian ds_T/ds_t. Its largest singular value
    (scipy.linalg.svdvals) is taken at every lag. The model is not changed.

    Reported (length T + 1, index = lag k = T - t, from the final state s_T back to the
    initial state s_0):

    - ``h``: ||dh_T/dh_t||_2. For an LSTM, whose state is (h, c), this is the h-block of the
      full-state Jacobian: how h_T depends on h_t through the full dynamics (every path, through
      the gates and the cells c_{t+1}, ..., c_T) with c_t held fixed, i.e. the h-part of the
      gradient of h_T with respect to (h_t, c_t);
    - ``state``: ||d(h_T, c_T)/d(h_t, c_t)||_2, the whole-state Jacobian (equal to ``h`` for
      Elman and GRU cells);
    - ``rate`` / ``state_rate``: the per-step factors exp(slope) of least-squares fits of the
      log norms against the lag, from lag 1 (:func:`decay_rate`).

    Returns a :class:`JacobianNorms`.
    """
    cell, xc, cstate = _resolve_cell(cell_or_model, x, state, index, int(stream))
    work = copy.deepcopy(cell)
    if dtype is not None:
        work.astype(dtype)
    work.zero_grad()
    sizes = tuple(int(n) for n in work.state_sizes)
    S = sum(sizes)
    T = xc.shape[0]
    rep = np.ascontiguousarray(np.repeat(np.asarray(xc, dtype=work.dtype), S, axis=1))
    st = None if cstate is None else tuple(np.repeat(np.asarray(s, dtype=work.dtype), S, axis=0)
                                           for s in cstate)
    _, _, cache = work.forward(rep, st)
    eye = np.eye(S, dtype=work.dtype)
    offsets = np.cumsum((0,) + sizes)
    grad = tuple(np.ascontiguousarray(eye[:, offsets[i]:offsets[i + 1]])
                 for i in range(len(sizes)))
    H = sizes[0]
    h_norms, s_norms = np.empty(T + 1), np.empty(T + 1)

    def spectral(m):
        if not np.isfinite(m).all():
            return math.inf if not np.isnan(m).any() else math.nan
        if not m.any():
            return 0.0
        return float(_linalg().svdvals(m, check_finite=False)[0])

    def put(k, grad):
        full = np.concatenate([np.asarray(g, dtype=np.float64) for g in grad], axis=1)
        # row i holds d s_T[i] / d s_t: the Jacobian with s_T on the rows
        h_norms[k] = spectral(full[:H, :H])
        s_norms[k] = h_norms[k] if len(sizes) == 1 else spectral(full)

    put(0, grad)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(T - 1, -1, -1):
            _, grad = work.backward(None, grad, slice_cache(cache, t, t + 1))
            put(T - t, grad)
    lags = np.arange(T + 1)
    return JacobianNorms(repr(cell), lags, h_norms, s_norms, decay_rate(h_norms, lags),
                         decay_rate(s_norms, lags))


# =============================================================================================
# spectrum of the recurrent matrix and the Pascanu et al. (2013) conditions
# =============================================================================================
def matrix_condition(w, gamma=1.0):
    """Spectral radius, largest singular value and the Pascanu, Mikolov & Bengio (2013)
    conditions for a square recurrent matrix ``w`` and an activation whose derivative is
    bounded by ``gamma`` (1 for tanh, relu and the identity, 1/4 for the sigmoid).

    For h_t = act(W h_{t-1} + ...), ||dh_T/dh_t|| <= (gamma sigma_max(W))^(T-t), so
    sigma_max(W) < 1/gamma is *sufficient* for the gradients to vanish, and (the proof
    inverted) sigma_max(W) > 1/gamma is *necessary* for them to explode. For a linear network
    (gamma = 1, dh_T/dh_t = W^(T-t)) the eigenvalues decide: rho(W) < 1 makes the long-term
    components vanish and rho(W) > 1 is necessary for them to explode.

    Returns a dict: spectral_radius, sigma_max, gamma, vanishing_sufficient
    (gamma sigma_max < 1), exploding_necessary (gamma sigma_max > 1: explosion is possible,
    not certain), exploding_necessary_linear (rho > 1).
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {w.shape}")
    gamma = positive_float("gamma", gamma)
    rho = float(np.max(np.abs(_linalg().eigvals(w)))) if w.size else 0.0
    sigma = float(_linalg().svdvals(w)[0]) if w.size else 0.0
    # within round-off of 1 (an orthogonal matrix scaled by 1) counts as the boundary
    tol = 1e-9
    return {"spectral_radius": rho, "sigma_max": sigma, "gamma": gamma,
            "vanishing_sufficient": bool(gamma * sigma < 1 - tol),
            "exploding_necessary": bool(gamma * sigma > 1 + tol),
            "exploding_necessary_linear": bool(rho > 1 + tol)}


def _verdict(cond, act):
    rho, sigma, gamma = cond["spectral_radius"], cond["sigma_max"], cond["gamma"]
    inv = 1 / gamma
    head = f"rho(W_hh) = {rho:.4g}, sigma_max(W_hh) = {sigma:.4g}, gamma = {gamma:g} ({act})"
    if cond["vanishing_sufficient"]:
        return (f"{head}: sigma_max < 1/gamma = {inv:g}, the sufficient condition for "
                f"vanishing gradients holds: ||dh_T/dh_t|| <= {gamma * sigma:.4g}^(T-t), so "
                "gradients vanish exponentially and cannot explode.")
    words = (f"{head}: sigma_max >= 1/gamma = {inv:g}, so vanishing is not guaranteed; "
             "the necessary condition for exploding gradients holds (sigma_max > 1/gamma)"
             if cond["exploding_necessary"] else
             f"{head}: sigma_max = 1/gamma = {inv:g}, on the boundary of both conditions")
    if cond["exploding_necessary_linear"]:
        words += ("; rho > 1 as well, the necessary condition of a linear network (explosion "
                  "is possible, not certain: saturating units shrink the Jacobians)")
    else:
        words += ("; but rho <= 1: in a linear network with this W_hh gradients could not grow "
                  "exponentially (units that saturate or switch off can still make them)")
    return words + "."


@dataclass
class CellSpectrum:
    """Figures of one cell's recurrent matrix (see :func:`recurrent_spectrum`)."""

    name: str
    cell: str
    nonlinearity: str
    blocks: dict                    # gate -> {"spectral_radius", "sigma_max"}
    condition: dict = None          # matrix_condition() of W_hh for a plain Elman cell
    verdict: str = ""

    def as_dict(self):
        return {"name": self.name, "cell": self.cell, "nonlinearity": self.nonlinearity,
                "blocks": self.blocks, "condition": self.condition, "verdict": self.verdict}

    def __str__(self):
        blocks = ", ".join(f"{g}: rho {b['spectral_radius']:.4g} sigma {b['sigma_max']:.4g}"
                           for g, b in self.blocks.items())
        return f"{self.name} {self.cell}: {blocks}\n  {self.verdict}"


def recurrent_spectrum(model):
    """Spectral radius and largest singular value of each (H, H) block of every cell's
    ``weight_hh`` (scipy.linalg), and for plain Elman cells (``h_t = act(W_ih x_t + W_hh
    h_{t-1} + b)``, act tanh, relu or linear, or any cell with a square ``weight_hh`` and a
    ``nonlinearity`` attribute among "tanh", "relu", "linear", "sigmoid") the Pascanu, Mikolov &
    Bengio (2013) conditions of :func:`matrix_condition` with gamma the bound on the
    activation's derivative (1 for tanh and relu, 1 for linear, 1/4 for sigmoid), with a verdict
    in words.

    For gated cells (LSTM, GRU) the blocks are reported, but the condition does not apply as
    such: their Jacobian holds the gates (the LSTM's c path is multiplied by the forget gate
    and never by W_hh), so ``condition`` is None and the verdict says so.

    Returns a dict ``name -> CellSpectrum`` (names as :func:`named_cells` gives them).
    """
    if isinstance(model, np.ndarray):
        raise TypeError("recurrent_spectrum takes a model or a cell; for a matrix use "
                        "matrix_condition(w, gamma)")
    out = {}
    for name, cell, _ in named_cells(model):
        w = cell.params.get("weight_hh")
        if w is None:
            continue
        H = w.shape[1]
        G = w.shape[0] // H if H else 0
        if w.shape[0] != G * H:
            continue
        names = GATE_NAMES.get(type(cell).__name__, tuple(str(i) for i in range(G)))
        if len(names) != G:
            names = tuple(str(i) for i in range(G))
        blocks = {}
        for g, gname in enumerate(names):
            c = matrix_condition(w[g * H:(g + 1) * H])
            blocks[gname] = {"spectral_radius": c["spectral_radius"], "sigma_max": c["sigma_max"]}
        act = getattr(cell, "nonlinearity", None)
        if G == 1 and act in GAMMA:
            cond = matrix_condition(w, GAMMA[act])
            verdict = _verdict(cond, act)
        else:
            cond = None
            verdict = (f"{type(cell).__name__} is a gated cell: the Pascanu et al. condition for "
                       "h_t = act(W_hh h_{t-1} + ...) does not apply as such (its Jacobian "
                       "holds the gates); use jacobian_norms for the actual decay.")
        out[name] = CellSpectrum(name, repr(cell), str(act or type(cell).__name__), blocks,
                                 cond, verdict)
    return out


# =============================================================================================
# gradient history during training
# =============================================================================================
@dataclass
class GradientHistory:
    """Collects gradient figures while a :class:`~bptt.TBPTT` engine trains.

    As a ``fit`` callback: ``hist = GradientHistory(trainer); trainer.fit(x, y,
    callback=hist)``; in a loop of ``step`` calls: ``hist.add_step(trainer.step(x, y))``.

    Per chunk (``fit``) or per call (``step``): ``losses``; ``clip_fired``, a dict clip ->
    list of how often it had fired in total after that chunk (the clip objects' ``fired``
    counters; for :class:`~bptt.ClipStateGradient` a firing is a (cell, step) pair). Per
    update: ``norms`` (global gradient norm before clipping), ``norms_clipped`` (after),
    ``updates_at`` (the chunk index of the update). ``skipped``: one dict per update skipped by
    the non-finite guard (``chunk``, ``start``, ``message``).

    probe: optional ``(x, y)`` or ``(x, y, weights)``: every ``every`` updates (and at the
    first), :func:`state_gradient_norms` on that fixed batch from a zero state is stored in
    ``state_grads`` as ``(update, {cell: {"h": (T,), "c": (T,)}})``. The probe pass leaves the
    engine and the model's gradients as they were.
    then: another callback, called after this one (its return value is passed on, so it can
    still stop ``fit``).

    The same figures, without clip counts per chunk or probes, are in :class:`~bptt.FitReport`:
    ``report.losses`` (per chunk), ``report.grad_norms`` / ``report.grad_norms_clipped`` (per
    update), ``report.clip_counts`` (per clip, over the call) and ``report.nonfinite``.
    """

    trainer: object = None
    probe: tuple = None
    every: int = 10
    then: object = None
    losses: list = field(default_factory=list, repr=False)
    norms: list = field(default_factory=list, repr=False)
    norms_clipped: list = field(default_factory=list, repr=False)
    updates_at: list = field(default_factory=list, repr=False)
    skipped: list = field(default_factory=list, repr=False)
    clip_fired: dict = field(default_factory=dict, repr=False)
    state_grads: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        self.every = positive_int("every", self.every)
        if self.probe is not None:
            if self.trainer is None:
                raise ValueError("a probe needs the trainer (its model and loss)")
            if not isinstance(self.probe, (tuple, list)) or len(self.probe) not in (2, 3):
                raise ValueError("probe must be (x, y) or (x, y, weights)")
        self._chunks = 0

    def _clips(self):
        t = self.trainer
        if t is None:
            return []
        return ([t.state_clip] if t.state_clip is not None else []) + list(t.clips)

    def _count_clips(self):
        for c in self._clips():
            self.clip_fired.setdefault(repr(c), []).append(int(c.fired))

    def _maybe_probe(self):
        if self.probe is None or (len(self.norms) - 1) % self.every:
            return
        x, y, *w = self.probe
        rep = state_gradient_norms(self.trainer.model, self.trainer.loss, x, y,
                                   weights=w[0] if w else None)
        self.state_grads.append((len(self.norms) - 1,
                                 {n: {"h": c.h, **({"c": c.c} if c.c is not None else {})}
                                  for n, c in rep.items()}))

    def __call__(self, report, chunk):
        """The ``TBPTT.fit`` callback: ``chunk`` is the engine's per-chunk dict."""
        self.losses.append(float(chunk["loss"]))
        if chunk.get("nonfinite"):
            self.skipped.append({"chunk": self._chunks, "start": int(chunk["start"]),
                                 "message": str(chunk["nonfinite"])})
        if chunk.get("updated"):
            self.norms.append(float(chunk["norm"]))
            self.norms_clipped.append(float(chunk["norm_clipped"]))
            self.updates_at.append(self._chunks)
            self._maybe_probe()
        self._count_clips()
        self._chunks += 1
        return None if self.then is None else self.then(report, chunk)

    def add_step(self, stats):
        """Record one :meth:`bptt.TBPTT.step` call (its :class:`~bptt.StepStats`), counted as
        one chunk; returns ``stats``. A StepStats holds the norms of the call's last update
        only: with several updates per call (k1 < the call's length), use ``fit`` with this
        object as the callback to see every one."""
        self.losses.append(float(stats.loss))
        for msg in stats.nonfinite:
            self.skipped.append({"chunk": self._chunks, "start": None, "message": str(msg)})
        if stats.updates:
            self.norms.append(float(stats.grad_norm))
            self.norms_clipped.append(float(stats.grad_norm_clipped))
            self.updates_at.append(self._chunks)
            self._maybe_probe()
        self._count_clips()
        self._chunks += 1
        return stats

    def fired_fraction(self):
        """For each parameter-gradient clip, the fraction of updates at which it fired."""
        n = max(len(self.norms), 1)
        return {k: v[-1] / n for k, v in self.clip_fired.items() if v and
                not k.startswith("ClipStateGradient")}

    def as_dict(self):
        """The histories as JSON-able lists (state-gradient probes as lists of floats)."""
        def clean(v):
            return [None if not math.isfinite(a) else a for a in map(float, v)]
        return {"losses": clean(self.losses), "norms": clean(self.norms),
                "norms_clipped": clean(self.norms_clipped), "updates_at": self.updates_at,
                "skipped": self.skipped, "clip_fired": self.clip_fired,
                "state_grads": [{"update": u, "cells": {n: {k: clean(a) for k, a in d.items()}
                                                        for n, d in cells.items()}}
                                for u, cells in self.state_grads]}
