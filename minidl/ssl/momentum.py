"""The momentum network of MoCo and BYOL: a frozen copy of a network that follows it as an
exponential moving average of its weights.

    theta_target <- m * theta_target + (1 - m) * theta_online        (per parameter)

The copy receives no gradients (its parameters have ``requires_grad=False`` and its
outputs are computed under ``no_grad``); it changes only through this update.
"""
from __future__ import annotations

import copy
import math

from ..autograd import no_grad
from ..nn import Module

__all__ = ["momentum_copy", "ema_update_", "cosine_momentum"]


def momentum_copy(module: Module) -> Module:
    """A deep copy of ``module`` with every parameter frozen (``requires_grad=False``)."""
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


def ema_update_(target: Module, online: Module, momentum: float) -> None:
    """In place: ``t <- momentum * t + (1 - momentum) * o`` for each pair of parameters
    (paired in registration order). Buffers (BatchNorm statistics) are left to each network.
    ``momentum`` in [0, 1]: 1 freezes the target, 0 copies the online network."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"ema_update_: momentum must be in [0, 1], got {momentum}")
    t_params, o_params = list(target.parameters()), list(online.parameters())
    if len(t_params) != len(o_params):
        raise ValueError(f"ema_update_: the target has {len(t_params)} parameters but the online network "
                         f"has {len(o_params)}; the target must be a copy of the online network")
    with no_grad():
        for t, o in zip(t_params, o_params):
            if t.shape != o.shape:
                raise ValueError(f"ema_update_: parameter shapes differ: target {t.shape} vs online {o.shape}")
            t.data *= momentum
            t.data += (1.0 - momentum) * o.data


def cosine_momentum(step: int, total_steps: int, base: float = 0.99) -> float:
    """BYOL's schedule, rising from ``base`` at step 0 to 1 at the last step:

        m_k = 1 - (1 - base) * (cos(pi k / K) + 1) / 2
    """
    if total_steps < 1:
        raise ValueError(f"cosine_momentum: total_steps must be >= 1, got {total_steps}")
    k = min(max(step, 0), total_steps)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * k / total_steps) + 1.0) / 2.0
