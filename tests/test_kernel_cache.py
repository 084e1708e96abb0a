"""The kernels' compile caches are dropped when any kernel source changes, wherever numba
keeps them (numba itself checks only each kernel's own file)."""

import os

import numba
import numba.core.caching as caching

from bptt import _config
from bptt._kernels import gemm, lstm


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_stale_caches_are_dropped_and_current_ones_kept(tmp_path):
    src = tmp_path / "kernel.py"
    _write(src, "a = 1\n")
    cache = tmp_path / "cache"
    _config.drop_stale_caches(str(cache), [str(src)])   # a new directory: stamped
    _write(cache / "k.f-1.py311.nbi", "index")
    _write(cache / "k.f-1.py311.1.nbc", "code")
    _config.drop_stale_caches(str(cache), [str(src)])   # sources unchanged: kept
    assert sorted(os.listdir(cache)) == ["k.f-1.py311.1.nbc", "k.f-1.py311.nbi",
                                         "sources.sha256"]
    _write(src, "a = 2\n")
    _config.drop_stale_caches(str(cache), [str(src)])   # changed: dropped, stamped again
    assert os.listdir(cache) == ["sources.sha256"]
    _write(cache / "k.f-1.py311.nbi", "index")
    _config.drop_stale_caches(str(cache), [str(src)])
    assert "k.f-1.py311.nbi" in os.listdir(cache)


def _numba_cache_path(dispatcher):
    return caching.FunctionCache(dispatcher.py_func)._cache_path


def test_the_directory_checked_is_where_numba_caches_the_kernels(tmp_path, monkeypatch):
    kernels = os.path.dirname(gemm.__file__)
    for kernel in (gemm.pack, lstm._forward):
        assert _numba_cache_path(kernel) == _config.numba_cache_dir(kernels)
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))   # NUMBA_CACHE_DIR set
    for kernel in (gemm.pack, lstm._forward):
        path = _numba_cache_path(kernel)
        assert path == _config.numba_cache_dir(kernels)
        assert path.startswith(str(tmp_path))
