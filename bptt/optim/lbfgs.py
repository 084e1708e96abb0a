"""Full-batch L-BFGS on the exact BPTT gradient, through ``scipy.optimize.minimize``.

For small models and short sequences a quasi-Newton method on the whole data set often reaches
a far lower loss than a first-order optimizer in the same time (Liu & Nocedal 1989; the bounded
variant L-BFGS-B of Byrd, Lu, Nocedal & Zhu 1995, used here without bounds). The parameters are
packed into one float64 vector in ``named_parameters()`` order and unpacked back, as
scikit-learn's MLP does (``_pack`` / ``_unpack``).
"""

import numbers

import numpy as np

from .._validate import positive_float, positive_int
from ..module import Module
from ..value_and_grad import check_model, value_and_grad


def _named(model):
    if isinstance(model, Module):
        return model.named_parameters()
    if isinstance(model, dict):
        return model
    raise TypeError(f"expected a bptt Module (or a dict name -> array), got "
                    f"{type(model).__name__}")


def pack_parameters(model):
    """All parameters of ``model`` (a Module, or a dict name -> array) as one new float64
    vector of length ``sum(p.size)``, in ``named_parameters()`` order."""
    params = _named(model)
    if not params:
        return np.zeros(0)
    return np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in params.values()])


def unpack_parameters(model, flat):
    """Write the vector ``flat`` (as made by :func:`pack_parameters`) into the parameters of
    ``model`` in place, cast to each parameter's dtype."""
    params = _named(model)
    flat = np.asarray(flat)
    if not np.issubdtype(flat.dtype, np.floating):
        raise TypeError(f"flat must be a floating-point vector, got dtype {flat.dtype}")
    n = sum(p.size for p in params.values())
    if flat.shape != (n,):
        raise ValueError(f"flat must be a vector of {n} values (one per parameter element), "
                         f"got shape {flat.shape}")
    i = 0
    for p in params.values():
        j = i + p.size
        p[...] = flat[i:j].reshape(p.shape)
        i = j


def _pack_grads(grads, names):
    return np.concatenate([np.asarray(grads[k], dtype=np.float64).ravel() for k in names])


def minimize_lbfgs(model, loss, x, y, state=None, weights=None, resets=None, maxiter=200,
                   gtol=1e-6, callback=None, options=None):
    """Train ``model`` on one batch with L-BFGS-B (``scipy.optimize.minimize``, ``jac=True``).

    x: (T, B) tokens or (T, B, D) floats; y: targets for ``loss``; state, weights (T, B),
    resets (T, B): as for :func:`bptt.value_and_grad`, which gives the exact loss and gradient
    (full BPTT over the T steps) at each point scipy asks for.
    maxiter: most L-BFGS iterations; gtol: stop when the largest gradient component is
        <= gtol.
    callback: if given, called as ``callback(xk)`` after every iteration with a copy of the
        current flat float64 parameter vector (see :func:`pack_parameters`); while it runs, the
        model holds ``xk``. Raising ``StopIteration`` in it stops the run (the model then holds
        the last iterate).
    options: further scipy L-BFGS-B options (``ftol``, ``maxcor``, ``maxfun``, ``maxls``).

    The model's parameters are updated in place and hold the solution ``result.x`` on return
    (its gradient buffers hold the gradient of the last point evaluated). float64 models are
    recommended: in float32 the loss and gradient carry float32 rounding, which can stop the
    line search early. Returns scipy's ``OptimizeResult`` (``x``, ``fun``, ``jac``, ``nit``,
    ``nfev``, ``success``, ``message``).
    """
    check_model(model)
    maxiter = positive_int("maxiter", maxiter)
    gtol = positive_float("gtol", gtol, allow_zero=True)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict of scipy L-BFGS-B options, got "
                        f"{type(options).__name__}")
    for k in ("maxiter", "gtol"):
        if k in options:
            raise ValueError(f"pass {k} as the argument {k}=, not in options")
    for k, v in options.items():
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise TypeError(f"options[{k!r}] must be a number, got {type(v).__name__} {v!r}")

    names = list(model.named_parameters())
    if not names:
        raise ValueError(f"{model!r} has no parameters to optimize")

    def fun(flat):
        unpack_parameters(model, flat)
        value, grads, _ = value_and_grad(model, loss, x, y, state, weights, resets)
        return value, _pack_grads(grads, names)

    cb = None
    if callback is not None:
        def cb(xk):
            xk = np.array(xk, dtype=np.float64)
            unpack_parameters(model, xk)
            callback(xk)

    x0 = pack_parameters(model)
    from scipy.optimize import minimize   # here: scipy.optimize takes 0.2 s to import

    result = minimize(fun, x0, method="L-BFGS-B", jac=True, callback=cb,
                      options={"maxiter": maxiter, "gtol": gtol, **options})
    unpack_parameters(model, result.x)
    return result
