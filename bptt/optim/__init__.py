"""Optimizers (PyTorch's update rules), learning-rate schedules, and L-BFGS through scipy.

Typical use::

    opt = bptt.optim.Adam(model.named_parameters(), lr=bptt.optim.WarmupLR(
        bptt.optim.CosineLR(3e-3, total_steps=10_000), warmup_steps=200))
    opt.step(grads)                 # grads: dict with the names of model.named_parameters()
    sd = opt.state_dict()           # JSON-able values and numpy arrays
    opt = bptt.optim.optimizer_from_state_dict(sd, model.named_parameters())
"""

from .lbfgs import minimize_lbfgs, pack_parameters, unpack_parameters
from .optimizers import (OPTIMIZERS, SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop,
                         get_optimizer, optimizer_from_state_dict)
from .schedules import (SCHEDULES, ConstantLR, CosineLR, ExponentialLR, Schedule, StepLR,
                        WarmupLR, schedule_config, schedule_from_config)

__all__ = [
    "OPTIMIZERS", "SCHEDULES", "SGD", "Adagrad", "Adam", "AdamW", "ConstantLR", "CosineLR",
    "ExponentialLR", "Optimizer", "RMSprop", "Schedule", "StepLR", "WarmupLR", "get_optimizer",
    "minimize_lbfgs", "optimizer_from_state_dict", "pack_parameters", "schedule_config",
    "schedule_from_config", "unpack_parameters",
]
