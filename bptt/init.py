"""Weight initialisers. Each takes a shape, a numpy ``Generator`` and a dtype.

- Glorot (Xavier) uniform/normal: Glorot & Bengio (2010), fan-in + fan-out scaling.
- Orthogonal: Saxe, McClelland & Ganguli (2014), via the QR decomposition of a Gaussian matrix
  with the sign correction that makes it uniform over the orthogonal group (Mezzadri 2007).
- Identity: the IRNN of Le, Jaitly & Hinton (2015).
- :func:`scale_to_spectral_radius`: rescale a square matrix so that its largest eigenvalue
  modulus is ``rho`` (the recurrent scaling studied by Pascanu, Mikolov & Bengio 2013).
"""

import numpy as np

from ._validate import choice, positive_float


def _fans(shape):
    fan_out, fan_in = shape[0], int(np.prod(shape[1:]))
    return fan_in, fan_out


def glorot_uniform(shape, rng, dtype=np.float64):
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(dtype)


def glorot_normal(shape, rng, dtype=np.float64):
    fan_in, fan_out = _fans(shape)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


def uniform(shape, rng, limit, dtype=np.float64):
    """U(-limit, limit), PyTorch's default for recurrent layers with limit = 1/sqrt(H)."""
    return rng.uniform(-limit, limit, shape).astype(dtype)


def normal(shape, rng, std, dtype=np.float64):
    return (rng.standard_normal(shape) * std).astype(dtype)


def orthogonal(shape, rng, gain=1.0, dtype=np.float64):
    """A (rows, cols) matrix with orthonormal rows or columns (whichever are fewer), times gain."""
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))  # makes the distribution uniform (Haar)
    if rows < cols:
        q = q.T
    return (gain * q).astype(dtype)


def identity(shape, gain=1.0, dtype=np.float64):
    return (gain * np.eye(*shape)).astype(dtype)


def spectral_radius(w):
    """Largest eigenvalue modulus of a square matrix."""
    import scipy.linalg   # here: it takes 0.2 s to import

    return float(np.max(np.abs(scipy.linalg.eigvals(np.asarray(w, dtype=np.float64)))))


def scale_to_spectral_radius(w, rho):
    """``w`` rescaled so that its spectral radius is ``rho`` (w must not be nilpotent)."""
    rho = positive_float("rho", rho, allow_zero=True)
    current = spectral_radius(w)
    if current == 0:
        raise ValueError("cannot rescale a matrix whose spectral radius is 0")
    return (w * (rho / current)).astype(w.dtype)


RECURRENT_INITS = ("orthogonal", "identity", "glorot", "normal", "uniform")


def recurrent_matrix(kind, hidden_size, rng, dtype=np.float64, spectral_radius=None):
    """One (H, H) recurrent block.

    kind: "orthogonal" (default of the built-in cells), "identity" (IRNN), "glorot",
        "normal" (N(0, 1/H): spectral radius close to 1 for large H), "uniform"
        (PyTorch's U(-1/sqrt(H), 1/sqrt(H))).
    spectral_radius: if given, the block is rescaled to this spectral radius.
    """
    choice("recurrent_init", kind, set(RECURRENT_INITS))
    H = hidden_size
    if kind == "orthogonal":
        w = orthogonal((H, H), rng)
    elif kind == "identity":
        w = identity((H, H))
    elif kind == "glorot":
        w = glorot_uniform((H, H), rng)
    elif kind == "normal":
        w = normal((H, H), rng, 1.0 / np.sqrt(H))
    else:
        w = uniform((H, H), rng, 1.0 / np.sqrt(H))
    if spectral_radius is not None:
        w = scale_to_spectral_radius(w, spectral_radius)
    return w.astype(dtype)


def gate_blocks(init_fn, gates, hidden_size, input_size, rng, dtype=np.float64):
    """A (gates*H, D) matrix made of ``gates`` independently initialised (H, D) blocks, so each
    gate gets the scaling of its own fan-in and fan-out (as Keras does)."""
    return np.concatenate([init_fn((hidden_size, input_size), rng, dtype)
                           for _ in range(gates)], axis=0)
