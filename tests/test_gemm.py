"""The packed-panel matrix product of the kernels (bptt._kernels.gemm) against numpy."""

import os
import re
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from bptt._kernels import gemm as G

# N covers each way a row of vectors ends (with L = 16 float32 / 8 float64 lanes and blocks of
# 4 vectors): 1, 2 or 3 vectors left over after the full blocks, the last one full or partial;
# R, the blocks of rows (6, or 12 for a last single vector) with and without rows left over
SHAPES = [(1, 1, 1), (1, 3, 5), (7, 3, 5), (6, 4, 64), (13, 17, 65), (5, 0, 7), (2, 9, 16),
          (40, 33, 100), (100, 300, 130), (200, 7, 3), (14, 20, 90), (8, 5, 23), (12, 40, 48),
          (27, 20, 65), (40, 9, 16)]
DTYPES = [np.float32, np.float64]


def panels(m, dtype):
    p = np.empty(G.packed_shape(m.shape[0], m.shape[1], dtype), dtype)
    G.pack(m, False, p, 0, p.shape[0])
    return p


def tolerance(dtype, K):
    return (1e-6 if np.dtype(dtype) == np.float32 else 1e-14) * max(1, K) ** 0.5


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("R,K,N", SHAPES)
@pytest.mark.parametrize("trans", [False, True])
@pytest.mark.parametrize("acc", [False, True])
def test_gemm_matches_numpy(dtype, R, K, N, trans, acc):
    rng = np.random.default_rng([R, K, N, trans, acc])
    a = rng.standard_normal((K, R) if trans else (R, K)).astype(dtype)
    m = rng.standard_normal((K, N)).astype(dtype)
    c0 = rng.standard_normal((R, N)).astype(dtype)
    c = c0.copy()
    r0, r1 = (1, R - 1) if R > 2 else (0, R)
    G.gemm(a, trans, panels(m, dtype), N, c, r0, r1, acc)
    want = c0.astype(np.float64)
    op_a = (a.T if trans else a).astype(np.float64)
    want[r0:r1] = (want[r0:r1] if acc else 0) + op_a[r0:r1] @ m.astype(np.float64)
    scale = np.abs(want).max() + 1
    assert np.abs(c - want).max() <= tolerance(dtype, K) * scale
    # rows outside r0..r1 are untouched, bit for bit
    np.testing.assert_array_equal(c[:r0], c0[:r0])
    np.testing.assert_array_equal(c[r1:], c0[r1:])


def test_a_padded_leading_dimension():
    """A may have more columns than K (trans=False) or than C has rows (trans=True)."""
    rng = np.random.default_rng(0)
    m = rng.standard_normal((20, 33)).astype(np.float32)
    p = panels(m, np.float32)
    a = rng.standard_normal((9, 20 + 16)).astype(np.float32)
    c = np.zeros((9, 33), np.float32)
    G.gemm(a, False, p, 33, c, 0, 9, False)
    np.testing.assert_allclose(c, a[:, :20] @ m, rtol=1e-5, atol=1e-5)
    at = rng.standard_normal((20, 9 + 7)).astype(np.float32)
    G.gemm(at, True, p, 33, c, 0, 9, False)
    np.testing.assert_allclose(c, at[:, :9].T @ m, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("N", [90, 65])   # 65: a last single vector, 12 rows to a block
def test_rows_do_not_depend_on_the_split(dtype, N):
    """Each row of C comes out bit for bit the same whatever rows a call covers (threads
    split rows, so results do not depend on the number of threads)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((50, 70)).astype(dtype)
    p = panels(rng.standard_normal((70, N)).astype(dtype), dtype)
    whole, parts = np.zeros((50, N), dtype), np.zeros((50, N), dtype)
    G.gemm(a, False, p, N, whole, 0, 50, False)
    for lo, hi in [(0, 7), (7, 8), (8, 31), (31, 50)]:
        G.gemm(a, False, p, N, parts, lo, hi, False)
    np.testing.assert_array_equal(whole, parts)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("trans", [False, True])
@pytest.mark.parametrize("acc", [False, True])
def test_gemm_over_a_range_of_k_matches_numpy(dtype, trans, acc):
    """gemm_k sums over k = ka..kz only (ranges inside one k block, across blocks, empty),
    and touches no row outside r0..r1."""
    rng = np.random.default_rng([trans, acc])
    R, K, N = 13, 300, 70
    a = rng.standard_normal((K, R) if trans else (R, K)).astype(dtype)
    m = rng.standard_normal((K, N)).astype(dtype)
    p = panels(m, dtype)
    op = (a.T if trans else a).astype(np.float64)
    for ka, kz in ((0, K), (0, 1), (5, 70), (64, 128), (100, 299), (130, 130), (299, 300)):
        c0 = rng.standard_normal((R, N)).astype(dtype)
        c = c0.copy()
        G.gemm_k(a, trans, p, N, c, 2, 11, acc, ka, kz)
        want = op[:, ka:kz] @ m[ka:kz] + (c0 if acc else 0)
        np.testing.assert_allclose(c[2:11], want[2:11], rtol=0,
                                   atol=tolerance(dtype, K) * 10 * (1 + np.abs(want).max()))
        np.testing.assert_array_equal(c[:2], c0[:2])
        np.testing.assert_array_equal(c[11:], c0[11:])


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="inspects compiled code")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_compiled_callers_call_the_product_by_its_symbol(dtype):
    """Compiled code calling gemm declares the product's registered symbol and defines none of
    its code (a linked copy of the micro-kernels in every kernel made each kernel slower to
    compile, to cache and to load), and gets the product right through it, with literal and
    run-time flags."""
    @numba.njit
    def caller(a, p, c, acc):
        G.gemm(a, False, p, c.shape[1], c, 0, c.shape[0], False)
        G.gemm(a, False, p, c.shape[1], c, 0, c.shape[0], acc)

    rng = np.random.default_rng(3)
    a = rng.standard_normal((13, 17)).astype(dtype)
    m = rng.standard_normal((17, 40)).astype(dtype)
    c = np.full((13, 40), np.nan, dtype)
    caller(a, panels(m, dtype), c, True)
    np.testing.assert_allclose(c, 2 * (a.astype(np.float64) @ m), rtol=0,
                               atol=2 * tolerance(dtype, 17) * 10)
    code = caller.inspect_llvm(caller.signatures[0])
    symbol = f"bptt_gemm_{np.dtype(dtype).name}"
    assert re.search(rf"^declare .*@{symbol}\(", code, re.M), code
    defined = re.findall(r"^define [^@]*@\"?([^\"(]+)", code, re.M)
    assert not [name for name in defined if "4gemm5_gemm" in name], defined   # G._gemm


def test_pack_layout_and_padding():
    rng = np.random.default_rng(2)
    m = rng.standard_normal((5, 37)).astype(np.float64)
    p = panels(m, np.float64)
    L = G.lanes(np.float64)
    assert p.shape == (-(-37 // L), 5, L)
    for s in range(p.shape[0]):
        for k in range(5):
            for l in range(L):
                n = s * L + l
                assert p[s, k, l] == (m[k, n] if n < 37 else 0.0)
    t = np.empty_like(p)
    G.pack(np.ascontiguousarray(m.T), True, t, 0, t.shape[0])
    np.testing.assert_array_equal(t, p)
    r = np.full_like(p, np.nan)
    G.pack_range(m, r, 0, 2)
    G.pack_range(m, r, 2, 5)
    np.testing.assert_array_equal(r, p)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("K,N", [(1, 1), (5, 37), (16, 16), (17, 33), (40, 100), (64, 8),
                                 (100, 15)])
def test_pack_by_tiles_matches_the_definition(dtype, K, N):
    """pack copies rows by whole vectors and transposes by L x L tiles: every partial tile
    (K not a multiple of L) and partial panel (N not a multiple of L) is checked against
    P[s, k, l] = M[k, s*L + l] (zero beyond N), from M and from M^T, with rows that are
    strided in memory too (a view of a wider array), and with strided columns (packed element
    by element)."""
    rng = np.random.default_rng([K, N])
    m = rng.standard_normal((K, N)).astype(dtype)
    L = G.lanes(dtype)
    want = np.zeros(G.packed_shape(K, N, dtype), dtype)
    for s in range(want.shape[0]):
        w = min(L, N - s * L)
        want[s, :, :w] = m[:, s * L:s * L + w]
    wide = np.full((K, N + 7), np.nan, dtype)
    wide[:, :N] = m
    wide_t = np.full((N, K + 5), np.nan, dtype)
    wide_t[:, :K] = m.T
    cols = np.full((K, 2 * N), np.nan, dtype)
    cols[:, ::2] = m
    cols_t = np.full((N, 2 * K), np.nan, dtype)
    cols_t[:, ::2] = m.T
    for src, trans in ((m, False), (np.ascontiguousarray(m.T), True), (wide[:, :N], False),
                       (wide_t[:, :K], True), (cols[:, ::2], False), (cols_t[:, ::2], True)):
        p = np.full_like(want, np.nan)
        G.pack(src, trans, p, 0, p.shape[0])
        np.testing.assert_array_equal(p, want)
    for src in (m, cols[:, ::2]):
        r = np.full_like(want, np.nan)
        G.pack_range(src, r, 0, K // 2)
        G.pack_range(src, r, K // 2, K)
        np.testing.assert_array_equal(r, want)


def test_vector_width_of_the_target():
    assert G.vector_bytes("+avx,+avx2,+avx512f,+fma") == 64
    assert G.vector_bytes("+avx,+avx2,-avx512f,+fma") == 32
    assert G.vector_bytes("+sse2,+sse4.2") == 16
    assert G.VBYTES in (16, 32, 64)


@pytest.mark.parametrize("cpu,features,vbytes", [
    ("haswell", "+avx,+avx2,+fma,+sse2,+sse4.2,+popcnt,+f16c,+bmi,+bmi2", 32),
    ("x86-64", "", 16)])
def test_other_vector_widths(tmp_path, cpu, features, vbytes):
    """The micro-kernels and the packing (by rows and by transposed tiles) for AVX2 and for
    16-byte vectors, compiled for those targets in a fresh process, give numpy's products
    (this machine runs their code too)."""
    if os.uname().machine not in ("x86_64", "AMD64"):
        pytest.skip("the targets named are x86 ones")
    if vbytes == 32 and "avx2" not in open("/proc/cpuinfo").read():
        pytest.skip("this CPU has no AVX2")
    code = textwrap.dedent(f"""
        import numpy as np
        from bptt._kernels import gemm as G
        assert G.VBYTES == {vbytes}, G.VBYTES
        rng = np.random.default_rng(0)
        for dt in (np.float32, np.float64):
            for R, K, N, trans in ((7, 13, 29, False), (11, 40, 70, True), (1, 5, 3, False)):
                a = rng.standard_normal((K, R) if trans else (R, K)).astype(dt)
                m = rng.standard_normal((K, N)).astype(dt)
                p = np.empty(G.packed_shape(K, N, dt), dt)
                G.pack(m, False, p, 0, p.shape[0])
                pt = np.empty_like(p)
                G.pack(np.ascontiguousarray(m.T), True, pt, 0, pt.shape[0])
                assert np.array_equal(p, pt), (dt, K, N)
                c = np.zeros((R, N), dt)
                G.gemm(a, trans, p, N, c, 0, R, False)
                want = (a.T if trans else a).astype(np.float64) @ m
                assert np.abs(c - want).max() < 1e-4, (dt, R, K, N)
        print("ok")
    """)
    env = dict(os.environ, NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES=features,
               NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
