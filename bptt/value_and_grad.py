"""One chunk, no update: the loss and its exact gradient by full backpropagation through time."""

from .module import BackwardContext, Module


def check_model(model):
    if not isinstance(model, Module):
        raise TypeError(f"model must be a bptt Module (for example a Sequential), got "
                        f"{type(model).__name__}")
    return model


def value_and_grad(model, loss, x, y, state=None, weights=None, resets=None, state_clip=None):
    """Loss of ``model`` on one chunk and the gradient of that loss for every parameter.

    x: (T, B) tokens or (T, B, D) floats; y: targets for ``loss`` (T, B) or (T, B, ...);
    state: the model's initial state (None for zeros); weights: per-step loss weights (T, B);
    resets: boolean (T, B), zero a stream's state before that step; state_clip: clip the
    backpropagated state gradient elementwise to [-v, v] at every step.

    Returns ``(value, grads, final_state)``: the loss (a float), a dict ``name -> array``
    holding copies of the gradients (same names as ``model.named_parameters()``), and the state
    after the last step. The model's own gradient buffers are zeroed and then hold the same
    gradients.
    """
    check_model(model)
    out, final_state, cache = model.forward(x, state, resets)
    value, dout = loss(out, y, weights)
    model.zero_grad()
    model.backward(dout, None, cache, BackwardContext(state_clip))
    grads = {k: g.copy() for k, g in model.named_grads().items()}
    return value, grads, final_state
