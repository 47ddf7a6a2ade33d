"""RMSprop: steps scaled by a running root-mean-square of the gradient."""
from __future__ import annotations

from typing import Any, Iterable

from ..tensor import Tensor
from .optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop (Hinton's lecture 6e), PyTorch's equations.

    With ``g`` the gradient (negated when ``maximize``)::

        g ← g + λ θ                                  (weight_decay λ)
        v ← α v + (1 − α) g²                         (running mean square)
        centered:  m ← α m + (1 − α) g ;  d = √(v − m²) + ε
        otherwise:                         d = √v + ε
        momentum μ > 0:  b ← μ b + g / d ;  θ ← θ − η b
        otherwise:                          θ ← θ − η g / d

    Unlike Adagrad the average forgets old gradients, so the step size can grow back.
    ``centered`` divides by an estimate of the gradient's variance instead of its second moment.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, group: dict, index: int) -> None:
        super()._check_options(group, index)
        for key in ("alpha", "eps", "weight_decay", "momentum"):
            if not group[key] >= 0.0:
                raise ValueError(f"RMSprop: invalid {key} {group[key]} in group {index}; expected >= 0")

    def _update(self, p: Tensor, grad: Any, state: dict, group: dict, xp) -> None:
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p.data)
            if group["momentum"] > 0:
                state["momentum_buffer"] = xp.zeros_like(p.data)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(p.data)
        state["step"] += 1
        alpha = group["alpha"]
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p.data
        v = state["square_avg"]
        v *= alpha
        v += (1 - alpha) * g * g
        if group["centered"]:
            m = state["grad_avg"]
            m += (1 - alpha) * (g - m)
            d = xp.sqrt(v - m * m) + group["eps"]
        else:
            d = xp.sqrt(v) + group["eps"]
        if group["momentum"] > 0:
            b = state["momentum_buffer"]
            b *= group["momentum"]
            b += g / d
            p.data -= group["lr"] * b
        else:
            p.data -= group["lr"] * g / d
