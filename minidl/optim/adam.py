"""Adam: momentum on the gradient and on its square, with bias correction."""
from __future__ import annotations

import math
from typing import Any, Iterable

from ..tensor import Tensor
from .optimizer import Optimizer

__all__ = ["Adam"]


def check_adam_options(name: str, group: dict, index: int) -> None:
    """The checks Adam and AdamW share: betas in [0, 1), eps and weight_decay >= 0."""
    betas = group["betas"]
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r} in group {index}")
    for i, b in enumerate(betas):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"{name}: invalid beta{i + 1} {b} in group {index}; expected 0 <= beta < 1")
    if not group["eps"] >= 0.0:
        raise ValueError(f"{name}: invalid eps {group['eps']} in group {index}; expected >= 0")
    if not group["weight_decay"] >= 0.0:
        raise ValueError(f"{name}: invalid weight_decay {group['weight_decay']} in group {index}; expected >= 0")


def adam_moment_step(p: Tensor, g: Any, state: dict, group: dict, xp) -> None:
    r"""The Adam move shared by Adam and AdamW, on a gradient ``g`` already prepared::

        m ← β₁ m + (1 − β₁) g          v ← β₂ v + (1 − β₂) g²
        v̂ = max(v̂, v) if amsgrad else v
        θ ← θ − (η / (1 − β₁ᵗ)) · m / (√v̂ / √(1 − β₂ᵗ) + ε)
    """
    if not state:
        state["step"] = 0
        state["exp_avg"] = xp.zeros_like(p.data)
        state["exp_avg_sq"] = xp.zeros_like(p.data)
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = xp.zeros_like(p.data)
    state["step"] += 1
    t = state["step"]
    beta1, beta2 = group["betas"]
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m += (1 - beta1) * (g - m)
    v *= beta2
    v += (1 - beta2) * g * g
    if group["amsgrad"]:
        xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        v = state["max_exp_avg_sq"]
    step_size = group["lr"] / (1 - beta1 ** t)
    denom = xp.sqrt(v)
    denom /= math.sqrt(1 - beta2 ** t)
    denom += group["eps"]
    update = xp.divide(m, denom, out=denom)
    update *= step_size
    p.data -= update


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015) with optional AMSGrad, PyTorch's equations.

    At step t (from 1), with ``g`` the gradient (negated when ``maximize``)::

        g ← g + λ θ                           (weight_decay λ: coupled L2, as in the paper)
        m ← β₁ m + (1 − β₁) g                 (first moment)
        v ← β₂ v + (1 − β₂) g²                (second moment)
        v̂ ← max(v̂, v)   if amsgrad            (never let the denominator shrink)
        θ ← θ − η · (m / (1 − β₁ᵗ)) / (√(v̂ / (1 − β₂ᵗ)) + ε)

    For decoupled weight decay (the usual choice with Adam) use ``AdamW``.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _check_options(self, group: dict, index: int) -> None:
        super()._check_options(group, index)
        check_adam_options("Adam", group, index)

    def _update(self, p: Tensor, grad: Any, state: dict, group: dict, xp) -> None:
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p.data
        adam_moment_step(p, g, state, group, xp)
