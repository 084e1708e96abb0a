import importlib.util
import os
import sys

import numpy as np
import pytest

import bptt
from bptt._config import drop_stale_caches, numba_cache_dir, package_sources

# the tests' own kernels inline the package's (fastmath): their caches go stale with it
drop_stale_caches(numba_cache_dir(os.path.dirname(os.path.abspath(__file__))),
                  package_sources() + [os.path.abspath(__file__)])


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


CELLS = {
    "elman-tanh": lambda d, h: bptt.Elman(d, h),
    "elman-relu": lambda d, h: bptt.Elman(d, h, nonlinearity="relu"),
    "elman-linear": lambda d, h: bptt.Elman(d, h, nonlinearity="linear"),
    "lstm": lambda d, h: bptt.LSTM(d, h),
    "gru": lambda d, h: bptt.GRU(d, h),
}


def make_cell(kind, d, h, use_kernels=True):
    c = CELLS[kind](d, h)
    c.use_kernels = use_kernels
    return c


def token_model(kind, V=7, E=5, H=6, seed=0, use_kernels=True, dtype=np.float64):
    return bptt.Sequential([bptt.Embedding(V, E), make_cell(kind, E, H, use_kernels),
                            bptt.Dense(H, V)], dtype=dtype, seed=seed)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(name, path):
    """A script (examples/, benchmarks/) as a module, registered under ``name`` (loaded once)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
