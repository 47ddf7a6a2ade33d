"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from __future__ import annotations

from typing import Any, Iterable

from ..tensor import Tensor
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""SGD with (heavy-ball or Nesterov) momentum, PyTorch's equations.

    With ``g`` the gradient (negated when ``maximize``), at every step::

        g ← g + λ θ                              (weight_decay λ, coupled L2)
        b ← g                                    (first step)
        b ← μ b + (1 − τ) g                      (later steps; momentum μ, dampening τ)
        g ← g + μ b   if nesterov   else   g ← b  (only when μ ≠ 0)
        θ ← θ − η g

    Args:
        params: Tensors or parameter groups (dicts).
        lr: step size η. momentum: μ in [0, 1). dampening: τ. weight_decay: λ (L2 penalty
        folded into the gradient). nesterov: look-ahead momentum (needs μ > 0, τ = 0).
        maximize: ascend the objective instead.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, group: dict, index: int) -> None:
        super()._check_options(group, index)
        if group["momentum"] < 0.0:
            raise ValueError(f"SGD: invalid momentum {group['momentum']} in group {index}; expected >= 0")
        if group["weight_decay"] < 0.0:
            raise ValueError(f"SGD: invalid weight_decay {group['weight_decay']} in group {index}; expected >= 0")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"SGD: nesterov momentum needs momentum > 0 and dampening = 0 (group {index} has "
                f"momentum={group['momentum']}, dampening={group['dampening']})"
            )

    def _update(self, p: Tensor, grad: Any, state: dict, group: dict, xp) -> None:
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p.data
        mu = group["momentum"]
        if mu != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= mu
                if group["dampening"]:
                    buf += (1 - group["dampening"]) * g
                else:
                    buf += g  # no (1 - 0) * g temporary: it is a full copy of the gradient
            g = g + mu * buf if group["nesterov"] else buf
        p.data -= group["lr"] * g
