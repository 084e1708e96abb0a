"""Matrix products of the kernels: a register-blocked micro-kernel over packed panels.

A BLAS packs (copies and reorders) its operands on every call. For the products of one time
step (B rows of h against a (H, G*H) weight) packing costs as much as the arithmetic, and a
multi-threaded BLAS adds a synchronisation per call; so the cells pack each weight once per
forward or backward and run every product of the T steps on the packed copy, here, with no
BLAS and no threads of its own (the callers split rows across threads, see bptt._parallel).

Layout. A (K, N) matrix M is *packed* into sub-panels of L columns (L = lanes of one SIMD
vector: 16 float32 / 8 float64 with AVX-512): ``P[s, k, l] = M[k, s*L + l]`` (zero beyond N),
shape ``(ceil(N / L), K, L)``. :func:`pack` builds it from M or from M^T.

Product. ``gemm(A, trans, P, N, C, r0, r1, acc)`` computes rows r0..r1 of ``C = op(A) @ M``
(``op(A) = A``, (R, K), or ``A^T`` for A (K, R)) into C (R, N), or adds them into C. The
micro-kernel holds an MR x (NV vectors) block of C in registers through a pass over K
(MR = 6 rows; NV = 4 vectors with 32 vector registers, 2 with 16), one broadcast of A and
NV loads of P per k. Every element of C is the sum over k in order, one fused multiply-add at
a time, so a row's result does not depend on how the rows were split or tiled.

The vector width is that of the CPU numba compiles for (part of numba's cache key, so a cache
never mixes widths): AVX-512 64 bytes, AVX2 32, anything else 16.
"""

import functools

import numba
import numpy as np
from llvmlite import binding as _ll
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .._config import njit


def _target_features():
    feats = numba.config.CPU_FEATURES
    if feats is None:
        if numba.config.CPU_NAME is not None:
            return ""          # a named (e.g. generic) target without features: baseline
        return _ll.get_host_cpu_features().flatten()
    return feats


def vector_bytes(features=None):
    """Bytes of the widest SIMD vector the target has: 64 (AVX-512), 32 (AVX2), else 16."""
    f = set((_target_features() if features is None else features).split(","))
    if "+avx512f" in f:
        return 64
    if "+avx2" in f:
        return 32
    return 16


VBYTES = vector_bytes()
MR = 6                                  # rows of the register block
NV = 4 if VBYTES == 64 else 2           # vectors per row of the register block
PREFETCH = 8                            # k steps ahead that A is prefetched


def lanes(dtype, vbytes=VBYTES):
    """L: elements of ``dtype`` per SIMD vector."""
    return vbytes // (dtype.itemsize if isinstance(dtype, np.dtype) else np.dtype(dtype).itemsize)


def _array_data(context, builder, ty, arr):
    """The data pointer of array ``arr`` of numba type ``ty``."""
    return context.make_array(ty)(context, builder, arr).data


def _vector_type(context, dtype, vbytes):
    """The LLVM vector of ``vbytes`` bytes of ``dtype``."""
    elt = context.get_value_type(dtype)
    return ir.VectorType(elt, vbytes // context.get_abi_sizeof(elt))


def _allow_vectors(builder, vbytes):
    """Let the function being built use vectors of ``vbytes`` bytes (LLVM uses 512-bit ones
    only in functions that ask for them)."""
    set.add(builder.function.attributes, '"min-legal-vector-width"="%d"' % (vbytes * 8))


def make_microkernel(mr, nv, vbytes=VBYTES):
    """An intrinsic computing an mr x (nv * L) block of C:

    ``mk(A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc)``:
    for i < mr, v < nv, l < L: ``C[c_off + i*c_rs + v*L + l] (+)= sum_k A[a_off + i*a_rs +
    k*a_ks] * P[p_off + v*p_vs + k*L + l]`` (offsets and strides in elements; ``last`` = the
    valid lanes of the last vector, 1..L, the others are neither read nor written; ``acc``
    nonzero: add into C)."""

    @intrinsic
    def mk(typingctx, A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc):
        if not (isinstance(A, types.Array) and isinstance(P, types.Array)
                and isinstance(C, types.Array) and A.dtype == P.dtype == C.dtype
                and A.dtype in (types.float32, types.float64)):
            return None
        sig = types.void(A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc)

        def codegen(context, builder, signature, args):
            (a_arr, a_off, a_rs, a_ks, p_arr, p_off, p_vs, c_arr, c_off, c_rs, K, last,
             acc) = args
            ity = signature.args
            intp = context.get_value_type(types.intp)

            def as_intp(v, t):
                return context.cast(builder, v, t, types.intp)

            a_off, a_rs, a_ks = (as_intp(v, t) for v, t in zip((a_off, a_rs, a_ks), ity[1:4]))
            p_off, p_vs = as_intp(p_off, ity[5]), as_intp(p_vs, ity[6])
            c_off, c_rs, K = as_intp(c_off, ity[8]), as_intp(c_rs, ity[9]), as_intp(K, ity[10])
            last, acc = as_intp(last, ity[11]), as_intp(acc, ity[12])
            _allow_vectors(builder, vbytes)
            vty = _vector_type(context, A.dtype, vbytes)
            elt, L = vty.element, vty.count
            i32 = ir.IntType(32)

            def const(v):
                return ir.Constant(intp, v)

            a_data, p_data, c_data = (_array_data(context, builder, ty, arr) for ty, arr in
                                      ((A, a_arr), (P, p_arr), (C, c_arr)))
            a_rows = [builder.gep(a_data, [builder.add(a_off, builder.mul(const(i), a_rs))])
                      for i in range(mr)]
            p_vecs = [builder.gep(p_data, [builder.add(p_off, builder.mul(const(v), p_vs))])
                      for v in range(nv)]
            zero = ir.Constant(vty, [ir.Constant(elt, 0.0)] * L)
            accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(nv)]
                    for _ in range(mr)]
            fmuladd = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vty, [vty] * 3),
                "llvm.fmuladd.v%d%s" % (L, "f32" if A.dtype == types.float32 else "f64"))
            i8p = ir.IntType(8).as_pointer()
            prefetch = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                "llvm.prefetch.p0i8")
            splat = ir.Constant(ir.VectorType(i32, L), [0] * L)
            undef = ir.Constant(vty, None)
            with cgutils.for_range(builder, K) as loop:
                k = loop.index
                kl = builder.mul(k, const(L))
                w = [builder.load(builder.bitcast(builder.gep(p_vecs[v], [kl]),
                                                  vty.as_pointer()), align=1)
                     for v in range(nv)]
                ka = builder.mul(k, a_ks)
                # A of a later k into cache: op(A) = A^T reads a new line at every k
                pf_addr = builder.gep(a_rows[0], [builder.add(ka, builder.mul(const(PREFETCH),
                                                                              a_ks))])
                builder.call(prefetch, [builder.bitcast(pf_addr, i8p), ir.Constant(i32, 0),
                                        ir.Constant(i32, 3), ir.Constant(i32, 1)])
                for i in range(mr):
                    s = builder.load(builder.gep(a_rows[i], [ka]))
                    b = builder.shuffle_vector(
                        builder.insert_element(undef, s, ir.Constant(i32, 0)), undef, splat)
                    for v in range(nv):
                        builder.store(builder.call(fmuladd, [b, w[v], builder.load(accs[i][v])]),
                                      accs[i][v])
            is_acc = builder.icmp_signed("!=", acc, const(0))
            full = builder.icmp_signed("==", last, const(L))
            for i in range(mr):
                row = builder.gep(c_data, [builder.add(c_off, builder.mul(const(i), c_rs))])
                for v in range(nv):
                    val = builder.load(accs[i][v])
                    dst = builder.gep(row, [const(v * L)])
                    if v < nv - 1:
                        vp = builder.bitcast(dst, vty.as_pointer())
                        with builder.if_then(is_acc):
                            builder.store(builder.fadd(builder.load(vp, align=1),
                                                       builder.load(accs[i][v])), accs[i][v])
                        builder.store(builder.load(accs[i][v]), vp, align=1)
                        continue
                    with builder.if_else(full) as (then, otherwise):
                        with then:
                            vp = builder.bitcast(dst, vty.as_pointer())
                            with builder.if_then(is_acc):
                                builder.store(builder.fadd(builder.load(vp, align=1), val),
                                              accs[i][v])
                            builder.store(builder.load(accs[i][v]), vp, align=1)
                        with otherwise:
                            # a partial vector: lane by lane, never touching C beyond N
                            with cgutils.for_range(builder, last) as lane:
                                x = builder.extract_element(builder.load(accs[i][v]),
                                                            lane.index)
                                p = builder.gep(dst, [lane.index])
                                with builder.if_then(is_acc):
                                    x2 = builder.fadd(builder.load(p), x)
                                    builder.store(x2, p)
                                with builder.if_then(builder.not_(is_acc)):
                                    builder.store(x, p)
            return context.get_dummy_value()

        return sig, codegen

    return mk


def _row_vector(builder, vty, src, full, n):
    """The vector at ``src``: all L lanes if ``full``, else its first ``n`` lanes and zeros
    (lane by lane, never reading beyond them)."""
    L = vty.count
    zero = ir.Constant(vty, [ir.Constant(vty.element, 0.0)] * L)
    out = cgutils.alloca_once_value(builder, zero)
    with builder.if_else(full) as (then, otherwise):
        with then:
            builder.store(builder.load(builder.bitcast(src, vty.as_pointer()), align=1), out)
        with otherwise:
            with cgutils.for_range(builder, n) as lane:
                builder.store(builder.insert_element(
                    builder.load(out), builder.load(builder.gep(src, [lane.index])),
                    lane.index), out)
    return builder.load(out)


def _panel_intrinsic(emit, vbytes):
    """An intrinsic ``f(M, m_off, m_rs, P, p_off, K, w)`` on two float arrays of one dtype
    whose code ``emit(builder, vty, intp, m_data, m_off, m_rs, p_data, p_off, K, w)`` makes
    (the vector type of the dtype, the scalars cast to intp, the arrays' data pointers)."""

    @intrinsic
    def panel(typingctx, M, m_off, m_rs, P, p_off, K, w):
        if not (isinstance(M, types.Array) and isinstance(P, types.Array)
                and M.dtype == P.dtype and M.dtype in (types.float32, types.float64)):
            return None
        sig = types.void(M, m_off, m_rs, P, p_off, K, w)

        def codegen(context, builder, signature, args):
            m_off, m_rs, p_off, K, w = (context.cast(builder, args[i], signature.args[i],
                                                     types.intp) for i in (1, 2, 4, 5, 6))
            _allow_vectors(builder, vbytes)
            vty = _vector_type(context, M.dtype, vbytes)
            emit(builder, vty, context.get_value_type(types.intp),
                 _array_data(context, builder, M, args[0]), m_off, m_rs,
                 _array_data(context, builder, P, args[3]), p_off, K, w)
            return context.get_dummy_value()

        return sig, codegen

    return panel


def make_panel_copy(vbytes=VBYTES):
    """An intrinsic ``copy(M, m_off, m_rs, P, p_off, K, w)``: for k < K, l < L:
    ``P[p_off + k*L + l] = M[m_off + k*m_rs + l]`` for l < w, 0 beyond (offsets and the row
    stride in elements; one vector load and store per row, where a loop of L scalar moves is
    what LLVM makes of it otherwise)."""

    def emit(builder, vty, intp, m_data, m_off, m_rs, p_data, p_off, K, w):
        L = ir.Constant(intp, vty.count)
        full = builder.icmp_signed("==", w, L)
        with cgutils.for_range(builder, K) as loop:
            k = loop.index
            src = builder.gep(m_data, [builder.add(m_off, builder.mul(k, m_rs))])
            dst = builder.gep(p_data, [builder.add(p_off, builder.mul(k, L))])
            builder.store(_row_vector(builder, vty, src, full, w),
                          builder.bitcast(dst, vty.as_pointer()), align=1)

    return _panel_intrinsic(emit, vbytes)


def make_panel_transpose(vbytes=VBYTES):
    """An intrinsic ``transpose(M, m_off, m_rs, P, p_off, K, w)``: for k < K, l < L:
    ``P[p_off + k*L + l] = M[m_off + l*m_rs + k]`` for l < w, 0 beyond: the panel of L
    columns of M^T. Done L x L tiles at a time: L row loads, log2(L) rounds of L two-vector
    shuffles (each swaps one bit of the row index with the same bit of the column index),
    L stores."""

    def emit(builder, vty, intp, m_data, m_off, m_rs, p_data, p_off, K, w):
        n = vty.count
        masks = ir.VectorType(ir.IntType(32), n)

        def const(v):
            return ir.Constant(intp, v)

        L = const(n)
        zero = ir.Constant(vty, [ir.Constant(vty.element, 0.0)] * n)
        tiles = builder.sdiv(builder.add(K, const(n - 1)), L)
        with cgutils.for_range(builder, tiles) as loop:
            k0 = builder.mul(loop.index, L)
            kn = builder.sub(K, k0)
            kn = builder.select(builder.icmp_signed("<", kn, L), kn, L)
            full = builder.icmp_signed("==", kn, L)
            rows = []
            for l in range(n):
                cell = cgutils.alloca_once_value(builder, zero)
                with builder.if_then(builder.icmp_signed("<", const(l), w)):
                    src = builder.gep(m_data, [builder.add(
                        m_off, builder.add(builder.mul(const(l), m_rs), k0))])
                    builder.store(_row_vector(builder, vty, src, full, kn), cell)
                rows.append(builder.load(cell))
            d = 1
            while d < n:
                new = list(rows)
                for i in range(n):
                    if i & d:
                        continue
                    lo = [c if not c & d else n + c - d for c in range(n)]
                    hi = [c + d if not c & d else n + c for c in range(n)]
                    new[i] = builder.shuffle_vector(rows[i], rows[i + d], ir.Constant(masks, lo))
                    new[i + d] = builder.shuffle_vector(rows[i], rows[i + d],
                                                        ir.Constant(masks, hi))
                rows, d = new, 2 * d
            for j in range(n):
                with builder.if_then(builder.icmp_signed("<", const(j), kn)):
                    dst = builder.gep(p_data, [builder.add(
                        p_off, builder.mul(builder.add(k0, const(j)), L))])
                    builder.store(rows[j], builder.bitcast(dst, vty.as_pointer()), align=1)

    return _panel_intrinsic(emit, vbytes)


_panel_copy, _panel_transpose = make_panel_copy(), make_panel_transpose()


@intrinsic
def _noinline(typingctx):
    """Mark the function that calls this as never inlined by LLVM (the product's code, with
    all its micro-kernels, is meant to exist once: not again inside the wrapper numba
    compiles around it for calls from Python)."""
    def codegen(context, builder, signature, args):
        builder.function.attributes.add("noinline")
        return context.get_dummy_value()

    return types.void(), codegen


# The variants compiled: full blocks (MR rows, NV vectors) and their last columns (MR rows, the
# 1 to NV - 1 vectors left, in one pass); a last single vector TALL rows at a time (a block of
# MR rows and one vector keeps too few sums in flight per broadcast: at 1600 x 256 x 65 the
# one-vector pass of the 65th column took half as long as the four-vector pass of the other
# 64, a third with 12 rows); blocks of 4 and 2 rows for the rows left over; single rows of 1 to 8
# vectors for the rest (a single row has one chain of fused multiply-adds per vector, each
# waiting on the one before: all of a row's vectors, up to 8, go in one pass, so that as many
# chains as possible are in flight). Few variants keep every kernel that calls gemm quick to
# compile. Every variant sums each element over k in the same order, so which one computes a
# row does not change its numbers.
WIDE = 8
TALL = 12
_full, _full1 = make_microkernel(MR, NV), make_microkernel(MR, 1)
_full2, _full3 = make_microkernel(MR, 2), make_microkernel(MR, 3)
_tall1 = make_microkernel(TALL, 1)
_rows4, _rows2 = make_microkernel(4, NV), make_microkernel(2, NV)
_row1, _row2, _row3, _row4, _row5, _row6, _row7, _row8 = (make_microkernel(1, v)
                                                          for v in range(1, WIDE + 1))


@njit
def _block(nv, A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc):
    """One register block of MR rows and nv (1..NV) vectors."""
    if nv == NV:
        _full(A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc)
    elif NV > 3 and nv == 3:   # the last columns in one pass (H = 100 leaves 3 of 7)
        _full3(A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc)
    elif NV > 2 and nv == 2:
        _full2(A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc)
    else:
        _full1(A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc)


@njit
def _single_row(nv, A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc):
    """One row and nv (1..WIDE) vectors, in one pass (spelled out width by width: compiled
    code cannot pick an intrinsic out of a tuple by a run-time index)."""
    if nv == 8:
        _row8(A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc)
    elif nv == 7:
        _row7(A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc)
    elif nv == 6:
        _row6(A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc)
    elif nv == 5:
        _row5(A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc)
    elif nv == 4:
        _row4(A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc)
    elif nv == 3:
        _row3(A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc)
    elif nv == 2:
        _row2(A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc)
    else:
        _row1(A, a_off, a_rs, a_ks, P, p_off, p_vs, C, c_off, c_rs, K, last, acc)


ROW_BLOCK = 96   # rows of C per block: their A rows stay in cache while all panels pass
K_BLOCK = 128   # k steps per pass: a pass's panel rows stay in L1
K_BLOCK_T = 64    # the same for op(A) = A^T, whose k steps each read a new line of A


# one specialisation per dtype: callers pass literal flags (gemm(..., False, ...)), which would
# otherwise each compile a copy of their own
_GEMM_DTYPES = ("float32", "float64")
_GEMM_SIGNATURES = [f"void({t}[:, ::1], boolean, {t}[:, :, ::1], intp, {t}[:, ::1], intp, intp, "
                    "boolean)" for t in _GEMM_DTYPES]
_GEMM_K_SIGNATURES = [s[:-1] + ", intp, intp)" for s in _GEMM_SIGNATURES]
_GEMM_AT_SIGNATURES = [f"void({t}[::1], boolean, intp, intp, intp, {t}[:, :, ::1], intp, "
                       f"{t}[::1], intp, intp, intp, boolean)" for t in _GEMM_DTYPES]
_CORE_SIGNATURES = [s[:-1] + ", intp, intp)" for s in _GEMM_AT_SIGNATURES]


@njit(_CORE_SIGNATURES)
def _gemm(A, trans, a_off, a_rs, a_ks, P, N, C, c_off, c_rs, n, acc, ka, kz):
    """The product of :func:`gemm_at` summing over k = ka..kz only (called by its symbol, see
    :func:`gemm`)."""
    _noinline()
    nsub, K, L = P.shape
    if kz <= ka:
        if not acc:
            for r in range(n):
                row = c_off + r * c_rs
                C[row:row + N] = 0
        return
    p_vs = K * L
    kb = K_BLOCK_T if trans else K_BLOCK
    if n == 1:   # a matrix-vector product
        for k0 in range(ka, kz, kb):
            kn = min(kb, kz - k0)
            for g in range(0, nsub, WIDE):
                nv = min(WIDE, nsub - g)
                _single_row(nv, A, a_off + k0 * a_ks, a_rs, a_ks, P, g * p_vs + k0 * L,
                            p_vs, C, c_off + g * L, c_rs, kn,
                            min(L, N - (g + nv - 1) * L), acc or k0 > ka)
        return
    for rb in range(0, n, ROW_BLOCK):
        rb1 = min(rb + ROW_BLOCK, n)
        for k0 in range(ka, kz, kb):
            kn = min(kb, kz - k0)
            add = acc or k0 > ka
            for g in range(0, nsub, NV):
                nv = min(NV, nsub - g)
                last = min(L, N - (g + nv - 1) * L)
                r = rb
                while nv == 1 and r + TALL <= rb1:
                    _tall1(A, a_off + r * a_rs + k0 * a_ks, a_rs, a_ks, P, g * p_vs + k0 * L,
                           p_vs, C, c_off + r * c_rs + g * L, c_rs, kn, last, add)
                    r += TALL
                while r + MR <= rb1:
                    _block(nv, A, a_off + r * a_rs + k0 * a_ks, a_rs, a_ks, P,
                           g * p_vs + k0 * L, p_vs, C, c_off + r * c_rs + g * L, c_rs, kn,
                           last, add)
                    r += MR
                if nv == NV and rb1 - r >= 4:   # the rows left over
                    _rows4(A, a_off + r * a_rs + k0 * a_ks, a_rs, a_ks, P, g * p_vs + k0 * L,
                           p_vs, C, c_off + r * c_rs + g * L, c_rs, kn, last, add)
                    r += 4
                if nv == NV and rb1 - r >= 2:
                    _rows2(A, a_off + r * a_rs + k0 * a_ks, a_rs, a_ks, P, g * p_vs + k0 * L,
                           p_vs, C, c_off + r * c_rs + g * L, c_rs, kn, last, add)
                    r += 2
                while r < rb1:
                    _single_row(nv, A, a_off + r * a_rs + k0 * a_ks, a_rs, a_ks, P,
                                g * p_vs + k0 * L, p_vs, C, c_off + r * c_rs + g * L, c_rs,
                                kn, last, add)
                    r += 1


def _symbol(dtype):
    return f"bptt_gemm_{dtype}"


if not numba.config.DISABLE_JIT:
    for _sig, _cres in _gemm.overloads.items():
        _ll.add_symbol(_symbol(_sig[0].dtype),
                       _cres.library.get_pointer_to_function(_cres.fndesc.llvm_func_name))


@intrinsic
def _call_gemm(typingctx, A, trans, a_off, a_rs, a_ks, P, N, C, c_off, c_rs, n, acc, ka, kz):
    """``_gemm(...)`` (the same arguments) through the symbol its code is registered under,
    declared in the caller's module instead of linked into it."""
    if not (isinstance(A, types.Array) and isinstance(P, types.Array)
            and isinstance(C, types.Array) and A.dtype == P.dtype == C.dtype
            and str(A.dtype) in _GEMM_DTYPES and (A.ndim, P.ndim, C.ndim) == (1, 3, 1)
            and A.layout == P.layout == C.layout == "C"):
        return None
    vec, ints = types.Array(A.dtype, 1, "C"), (types.intp,) * 3
    argtys = (vec, types.boolean, *ints, types.Array(A.dtype, 3, "C"), types.intp, vec,
              *ints, types.boolean, types.intp, types.intp)
    name = _symbol(A.dtype)

    def codegen(context, builder, signature, args):
        values = [context.cast(builder, v, t, want)
                  for v, t, want in zip(args, signature.args, argtys)]
        fnty = context.call_conv.get_function_type(types.none, argtys)
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        # the status is not checked: gemm raises nothing (no bounds checks, numpy's errors)
        context.call_conv.call_function(builder, fn, types.none, argtys, values)
        return context.get_dummy_value()

    return types.void(A, trans, a_off, a_rs, a_ks, P, N, C, c_off, c_rs, n, acc, ka, kz), codegen


@njit(_GEMM_AT_SIGNATURES)
def gemm_at(A, trans, a_off, a_rs, a_ks, P, N, C, c_off, c_rs, n, acc):
    """The product on flat arrays with explicit offsets and strides (in elements), for
    operands laid out as no 2-D array is (a cache stream-major, its step t one row of each
    stream): for r < n, j < N, ``C[c_off + r*c_rs + j] (+)= sum_k A[a_off + r*a_rs + k*a_ks]
    * M[k, j]``, M packed in P. ``trans`` picks the k block of an A read across rows (see
    K_BLOCK_T); the sums are the same as :func:`gemm`'s for the same elements."""
    _call_gemm(A, trans, a_off, a_rs, a_ks, P, N, C, c_off, c_rs, n, acc, 0, P.shape[1])


@njit(inline="always")   # a view returned from a call needs numba's runtime (see _config)
def flat(a):
    """A C array as one flat 1-D view."""
    return a.reshape(a.size)


@njit(inline="always")
def _matrix_product(A, trans, P, N, C, r0, r1, acc, ka, kz):
    """:func:`gemm_k` on 2-D C arrays: their offsets and strides for the core."""
    lda, c_rs = A.shape[1], C.shape[1]
    a_rs, a_ks = (1, lda) if trans else (lda, 1)
    _call_gemm(flat(A), trans, r0 * a_rs, a_rs, a_ks, P, N, flat(C), r0 * c_rs, c_rs,
               r1 - r0, acc, ka, kz)


@njit(_GEMM_SIGNATURES)
def gemm(A, trans, P, N, C, r0, r1, acc):
    """Rows r0..r1 of ``C = op(A) @ M`` (``acc``: C += instead), M packed in P by :func:`pack`
    (``P.shape = (ceil(N / L), K, L)``).

    A: (R, K) if not trans, else (K, R) (then op(A) = A^T); more columns are allowed (a
    padded leading dimension); C: (R, N). All C-contiguous, one dtype; rows outside r0..r1
    are not touched. Sums are done K_BLOCK steps at a time through C, which gives the same
    result (the register block has C's dtype) and keeps a pass's panel rows in L1.

    The product's code is compiled once (:func:`_gemm`) and called by the symbol it is
    registered under at import: a kernel that called it by name would link a copy of it (all
    the micro-kernels) into its own code, to be compiled again, cached and loaded with every
    kernel."""
    _matrix_product(A, trans, P, N, C, r0, r1, acc, 0, P.shape[1])


@njit(_GEMM_K_SIGNATURES)
def gemm_k(A, trans, P, N, C, r0, r1, acc, ka, kz):
    """:func:`gemm` summing over k = ka..kz only (rows ka..kz of M, and of op(A)'s columns):
    the product of a share of a long sum, for the threads to split K between them."""
    _matrix_product(A, trans, P, N, C, r0, r1, acc, ka, kz)


def _lanes(a):
    """L for the dtype of array ``a``, as a compile-time constant (in compiled code)."""
    return lanes(a.dtype)


@overload(_lanes)
def _lanes_impl(a):
    n = VBYTES * 8 // a.dtype.bitwidth
    return lambda a: n


@njit
def pack(M, trans, P, s0, s1):
    """Fill sub-panels s0..s1 of P (ceil(N / L), K, L) with those of M (K, N), or of M^T if
    ``trans`` (then M is (N, K)); zero beyond N."""
    L = _lanes(P)
    K = P.shape[1]
    N = M.shape[0] if trans else M.shape[1]
    if M.shape[1] > 1 and M.strides[1] != M.itemsize:
        _pack_strided(M, trans, P, s0, s1, 0, K)
        return
    m_rs = M.strides[0] // M.itemsize
    for s in range(s0, s1):
        n0 = s * L
        w = min(L, N - n0)
        if trans:
            _panel_transpose(M, n0 * m_rs, m_rs, P, s * K * L, K, w)
        else:
            _panel_copy(M, n0, m_rs, P, s * K * L, K, w)


@njit
def pack_range(M, P, k0, k1):
    """Rows k0..k1 of ``pack(M, False, P)`` (so that threads can pack disjoint rows)."""
    L = _lanes(P)
    K, N = P.shape[1], M.shape[1]
    if N > 1 and M.strides[1] != M.itemsize:
        _pack_strided(M, False, P, 0, P.shape[0], k0, k1)
        return
    m_rs = M.strides[0] // M.itemsize
    for s in range(P.shape[0]):
        n0 = s * L
        _panel_copy(M, k0 * m_rs + n0, m_rs, P, (s * K + k0) * L, k1 - k0, min(L, N - n0))


@njit
def pack_rows(m, m_off, m_rs, n, N, P, p0):
    """Rows p0..p0+n of ``pack(M, False, P)`` for M (K, N), from n rows of it laid out in the
    flat array m: row i at m_off + i*m_rs, its N numbers adjacent (a stream's steps in a
    time-major (T, B, N) array, for example)."""
    L = _lanes(P)
    K = P.shape[1]
    for s in range(P.shape[0]):
        _panel_copy(m, m_off + s * L, m_rs, P, (s * K + p0) * L, n, min(L, N - s * L))


@njit
def _pack_strided(M, trans, P, s0, s1, k0, k1):
    """Rows k0..k1 of sub-panels s0..s1 of :func:`pack`, element by element: for an M whose
    columns are not adjacent in memory (the vector loads need them so)."""
    L = _lanes(P)
    N = M.shape[0] if trans else M.shape[1]
    zero = P.dtype.type(0)
    for s in range(s0, s1):
        for k in range(k0, k1):
            for l in range(L):
                n = s * L + l
                P[s, k, l] = zero if n >= N else (M[n, k] if trans else M[k, n])


@functools.lru_cache(maxsize=256)
def packed_shape(K, N, dtype):
    """Shape of the packed form of a (K, N) matrix of ``dtype`` (remembered: a training step
    asks for the same few shapes a dozen times)."""
    L = lanes(dtype)
    return (-(-N // L), K, L)
